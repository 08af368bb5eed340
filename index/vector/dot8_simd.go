//go:build goexperiment.simd && amd64

package vector

import "simd/archsimd"

// dot8Fast says whether dot8 runs on SIMD: AVX2 through the standard
// library's simd/archsimd (built with GOEXPERIMENT=simd, as the Makefile
// does). Without it the fine codes are not kept (quant8.go).
var dot8Fast = archsimd.X86.AVX2()

// dot8 is Σ u_i·c_i for 7-bit unsigned u and signed 8-bit c (len a
// multiple of 32): VPMADDUBSW multiplies and adds pairs to 16 bits (at
// most 2·127·127, so never saturating), VPMADDWD by ones widens the pairs
// to 32-bit sums.
func dot8(u []uint8, c []int8) int32 {
	ones := archsimd.BroadcastInt16x16(1)
	acc0, acc1 := archsimd.Int32x8{}, archsimd.Int32x8{}
	c = c[:len(u)]
	for len(u) >= 64 {
		uu, cc := (*[64]uint8)(u), (*[64]int8)(c)
		p0 := archsimd.LoadUint8x32((*[32]uint8)(uu[:32])).DotProductPairsSaturated(archsimd.LoadInt8x32((*[32]int8)(cc[:32])))
		p1 := archsimd.LoadUint8x32((*[32]uint8)(uu[32:])).DotProductPairsSaturated(archsimd.LoadInt8x32((*[32]int8)(cc[32:])))
		acc0 = acc0.Add(p0.DotProductPairs(ones))
		acc1 = acc1.Add(p1.DotProductPairs(ones))
		u, c = u[64:], c[64:]
	}
	if len(u) >= 32 {
		p := archsimd.LoadUint8x32((*[32]uint8)(u)).DotProductPairsSaturated(archsimd.LoadInt8x32((*[32]int8)(c)))
		acc0 = acc0.Add(p.DotProductPairs(ones))
	}
	var out [8]int32
	acc0.Add(acc1).Store(&out)
	return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7]
}
