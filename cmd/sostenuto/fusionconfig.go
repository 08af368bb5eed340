package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/search"
)

// fusionConfig chooses how hybrid searches that name no weights fuse
// their lists (docs/API.md, "Default fusion").
type fusionConfig struct {
	method  string
	weights string
}

func (c *fusionConfig) settings() []setting {
	return []setting{
		{name: "fusion", usage: "default fusion of hybrid searches: convex (min-max normalised scores) or rrf (reciprocal rank, k 60)", def: index.FusionConvex, parse: oneOfVar(&c.method, index.FusionConvex, index.FusionRRF)},
		{name: "fusion-weights", usage: "default weights per embedder model, overriding the built-in ones: MODEL=VECTOR:BM25,... (* names every other model), e.g. sostenuto-hash-v1=0.02:0.98,*=0.5:0.5", parse: stringVar(&c.weights)},
	}
}

// defaults are the built-in defaults with the configured method and
// weights.
func (c *fusionConfig) defaults() (search.FusionDefaults, error) {
	d := search.DefaultFusion()
	if c.method != "" {
		d.Method = c.method
	}
	for _, item := range strings.Split(c.weights, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		model, w, err := parseModelWeights(item)
		if err != nil {
			return d, &configError{setting: envName("fusion-weights"), err: err}
		}
		if model == "*" {
			d.Other = w
		} else {
			d.ByModel[model] = w
		}
	}
	return d, nil
}

// parseModelWeights reads MODEL=VECTOR:BM25.
func parseModelWeights(item string) (string, index.Weights, error) {
	i := strings.LastIndex(item, "=")
	v, b, ok := strings.Cut(item[i+1:], ":")
	if i <= 0 || !ok {
		return "", index.Weights{}, fmt.Errorf("%q is not MODEL=VECTOR:BM25", item)
	}
	vw, err1 := strconv.ParseFloat(strings.TrimSpace(v), 64)
	bw, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	w := index.Weights{Vector: vw, BM25: bw}
	if err := errors.Join(err1, err2); err != nil {
		return "", w, fmt.Errorf("%q: %w", item, err)
	}
	if err := w.Valid(); err != nil {
		return "", w, fmt.Errorf("%q: weights must be finite, at least 0 and not both 0", item)
	}
	return strings.TrimSpace(item[:i]), w, nil
}
