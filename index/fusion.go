package index

import (
	"fmt"
	"math"
)

// Fusion methods of a hybrid search.
const (
	// FusionConvex is a convex combination of normalised scores:
	// score(d) = w_v·norm_v(d) + w_b·norm_b(d), weights summing to 1
	// (Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid
	// Retrieval", TOIS 2023).
	FusionConvex = "convex"
	// FusionRRF is Reciprocal Rank Fusion: score(d) = Σ w_i / (k + rank_i).
	FusionRRF = "rrf"
)

// Score normalisations of FusionConvex.
const (
	// NormMinMax maps a list's scores to [0, 1]: (s − min) / (max − min).
	NormMinMax = "minmax"
	// NormZScore maps them to (s − mean) / standard deviation.
	NormZScore = "zscore"
)

// Weights weigh the vector list and the BM25 list of a hybrid search.
// A weight of 0 makes its list contribute nothing.
type Weights struct {
	Vector, BM25 float64
}

// Balanced weighs both lists alike.
var Balanced = Weights{Vector: 1, BM25: 1}

// Valid reports whether w can weigh a search: both finite and ≥ 0, not
// both 0.
func (w Weights) Valid() error {
	for _, x := range []float64{w.Vector, w.BM25} {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			return fmt.Errorf("%w: weights must be finite and at least 0", ErrBadQuery)
		}
	}
	if w.Vector == 0 && w.BM25 == 0 {
		return fmt.Errorf("%w: at least one weight must be above 0", ErrBadQuery)
	}
	return nil
}

// IsZero reports whether w names no weights (the default applies).
func (w Weights) IsZero() bool { return w == Weights{} }

// Fusion is how a hybrid search fuses its two lists.
type Fusion struct {
	// Method is FusionConvex or FusionRRF ("" is FusionConvex).
	Method string
	// Weights of the lists; zero: Balanced.
	Weights Weights
	// Norm is FusionConvex's normalisation: NormMinMax ("") or NormZScore.
	Norm string
	// RRFK is the Reciprocal Rank Fusion constant (60 when zero).
	RRFK float64
}

// String names the fusion, for cache keys and logs.
func (f Fusion) String() string {
	f = f.withDefaults()
	if f.Method == FusionRRF {
		return fmt.Sprintf("rrf k=%g v=%g b=%g", f.RRFK, f.Weights.Vector, f.Weights.BM25)
	}
	return fmt.Sprintf("convex %s v=%g b=%g", f.Norm, f.Weights.Vector, f.Weights.BM25)
}

// Validate reports an unknown method or normalisation, or invalid weights.
func (f Fusion) Validate() error {
	f = f.withDefaults()
	if f.Method != FusionConvex && f.Method != FusionRRF {
		return fmt.Errorf("%w: fusion %q (convex or rrf)", ErrBadQuery, f.Method)
	}
	if f.Norm != NormMinMax && f.Norm != NormZScore {
		return fmt.Errorf("%w: normalisation %q (minmax or zscore)", ErrBadQuery, f.Norm)
	}
	return f.Weights.Valid()
}

func (f Fusion) withDefaults() Fusion {
	if f.Method == "" {
		f.Method = FusionConvex
	}
	if f.Weights.IsZero() {
		f.Weights = Balanced
	}
	if f.Norm == "" {
		f.Norm = NormMinMax
	}
	if f.RRFK <= 0 {
		f.RRFK = 60
	}
	return f
}

// Scored is an item of a ranked list with its score (higher is better).
type Scored struct {
	ID    ID
	Score float64
}

// Fuse fuses the vector list and the BM25 list, each best first. A list
// that cannot rank — empty, a single hit, or every score equal — contributes
// nothing (its weight counts 0), so it adds no noise to the other list's
// order; its hits still join the answer, and its ranks are reported. When
// both lists are such, both keep their weights. Equal scores go by rank in
// the heavier list, then the other, then by id.
func (f Fusion) Fuse(vec, bm25 []Scored) []Fused {
	f = f.withDefaults()
	w := []float64{f.Weights.Vector, f.Weights.BM25}
	flatV, flatB := flat(vec), flat(bm25)
	if flatV && !flatB && w[1] > 0 {
		w[0] = 0
	}
	if flatB && !flatV && w[0] > 0 {
		w[1] = 0
	}
	if f.Method == FusionRRF {
		return RRF(f.RRFK, w, ids(vec), ids(bm25))
	}
	return Convex(f.Norm, w, vec, bm25)
}

// Convex fuses scored lists by a convex combination of their normalised
// scores (norm: NormMinMax or NormZScore). The weights are scaled to sum
// to 1; an item absent from a list gets that list's lowest normalised
// score. A list whose scores are all equal normalises to 0 throughout.
// Equal scores go by rank in the heavier list, then the other, then by id.
func Convex(norm string, weights []float64, lists ...[]Scored) []Fused {
	top, total := 0.0, 0.0
	for _, w := range weights {
		top = math.Max(top, w)
	}
	for _, w := range weights {
		total += w / top // scaled first: huge weights do not overflow
	}
	acc := newAccumulator(len(lists))
	for li, list := range lists {
		for r, s := range list {
			if f := acc.at(s.ID); f.Ranks[li] == 0 {
				f.Ranks[li] = r + 1
			}
		}
	}
	for li, list := range lists {
		if li >= len(weights) || weights[li] == 0 || total == 0 {
			continue
		}
		w := weights[li] / top / total
		n, floor := normalise(norm, list)
		for _, f := range acc.order {
			if r := f.Ranks[li]; r > 0 {
				f.Score += w * n[r-1]
			} else {
				f.Score += w * floor
			}
		}
	}
	return acc.sorted(heaviest(weights, len(lists)))
}

// finiteScores returns a list's scores with the non-finite ones made
// finite: +Inf takes the highest finite score, NaN and -Inf the lowest (0
// when none is finite). A provider's NaN (pgvector's cosine distance of a
// zero vector, say) or an overflow then ranks its hit last or first
// instead of turning every fused score into NaN.
func finiteScores(list []Scored) []float64 {
	lo, hi, any := 0.0, 0.0, false
	for _, s := range list {
		if v := s.Score; !math.IsNaN(v) && !math.IsInf(v, 0) {
			if !any || v < lo {
				lo = v
			}
			if !any || v > hi {
				hi = v
			}
			any = true
		}
	}
	out := make([]float64, len(list))
	for i, s := range list {
		switch v := s.Score; {
		case math.IsInf(v, 1):
			out[i] = hi
		case math.IsNaN(v) || math.IsInf(v, -1):
			out[i] = lo
		default:
			out[i] = v
		}
	}
	return out
}

// spread returns the lowest and highest of scores and whether they are
// all equal (within rounding).
func spread(scores []float64) (lo, hi float64, equal bool) {
	if len(scores) == 0 {
		return 0, 0, true
	}
	lo, hi = scores[0], scores[0]
	for _, v := range scores {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi, hi-lo <= 1e-12*math.Max(1, math.Abs(hi))
}

// normalise returns a list's normalised scores and the lowest of them
// (what an absent item gets).
func normalise(norm string, list []Scored) ([]float64, float64) {
	scores := finiteScores(list)
	out := make([]float64, len(list))
	lo, hi, equal := spread(scores)
	if equal {
		return out, 0
	}
	if norm == NormZScore {
		mean, sd := 0.0, 0.0
		for _, v := range scores {
			mean += v / float64(len(scores))
		}
		for _, v := range scores {
			sd += (v - mean) * (v - mean) / float64(len(scores))
		}
		sd = math.Sqrt(sd)
		for i, v := range scores {
			out[i] = (v - mean) / sd
		}
		return out, (lo - mean) / sd
	}
	for i, v := range scores {
		out[i] = (v - lo) / (hi - lo)
	}
	return out, 0
}

// flat reports whether a list cannot rank: fewer than two hits, or every
// (finite) score equal.
func flat(list []Scored) bool {
	if len(list) < 2 {
		return true
	}
	_, _, equal := spread(finiteScores(list))
	return equal
}

func ids(list []Scored) []ID {
	out := make([]ID, len(list))
	for i, s := range list {
		out[i] = s.ID
	}
	return out
}
