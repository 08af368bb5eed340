package vector

import (
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/viterin/vek/vek32"
)

// Compact codes for graph traversal (RaBitQ, Gao & Long, SIGMOD 2024):
// every stored vector o (unit length) is padded to dp dimensions (a
// multiple of 64), turned by a fixed random rotation P, and kept as the
// signs of P·o, one bit per dimension, beside two factors. A query is
// turned by the same P and quantized to 4 bits per dimension; the inner
// product ⟨o, q⟩ is then estimated from bit-plane popcounts (math/bits,
// POPCNT on amd64) with a probabilistic error bound. The search uses the
// bound to skip exact distances that cannot enter the result set (hnsw.go).
//
// The codes derive from the vectors alone (the rotation comes from a fixed
// seed), so they are rebuilt on load and never written to a snapshot.

// rotation is P: rounds of random sign flips followed by normalised
// Walsh–Hadamard transforms on the first and the last h coordinates (h the
// largest power of two ≤ dp; the two blocks overlap when dp is not a power
// of two, so every coordinate mixes with every other). Orthogonal, O(dp log dp).
type rotation struct {
	dp    int
	h     int
	signs [][]float32 // one ±1 vector per round
}

const rotationRounds = 2

func newRotation(dim int) *rotation {
	dp := (dim + 63) &^ 63
	h := 1 << (bits.Len(uint(dp)) - 1)
	r := rand.New(rand.NewPCG(0x5157, 0x1bd1)) // fixed: every replica and every load agree
	rot := &rotation{dp: dp, h: h, signs: make([][]float32, rotationRounds)}
	for i := range rot.signs {
		s := make([]float32, dp)
		for j := range s {
			s[j] = 1
			if r.IntN(2) == 0 {
				s[j] = -1
			}
		}
		rot.signs[i] = s
	}
	return rot
}

// apply writes P·v (v zero-padded to dp) into out (length dp).
func (r *rotation) apply(v, out []float32) {
	copy(out, v)
	clear(out[len(v):])
	scale := float32(1 / math.Sqrt(float64(r.h)))
	if fwhtFast && r.h >= 16 {
		for _, s := range r.signs {
			mulSIMD(out, s)
			fwhtSIMD(out[:r.h], scale)
			if r.dp > r.h {
				fwhtSIMD(out[r.dp-r.h:], scale)
			}
		}
		return
	}
	var buf [512]float32
	tmp := buf[:r.h/2]
	if r.h/2 > len(buf) {
		tmp = make([]float32, r.h/2)
	}
	for _, s := range r.signs {
		vek32.Mul_Inplace(out, s)
		fwht(out[:r.h], tmp, scale)
		if r.dp > r.h {
			fwht(out[r.dp-r.h:], tmp, scale)
		}
	}
}

// fwht is the in-place Walsh–Hadamard transform of a power-of-two-long
// vector, multiplied by scale (1/√len makes it orthogonal); tmp is scratch
// of half its length. Strides of 16 and more run on vek's SIMD kernels.
func fwht(a, tmp []float32, scale float32) {
	n := len(a)
	h := 1
	if n%16 == 0 {
		for i := 0; i < n; i += 16 {
			fwht16((*[16]float32)(a[i : i+16]))
		}
		h = 16
	}
	for ; h < n && h < 16; h *= 2 {
		for i := 0; i < n; i += 2 * h {
			x, y := a[i:i+h], a[i+h:i+2*h]
			for j := range x {
				u, v := x[j], y[j]
				x[j], y[j] = u+v, u-v
			}
		}
	}
	for ; h < n; h *= 2 {
		for i := 0; i < n; i += 2 * h {
			x, y := a[i:i+h], a[i+h:i+2*h]
			t := vek32.Sub_Into(tmp[:h], x, y)
			vek32.Add_Inplace(x, y)
			copy(y, t)
		}
	}
	vek32.MulNumber_Inplace(a, scale)
}

// fwht16 is the unnormalised Walsh–Hadamard transform of 16 values (the
// strides 1–8 of fwht) on locals: one load and one store per value.
func fwht16(a *[16]float32) {
	v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 := a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]
	v0, v1 = v0+v1, v0-v1
	v2, v3 = v2+v3, v2-v3
	v4, v5 = v4+v5, v4-v5
	v6, v7 = v6+v7, v6-v7
	v8, v9 = v8+v9, v8-v9
	v10, v11 = v10+v11, v10-v11
	v12, v13 = v12+v13, v12-v13
	v14, v15 = v14+v15, v14-v15
	v0, v2 = v0+v2, v0-v2
	v1, v3 = v1+v3, v1-v3
	v4, v6 = v4+v6, v4-v6
	v5, v7 = v5+v7, v5-v7
	v8, v10 = v8+v10, v8-v10
	v9, v11 = v9+v11, v9-v11
	v12, v14 = v12+v14, v12-v14
	v13, v15 = v13+v15, v13-v15
	v0, v4 = v0+v4, v0-v4
	v1, v5 = v1+v5, v1-v5
	v2, v6 = v2+v6, v2-v6
	v3, v7 = v3+v7, v3-v7
	v8, v12 = v8+v12, v8-v12
	v9, v13 = v9+v13, v9-v13
	v10, v14 = v10+v14, v10-v14
	v11, v15 = v11+v15, v11-v15
	v0, v8 = v0+v8, v0-v8
	v1, v9 = v1+v9, v1-v9
	v2, v10 = v2+v10, v2-v10
	v3, v11 = v3+v11, v3-v11
	v4, v12 = v4+v12, v4-v12
	v5, v13 = v5+v13, v5-v13
	v6, v14 = v6+v14, v6-v14
	v7, v15 = v7+v15, v7-v15
	a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15] = v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15
}

// codeWords is the number of uint64 words per node in the codes slab: the
// sign bits of the rotated vector (one per dimension), then a word holding
// 1/f and the bound's width (float32 each), the popcount of the signs, and
// the fine code's scale and sum (quant8.go: read only after this code, so
// never a miss of its own), padded to whole cache lines so that a code
// spans as few lines as it can (two at 768 dimensions: 128 bytes).
func codeWords(dp int) int { return (dp/64 + 3 + 7) &^ 7 }

// queryBits is the query's bits per dimension.
const queryBits = 4

// quantize writes the bit planes of u_i = round((v_i − lo)/Δ), queryBits
// (4) each, plane after plane (plane j of word w at j·W + w, W = len(v)/64,
// so a SIMD kernel loads a plane's words together), into planes, and
// returns lo, Δ and Σu.
func quantize(v []float32, planes []uint64) (lo, delta float32, sum int) {
	lo, hi := vek32.Min(v), vek32.Max(v)
	delta = (hi - lo) / float32(1<<queryBits-1)
	if delta == 0 {
		delta = 1
	}
	inv := 1 / delta
	if fwhtFast {
		return lo, delta, quantizeSIMD(v, planes, lo, inv)
	}
	for w := 0; w < len(v)/64; w++ {
		var p0, p1, p2, p3 uint64
		var s uint64
		for bit, f := range v[64*w : 64*w+64] {
			u := uint64(int32((f-lo)*inv + 0.5)) // via int32: one instruction, unlike float→uint64
			s += u
			p0 |= (u & 1) << bit
			p1 |= (u >> 1 & 1) << bit
			p2 |= (u >> 2 & 1) << bit
			p3 |= (u >> 3 & 1) << bit
		}
		sum += int(s)
		words := len(v) / 64
		planes[w], planes[words+w], planes[2*words+w], planes[3*words+w] = p0, p1, p2, p3
	}
	return lo, delta, sum
}

// codeBound is ε0 of RaBitQ's bound |est − ⟨o,q⟩| ≤ ε0·√((1−f²)/f²)/√(dp−1),
// f = ⟨ō, o⟩ (Theorem 3.2 of the paper, which takes 1.9).
var codeBound float32 = 1.9

// encode writes the code of the unit vector v into dst (codeWords long);
// tmp is scratch of length dp.
func (r *rotation) encode(v []float32, dst []uint64, tmp []float32) {
	r.apply(v, tmp)
	w := r.dp / 64
	var sumAbs float64
	pc := 0
	for i := range w {
		var word uint64
		for j, f := range tmp[i*64 : (i+1)*64] {
			if f > 0 {
				word |= 1 << uint(j)
			}
			sumAbs += math.Abs(float64(f))
		}
		dst[i] = word
		pc += bits.OnesCount64(word)
	}
	f := sumAbs / math.Sqrt(float64(r.dp)) // ⟨ō, o⟩ for unit o
	inv, width := float32(0), float32(math.Inf(1))
	if f > 1e-6 {
		inv = float32(1 / f)
		width = float32(float64(codeBound) * math.Sqrt(max(0, 1-f*f)) / (f * math.Sqrt(float64(r.dp-1))))
	}
	dst[w] = uint64(math.Float32bits(inv)) | uint64(math.Float32bits(width))<<32
	dst[w+1] = uint64(pc)
}

// quantQuery is a query prepared for estimation: its rotation quantized to
// 4 bits per dimension (u_i = lo + Δ·v_i), as bit planes one after
// another (quantize), with the affine constants of the estimator.
type quantQuery struct {
	planes  []uint64
	a, b, c float32 // ⟨x̄, q'⟩ ≈ a·Σ2^j·popcnt(x∧plane_j) + b·popcnt(x) + c
	qerr    float32 // the rounding's share of the error, before 1/f
	rot     []float32
}

// prepare quantizes the unit query q for r.
func (r *rotation) prepare(q []float32, qq *quantQuery) {
	if len(qq.rot) != r.dp {
		qq.rot = make([]float32, r.dp)
		qq.planes = make([]uint64, queryBits*r.dp/64)
	}
	r.apply(q, qq.rot)
	lo, delta, sum := quantize(qq.rot, qq.planes)
	sq := float32(math.Sqrt(float64(r.dp)))
	qq.a = 2 * delta / sq
	qq.b = 2 * lo / sq
	qq.c = -(delta*float32(sum) + float32(r.dp)*lo) / sq
	// Rounding errors are uniform in ±Δ/2 and mixed by the rotation:
	// ⟨x̄, error⟩ has standard deviation Δ/√12; allow codeBound of them.
	qq.qerr = codeBound * delta / float32(math.Sqrt(12))
}

// estimate returns the estimated inner product of the query with the node
// whose code is code, and the half-width of its error bound.
func (qq *quantQuery) estimate(code []uint64) (ip, width float32) {
	w := len(qq.planes) / queryBits
	code = code[:w+2]
	dotb := popDot(code[:w], qq.planes[:w*queryBits])
	fac := code[w]
	inv := math.Float32frombits(uint32(fac))
	width = math.Float32frombits(uint32(fac>>32)) + qq.qerr*inv
	ip = (qq.a*float32(dotb) + qq.b*float32(code[w+1]) + qq.c) * inv
	return ip, width
}

// popDot is Σ x_i·v_i for sign bits x and 4-bit query values v in bit
// planes (quantize's layout): Σ_j 2^j·popcount(x ∧ V_j), on AVX-512
// VPOPCNTQ where the CPU has it (popDotFast, popdot_simd.go), else a word
// at a time.
func popDot(code, planes []uint64) int {
	if popDotFast {
		return popDotSIMD(code, planes)
	}
	return popDotGo(code, planes)
}

// popDotGo is popDot a word at a time. One sum per word keeps few values
// live across the popcounts (which Go guards with a POPCNT feature check
// unless built with GOAMD64=v2 or later).
func popDotGo(code, planes []uint64) int {
	s := 0
	w := len(code)
	planes = planes[:4*w]
	p0, p1, p2, p3 := planes[:w], planes[w:2*w], planes[2*w:3*w], planes[3*w:]
	for i, x := range code {
		s += bits.OnesCount64(x&p0[i]) + 2*bits.OnesCount64(x&p1[i]) + 4*bits.OnesCount64(x&p2[i]) + 8*bits.OnesCount64(x&p3[i])
	}
	return s
}
