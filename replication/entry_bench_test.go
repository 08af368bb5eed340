package replication

import (
	"math/rand/v2"
	"testing"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// A base part as the feed proposes it: 256 chunks of 768 dimensions and
// ~1 KB of text each; encode (convert + marshal) and decode (unmarshal +
// convert), with the entry's size.
func BenchmarkBasePartCodec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	chunks := make([]index.Chunk, 256)
	for i := range chunks {
		v := make([]float32, 768)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		chunks[i] = index.Chunk{ID: rid('c', i), DocumentID: rid('d', i/8), OwnerID: rid('u', 0), Title: "Études",
			Text: string(make([]byte, 1000)), PageStart: i, PageEnd: i, Version: 1, Vector: v}
	}
	var size int
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			buf, err := BasePartEntry(index.Ops{Upserts: chunks}).Encode()
			if err != nil {
				b.Fatal(err)
			}
			size = len(buf)
		}
		b.ReportMetric(float64(size), "bytes/entry")
	})
	buf, _ := BasePartEntry(index.Ops{Upserts: chunks}).Encode()
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			e, err := DecodeEntry(buf)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := opsOf(nil, e.Payload.(*logentry.BasePart).GetUpserts(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
