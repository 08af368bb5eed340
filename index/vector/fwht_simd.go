//go:build goexperiment.simd && amd64

package vector

import "simd/archsimd"

// fwhtFast says whether fwht runs on AVX2 through simd/archsimd (built
// with GOEXPERIMENT=simd, as the Makefile does); checked at start.
var fwhtFast = archsimd.X86.AVX2()

// The in-lane butterflies of strides 1, 2 and 4: each lane takes its
// partner's value (the permutation) plus its own times the sign, so a
// lower lane gets u+v and an upper one u−v, as the scalar butterfly.
var (
	fwhtPerm1  = [8]uint32{1, 0, 3, 2, 5, 4, 7, 6}
	fwhtPerm2  = [8]uint32{2, 3, 0, 1, 6, 7, 4, 5}
	fwhtPerm4  = [8]uint32{4, 5, 6, 7, 0, 1, 2, 3}
	fwhtSigns1 = [8]float32{1, -1, 1, -1, 1, -1, 1, -1}
	fwhtSigns2 = [8]float32{1, 1, -1, -1, 1, 1, -1, -1}
	fwhtSigns4 = [8]float32{1, 1, 1, 1, -1, -1, -1, -1}
)

// fwhtSIMD is fwht eight floats at a time, for a power-of-two length of
// at least 16: the same butterflies in the same order, so the same
// result to the bit (TestFWHTKernelsAgree). Only called when fwhtFast.
func fwhtSIMD(a []float32, scale float32) {
	n := len(a)
	p1, p2, p4 := archsimd.LoadUint32x8(&fwhtPerm1), archsimd.LoadUint32x8(&fwhtPerm2), archsimd.LoadUint32x8(&fwhtPerm4)
	s1, s2, s4 := archsimd.LoadFloat32x8(&fwhtSigns1), archsimd.LoadFloat32x8(&fwhtSigns2), archsimd.LoadFloat32x8(&fwhtSigns4)
	for i := 0; i+8 <= n; i += 8 {
		p := (*[8]float32)(a[i : i+8])
		x := archsimd.LoadFloat32x8(p)
		x = x.Permute(p1).Add(x.Mul(s1))
		x = x.Permute(p2).Add(x.Mul(s2))
		x = x.Permute(p4).Add(x.Mul(s4))
		x.Store(p)
	}
	sc := archsimd.BroadcastFloat32x8(scale)
	for h := 8; h < n; h *= 2 {
		last := 2*h >= n
		for i := 0; i < n; i += 2 * h {
			for j := i; j < i+h; j += 8 {
				px, py := (*[8]float32)(a[j:j+8]), (*[8]float32)(a[j+h:j+h+8])
				x, y := archsimd.LoadFloat32x8(px), archsimd.LoadFloat32x8(py)
				u, v := x.Add(y), x.Sub(y)
				if last {
					u, v = u.Mul(sc), v.Mul(sc)
				}
				u.Store(px)
				v.Store(py)
			}
		}
	}
}

// mulSIMD multiplies a by s element-wise (len(s) ≥ len(a), len(a) a
// multiple of 8). Only called when fwhtFast.
func mulSIMD(a, s []float32) {
	s = s[:len(a)]
	for i := 0; i+8 <= len(a); i += 8 {
		p := (*[8]float32)(a[i : i+8])
		archsimd.LoadFloat32x8(p).Mul(archsimd.LoadFloat32x8((*[8]float32)(s[i : i+8]))).Store(p)
	}
}

// quantizeSIMD is quantize eight floats at a time: u_i by the same
// operations (subtract, multiply, add ½, truncate), each plane's bits by a
// compare and VMOVMSKPS, so the same planes and sum to the bit
// (TestQuantizeKernelsAgree). len(v) is a multiple of 64. Only called when
// fwhtFast.
func quantizeSIMD(v []float32, planes []uint64, lo, inv float32) (sum int) {
	words := len(v) / 64
	lov, invv, half := archsimd.BroadcastFloat32x8(lo), archsimd.BroadcastFloat32x8(inv), archsimd.BroadcastFloat32x8(0.5)
	b0, b1, b2, b3 := archsimd.BroadcastInt32x8(1), archsimd.BroadcastInt32x8(2), archsimd.BroadcastInt32x8(4), archsimd.BroadcastInt32x8(8)
	var acc archsimd.Int32x8
	for w := range words {
		var p0, p1, p2, p3 uint64
		for k := range 8 {
			u := archsimd.LoadFloat32x8((*[8]float32)(v[64*w+8*k:])).Sub(lov).Mul(invv).Add(half).ConvertToInt32()
			acc = acc.Add(u)
			sh := uint(8 * k)
			p0 |= uint64(u.And(b0).Equal(b0).ToBits()) << sh
			p1 |= uint64(u.And(b1).Equal(b1).ToBits()) << sh
			p2 |= uint64(u.And(b2).Equal(b2).ToBits()) << sh
			p3 |= uint64(u.And(b3).Equal(b3).ToBits()) << sh
		}
		planes[w], planes[words+w], planes[2*words+w], planes[3*words+w] = p0, p1, p2, p3
	}
	var s [8]int32
	acc.Store(&s)
	return int(s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7])
}
