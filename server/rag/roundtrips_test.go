package rag_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/search/searchtest"
	"github.com/sostenuto/sostenuto/server/store"
)

// roundTrips counts the round trips a pool makes to PostgreSQL: each
// query outside a batch, and each batch (pipelined: one).
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// A question answered from the cache costs no PostgreSQL round trip (one,
// the batched re-check, with RecheckHits, or while the index is behind a
// write this node acknowledged); a new question in a known scope costs one
// (the batched visibility re-check); the first question of a user one more
// (their teachers).
func TestAskRoundTrips(t *testing.T) {
	for _, hits := range []hitMode{hitsTrusted, hitsRechecked, hitsBehind} {
		askRoundTrips(t, hits)
	}
}

// tracedPool is a one-connection pool of the application role on w's
// database whose round trips tr counts.
func tracedPool(t *testing.T, w *searchtest.World) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	tr := &roundTrips{}
	cfg, err := store.PoolConfig(w.DB.URL, store.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tr
	cfg.MinConns, cfg.MaxConns = 1, 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, tr
}

func askRoundTrips(t *testing.T, hits hitMode) {
	w := searchtest.New(t)
	pool, tr := tracedPool(t, w)
	layers := cache.NewLayers(cache.NewMemory(1000, time.Hour), time.Hour, time.Hour, time.Hour, nil, nil)
	svc, _ := newServiceOn(t, w, store.New(pool), layers, index.Fusion{}, nil, hits)
	_, _, lsn := w.Document(t, w.Teacher, "Scales", "Relax the thumb while playing scales slowly.", false)
	w.WaitIndexed(t, lsn)
	ask := func(text string) int64 {
		t.Helper()
		before := tr.n.Load()
		out, err := svc.Ask(context.Background(), rag.Question{Text: text, K: 5}, search.Scope{User: w.Student}, &recorder{})
		if err != nil || len(out.Sources) != 1 {
			t.Fatalf("%q: %v %+v", text, err, out)
		}
		return tr.n.Load() - before
	}
	ask("warm the statement cache: thumb scales") // prepared statements, the connection's role
	svc, _ = newServiceOn(t, w, store.New(pool), layers, index.Fusion{}, nil, hits)
	hit := int64(0)
	if hits != hitsTrusted {
		hit = 1
	}
	for _, c := range []struct {
		what, text string
		want       int64
	}{
		{"a user's first question", "How should the thumb be in scales?", 2},
		{"the same question (a hit)", "How should the thumb be in scales?", hit},
		{"a new question in a known scope", "relax thumb while playing scales", 1},
		{"that one again (a hit)", "relax thumb while playing scales", hit},
	} {
		if got := ask(c.text); got != c.want {
			t.Errorf("hit mode %d, %s: %d round trips, want %d", hits, c.what, got, c.want)
		}
	}
}

// An asker authenticated from the node's memory (a Pending asker) is
// confirmed in the same round trip as the re-check: a miss still costs one
// round trip in all (before, authentication made one of its own), a kept
// retrieval one (the session alone), and neither emits anything for a
// session that ended or a role that changed.
func TestAskRoundTripsPendingAsker(t *testing.T) {
	w := searchtest.New(t)
	pool, tr := tracedPool(t, w)
	st := store.New(pool)
	layers := cache.NewLayers(cache.NewMemory(1000, time.Hour), time.Hour, time.Hour, time.Hour, nil, nil)
	svc, _ := newServiceOn(t, w, st, layers, index.Fusion{}, nil, hitsTrusted)
	_, _, lsn := w.Document(t, w.Teacher, "Scales", "Relax the thumb while playing scales slowly.", false)
	w.WaitIndexed(t, lsn)
	session, hash := uuid.New(), []byte("a refresh token's hash, 32 bytes")
	if err := st.CreateRefreshToken(context.Background(), w.Student, session, hash, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ask := func(text, role string) (int64, *rag.Pending, *recorder, error) {
		t.Helper()
		a := &rag.Pending{User: w.Student, Session: session, Role: role}
		rec := &recorder{}
		before := tr.n.Load()
		_, err := svc.Ask(context.Background(), rag.Question{Text: text, K: 5, Asker: a}, search.Scope{User: w.Student}, rec)
		return tr.n.Load() - before, a, rec, err
	}
	ask("warm the statement cache and the scope: thumb scales", "student")
	for _, c := range []struct {
		what, text string
		want       int64
	}{
		{"a new question", "How should the thumb be in scales?", 1},
		{"the same question (a hit)", "How should the thumb be in scales?", 1},
	} {
		n, a, rec, err := ask(c.text, "student")
		if err != nil || !a.Confirmed || len(rec.sources) != 1 || n != c.want {
			t.Errorf("%s: %d round trips (want %d), confirmed %v, %d sources, %v", c.what, n, c.want, a.Confirmed, len(rec.sources), err)
		}
	}
	if _, a, rec, err := ask("playing scales slowly", "admin"); !errors.Is(err, rag.ErrRoleChanged) || a.Role != "student" || rec.sources != nil {
		t.Errorf("a role that changed: %v, role %q, emitted %v", err, a.Role, rec.sources)
	}
	if err := st.RevokeRefreshFamily(context.Background(), hash); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"How should the thumb be in scales?", "thumb while playing"} { // a hit, a miss
		if _, _, rec, err := ask(q, "student"); !errors.Is(err, fault.ErrUnauthenticated) || rec.sources != nil || rec.deltas != nil {
			t.Errorf("%q after sign-out: %v, emitted %v %v", q, err, rec.sources, rec.deltas)
		}
	}
}
