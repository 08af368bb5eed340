package vector

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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
	w := x.rot.dp/64 + 2 // the one-bit code; the fine code's scale and sum follow
	if got := x.code(x.byID[idOf(7)]); !slices.Equal(got[:w], want[:w]) {
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
	if y := reloaded(t, x); !slices.Equal(x.codes, y.codes) {
		t.Error("codes derived at load differ from the codes built by inserts")
	}
}

// looseClustered makes data shaped like the benchmark's: unit vectors
// around c random centres with noise of norm 0.8 (cluster mates about 0.6
// apart in cosine, where a 1-bit estimate's error is a large share of the
// gaps between neighbours).
func looseClustered(r *rand.Rand, n, q, dim, c int) (data, queries [][]float32) {
	return clusteredNoise(r, n, q, dim, c, 0.8)
}

// The traversal on estimates (Search) finds at least what the float
// traversal (SearchFloat) finds at the same ef, on tight and on loose
// clusters, while computing fewer exact distances.
func TestEstimateTraversalRecallAtLeastFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	tight, tq := clustered(r, 4000, 100, 128, 40)
	loose, lq := looseClustered(r, 6000, 100, 256, 30)
	for _, set := range []struct {
		name          string
		data, queries [][]float32
	}{{"tight", tight, tq}, {"loose", loose, lq}} {
		x := build(t, set.data)
		for _, ef := range []int{10, 20, 40, 80} {
			var exact [2]int
			rec := [2]float64{}
			vs := &visitSet{}
			for i, float := range []bool{false, true} {
				vs.exact = 0
				rec[i] = recallOf(set.data, set.queries, 10, func(q []float32) []Result {
					x.mu.RLock()
					defer x.mu.RUnlock()
					return x.searchWith(vs, normalized(q), 10, ef, nil, float)
				})
				exact[i] = vs.exact
			}
			t.Logf("%s, ef %d: recall@10 estimates %.4f, float %.4f; exact distances %d against %d",
				set.name, ef, rec[0], rec[1], exact[0]/len(set.queries), exact[1]/len(set.queries))
			if rec[0] < rec[1] {
				t.Errorf("%s, ef %d: recall %.4f on estimates, below the float traversal's %.4f", set.name, ef, rec[0], rec[1])
			}
			if exact[0] >= exact[1] {
				t.Errorf("%s, ef %d: %d exact distances on estimates, %d in the float traversal", set.name, ef, exact[0], exact[1])
			}
		}
	}
}

// The batched estimator (estimateAll, what the traversal calls) gives each
// node's estimate, within the RaBitQ bound of the exact inner product for
// all but a few per cent, and popDot is Σ x_i·u_i of bits and 4-bit values.
func TestEstimateAllWithinBound(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	for _, dim := range []int{96, 768} {
		data, queries := looseClustered(r, 600, 20, dim, 10)
		x := build(t, data)
		nodes := make([]int32, len(data))
		for i := range nodes {
			nodes[i] = x.byID[idOf(i)]
		}
		vs := x.visitSet()
		var qq quantQuery
		outside, n := 0, 0
		for _, q := range queries {
			x.rot.prepare(q, &qq)
			ests := x.estimateAll(&qq, nodes, nil, vs)
			for i, e := range ests {
				ip, width := qq.estimate(x.code(nodes[i]))
				if e.node != nodes[i] || e.dist != 1-ip || e.width != width {
					t.Fatalf("dim %d: batch estimate %+v, single %v ± %v", dim, e, 1-ip, width)
				}
				if math.Abs(float64(1-e.dist-dotGo(q, data[i]))) > float64(e.width) {
					outside++
				}
				n++
			}
		}
		x.visits.Put(vs)
		t.Logf("dim %d: %d of %d estimates outside their bound", dim, outside, n)
		if outside > n*3/100 {
			t.Errorf("dim %d: %d of %d estimates outside their bound", dim, outside, n)
		}
	}
	for range 100 {
		code, planes := make([]uint64, 12), make([]uint64, 48)
		for i := range code {
			code[i] = r.Uint64()
		}
		for i := range planes {
			planes[i] = r.Uint64()
		}
		want := 0
		for i := range 768 {
			w, b := i/64, uint(i%64)
			if code[w]>>b&1 == 1 {
				for j := range 4 {
					want += int(planes[j*12+w]>>b&1) << j
				}
			}
		}
		if got := popDot(code, planes); got != want {
			t.Fatalf("popDot %d, want %d", got, want)
		}
		if got := popDotGo(code, planes); got != want {
			t.Fatalf("popDotGo %d, want %d", got, want)
		}
	}
}

// reloaded is x written to a stream and read back.
func reloaded(t *testing.T, x *Index) *Index {
	t.Helper()
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	y, err := ReadFrom(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// TestPopDotKernelsAgree checks the SIMD kernel against the word loop at
// every length from 1 to 40 words (the 8- and 4-word blocks and the
// tail), where the CPU has the kernel.
func TestPopDotKernelsAgree(t *testing.T) {
	if !popDotFast {
		t.Skip("no AVX-512 VPOPCNTQ kernel in this build or on this CPU")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for w := 1; w <= 40; w++ {
		for range 50 {
			code, planes := make([]uint64, w), make([]uint64, 4*w)
			for i := range code {
				code[i] = r.Uint64()
			}
			for i := range planes {
				planes[i] = r.Uint64()
			}
			if got, want := popDotSIMD(code, planes), popDotGo(code, planes); got != want {
				t.Fatalf("%d words: popDotSIMD %d, popDotGo %d", w, got, want)
			}
		}
	}
}

func BenchmarkPopDot(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	code, planes := make([]uint64, 12), make([]uint64, 48)
	for i := range code {
		code[i] = r.Uint64()
	}
	for i := range planes {
		planes[i] = r.Uint64()
	}
	b.Run("kernel", func(b *testing.B) {
		s := 0
		for b.Loop() {
			s += popDot(code, planes)
		}
		_ = s
	})
	b.Run("go", func(b *testing.B) {
		s := 0
		for b.Loop() {
			s += popDotGo(code, planes)
		}
		_ = s
	})
}

// TestFWHTKernelsAgree checks the SIMD transform against the scalar one
// to the bit (the same butterflies in the same order) at every power-of-
// two length from 16 to 2048, and the rotation of 768 and 1536
// dimensions (overlapping blocks) both ways, where the CPU has the kernel.
func TestFWHTKernelsAgree(t *testing.T) {
	if !fwhtFast {
		t.Skip("no AVX2 transform in this build or on this CPU")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for n := 16; n <= 2048; n *= 2 {
		for range 20 {
			a := gaussian(r, n)
			b := slices.Clone(a)
			scale := float32(1 / math.Sqrt(float64(n)))
			fwht(a, make([]float32, n/2), scale)
			fwhtSIMD(b, scale)
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("length %d, [%d]: scalar %v, SIMD %v", n, i, a[i], b[i])
				}
			}
		}
	}
	for _, dim := range []int{100, 768, 1536} {
		rot := newRotation(dim)
		v := gaussian(r, dim)
		fast, slow := make([]float32, rot.dp), make([]float32, rot.dp)
		rot.apply(v, fast)
		fwhtFast = false
		rot.apply(v, slow)
		fwhtFast = true
		if !slices.Equal(fast, slow) {
			t.Fatalf("%d dimensions: the rotation differs between the kernels", dim)
		}
	}
}

func BenchmarkRotation(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	rot := newRotation(768)
	v, out := gaussian(r, 768), make([]float32, rot.dp)
	fast := fwhtFast
	defer func() { fwhtFast = fast }()
	for _, on := range []bool{true, false} {
		name := "scalar"
		if on {
			name = "kernel"
		}
		b.Run(name, func(b *testing.B) {
			if on && !fast {
				b.Skip("no AVX2 transform in this build or on this CPU")
			}
			fwhtFast = on
			for b.Loop() {
				rot.apply(v, out)
			}
		})
	}
}

// gaussian is n standard normal floats.
func gaussian(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// TestQuantizeKernelsAgree checks the SIMD quantization against the
// scalar loop to the bit (planes, lo, Δ and the sum), where the CPU has it.
func TestQuantizeKernelsAgree(t *testing.T) {
	if !fwhtFast {
		t.Skip("no AVX2 quantization in this build or on this CPU")
	}
	defer func() { fwhtFast = true }()
	r := rand.New(rand.NewPCG(13, 14))
	for _, dp := range []int{64, 128, 768, 1536} {
		for range 50 {
			v := gaussian(r, dp)
			fast, slow := make([]uint64, 4*dp/64), make([]uint64, 4*dp/64)
			fwhtFast = true
			lo1, d1, s1 := quantize(v, fast)
			fwhtFast = false
			lo2, d2, s2 := quantize(v, slow)
			if lo1 != lo2 || d1 != d2 || s1 != s2 || !slices.Equal(fast, slow) {
				t.Fatalf("%d dimensions: SIMD (%v, %v, %d) and scalar (%v, %v, %d) differ, or their planes", dp, lo1, d1, s1, lo2, d2, s2)
			}
		}
	}
}

// TestKernelsNamed checks that Kernels names what runs.
func TestKernelsNamed(t *testing.T) {
	k := Kernels()
	t.Log(k)
	if strings.Contains(k, "VPOPCNTQ") != popDotFast || strings.Contains(k, "VPMADDUBSW") != dot8Fast {
		t.Fatalf("Kernels says %q with popDotFast %v, dot8Fast %v", k, popDotFast, dot8Fast)
	}
}
