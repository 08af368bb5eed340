package index

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/sostenuto/sostenuto/index/vector"
)

// BenchmarkReadView measures what a snapshot's view costs the writer: the
// time the writer lock is held to capture it, at SOSTENUTO_BENCH_CHUNKS
// chunks (10,000 by default). The vectors are shared, not copied, so
// their dimension does not matter; 8 keeps the build short.
func BenchmarkReadView(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_CHUNKS")); err == nil && v > 0 {
		n = v
	}
	e, err := New(Config{Vector: vector.Config{Dim: 8, M: 16, EfConstruction: 64}, ExactBelow: 2000})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for d := range n / 500 {
		ops := Ops{Documents: []Document{{ID: idn('d', d), OwnerID: idn('u', d%10), IsPublic: true, Title: "Doc"}}, Position: Position{LSN: LSN(d + 1)}}
		for c := range 500 {
			v := make([]float32, 8)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			ops.Upserts = append(ops.Upserts, Chunk{ID: idn('c', d*500+c), DocumentID: idn('d', d), OwnerID: idn('u', d%10),
				Text: words[r.IntN(len(words))] + " " + words[r.IntN(len(words))] + " " + canary(c), Version: 1, Vector: v})
		}
		if err := e.Apply(ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		e.ReadView().Release()
	}
}
