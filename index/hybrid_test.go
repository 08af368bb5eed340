package index

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// A hybrid search's two lists run at once: in at least one of many
// searches the BM25 list starts before the vector list ends and the
// vector list before the BM25 list ends (run one after the other, they
// never overlap).
func TestHybridListsRunAtOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	w := newWorld(t, r, 20, 400, 10)
	for i := range 200 {
		c := w.chunks[r.IntN(len(w.chunks))]
		var tm Timings
		q := Query{K: 5, Mode: ModeHybrid, Text: c.Text + " " + strings.Join(words, " "), Vector: c.Vector,
			Scope: Scope{User: w.users[i%len(w.users)], Teachers: w.teacher[w.users[i%len(w.users)]]}, Timings: &tm}
		if _, err := w.e.Search(q); err != nil {
			t.Fatal(err)
		}
		if tm.TextStart.IsZero() || tm.VectorStart.IsZero() || tm.FuseStart.IsZero() {
			t.Fatalf("timings without starts: %+v", tm)
		}
		vecEnd, textEnd := tm.VectorStart.Add(tm.Vector), tm.TextStart.Add(tm.Text)
		if tm.FuseStart.Before(vecEnd) || tm.FuseStart.Before(textEnd) {
			t.Fatalf("fusion started before a list ended: %+v", tm)
		}
		if tm.TextStart.Before(vecEnd) && tm.VectorStart.Before(textEnd) {
			return // overlapped
		}
	}
	t.Error("the vector and BM25 lists never overlapped in 200 hybrid searches")
}

// A hybrid search's hits are the fusion of its two lists taken alone at
// its depth (max(K, 50)), in scope, searched concurrently from several
// goroutines while a writer applies batches (run with -race).
func TestHybridIsTheFusionOfItsLists(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	w := newWorld(t, r, 8, 120, 8)
	type qr struct {
		q    Query
		want []Hit
	}
	var cases []qr
	for i := range 40 {
		c := w.chunks[r.IntN(len(w.chunks))]
		u := w.users[i%len(w.users)]
		q := Query{K: 1 + r.IntN(8), Mode: ModeHybrid, Text: strings.Fields(c.Text)[1] + " " + words[r.IntN(len(words))], Vector: c.Vector,
			Scope: Scope{User: u, Teachers: w.teacher[u]}}
		cases = append(cases, qr{q, fusedAlone(t, w.e, q)})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // documents no query sees (the maps written, under the write lock) change nothing they get
		defer wg.Done()
		for lsn := LSN(2); ; lsn++ {
			select {
			case <-stop:
				return
			default:
			}
			d := Document{ID: idn('x', int(lsn)), OwnerID: idn('o', 1), Title: "outsider"}
			if err := w.e.Apply(Ops{Documents: []Document{d}, Position: Position{LSN: lsn}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var readers sync.WaitGroup
	for g := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := g; i < len(cases); i += 4 {
				got, err := w.e.Search(cases[i].q)
				if err != nil {
					t.Error(err)
					return
				}
				if !sameHits(got, cases[i].want) {
					t.Errorf("query %d: hybrid %v, want the fusion of its lists %v", i, hitIDs(got), hitIDs(cases[i].want))
				}
			}
		}()
	}
	readers.Wait()
	close(stop)
	wg.Wait()
}

// fusedAlone is q's hybrid answer made from its two lists searched one at
// a time (single-list searches at the hybrid's depth), fused by q.Fusion
// and cut to q.K.
func fusedAlone(t *testing.T, e *Engine, q Query) []Hit {
	t.Helper()
	depth := max(q.K, 50)
	lists := [2][]Scored{}
	for li, mode := range []string{ModeVector, ModeBM25} {
		lq := q
		lq.Mode, lq.K = mode, depth
		hits, err := e.Search(lq)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			lists[li] = append(lists[li], Scored{ID: h.Chunk.ID, Score: h.Score})
		}
	}
	var out []Hit
	for _, f := range q.Fusion.Fuse(lists[0], lists[1]) {
		out = append(out, Hit{Chunk: e.chunks[f.ID], Score: f.Score, VectorRank: f.Ranks[0], BM25Rank: f.Ranks[1]})
		if len(out) == q.K {
			break
		}
	}
	return out
}

func sameHits(a, b []Hit) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Chunk.ID != b[i].Chunk.ID || a[i].Score != b[i].Score || a[i].VectorRank != b[i].VectorRank || a[i].BM25Rank != b[i].BM25Rank {
			return false
		}
	}
	return true
}

func hitIDs(hs []Hit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, string(h.Chunk.ID[:4]))
	}
	return out
}

// A panic in the BM25 list, taken on a goroutine of its own, reaches the
// caller of Search (where the server's recoverer answers 500), not the
// process.
func TestHybridBM25PanicReachesTheCaller(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	w := newWorld(t, r, 3, 20, 5)
	w.e.text = nil // the BM25 list now panics (a nil index)
	defer func() {
		if recover() == nil {
			t.Error("no panic reached the caller")
		}
	}()
	c := w.chunks[0]
	w.e.Search(Query{K: 5, Mode: ModeHybrid, Text: c.Text, Vector: c.Vector, Scope: Scope{Admin: true}}) //nolint:errcheck // panics
}
