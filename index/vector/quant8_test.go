package vector

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// buildFine builds data into a graph with the fine codes on or off,
// whatever this build's kernel (dot8 falls back to its portable loop).
func buildFine(t *testing.T, data [][]float32, fine bool) *Index {
	t.Helper()
	x, err := New(Config{Dim: len(data[0]), M: 16, EfConstruction: 64, EfSearch: 40})
	if err != nil {
		t.Fatal(err)
	}
	x.useFine = fine
	for i, v := range data {
		if err := x.Add(idOf(i), v); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// Fine estimates stay within their bound (fineSigmas standard deviations
// of the rounding error), and are far tighter than the one-bit codes'.
func TestFineEstimateWithinBound(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for _, dim := range []int{96, 768} {
		data, queries := looseClustered(r, 600, 20, dim, 10)
		x := buildFine(t, data, true)
		var qq quantQuery
		var fq fineQuery
		outside, n := 0, 0
		var worst, widest float64
		for _, q := range queries {
			qn := normalized(q)
			x.rot.prepare(qn, &qq)
			prepareFine(qq.rot, &fq)
			for i, v := range data {
				node := x.byID[idOf(i)]
				err := math.Abs(float64(x.fineDist(&fq, node) - (1 - dotGo(qn, normalized(v)))))
				w := float64(x.fineWidth(&fq, node))
				worst, widest = max(worst, err), max(widest, w)
				if err > w {
					outside++
				}
				n++
			}
		}
		t.Logf("dim %d: %d of %d fine estimates outside their bound; largest error %.2g, widest bound %.2g", dim, outside, n, worst, widest)
		if outside > 0 {
			t.Errorf("dim %d: %d of %d fine estimates outside their bound", dim, outside, n)
		}
		if widest > 0.02 {
			t.Errorf("dim %d: fine bound %.3g, wider than expected", dim, widest)
		}
	}
}

// A traversal on fine estimates finds at least the float traversal's
// recall at every ef, computes a fraction of its exact distances, and
// returns exact scores (the rerank).
func TestFineTraversal(t *testing.T) {
	r := rand.New(rand.NewPCG(53, 54))
	data, queries := looseClustered(r, 6000, 100, 256, 30)
	x := buildFine(t, data, true)
	for _, ef := range []int{10, 20, 40, 80} {
		vs := &visitSet{}
		var exact [2]int
		var rec [2]float64
		for i, float := range []bool{false, true} {
			vs.exact, vs.fined = 0, 0
			rec[i] = recallOf(data, queries, 10, func(q []float32) []Result {
				x.mu.RLock()
				defer x.mu.RUnlock()
				qn := normalized(q)
				res := x.searchWith(vs, qn, 10, ef, nil, float)
				for _, h := range res {
					v, _ := x.Vector(h.ID)
					if d := math.Abs(float64(h.Score - dotGo(qn, v))); d > 1e-5 {
						t.Fatalf("ef %d: score %v is not the exact cosine (off by %.2g)", ef, h.Score, d)
					}
				}
				return res
			})
			exact[i] = vs.exact
		}
		t.Logf("ef %d: recall@10 fine %.4f, float %.4f; exact distances %d against %d", ef, rec[0], rec[1], exact[0]/len(queries), exact[1]/len(queries))
		if rec[0] < rec[1] {
			t.Errorf("ef %d: recall %.4f on fine estimates, below the float traversal's %.4f", ef, rec[0], rec[1])
		}
		if exact[0]*4 > exact[1] {
			t.Errorf("ef %d: %d exact distances on fine estimates, %d in the float traversal", ef, exact[0], exact[1])
		}
	}
}

// Fine codes follow upserts, and a graph read back derives the same ones
// (where this build keeps them).
func TestFineCodesFollowUpdatesAndLoad(t *testing.T) {
	r := rand.New(rand.NewPCG(55, 56))
	data, _ := clustered(r, 1000, 1, 96, 10)
	x := buildFine(t, data, true)
	target := randVec(r, 96, nil, 0)
	if err := x.Add(idOf(7), target); err != nil {
		t.Fatal(err)
	}
	rot := make([]float32, x.rot.dp)
	x.rot.apply(normalized(target), rot)
	want := make([]int8, x.rot.dp)
	encodeFine(rot, want)
	if got := x.fineCode(x.byID[idOf(7)]); !slices.Equal(got, want) {
		t.Fatal("the upserted node's fine code is not its new vector's")
	}
	if !dot8Fast {
		t.Skip("this build keeps no fine codes on load (no SIMD kernel)")
	}
	if y := reloaded(t, x); !slices.Equal(x.fine, y.fine) || !slices.Equal(x.codes, y.codes) {
		t.Error("fine codes derived at load differ from the ones built by inserts")
	}
}

// growSlab keeps what the slab held and hands out zeroed room, across a
// reallocation and within capacity.
func TestGrowSlab(t *testing.T) {
	s := growSlab[int32](nil, 3)
	copy(s, []int32{1, 2, 3})
	for range 2000 {
		s = growSlab(s, 5)
		if !slices.Equal(s[len(s)-5:], make([]int32, 5)) {
			t.Fatal("grown room not zeroed")
		}
		copy(s[len(s)-5:], []int32{9, 9, 9, 9, 9})
	}
	if len(s) != 3+2000*5 || !slices.Equal(s[:3], []int32{1, 2, 3}) {
		t.Fatalf("slab lost its contents: len %d, head %v", len(s), s[:3])
	}
	big := makeSlab[float32](hugeMin, hugeMin) // advised for huge pages
	if len(big) != hugeMin || big[hugeMin-1] != 0 {
		t.Fatal("makeSlab")
	}
}
