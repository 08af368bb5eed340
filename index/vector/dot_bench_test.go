package vector

import (
	"testing"

	"github.com/viterin/vek/vek32"
)

var sink float32

func BenchmarkDotUnrolled(b *testing.B) {
	x, y := make([]float32, 768), make([]float32, 768)
	for i := range x {
		x[i], y[i] = float32(i%7), float32(i%5)
	}
	for b.Loop() {
		sink += dotGo(x, y)
	}
}

func TestDotAgrees(t *testing.T) {
	x, y := make([]float32, 771), make([]float32, 771)
	for i := range x {
		x[i], y[i] = float32(i%7)-3, float32(i%5)-2
	}
	if a, b := dot(x, y), dotGo(x, y); a != b {
		t.Errorf("SIMD %v, Go %v", a, b)
	}
}

func BenchmarkDotVek(b *testing.B) {
	x, y := make([]float32, 768), make([]float32, 768)
	for i := range x {
		x[i], y[i] = float32(i%7), float32(i%5)
	}
	for b.Loop() {
		sink += vek32.Dot(x, y)
	}
}
