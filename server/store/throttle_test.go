package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// An account under a long attack keeps counting failures far past its
// limit; the block's doubling must stay capped instead of overflowing an
// interval (which would fail every sign-in of the account).
func TestRecordFailureFarPastLimit(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	s := New(db.Pool)
	p := ThrottlePolicy{Limit: 100, Window: 15 * time.Minute, Base: 15 * time.Minute, Max: 15 * time.Minute}
	if _, err := s.RecordFailure(ctx, "account:victim@example.com", p); err != nil {
		t.Fatal(err)
	}
	db.Pool.Exec(ctx, `UPDATE auth_throttle SET failures = 100000 WHERE key = 'account:victim@example.com'`)
	until, err := s.RecordFailure(ctx, "account:victim@example.com", p)
	if err != nil {
		t.Fatalf("failure 100001: %v", err)
	}
	if d := time.Until(until); d < 14*time.Minute || d > 15*time.Minute {
		t.Errorf("blocked for %v, want 15 min", d)
	}
}

// Failures recorded at once by many nodes all count, and the block each
// sees agrees with the final count.
func TestRecordFailureConcurrent(t *testing.T) {
	ctx := context.Background()
	s := New(pgtest.NewDB(t).Pool)
	p := ThrottlePolicy{Limit: 5, Window: time.Minute, Base: time.Second, Max: time.Hour}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.RecordFailure(ctx, "pair:192.0.2.1|a@example.com", p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	blocks, err := s.Blocks(ctx, "pair:192.0.2.1|a@example.com", "ip:192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	// 20 failures, limit 5: 1 s × 2^15, capped at the hour.
	if d := time.Until(blocks["pair:192.0.2.1|a@example.com"]); d < 59*time.Minute || len(blocks) != 1 {
		t.Errorf("blocks %v (pair blocked %v), want only the pair, for about an hour", blocks, d)
	}
}

// A pair key holds the longest address and email a sign-in can carry.
func TestPairKeyFits(t *testing.T) {
	ctx := context.Background()
	s := New(pgtest.NewDB(t).Pool)
	key := "pair:" + strings.Repeat("f", 64) + "|" + strings.Repeat("e", 254)
	if _, err := s.RecordFailure(ctx, key, ThrottlePolicy{Limit: 5, Window: time.Minute, Base: time.Second, Max: time.Minute}); err != nil {
		t.Fatal(err)
	}
}

// A reserved failure counts like any other; a blocked key reserves nothing
// and reports its block.
func TestReserveFailure(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	s := New(db.Pool)
	p := ThrottlePolicy{Limit: 2, Window: time.Minute, Base: 30 * time.Second, Max: time.Minute}
	const key = "pair:192.0.2.1|a@example.com"
	if until, ok, err := s.ReserveFailure(ctx, key, p); err != nil || !ok || !until.IsZero() {
		t.Fatalf("first: %v %v %v", until, ok, err)
	}
	blocked, ok, err := s.ReserveFailure(ctx, key, p)
	if err != nil || !ok || time.Until(blocked) < 29*time.Second {
		t.Fatalf("second (reaches the limit): %v %v %v", blocked, ok, err)
	}
	until, ok, err := s.ReserveFailure(ctx, key, p)
	if err != nil || ok || !until.Equal(blocked) {
		t.Fatalf("third (blocked): %v %v %v, want %v false", until, ok, err, blocked)
	}
	var n int
	db.Pool.QueryRow(ctx, `SELECT failures FROM auth_throttle WHERE key = $1`, key).Scan(&n)
	if n != 2 {
		t.Errorf("%d failures counted, want 2", n)
	}
}
