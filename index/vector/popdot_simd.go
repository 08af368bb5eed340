//go:build goexperiment.simd && amd64

package vector

import (
	"math/bits"
	"simd/archsimd"
)

// popDotFast says whether popDot runs on AVX-512 VPOPCNTQ (eight words'
// popcounts in one instruction), through the standard library's
// simd/archsimd; checked at start, so a CPU without it takes popDotGo.
var popDotFast = archsimd.X86.AVX512VPOPCNTDQ()

// popDotSIMD is popDot eight words (then four) at a time: per plane one
// AND and one VPOPCNTQ, the planes' counts weighted by shifts and summed
// per lane; the lanes are added once at the end. Only called when
// popDotFast.
func popDotSIMD(code, planes []uint64) int {
	w := len(code)
	planes = planes[:4*w]
	p0, p1, p2, p3 := planes[:w], planes[w:2*w], planes[2*w:3*w], planes[3*w:]
	var acc archsimd.Uint64x8
	i := 0
	for ; i+8 <= w; i += 8 {
		x := archsimd.LoadUint64x8Slice(code[i:])
		c0 := x.And(archsimd.LoadUint64x8Slice(p0[i:])).OnesCount()
		c1 := x.And(archsimd.LoadUint64x8Slice(p1[i:])).OnesCount()
		c2 := x.And(archsimd.LoadUint64x8Slice(p2[i:])).OnesCount()
		c3 := x.And(archsimd.LoadUint64x8Slice(p3[i:])).OnesCount()
		acc = acc.Add(c0.Add(c1.ShiftAllLeft(1)).Add(c2.ShiftAllLeft(2).Add(c3.ShiftAllLeft(3))))
	}
	var lanes [8]uint64
	acc.Store(&lanes)
	s := lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7]
	if i+4 <= w {
		x := archsimd.LoadUint64x4Slice(code[i:])
		c0 := x.And(archsimd.LoadUint64x4Slice(p0[i:])).OnesCount()
		c1 := x.And(archsimd.LoadUint64x4Slice(p1[i:])).OnesCount()
		c2 := x.And(archsimd.LoadUint64x4Slice(p2[i:])).OnesCount()
		c3 := x.And(archsimd.LoadUint64x4Slice(p3[i:])).OnesCount()
		var four [4]uint64
		c0.Add(c1.ShiftAllLeft(1)).Add(c2.ShiftAllLeft(2).Add(c3.ShiftAllLeft(3))).Store(&four)
		s += four[0] + four[1] + four[2] + four[3]
		i += 4
	}
	n := int(s)
	for ; i < w; i++ {
		x := code[i]
		n += bits.OnesCount64(x&p0[i]) + 2*bits.OnesCount64(x&p1[i]) + 4*bits.OnesCount64(x&p2[i]) + 8*bits.OnesCount64(x&p3[i])
	}
	return n
}
