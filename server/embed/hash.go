package embed

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"unicode"
)

// Hash is the embedded default: a deterministic lexical embedder, not a
// language model. Each text becomes a bag of features — lower-cased words,
// word pairs and character trigrams of words — each hashed to one of 768
// dimensions with a hashed sign, weighted by sublinear term frequency
// (stop words weigh little), then L2-normalized. Texts that share wording
// are near each other; texts that share only meaning are not. It needs no
// network, no model files and no GPU, and gives the same vector on every
// node forever. Dims sets the dimension (0: Dim, 768); each dimension is
// its own model (sostenuto-hash-v1 at 768, sostenuto-hash-v1-<dims>
// otherwise).
type Hash struct {
	Dims int
}

// Model implements Embedder.
func (h Hash) Model() string {
	if h.dim() == Dim {
		return "sostenuto-hash-v1"
	}
	return fmt.Sprintf("sostenuto-hash-v1-%d", h.dim())
}

// dim is the hash's dimension.
func (h Hash) dim() int {
	if h.Dims <= 0 {
		return Dim
	}
	return h.Dims
}

// Feature weights.
const (
	wordWeight    = 1.0
	pairWeight    = 0.5
	trigramWeight = 0.35
	stopWeight    = 0.1
)

// Embed implements Embedder.
func (h Hash) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v, err := h.vector(t)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (h Hash) vector(text string) ([]float32, error) {
	words := Words(text)
	if len(words) == 0 {
		return nil, ErrEmpty
	}
	counts := map[string]float64{}
	for i, w := range words {
		ww := wordWeight
		if stopWords[w] {
			ww = stopWeight
		}
		counts["w:"+w] += ww
		if i > 0 {
			counts["p:"+words[i-1]+" "+w] += pairWeight
		}
		if !stopWords[w] {
			padded := "^" + w + "$"
			r := []rune(padded)
			for j := 0; j+3 <= len(r); j++ {
				counts["t:"+string(r[j:j+3])] += trigramWeight
			}
		}
	}
	dim := uint64(h.dim())
	v := make([]float32, dim)
	for f, c := range counts {
		fh := fnv.New64a()
		fh.Write([]byte(f))
		x := fh.Sum64()
		idx := x % dim
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		v[idx] += sign * float32(1+math.Log(c))
	}
	Normalize(v)
	return v, nil
}

// Words splits text into lower-cased words of letters and digits.
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be because been
		before being below between both but by can could did do does doing down during each few for from further had
		has have having he her here hers herself him himself his how i if in into is it its itself just me more most
		my myself no nor not now of off on once only or other our ours ourselves out over own same she should so
		some such than that the their theirs them themselves then there these they this those through to too under
		until up very was we were what when where which while who whom why will with would you your yours yourself`) {
		m[w] = true
	}
	return m
}()
