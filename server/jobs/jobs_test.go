package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/store"
)

var fast = Config{Lease: 2 * time.Second, Poll: 20 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}

type env struct {
	db     *pgtest.DB
	worker *store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := pgtest.NewDB(t)
	pool, err := store.OpenPool(context.Background(), db.URL, store.WorkerRole)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &env{db: db, worker: store.New(pool)}
}

func (e *env) enqueue(t *testing.T, kind string, payload any, maxAttempts int) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, e.db.Pool, func(tx pgx.Tx) error {
		return store.EnqueueJob(ctx, tx, kind, payload, "", maxAttempts)
	})
	if err != nil {
		t.Fatal(err)
	}
	var id uuid.UUID
	e.db.Pool.QueryRow(ctx, `SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1`).Scan(&id)
	return id
}

func (e *env) run(t *testing.T, handlers map[string]Handler) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := NewRunner(fast, e.worker, handlers, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func (e *env) waitStatus(t *testing.T, id uuid.UUID, want string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, attempts, lastErr, err := e.worker.JobStatus(context.Background(), id)
		if err == nil && status == want {
			return attempts, lastErr
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %s (%d attempts, %q), want %s", id, status, attempts, lastErr, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRetriesWithBackoffThenSucceeds(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	var got atomic.Value
	id := e.enqueue(t, "test.flaky", map[string]string{"key": "projects/x.pdf"}, 5)
	e.run(t, map[string]Handler{"test.flaky": func(_ context.Context, j store.Job) error {
		got.Store(string(j.Payload))
		if calls.Add(1) < 3 {
			return errors.New("store down")
		}
		return nil
	}})
	attempts, lastErr := e.waitStatus(t, id, "succeeded")
	if attempts != 3 || lastErr != "store down" || got.Load() != `{"key": "projects/x.pdf"}` {
		t.Errorf("attempts %d, last error %q, payload %v", attempts, lastErr, got.Load())
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	id := e.enqueue(t, "test.broken", map[string]int{}, 3)
	perm := e.enqueue(t, "test.permanent", map[string]int{}, 5)
	e.run(t, map[string]Handler{
		"test.broken":    func(context.Context, store.Job) error { return errors.New("always") },
		"test.permanent": func(context.Context, store.Job) error { return ErrPermanent },
	})
	if attempts, _ := e.waitStatus(t, id, "failed"); attempts != 3 {
		t.Errorf("attempts %d, want 3", attempts)
	}
	if attempts, _ := e.waitStatus(t, perm, "failed"); attempts != 1 {
		t.Errorf("permanent failure retried: %d attempts", attempts)
	}
}

// A worker that dies mid-job loses its lease; another worker takes the job.
func TestExpiredLeaseIsTakenAgain(t *testing.T) {
	e := newEnv(t)
	id := e.enqueue(t, "test.crash", map[string]int{}, 5)
	// The "crashed" worker claims with a short lease and never finishes.
	if _, err := e.worker.ClaimJob(context.Background(), []string{"test.crash"}, "dead-worker", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	e.run(t, map[string]Handler{"test.crash": func(context.Context, store.Job) error { ran.Add(1); return nil }})
	attempts, _ := e.waitStatus(t, id, "succeeded")
	if attempts != 2 || ran.Load() != 1 {
		t.Errorf("attempts %d, runs %d", attempts, ran.Load())
	}
}

// A long job keeps its lease while its handler runs: nobody else takes it.
func TestLeaseRenewedWhileRunning(t *testing.T) {
	e := newEnv(t)
	id := e.enqueue(t, "test.slow", map[string]int{}, 5)
	var ran atomic.Int32
	slow := func(ctx context.Context, _ store.Job) error {
		ran.Add(1)
		select {
		case <-time.After(3 * time.Second): // longer than the 2 s lease
		case <-ctx.Done():
		}
		return nil
	}
	e.run(t, map[string]Handler{"test.slow": slow})
	e.run(t, map[string]Handler{"test.slow": slow}) // a second node
	attempts, _ := e.waitStatus(t, id, "succeeded")
	if attempts != 1 || ran.Load() != 1 {
		t.Errorf("attempts %d, runs %d: the job was taken twice", attempts, ran.Load())
	}
}

// GiveUp hears of every job that fails for good: on its last attempt, with
// ErrPermanent, or with its worker lost on the last attempt.
func TestGiveUp(t *testing.T) {
	e := newEnv(t)
	last := e.enqueue(t, "test.gu", map[string]int{}, 2)
	lost := e.enqueue(t, "test.lost", map[string]int{}, 1)
	if _, err := e.worker.ClaimJob(context.Background(), []string{"test.lost"}, "dead", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var gaveUp sync.Map
	ctx, cancel := context.WithCancel(context.Background())
	r := NewRunner(fast, e.worker, map[string]Handler{
		"test.gu":   func(context.Context, store.Job) error { return errors.New("nope") },
		"test.lost": func(context.Context, store.Job) error { return nil },
	}, slog.New(slog.DiscardHandler))
	for _, k := range []string{"test.gu", "test.lost"} {
		r.OnGiveUp(k, func(_ context.Context, j store.Job, cause error) { gaveUp.Store(j.ID, cause.Error()) })
	}
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	e.waitStatus(t, last, "failed")
	e.waitStatus(t, lost, "failed")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c1, ok1 := gaveUp.Load(last)
		c2, ok2 := gaveUp.Load(lost)
		if ok1 && ok2 {
			if c1 != "nope" || !strings.Contains(c2.(string), "worker was lost") {
				t.Errorf("causes %q, %q", c1, c2)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("give-ups heard: last %v, lost %v", ok1, ok2)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
