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
// to Max.
type ThrottlePolicy struct {
	Limit  int
	Window time.Duration
	Base   time.Duration
	Max    time.Duration
}

// BlockedUntil returns the latest block among keys still in force, or the
// zero time when none is blocked.
func (s *Store) BlockedUntil(ctx context.Context, keys ...string) (time.Time, error) {
	var until *time.Time
	err := s.pool.QueryRow(ctx, `SELECT max(blocked_until) FROM auth_throttle
		WHERE key = ANY($1) AND blocked_until > now()`, keys).Scan(&until)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: throttle check: %w", err)
	}
	if until == nil {
		return time.Time{}, nil
	}
	return *until, nil
}

// RecordFailure counts one failure for key under p and returns the block it
// now carries (zero when none).
func (s *Store) RecordFailure(ctx context.Context, key string, p ThrottlePolicy) (time.Time, error) {
	var until *time.Time
	err := s.pool.QueryRow(ctx, `
		INSERT INTO auth_throttle AS t (key, failures, window_start) VALUES ($1, 1, now())
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN t.window_start < now() - $2::interval AND coalesce(t.blocked_until, '-infinity') < now()
			                THEN 1 ELSE t.failures + 1 END,
			window_start = CASE WHEN t.window_start < now() - $2::interval AND coalesce(t.blocked_until, '-infinity') < now()
			                THEN now() ELSE t.window_start END
		RETURNING CASE WHEN failures >= $3 THEN now() + least($4::interval * power(2, failures - $3), $5::interval) END`,
		key, p.Window, p.Limit, p.Base, p.Max).Scan(&until)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: record failure: %w", err)
	}
	if until == nil {
		return time.Time{}, nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE auth_throttle SET blocked_until = $2 WHERE key = $1`, key, *until); err != nil {
		return time.Time{}, fmt.Errorf("store: record failure: %w", err)
	}
	return *until, nil
}

// ClearFailures forgets key's failures (after a successful sign-in).
func (s *Store) ClearFailures(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM auth_throttle WHERE key = $1`, key)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: clear failures: %w", err)
	}
	return nil
}
