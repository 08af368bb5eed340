package vector

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The rotation is orthogonal: it keeps norms and inner products.
func TestRotationIsOrthogonal(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, dim := range []int{32, 64, 100, 768} {
		rot := newRotation(dim)
		a, b := randVec(r, dim, nil, 0), randVec(r, dim, nil, 0)
		ra, rb := make([]float32, rot.dp), make([]float32, rot.dp)
		rot.apply(a, ra)
		rot.apply(b, rb)
		if d := math.Abs(float64(dotGo(ra, ra)) - 1); d > 1e-4 {
			t.Errorf("dim %d: norm² after rotation off by %g", dim, d)
		}
		if d := math.Abs(float64(dotGo(ra, rb) - dotGo(a, b))); d > 1e-4 {
			t.Errorf("dim %d: inner product after rotation off by %g", dim, d)
		}
	}
}

// The estimator is RaBitQ's: unbiased, with an error of about
// √((1−f²)/f²)/√dp (f ≈ 0.8, so ≈ 0.75/√dp) that stays inside the stated
// width (ε0 = 1.9) for all but a few per cent of estimates, on clustered
// vectors (neighbours, where the estimate matters).
func TestEstimatorErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, dim := range []int{100, 768} {
		data, queries := clustered(r, 1000, 30, dim, 20)
		rot := newRotation(dim)
		code, tmp := make([]uint64, codeWords(rot.dp)), make([]float32, rot.dp)
		var qq quantQuery
		outside, n := 0, 0
		var sum, sq float64
		for _, q := range queries {
			rot.prepare(q, &qq)
			for _, v := range data {
				rot.encode(v, code, tmp)
				est, width := qq.estimate(code)
				err := float64(est - dotGo(q, v))
				sum += err
				sq += err * err
				if math.Abs(err) > float64(width) {
					outside++
				}
				n++
			}
		}
		mean, rms := sum/float64(n), math.Sqrt(sq/float64(n))
		t.Logf("dim %d: mean error %.5f, rms %.4f, %d of %d outside the width", dim, mean, rms, outside, n)
		if outside > n*3/100 {
			t.Errorf("dim %d: %d of %d estimates outside their width", dim, outside, n)
		}
		if want := 0.9 / math.Sqrt(float64(rot.dp)); rms > want {
			t.Errorf("dim %d: rms error %.4f, want <= %.4f", dim, rms, want)
		}
		if math.Abs(mean) > rms/5 {
			t.Errorf("dim %d: biased: mean error %.5f against rms %.4f", dim, mean, rms)
		}
	}
}

// recallOf is recall@k of search against brute force over data.
func recallOf(data, queries [][]float32, k int, search func(q []float32) []Result) float64 {
	all := func(int) bool { return true }
	hit := 0
	for _, q := range queries {
		got := search(q)
		for _, w := range bruteForce(data, all, q, k) {
			if slices.ContainsFunc(got, func(r Result) bool { return r.ID == idOf(w) }) {
				hit++
			}
		}
	}
	return float64(hit) / float64(k*len(queries))
}

// At the same ef the quantized traversal finds what the float one finds.
func TestQuantizedRecallMatchesFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	data, queries := clustered(r, 5000, 150, 96, 50)
	x := build(t, data)
	for _, ef := range []int{20, 40, 80} {
		quant := recallOf(data, queries, 10, func(q []float32) []Result { res, _ := x.Search(q, 10, ef, nil); return res })
		float := recallOf(data, queries, 10, func(q []float32) []Result { res, _ := x.SearchFloat(q, 10, ef, nil); return res })
		t.Logf("ef %d: recall@10 quantized %.4f, float %.4f", ef, quant, float)
		if quant < float-0.005 {
			t.Errorf("ef %d: quantized recall %.4f below float %.4f", ef, quant, float)
		}
	}
}

// A quantized search pays fewer exact distances than a float one.
func TestQuantizedSearchSkipsExactDistances(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	data, queries := clustered(r, 5000, 50, 256, 50)
	x := build(t, data)
	count := func(exact bool) int {
		vs := x.visitSet()
		vs.exact = 0
		x.visits.Put(vs)
		total := 0
		for _, q := range queries {
			x.search(q, 10, 60, nil, exact)
			vs := x.visitSet()
			total += vs.exact
			vs.exact = 0
			x.visits.Put(vs)
		}
		return total
	}
	float, quant := count(true), count(false)
	t.Logf("exact distances per query: float %d, quantized %d", float/len(queries), quant/len(queries))
	if quant*4 > float*3 {
		t.Errorf("quantized search computed %d exact distances, float %d", quant, float)
	}
}

// Codes follow the vectors: an upsert's node gets the new vector's code,
// deleted ids never come back from a quantized search, and a graph read
// back from its stream has the same codes (derived at load, not stored).
func TestCodesFollowUpdatesAndDeletes(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	data, queries := clustered(r, 3000, 50, 96, 30)
	x := build(t, data)
	target := randVec(r, 96, nil, 0)
	if err := x.Add(idOf(7), target); err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, x.cw)
	x.rot.encode(target, want, make([]float32, x.rot.dp))
	if got := x.code(x.byID[idOf(7)]); !slices.Equal(got, want) {
		t.Fatal("the upserted node's code is not its new vector's")
	}
	if res, _ := x.Search(target, 1, 40, nil); len(res) != 1 || res[0].ID != idOf(7) {
		t.Fatalf("upserted vector not found first: %+v", res)
	}
	for i := 0; i < len(data); i += 7 {
		x.Delete(idOf(i))
	}
	for _, q := range append(queries, data[14], data[21]) {
		res, _ := x.Search(q, 10, 40, nil)
		for _, h := range res {
			if n := int(h.ID[2])<<8 | int(h.ID[3]); n%7 == 0 {
				t.Fatalf("deleted vector %d came back", n)
			}
		}
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	y, err := ReadFrom(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.codes, y.codes) {
		t.Error("codes derived at load differ from the codes built by inserts")
	}
}
