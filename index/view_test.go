package index

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// script makes a deterministic sequence of batches, one per LSN (1, 2, …),
// touching everything a batch can change in place: new documents and
// chunks, chunk updates with and without a new vector, chunk deletes,
// visibility flips and retitles, document deletes.
type script struct {
	r      *rand.Rand
	docs   []Document
	chunks map[ID]Chunk
	next   int
}

func newScript(seed uint64) *script {
	return &script{r: rand.New(rand.NewPCG(seed, seed)), chunks: map[ID]Chunk{}}
}

func (s *script) vec() []float32 {
	v := make([]float32, dim)
	for j := range v {
		v[j] = float32(s.r.NormFloat64())
	}
	return v
}

// some returns up to n live chunks, in id order (the script stays
// deterministic).
func (s *script) some(n int) []Chunk {
	ids := slices.SortedFunc(maps.Keys(s.chunks), func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	var out []Chunk
	for range min(n, len(ids)) {
		out = append(out, s.chunks[ids[s.r.IntN(len(ids))]])
	}
	return out
}

// batch returns the batch at lsn.
func (s *script) batch(lsn int) Ops {
	ops := Ops{Position: Position{LSN: LSN(lsn)}}
	kind := s.r.IntN(6)
	if len(s.docs) < 3 {
		kind = 0
	}
	switch kind {
	case 0: // a new document with five chunks
		d := Document{ID: idn('d', len(s.docs)), OwnerID: idn('u', s.r.IntN(4)), IsPublic: s.r.IntN(2) == 0, Title: "Doc"}
		s.docs = append(s.docs, d)
		ops.Documents = append(ops.Documents, d)
		for range 5 {
			s.next++
			c := Chunk{ID: idn('c', s.next), DocumentID: d.ID, OwnerID: d.OwnerID, Text: words[s.r.IntN(len(words))] + " " + canary(s.next%7),
				PageStart: 1, PageEnd: 2, Version: 1, Vector: s.vec()}
			s.chunks[c.ID] = c
			ops.Upserts = append(ops.Upserts, c)
		}
	case 1, 2: // updates, with a new vector (1) or keeping the held one (2)
		for _, c := range s.some(3) {
			c.Version++
			c.Text = words[s.r.IntN(len(words))] + " " + words[s.r.IntN(len(words))]
			if c.Vector = nil; kind == 1 {
				c.Vector = s.vec()
			}
			s.chunks[c.ID] = c
			ops.Upserts = append(ops.Upserts, c)
		}
	case 3: // chunk deletes
		for _, c := range s.some(2) {
			delete(s.chunks, c.ID)
			ops.Deletes = append(ops.Deletes, c.ID)
		}
	case 4: // a visibility flip and a new title
		d := &s.docs[s.r.IntN(len(s.docs))]
		d.IsPublic, d.Title = !d.IsPublic, canary(lsn)
		ops.Documents = append(ops.Documents, *d)
	case 5: // a document deleted with its chunks
		d := s.docs[s.r.IntN(len(s.docs))]
		maps.DeleteFunc(s.chunks, func(_ ID, c Chunk) bool { return c.DocumentID == d.ID })
		ops.DeleteDocs = append(ops.DeleteDocs, d.ID)
	}
	return ops
}

// gatedWriter lets its first Write start, then holds it until open is
// closed: a snapshot stream stalled mid-way. writes counts the calls that
// completed.
type gatedWriter struct {
	buf     bytes.Buffer
	started chan struct{}
	open    chan struct{}
	once    sync.Once
	writes  atomic.Int64
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.started); <-g.open })
	g.writes.Add(1)
	return g.buf.Write(p)
}

// mustApplyAll applies ops in order.
func mustApplyAll(t *testing.T, e *Engine, ops []Ops) {
	t.Helper()
	for _, o := range ops {
		if err := e.Apply(o); err != nil {
			t.Error(err)
			return
		}
	}
}

// A snapshot streams from a view while batches and searches go on: with
// the stream stalled inside its first write, 400 batches and 400 searches
// all complete (the bound is in operations: the stream has not moved
// meanwhile), and the snapshot read back is exactly the engine at the
// view's LSN, rebuilt from the same batches.
func TestSnapshotStreamsWhileApplying(t *testing.T) {
	const before, during = 300, 400
	s := newScript(21)
	var batches []Ops
	for lsn := 1; lsn <= before+during; lsn++ {
		batches = append(batches, s.batch(lsn))
	}
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	mustApplyAll(t, e, batches[:before])
	g := &gatedWriter{started: make(chan struct{}), open: make(chan struct{})}
	streamed := make(chan error, 1)
	go func() { streamed <- e.WriteSnapshot(g) }()
	<-g.started
	done := make(chan struct{})
	go func() { defer close(done); applyAndSearch(t, e, batches[before:]) }()
	select {
	case <-done:
	case <-time.After(time.Minute): // a watchdog against a hang, not a measure
		t.Fatal("batches and searches are blocked behind the streaming snapshot")
	}
	if n := g.writes.Load(); n != 0 {
		t.Fatalf("the stalled stream completed %d writes meanwhile", n)
	}
	if got := e.Position().LSN; got != before+during {
		t.Fatalf("engine at %v, want %d", got, before+during)
	}
	close(g.open)
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	restored, err := ReadSnapshot(cfg(), &g.buf)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := New(cfg())
	mustApplyAll(t, want, batches[:before])
	assertSameEngine(t, restored, want)
}

// applyAndSearch applies ops while another goroutine searches, and returns
// when both are done.
func applyAndSearch(t *testing.T, e *Engine, ops []Ops) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(3, 3))
		for i := range len(ops) {
			q := Query{K: 5, Mode: []string{ModeHybrid, ModeVector, ModeBM25}[i%3], Text: canary(i % 7),
				Vector: []float32{1, float32(r.NormFloat64())}, Scope: Scope{User: idn('u', i%4)}}
			q.Vector = append(q.Vector, make([]float32, dim-2)...)
			if _, err := e.Search(q); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	mustApplyAll(t, e, ops)
	wg.Wait()
}

// assertSameEngine fails unless got and want hold the same position,
// documents, chunks, graph and BM25 index (byte for byte).
func assertSameEngine(t *testing.T, got, want *Engine) {
	t.Helper()
	if got.Position() != want.Position() || got.public != want.public {
		t.Fatalf("position %v public %d, want %v %d", got.Position(), got.public, want.Position(), want.public)
	}
	if len(got.chunks) != len(want.chunks) || len(got.docs) != len(want.docs) {
		t.Fatalf("%d chunks %d documents, want %d %d", len(got.chunks), len(got.docs), len(want.chunks), len(want.docs))
	}
	for id, c := range want.chunks {
		if g, ok := got.chunks[id]; !ok || !reflect.DeepEqual(*g, *c) {
			t.Fatalf("chunk %x: %+v, want %+v", id, g, c)
		}
	}
	for id, d := range want.docs {
		if g, ok := got.docs[id]; !ok || g.Document != d.Document || !maps.Equal(g.chunks, d.chunks) {
			t.Fatalf("document %x differs", id)
		}
	}
	for name, write := range map[string]func(*Engine, *bytes.Buffer) error{
		"graph": func(e *Engine, b *bytes.Buffer) error { _, err := e.graph().WriteTo(b); return err },
		"bm25":  func(e *Engine, b *bytes.Buffer) error { return e.WriteTextIndex(b) },
	} {
		var a, b bytes.Buffer
		if err := write(got, &a); err != nil {
			t.Fatal(err)
		}
		if err := write(want, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("%s differs from the engine at the snapshot's position (%d vs %d bytes)", name, a.Len(), b.Len())
		}
	}
}

// Snapshots written while batches apply, racing them (run with -race):
// each snapshot read back is exactly the engine at its view's position.
func TestSnapshotsRacingAppliesHoldTheirPosition(t *testing.T) {
	const n = 500
	s := newScript(22)
	var batches []Ops
	for lsn := 1; lsn <= n; lsn++ {
		batches = append(batches, s.batch(lsn))
	}
	e, _ := New(cfg())
	mustApplyAll(t, e, batches[:n/5])
	type snap struct {
		lsn LSN
		buf bytes.Buffer
	}
	var snaps []*snap
	done := make(chan struct{})
	go func() { defer close(done); mustApplyAll(t, e, batches[n/5:]) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		v := e.ReadView()
		sn := &snap{lsn: v.Position().LSN}
		if err := v.WriteSnapshot(&sn.buf); err != nil {
			t.Fatal(err)
		}
		v.Release()
		snaps = append(snaps, sn)
	}
	for i := range 5 { // five spread over the run
		sn := snaps[i*(len(snaps)-1)/4]
		got, err := ReadSnapshot(cfg(), &sn.buf)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := New(cfg())
		mustApplyAll(t, want, batches[:sn.lsn])
		assertSameEngine(t, got, want)
	}
	t.Logf("%d snapshots while %d batches applied", len(snaps), n-n/5)
}
