package search

import (
	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
)

// FusionDefaults choose how a hybrid search that names no weights (or no
// method) fuses its lists, by how far the embedder's list can be trusted
// (docs/API.md, "Default fusion"): the built-in hash embedder is lexical,
// a blurred copy of BM25, so its list only breaks near-ties and never pulls
// BM25 down; a language-model embedder brings what BM25 lacks and weighs
// alike.
type FusionDefaults struct {
	// Method is index.FusionConvex or index.FusionRRF.
	Method string
	// ByModel holds the weights of the embedders named here, by model.
	ByModel map[string]index.Weights
	// Other weighs the lists of every other embedder.
	Other index.Weights
}

// DefaultFusion is the measured default (bench/RESULTS.md, "Retrieval
// quality on CISI"): a convex combination of min-max normalised scores;
// the hash embedder's list weighs 0.02 against BM25's 0.98, any other
// embedder's 0.5 against 0.5.
func DefaultFusion() FusionDefaults {
	return FusionDefaults{
		Method:  index.FusionConvex,
		ByModel: map[string]index.Weights{embed.Hash{}.Model(): {Vector: 0.02, BM25: 0.98}},
		Other:   index.Weights{Vector: 0.5, BM25: 0.5},
	}
}

// For is the default fusion of searches over model's embeddings.
func (d FusionDefaults) For(model string) index.Fusion {
	w, ok := d.ByModel[model]
	if !ok {
		w = d.Other
	}
	return index.Fusion{Method: d.Method, Weights: w}
}

// Fill gives f's empty fields def's values: a search naming only weights
// keeps the default method, one naming only a method the default weights.
func Fill(f, def index.Fusion) index.Fusion {
	if f.Method == "" {
		f.Method = def.Method
	}
	if f.Weights.IsZero() {
		f.Weights = def.Weights
	}
	if f.Norm == "" {
		f.Norm = def.Norm
	}
	if f.RRFK == 0 {
		f.RRFK = def.RRFK
	}
	return f
}
