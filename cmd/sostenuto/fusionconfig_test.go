package main

import (
	"errors"
	"testing"

	"github.com/sostenuto/sostenuto/index"
)

func TestFusionWeightsSetting(t *testing.T) {
	c := fusionConfig{method: "rrf", weights: "my-model=0.3:0.7, *=1:2"}
	d, err := c.defaults()
	if err != nil {
		t.Fatal(err)
	}
	if got := d.For("my-model"); got.Method != index.FusionRRF || got.Weights != (index.Weights{Vector: 0.3, BM25: 0.7}) {
		t.Errorf("my-model: %+v", got)
	}
	if got := d.For("other"); got.Weights != (index.Weights{Vector: 1, BM25: 2}) {
		t.Errorf("other: %+v", got)
	}
	if got := d.For("sostenuto-hash-v1"); got.Weights != (index.Weights{Vector: 0.02, BM25: 0.98}) {
		t.Errorf("hash keeps its built-in weights: %+v", got)
	}
	for _, bad := range []string{"m=1", "m=-1:1", "m=0:0", "=1:1", "m=x:1"} {
		var cfgErr *configError
		if _, err := (&fusionConfig{weights: bad}).defaults(); !errors.As(err, &cfgErr) {
			t.Errorf("%q: %v, want a configuration error", bad, err)
		}
	}
}
