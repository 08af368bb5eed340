package rag_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/cache"
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

func askRoundTrips(t *testing.T, hits hitMode) {
	w := searchtest.New(t)
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
