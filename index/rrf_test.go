package index

import (
	"math"
	"testing"
)

func TestRRF(t *testing.T) {
	a, b, c := ID{1}, ID{2}, ID{3}
	got := RRF(60, []float64{1, 2}, []ID{a, b}, []ID{c, a})
	if got[0].ID != a || got[0].Ranks[0] != 1 || got[0].Ranks[1] != 2 {
		t.Fatalf("%+v", got)
	}
	if want := 1/61.0 + 2/62.0; math.Abs(got[0].Score-want) > 1e-12 {
		t.Errorf("score %v want %v", got[0].Score, want)
	}
	// c: 2/61 > b: 1/62.
	if got[1].ID != c || got[2].ID != b || got[2].Ranks[1] != 0 {
		t.Errorf("order %+v", got)
	}
}
