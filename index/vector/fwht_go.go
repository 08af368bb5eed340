//go:build !(goexperiment.simd && amd64)

package vector

import "github.com/viterin/vek/vek32"

// fwhtFast says whether fwht runs on SIMD; this build has no SIMD kernel
// (build with GOEXPERIMENT=simd on amd64 for one).
var fwhtFast = false

// fwhtSIMD is never called in this build (fwhtFast is false).
func fwhtSIMD(a []float32, scale float32) { fwht(a, make([]float32, len(a)/2), scale) }

// mulSIMD is never called in this build (fwhtFast is false).
func mulSIMD(a, s []float32) { vek32.Mul_Inplace(a, s[:len(a)]) }

// quantizeSIMD is never called in this build (fwhtFast is false).
func quantizeSIMD(v []float32, planes []uint64, lo, inv float32) int { panic("no SIMD quantize") }
