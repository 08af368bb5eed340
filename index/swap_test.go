package index

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// A batch that replaces a document's chunks (a reprocessing or a refresh:
// the old ones deleted, new ones upserted, in one transaction) is seen by
// concurrent searches all at once: every search finds the old edition or
// the new one, never a mix and never nothing.
func TestReplacingBatchIsAtomicForSearches(t *testing.T) {
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	doc, owner := idn('d', 1), idn('o', 1)
	const perEdition = 60
	edition := func(n int) []Chunk {
		out := make([]Chunk, perEdition)
		for i := range out {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			out[i] = Chunk{ID: idn(byte('a'+n%20), i), DocumentID: doc, OwnerID: owner, Version: 1, PageStart: 1, PageEnd: 1,
				Text: fmt.Sprintf("pedal chord edition%02d passage %d", n, i), Vector: v}
		}
		return out
	}
	current := edition(0)
	lsn := LSN(1)
	if err := e.Apply(Ops{Documents: []Document{{ID: doc, OwnerID: owner, IsPublic: true}}, Upserts: current, Position: Position{LSN: lsn}}); err != nil {
		t.Fatal(err)
	}
	probe := current[0].Vector
	stop := make(chan struct{})
	var bad []string
	var searches int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, q := range []Query{
				{K: 10, Mode: ModeBM25, Text: "pedal chord", Scope: Scope{User: idn('u', 1)}},
				{K: 10, Mode: ModeBM25, Text: "pedal chord", Scope: Scope{Admin: true}},
				{K: 10, Mode: ModeHybrid, Text: "pedal chord", Vector: probe, Scope: Scope{User: idn('u', 1)}},
			} {
				hits, err := e.Search(q)
				searches++
				editions := map[string]bool{}
				for _, h := range hits {
					editions[strings.Fields(h.Chunk.Text)[2]] = true
				}
				if err != nil || len(hits) == 0 || len(editions) != 1 {
					bad = append(bad, fmt.Sprintf("%s search: %d hits, editions %v, %v", q.Mode, len(hits), editions, err))
				}
			}
		}
	}()
	for n := 1; n <= 40; n++ {
		next := edition(n)
		old := make([]ID, len(current))
		for i, c := range current {
			old[i] = c.ID
		}
		lsn++
		if err := e.Apply(Ops{Documents: []Document{{ID: doc, OwnerID: owner, IsPublic: true}}, Upserts: next, Deletes: old, Position: Position{LSN: lsn}}); err != nil {
			t.Fatal(err)
		}
		current = next
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d searches saw a mix or nothing; first: %s", len(bad), searches, bad[0])
	}
	t.Logf("%d searches during 40 replacements", searches)
}

// BenchmarkReplacingBatch times the apply of a batch replacing a
// document's 100 chunks (768 dimensions) in an engine of 5,000, with
// searches running throughout, and reports the slowest search
// (max-search-ms): how long a replacement can hold searches up.
func BenchmarkReplacingBatch(b *testing.B) {
	e, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	owner := idn('o', 1)
	chunks := func(doc ID, prefix byte, n, from int) []Chunk {
		out := make([]Chunk, n)
		for i := range out {
			v := make([]float32, 768)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			out[i] = Chunk{ID: idn(prefix, from+i), DocumentID: doc, OwnerID: owner, Version: 1, PageStart: 1, PageEnd: 1,
				Text: fmt.Sprintf("pedal chord passage %d of a longer text about scales and arpeggios", from+i), Vector: v}
		}
		return out
	}
	doc := idn('d', 1)
	current := chunks(doc, 'y', 100, 0)
	if err := e.Apply(Ops{Documents: []Document{{ID: idn('d', 0), OwnerID: owner, IsPublic: true}, {ID: doc, OwnerID: owner, IsPublic: true}},
		Upserts: append(chunks(idn('d', 0), 'x', 4900, 0), current...), Position: Position{LSN: 1}}); err != nil {
		b.Fatal(err)
	}
	probe := current[0].Vector
	stop, done := make(chan struct{}), make(chan time.Duration)
	go func() {
		var slowest time.Duration
		for {
			select {
			case <-stop:
				done <- slowest
				return
			default:
			}
			start := time.Now()
			e.Search(Query{K: 10, Mode: ModeHybrid, Text: "pedal chord", Vector: probe, Scope: Scope{User: owner}}) //nolint:errcheck // timed only
			slowest = max(slowest, time.Since(start))
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		next := chunks(doc, 'y', 100, (i+1)*100)
		old := make([]ID, len(current))
		for j, c := range current {
			old[j] = c.ID
		}
		b.StartTimer()
		if err := e.Apply(Ops{Upserts: next, Deletes: old, Position: Position{LSN: LSN(i + 2)}}); err != nil {
			b.Fatal(err)
		}
		current = next
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64((<-done).Microseconds())/1000, "max-search-ms")
}
