package vector

import (
	"fmt"

	"github.com/viterin/vek"
)

// Kernels names the kernels this build runs on this CPU (the benchmark
// prints it beside its figures): the one-bit estimates' popcount, the fine
// estimates' 8-bit dot product, the query's rotation and bit planes, and
// the float dot product of exact distances.
func Kernels() string {
	pop := "math/bits.OnesCount64, a word at a time"
	if popDotFast {
		pop = "AVX-512 VPOPCNTQ, eight words at a time (simd/archsimd)"
	}
	fine := "none (no fine codes kept: the traversal computes exact distances)"
	if dot8Fast {
		fine = "AVX2 VPMADDUBSW+VPMADDWD, 32 dimensions an instruction (simd/archsimd)"
	}
	rot := "scalar butterflies, vek for strides of 16 and more; planes a dimension at a time"
	if fwhtFast {
		rot = "AVX2, eight floats at a time (simd/archsimd)"
	}
	float := "plain Go (vek without AVX2)"
	if vek.Info().Acceleration {
		float = "AVX2/FMA (github.com/viterin/vek)"
	}
	return fmt.Sprintf("one-bit estimates: %s; fine estimates: %s; query rotation and bit planes: %s; exact distances: %s", pop, fine, rot, float)
}
