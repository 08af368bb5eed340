// Package embed turns text into 768-dimensional vectors through one
// Embedder interface with three providers: Hash (the embedded default, a
// deterministic lexical embedder), Workers AI (@cf/baai/bge-base-en-v1.5)
// and any OpenAI-compatible /v1/embeddings endpoint. Remote providers are
// called in batches with timeouts and retries (Batcher).
package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Dim is the dimension the schema stores (chunks.embedding vector(768)).
const Dim = 768

// ErrEmpty marks an attempt to embed empty text.
var ErrEmpty = errors.New("embed: empty text")

// Embedder embeds texts; the vectors are L2-normalized, Dim long, in the
// order of texts.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Model names the model, for caches and answers.
	Model() string
}

// Normalize scales v to unit length in place; a zero vector stays zero.
func Normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// checkVectors validates a provider's answer: one vector per text, dim
// long (Dim when 0), finite; it normalizes them.
func checkVectors(vs [][]float32, n, dim int) ([][]float32, error) {
	if len(vs) != n {
		return nil, fmt.Errorf("embed: %d vectors for %d texts", len(vs), n)
	}
	if dim == 0 {
		dim = Dim
	}
	for i, v := range vs {
		if len(v) != dim {
			return nil, fmt.Errorf("embed: vector %d has %d dimensions, want %d (configure a %d-dimensional model)", i, len(v), dim, dim)
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("embed: vector %d is not finite", i)
			}
		}
		Normalize(v)
	}
	return vs, nil
}
