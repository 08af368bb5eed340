package server

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/store"
)

// Readiness follows a real PostgreSQL: 200, then 503 while it is stopped,
// then 200 again once it is back, with the same pool.
func TestReadyFollowsPostgres(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	pool, err := pgxpool.New(context.Background(), cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, _ := newTestServer(t, store.New(pool))
	h := s.Handler()

	waitStatus := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			rec := do(t, h, "GET", "/api/ready", nil)
			if rec.Code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ready = %d %s; want %d", rec.Code, rec.Body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus(200)
	cluster.Stop()
	waitStatus(503)
	rec := do(t, h, "GET", "/api/ready", nil)
	if p := decodeProblemBody(t, rec); p.Code != CodeUnavailable {
		t.Errorf("problem code %q", p.Code)
	}
	cluster.Start()
	waitStatus(200)
}
