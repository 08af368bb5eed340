package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ThrottlePolicy bounds failures per key: after Limit failures within
// Window, the key is blocked for Base, doubling with each further failure up
// to Max. A key's count starts again once its window has passed and it is
// not blocked.
type ThrottlePolicy struct {
	Limit  int
	Window time.Duration
	Base   time.Duration
	Max    time.Duration
}

// Blocks returns the end of the block of each of keys that is blocked now;
// keys not blocked are absent.
func (s *Store) Blocks(ctx context.Context, keys ...string) (map[string]time.Time, error) {
	rows, _ := s.pool.Query(ctx, `SELECT key, blocked_until FROM auth_throttle
		WHERE key = ANY($1) AND blocked_until > now()`, keys)
	type block struct {
		Key          string
		BlockedUntil time.Time
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[block])
	if err != nil {
		return nil, fmt.Errorf("store: throttle check: %w", err)
	}
	out := make(map[string]time.Time, len(found))
	for _, b := range found {
		out[b.Key] = b.BlockedUntil
	}
	return out, nil
}

// A failure starts a fresh count once the window has passed and the key is
// not blocked; count is the key's failures with this one.
const (
	throttleFresh = `(t.window_start < now() - $2::interval AND coalesce(t.blocked_until, '-infinity') < now())`
	throttleCount = `(CASE WHEN ` + throttleFresh + ` THEN 1 ELSE t.failures + 1 END)`
)

// upsertFailureSQL counts one failure. Every SET expression reads the row
// as it was, so they agree on the count.
const upsertFailureSQL = `
	INSERT INTO auth_throttle AS t (key, failures, window_start, blocked_until)
	VALUES ($1, 1, now(), CASE WHEN 1 >= $3 THEN now() + least($4::interval, $5::interval) END)
	ON CONFLICT (key) DO UPDATE SET
		failures = ` + throttleCount + `,
		window_start = CASE WHEN ` + throttleFresh + ` THEN now() ELSE t.window_start END,
		blocked_until = CASE WHEN ` + throttleCount + ` >= $3
			THEN greatest(t.blocked_until, now() + least($4::interval * power(2, least(` + throttleCount + ` - $3, 24)), $5::interval))
			ELSE t.blocked_until END`

// RecordFailure counts one failure for key under p, in one statement (so
// nodes counting at once add up), and returns the block it now carries
// (zero when none). A block is never shortened, and its doubling is capped
// before it is computed, so a count far past the limit cannot overflow.
func (s *Store) RecordFailure(ctx context.Context, key string, p ThrottlePolicy) (time.Time, error) {
	var until *time.Time
	err := s.pool.QueryRow(ctx, upsertFailureSQL+`
		RETURNING CASE WHEN t.blocked_until > now() THEN t.blocked_until END`,
		key, p.Window, p.Limit, p.Base, p.Max).Scan(&until)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: record failure: %w", err)
	}
	if until == nil {
		return time.Time{}, nil
	}
	return *until, nil
}

// ReserveFailure counts a failure for key under p before the attempt is
// judged, unless key is blocked. Counting first bounds the attempts that
// are judged at once: of many concurrent ones, only those that found key
// unblocked are, and the one that reaches p.Limit blocks the rest. It
// reports whether the failure was counted and the block key carries (zero
// when none). A blocked key counts nothing.
func (s *Store) ReserveFailure(ctx context.Context, key string, p ThrottlePolicy) (time.Time, bool, error) {
	var counted bool
	var until *time.Time
	err := s.pool.QueryRow(ctx, `WITH up AS (`+upsertFailureSQL+`
		WHERE coalesce(t.blocked_until, '-infinity') <= now()
		RETURNING t.blocked_until),
		b AS (SELECT coalesce((SELECT blocked_until FROM up), (SELECT blocked_until FROM auth_throttle WHERE key = $1)) AS until)
		SELECT EXISTS (SELECT FROM up), CASE WHEN until > now() THEN until END FROM b`,
		key, p.Window, p.Limit, p.Base, p.Max).Scan(&counted, &until)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: reserve failure: %w", err)
	}
	switch {
	case until != nil:
		return *until, counted, nil
	case counted:
		return time.Time{}, true, nil
	}
	// Blocked when counted, but this statement's snapshot predates the
	// block (a concurrent attempt set it): a second is the least it waits.
	return time.Now().Add(time.Second), false, nil
}

// ClearFailures forgets key's failures (after a successful sign-in).
func (s *Store) ClearFailures(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM auth_throttle WHERE key = $1`, key)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: clear failures: %w", err)
	}
	return nil
}
