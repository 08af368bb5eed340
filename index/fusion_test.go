package index

import (
	"errors"
	"math"
	"testing"
)

func scored(pairs ...float64) []Scored {
	out := make([]Scored, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Scored{ID: ID{byte(pairs[i])}, Score: pairs[i+1]})
	}
	return out
}

func order(fs []Fused) []byte {
	out := make([]byte, len(fs))
	for i, f := range fs {
		out[i] = f.ID[0]
	}
	return out
}

func TestNormalise(t *testing.T) {
	list := scored(1, 10, 2, 6, 3, 2)
	mm, floor := normalise(NormMinMax, list)
	if want := []float64{1, 0.5, 0}; !near(mm, want) || floor != 0 {
		t.Errorf("min-max %v floor %v, want %v floor 0", mm, floor, want)
	}
	z, zfloor := normalise(NormZScore, list)
	// mean 6, standard deviation sqrt(32/3)
	sd := math.Sqrt(32.0 / 3)
	if want := []float64{4 / sd, 0, -4 / sd}; !near(z, want) || math.Abs(zfloor+4/sd) > 1e-12 {
		t.Errorf("z-score %v floor %v, want %v", z, zfloor, want)
	}
	if flatN, _ := normalise(NormMinMax, scored(1, 3, 2, 3)); !near(flatN, []float64{0, 0}) {
		t.Errorf("a flat list normalises to %v, want zeros", flatN)
	}
}

func near(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-12 {
			return false
		}
	}
	return true
}

func TestConvexWeights(t *testing.T) {
	vec := scored(1, 0.9, 2, 0.5, 3, 0.1)
	bm := scored(3, 12, 2, 9, 1, 0)
	for _, tc := range []struct {
		name string
		w    Weights
		want []byte
	}{
		{"vector only", Weights{Vector: 1}, []byte{1, 2, 3}},
		{"bm25 only", Weights{BM25: 1}, []byte{3, 2, 1}},
		{"balanced: 2 is second in both", Balanced, []byte{2, 1, 3}},
		{"bm25 heavier", Weights{Vector: 1, BM25: 3}, []byte{3, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Fusion{Weights: tc.w}.Fuse(vec, bm)
			if string(order(got)) != string(tc.want) {
				t.Errorf("order %v, want %v", order(got), tc.want)
			}
		})
	}
	// Scores: 0.5·norm_v + 0.5·norm_b, weights scaled to sum 1: item 2
	// has 0.5·0.5 + 0.5·0.75.
	got := Fusion{Weights: Weights{Vector: 2, BM25: 2}}.Fuse(vec, bm)
	if got[0].ID != (ID{2}) || math.Abs(got[0].Score-0.625) > 1e-12 || got[0].Ranks[0] != 2 || got[0].Ranks[1] != 2 {
		t.Errorf("first %+v, want item 2 at 0.625, ranks 2 and 2", got[0])
	}
}

func TestFlatListContributesNothing(t *testing.T) {
	vec := scored(1, 0.9, 2, 0.8, 3, 0.7)
	for _, tc := range []struct {
		name string
		bm   []Scored
	}{
		{"empty", nil},
		{"one hit", scored(3, 7)},
		{"all equal", scored(3, 2, 2, 2, 9, 2)},
	} {
		for _, method := range []string{FusionConvex, FusionRRF} {
			t.Run(tc.name+" "+method, func(t *testing.T) {
				got := Fusion{Method: method, Weights: Weights{Vector: 1, BM25: 100}}.Fuse(vec, tc.bm)
				// The vector list's order stands; the flat list's own
				// hits (9) join after it, and its ranks are reported.
				want := []byte{1, 2, 3}
				if len(tc.bm) == 3 {
					want = append(want, 9)
				}
				if string(order(got)) != string(want) {
					t.Errorf("order %v, want %v", order(got), want)
				}
				for _, f := range got {
					if f.ID == (ID{3}) && len(tc.bm) > 0 && f.Ranks[1] != 1 {
						t.Errorf("item 3's BM25 rank %d, want 1", f.Ranks[1])
					}
				}
			})
		}
	}
}

func TestBothListsFlatKeepTheirWeights(t *testing.T) {
	got := Fusion{Weights: Weights{Vector: 1, BM25: 3}}.Fuse(scored(5, 1), scored(4, 2))
	// Neither list ranks: each weighs by itself; 4 (BM25, heavier) first.
	if string(order(got)) != string([]byte{4, 5}) {
		t.Errorf("order %v, want [4 5]", order(got))
	}
}

func TestWeightZeroOnTheOtherListKeepsAFlatOne(t *testing.T) {
	// The caller asks for the vector list alone; it is flat: it still ranks.
	got := Fusion{Weights: Weights{Vector: 1}}.Fuse(scored(7, 1), scored(1, 9, 2, 8))
	if got[0].ID != (ID{7}) {
		t.Errorf("order %v, want 7 first", order(got))
	}
}

func TestFusionTiesGoByHeavierListThenID(t *testing.T) {
	// 5 and 6 score alike (1·0.5 + 0·0.5); the heavier list decides, and
	// with equal weights the first list (vector) does.
	vec, bm := scored(5, 1, 6, 0), scored(6, 1, 5, 0)
	for _, tc := range []struct {
		name string
		f    Fusion
		want byte
	}{
		{"convex balanced", Fusion{Weights: Balanced}, 5},
		{"rrf balanced", Fusion{Method: FusionRRF, Weights: Balanced}, 5},
		{"bm25 heavier, rrf", Fusion{Method: FusionRRF, Weights: Weights{Vector: 1, BM25: 1.5}}, 6},
	} {
		if got := order(tc.f.Fuse(vec, bm)); got[0] != tc.want {
			t.Errorf("%s: order %v, want %d first", tc.name, got, tc.want)
		}
	}
	// Equal in score and in every list's rank (a list that ranks nothing
	// here): by id, whatever order they came in.
	for _, lists := range [][][]Scored{
		{{{ID: ID{9}}, {ID: ID{8}}}},
		{{{ID: ID{8}}, {ID: ID{9}}}},
	} {
		acc := newAccumulator(1)
		for _, s := range lists[0] {
			acc.at(s.ID)
		}
		if o := order(acc.sorted(nil)); string(o) != string([]byte{8, 9}) {
			t.Errorf("order %v, want [8 9]", o)
		}
	}
}

func TestWeightsValid(t *testing.T) {
	for _, w := range []Weights{{Vector: -1, BM25: 1}, {Vector: math.NaN(), BM25: 1}, {BM25: math.Inf(1)}, {}} {
		if err := w.Valid(); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v, want ErrBadQuery", w, err)
		}
	}
	for _, w := range []Weights{{Vector: 1}, {BM25: 0.5}, {Vector: 0.02, BM25: 0.98}} {
		if err := w.Valid(); err != nil {
			t.Errorf("%+v: %v", w, err)
		}
	}
	if err := (Fusion{Method: "max"}).Validate(); !errors.Is(err, ErrBadQuery) {
		t.Errorf("unknown method: %v", err)
	}
}

// TestNonFiniteScoresStayOutOfTheFusion: a NaN or infinite score (pgvector's
// cosine distance of a zero vector, an overflow) ranks its own hit, never
// turns the other hits' fused scores into NaN.
func TestNonFiniteScoresStayOutOfTheFusion(t *testing.T) {
	vec := []Scored{{ID: ID{1}, Score: 0.9}, {ID: ID{2}, Score: math.NaN()}, {ID: ID{3}, Score: 0.1}}
	bm25 := []Scored{{ID: ID{3}, Score: math.Inf(1)}, {ID: ID{1}, Score: 2}, {ID: ID{2}, Score: 1}}
	for _, norm := range []string{NormMinMax, NormZScore} {
		fused := Fusion{Method: FusionConvex, Norm: norm, Weights: Balanced}.Fuse(vec, bm25)
		if len(fused) != 3 {
			t.Fatalf("%s: %d hits", norm, len(fused))
		}
		for _, f := range fused {
			if math.IsNaN(f.Score) || math.IsInf(f.Score, 0) {
				t.Errorf("%s: id %d scored %v", norm, f.ID, f.Score)
			}
		}
		if fused[len(fused)-1].ID != (ID{2}) {
			t.Errorf("%s: the NaN hit is not last: %+v", norm, fused)
		}
	}
	// A list whose only spread comes from an infinity still ranks: +Inf
	// takes the highest finite score, so two finite equal scores stay flat.
	if !flat([]Scored{{ID: ID{1}, Score: 1}, {ID: ID{2}, Score: math.Inf(1)}}) {
		t.Error("a list of one finite score and +Inf is not flat")
	}
}
