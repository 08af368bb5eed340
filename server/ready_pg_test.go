package server

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/store"
)

// driverText is what the driver says about a failed connection: addresses,
// ports, user and database names, SQLSTATEs, syscalls.
var driverText = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b|(?i)failed to connect|dial|connect:|refused|user=|database=|SQLSTATE|pgx|\.s\.PGSQL|host=`)

// Readiness follows a real PostgreSQL: 200, then 503 while it is stopped,
// then 200 again once it is back, with the same pool.
func TestReadyFollowsPostgres(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	pool, err := pgxpool.New(context.Background(), cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, logs := newTestServer(t, store.New(pool))
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
	// A plain reason: no driver text, no address of the database.
	body := rec.Body.String()
	if !strings.Contains(body, "database") || driverText.MatchString(body) {
		t.Errorf("the 503 carries driver text %q: %s", driverText.FindString(body), body)
	}
	if !logLineHas(logs.String(), rec.Header().Get(HeaderRequestID), "connect") {
		t.Errorf("no log line holds the request id and the driver's error:\n%s", logs)
	}
	cluster.Start()
	waitStatus(200)
}
