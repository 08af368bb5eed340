package search_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/search/searchtest"
)

// countingTeachers is the world's store, counting its reads; when hold is
// set, each read waits for hold to close after PostgreSQL answered (a
// slow read racing a change).
type countingTeachers struct {
	src    search.Teachers
	reads  atomic.Int64
	read   chan struct{} // told of each finished PostgreSQL read, if set
	hold   chan struct{}
	holdMu sync.Mutex
}

func (c *countingTeachers) TeachersOf(ctx context.Context, user uuid.UUID) ([]uuid.UUID, error) {
	ts, err := c.src.TeachersOf(ctx, user)
	c.reads.Add(1)
	c.holdMu.Lock()
	hold, read := c.hold, c.read
	c.holdMu.Unlock()
	if read != nil {
		read <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	return ts, err
}

// relate makes or removes the world's teacher–student relationship in
// PostgreSQL and answers the position after it.
func relate(t *testing.T, w *searchtest.World, on bool) index.LSN {
	t.Helper()
	sql := `DELETE FROM relationships WHERE teacher_id = $1 AND student_id = $2`
	if on {
		sql = `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`
	}
	if _, err := w.DB.Pool.Exec(context.Background(), sql, w.Teacher, w.Student); err != nil {
		t.Fatal(err)
	}
	return w.Position(t)
}

// The scope cache answers a known user without PostgreSQL, forgets a
// user as soon as the engine applies a change of their relationships,
// reads PostgreSQL while the index is not ready, and forgets everything
// when the engine is replaced.
func TestScopeCacheInvalidatedByChangefeed(t *testing.T) {
	w := searchtest.New(t)
	ctx := context.Background()
	src := &countingTeachers{src: w.Store}
	var ready atomic.Bool
	ready.Store(true)
	c := search.NewScopeCache(w.Live, ready.Load, src, 0)
	get := func() []uuid.UUID {
		t.Helper()
		ts, err := c.TeachersOf(ctx, w.Student)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if ts := get(); !slices.Equal(ts, []uuid.UUID{w.Teacher}) || src.reads.Load() != 1 {
		t.Fatalf("first: %v after %d reads", ts, src.reads.Load())
	}
	if ts := get(); !slices.Equal(ts, []uuid.UUID{w.Teacher}) || src.reads.Load() != 1 {
		t.Fatalf("a hit read PostgreSQL: %v after %d reads", ts, src.reads.Load())
	}
	w.WaitIndexed(t, relate(t, w, false))
	if ts := get(); len(ts) != 0 || src.reads.Load() != 2 {
		t.Fatalf("after the revoke: %v after %d reads", ts, src.reads.Load())
	}
	ready.Store(false)
	get()
	get()
	if src.reads.Load() != 4 {
		t.Fatalf("not ready: %d reads, want 4", src.reads.Load())
	}
	ready.Store(true)
	get()
	if src.reads.Load() != 4 {
		t.Fatalf("ready again: %d reads, want the entry kept before (4)", src.reads.Load())
	}
	fresh, err := index.New(index.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	w.Live.Swap(fresh) // a restore or a new base: another engine
	get()
	if src.reads.Load() != 5 {
		t.Fatalf("after a swap: %d reads, want 5", src.reads.Load())
	}
}

// A read that began before a relationship change and ends after the
// engine applied it is answered but never kept as current: the next
// question reads PostgreSQL again (the generation is the position the
// engine had applied before the read). Run with -race.
func TestScopeCacheReadRacingChange(t *testing.T) {
	w := searchtest.New(t)
	ctx := context.Background()
	src := &countingTeachers{src: w.Store, read: make(chan struct{}, 1), hold: make(chan struct{})}
	c := search.NewScopeCache(w.Live, func() bool { return true }, src, 0)
	done := make(chan []uuid.UUID)
	go func() {
		ts, _ := c.TeachersOf(ctx, w.Student) // reads the teacher, then waits
		done <- ts
	}()
	<-src.read
	w.WaitIndexed(t, relate(t, w, false)) // the revoke reaches the engine meanwhile
	src.holdMu.Lock()
	close(src.hold)
	src.hold, src.read = nil, nil
	src.holdMu.Unlock()
	if ts := <-done; !slices.Equal(ts, []uuid.UUID{w.Teacher}) {
		t.Fatalf("the racing read: %v", ts)
	}
	if ts, err := c.TeachersOf(ctx, w.Student); err != nil || len(ts) != 0 {
		t.Fatalf("after the race the cache answered %v, %v: a revoked teacher kept", ts, err)
	}
	// Many readers while the relationship flips: once the engine applied
	// a flip, every read answers PostgreSQL's state.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 + i {
				if _, err := c.TeachersOf(ctx, w.Student); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 6 {
		on := i%2 == 0
		w.WaitIndexed(t, relate(t, w, on))
		ts, err := c.TeachersOf(ctx, w.Student)
		if err != nil || (len(ts) == 1) != on {
			t.Fatalf("flip %d (related %v): %v, %v", i, on, ts, err)
		}
	}
	wg.Wait()
}
