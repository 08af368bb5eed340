//go:build !(goexperiment.simd && amd64)

package vector

// dot8Fast says whether dot8 runs on SIMD; this build has no SIMD kernel
// (build with GOEXPERIMENT=simd on amd64 for one), so the fine codes are
// not kept and expansions use exact distances (quant8.go).
const dot8Fast = false

// dot8 is Σ u_i·c_i (the portable loop; see dot8_simd.go).
func dot8(u []uint8, c []int8) int32 { return dot8Go(u, c) }
