package vector

import (
	"math"

	"github.com/viterin/vek/vek32"
)

// Fine codes: beside the one-bit codes (quant.go) every node keeps its
// rotated vector P·o as signed 8-bit integers with one scale per vector
// (c_i = round(r_i/s), s = max|r_i|/127), and the codes' sum. A query's
// rotation is quantized to 7 bits (u_i = round((q_i − lo)/Δ)), so that
//
//	⟨o, q⟩ = ⟨P·o, P·q⟩ ≈ s·(lo·Σc_i + Δ·Σ u_i·c_i)
//
// where Σ u_i·c_i is dot8: VPMADDUBSW/VPMADDWD through simd/archsimd, 32
// dimensions an instruction, over a quarter of the float vector's bytes.
// The rounding errors are uniform and independent, so the estimate's
// standard deviation is about √(s² + Δ²)/√12 (≈ 5·10⁻⁴ for 768
// dimensions): the traversal takes the fine estimate where it took the
// exact distance (expanding a node, the greedy descent), and Search
// reranks exactly only the results that the fine bound leaves in doubt.
//
// The fine codes are kept only where dot8 has a SIMD kernel (dot8Fast);
// elsewhere the traversal computes exact distances as before. Like the
// one-bit codes they derive from the vectors and are never written to a
// snapshot.

// fineSigmas is how many standard deviations the fine bound allows: the
// estimate is off by more with probability below 10⁻⁸ per node.
const fineSigmas = 6

// fineQuery is a query prepared for fine estimates.
type fineQuery struct {
	u      []uint8
	lo, dq float32
	dq2    float32 // dq²
}

// encodeFine writes the fine code of the rotated vector r into dst and
// returns its scale and the codes' sum.
func encodeFine(r []float32, dst []int8) (scale float32, sum int32) {
	m := max(vek32.Max(r), -vek32.Min(r))
	if m == 0 {
		clear(dst)
		return 0, 0
	}
	scale = m / 127
	inv := 1 / scale
	for i, f := range r {
		c := int8(math.Round(float64(f * inv)))
		dst[i] = c
		sum += int32(c)
	}
	return scale, sum
}

// prepareFine quantizes the rotated query rot (from quantQuery) to 7 bits.
func prepareFine(rot []float32, fq *fineQuery) {
	if len(fq.u) != len(rot) {
		fq.u = make([]uint8, len(rot))
	}
	lo, hi := vek32.Min(rot), vek32.Max(rot)
	fq.lo, fq.dq = lo, (hi-lo)/127
	if fq.dq == 0 {
		fq.dq = 1
	}
	fq.dq2 = fq.dq * fq.dq
	inv := 1 / fq.dq
	for i, f := range rot {
		fq.u[i] = uint8(int32((f-lo)*inv + 0.5))
	}
}

// fineMeta is a node's fine scale and code sum: the word after the
// one-bit code's factors and popcount (codeWords).
func (x *Index) fineMeta(i int32) (scale float32, sum int32) {
	m := x.codes[int(i)*x.cw+x.rot.dp/64+2]
	return math.Float32frombits(uint32(m)), int32(uint32(m >> 32))
}

// fineCode returns node i's fine code.
func (x *Index) fineCode(i int32) []int8 {
	dp := x.rot.dp
	return x.fine[int(i)*dp : int(i+1)*dp]
}

// fineDist is the estimated distance of node i from the query.
func (x *Index) fineDist(fq *fineQuery, i int32) float32 {
	scale, sum := x.fineMeta(i)
	return 1 - scale*(fq.lo*float32(sum)+fq.dq*float32(dot8(fq.u, x.fineCode(i))))
}

// fineWidth is the half-width of node i's fine bound: fineSigmas standard
// deviations of the rounding error, √((s² + Δ²)/12).
func (x *Index) fineWidth(fq *fineQuery, i int32) float32 {
	s, _ := x.fineMeta(i)
	return fq.width(s)
}

// fineDistWidth is fineDist and fineWidth, the node's scale read once.
func (x *Index) fineDistWidth(fq *fineQuery, i int32) (dist, width float32) {
	scale, sum := x.fineMeta(i)
	return 1 - scale*(fq.lo*float32(sum)+fq.dq*float32(dot8(fq.u, x.fineCode(i)))), fq.width(scale)
}

// fineWidthFactor is fineSigmas/√12.
var fineWidthFactor = float32(fineSigmas / math.Sqrt(12))

// width is the fine bound's half-width for a node of scale s (a float32
// square root: SQRTSS).
func (fq *fineQuery) width(s float32) float32 {
	return fineWidthFactor * float32(math.Sqrt(float64(s*s+fq.dq2)))
}

// encodeNodeFine derives node i's fine code from its rotated vector r.
func (x *Index) encodeNodeFine(i int32, r []float32) {
	if x.fine == nil {
		return
	}
	s, sum := encodeFine(r, x.fineCode(i))
	x.codes[int(i)*x.cw+x.rot.dp/64+2] = uint64(math.Float32bits(s)) | uint64(uint32(sum))<<32
}
