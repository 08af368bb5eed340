package vector

import (
	"math/rand/v2"
	"testing"
)

// TestDot8MatchesGo checks the kernel in use against the portable loop
// on the extremes (u 127, c ±127: the largest pair sums) and random data.
func TestDot8MatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{32, 64, 96, 768, 1536} {
		u, c := make([]uint8, n), make([]int8, n)
		for trial := range 50 {
			for i := range u {
				switch trial {
				case 0:
					u[i], c[i] = 127, 127
				case 1:
					u[i], c[i] = 127, -127
				default:
					u[i], c[i] = uint8(r.IntN(128)), int8(r.IntN(255)-127)
				}
			}
			if got, want := dot8(u, c), dot8Go(u, c); got != want {
				t.Fatalf("n %d trial %d: dot8 %d, want %d (fast %v)", n, trial, got, want, dot8Fast)
			}
		}
	}
}

func BenchmarkDot8(b *testing.B) {
	u, c := make([]uint8, 768), make([]int8, 768)
	for i := range u {
		u[i], c[i] = uint8(i%128), int8(i%255-127)
	}
	b.Run("kernel", func(b *testing.B) {
		var s int32
		for b.Loop() {
			s += dot8(u, c)
		}
		_ = s
	})
	b.Run("go", func(b *testing.B) {
		var s int32
		for b.Loop() {
			s += dot8Go(u, c)
		}
		_ = s
	})
}
