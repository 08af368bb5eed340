//go:build !(goexperiment.simd && amd64)

package vector

// popDotFast says whether popDot runs on SIMD; this build has no SIMD
// kernel (build with GOEXPERIMENT=simd on amd64 for one).
const popDotFast = false

// popDotSIMD is never called in this build (popDotFast is false).
func popDotSIMD(code, planes []uint64) int { return popDotGo(code, planes) }
