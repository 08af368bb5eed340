package index

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/index/vector"
)

// compactNow compacts e on the test's goroutine and fails unless it did.
func compactNow(t *testing.T, e *Engine) {
	t.Helper()
	done, err := e.Compact(context.Background())
	if err != nil || !done {
		t.Fatalf("compact: done %v, %v", done, err)
	}
}

// deleteMost deletes the first n chunks of w (enough tombstones to make a
// compaction due).
func deleteMost(t *testing.T, w *world, n int, lsn uint64) {
	t.Helper()
	var dels []ID
	for i := range n {
		dels = append(dels, w.chunks[i].ID)
	}
	if err := w.e.Apply(Ops{Deletes: dels, Position: Position{LSN: LSN(lsn)}}); err != nil {
		t.Fatal(err)
	}
}

// Apply only notices a compaction is due: it starts no goroutine and swaps
// no graph; the Compactor does the work, and stops with its context.
func TestApplyLeavesCompactionToTheCompactor(t *testing.T) {
	w := newWorld(t, rand.New(rand.NewPCG(7, 7)), 2, 300, 10) // 3000 chunks
	before := runtime.NumGoroutine()
	g := w.e.graph()
	deleteMost(t, w, 1200, 2)
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("Apply left %d goroutines running, %d before", n, before)
	}
	time.Sleep(50 * time.Millisecond)
	if w.e.graph() != g || g.Tombstones() != 1200 {
		t.Fatalf("the graph changed without a Compactor (%d tombstones)", w.e.graph().Tombstones())
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- NewCompactor(NewLive(w.e), time.Hour, slog.New(slog.DiscardHandler)).Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for w.e.graph().Tombstones() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Compactor did not compact on Apply's signal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := w.e.graph().Len(); n != 1800 {
		t.Fatalf("%d live vectors after compaction, want 1800", n)
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Writes made between the copy of the live vectors and the swap are
// replayed onto the compacted graph: none is lost, none comes back.
func TestCompactionKeepsWritesMadeDuringTheBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	w := newWorld(t, r, 2, 300, 10)
	deleteMost(t, w, 1200, 2)
	c, ok := w.e.beginCompaction()
	if !ok {
		t.Fatal("no compaction due")
	}
	late := w.chunks[2000]
	late.Version, late.Vector = 2, randomVector(r)
	added := Chunk{ID: idn('c', 999999), DocumentID: late.DocumentID, OwnerID: late.OwnerID, Text: "new", Version: 1, Vector: randomVector(r)}
	gone := w.chunks[2999].ID
	if err := w.e.Apply(Ops{Upserts: []Chunk{late, added}, Deletes: []ID{gone}, Position: Position{LSN: 3}}); err != nil {
		t.Fatal(err)
	}
	fresh, err := vector.BuildContext(context.Background(), cfg().Vector, c.items)
	if done, err := w.e.finishCompaction(c, fresh, err); !done || err != nil {
		t.Fatalf("finish: %v %v", done, err)
	}
	g := w.e.graph()
	if g != fresh || g.Has(vector.ID(gone)) || !g.Has(vector.ID(added.ID)) || g.Len() != 1800 {
		t.Fatalf("compacted graph: swapped %v, deleted kept %v, added %v, %d live", g == fresh, g.Has(vector.ID(gone)), g.Has(vector.ID(added.ID)), g.Len())
	}
	hits, _ := w.e.Search(Query{K: 1, Mode: ModeVector, Vector: late.Vector, Scope: Scope{Admin: true}})
	if len(hits) != 1 || hits[0].Chunk.ID != late.ID || hits[0].Chunk.Version != 2 {
		t.Fatalf("the rewritten chunk is not found by its new vector: %+v", hits)
	}
}

func randomVector(r *rand.Rand) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// Ending the context abandons a rebuild: the engine keeps its graph, stops
// logging, and compacts later.
func TestCompactionAbandonedWithItsContext(t *testing.T) {
	w := newWorld(t, rand.New(rand.NewPCG(9, 9)), 2, 300, 10)
	deleteMost(t, w, 1200, 2)
	g := w.e.graph()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done, err := w.e.Compact(ctx)
	if done || !errors.Is(err, context.Canceled) {
		t.Fatalf("compact with an ended context: done %v, %v", done, err)
	}
	if w.e.graph() != g || w.e.compacting != nil {
		t.Fatal("an abandoned compaction changed the engine")
	}
	compactNow(t, w.e)
	if w.e.graph().Tombstones() != 0 {
		t.Fatal("no compaction after the abandoned one")
	}
}

// A snapshot's read view is the engine at one moment: a compaction swaps
// its graph in while the snapshot is still to be written, and the
// snapshot holds the graph current when the view was taken (here the old
// one, tombstones and all).
func TestSnapshotDuringCompactionHoldsTheOldGraph(t *testing.T) {
	w := newWorld(t, rand.New(rand.NewPCG(10, 10)), 2, 300, 10)
	deleteMost(t, w, 1200, 2)
	old := w.e.graph()
	c, _ := w.e.beginCompaction()
	fresh, err := vector.BuildContext(context.Background(), cfg().Vector, c.items)
	view := w.e.ReadView()
	if _, err := w.e.finishCompaction(c, fresh, err); err != nil || w.e.graph() != fresh {
		t.Fatalf("swap while a view is held: %v", err)
	}
	var buf bytes.Buffer
	if err := view.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	view.Release()
	restored, err := ReadSnapshot(cfg(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := restored.graph().Tombstones(); got != old.Tombstones() || got == 0 || restored.Len() != 1800 {
		t.Fatalf("snapshot holds %d tombstones and %d chunks; the old graph had %d", got, restored.Len(), old.Tombstones())
	}
}
