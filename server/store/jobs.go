package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Job is a claimed unit of durable background work.
type Job struct {
	ID          uuid.UUID
	Kind        string
	Payload     json.RawMessage
	Attempts    int // including this one
	MaxAttempts int
}

// EnqueueJob adds a job in tx, the transaction whose commit makes it
// necessary. With a dedupe key, a live job with the same
// key makes this a no-op.
func EnqueueJob(ctx context.Context, tx pgx.Tx, kind string, payload any, dedupeKey string, maxAttempts int) error {
	return EnqueueJobAt(ctx, tx, kind, payload, dedupeKey, maxAttempts, time.Time{})
}

// EnqueueJobAt is EnqueueJob for a job that is not due before at (the
// zero time: now).
func EnqueueJobAt(ctx context.Context, tx pgx.Tx, kind string, payload any, dedupeKey string, maxAttempts int, at time.Time) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("store: enqueue %s: %w", kind, err)
	}
	var runAt *time.Time
	if !at.IsZero() {
		runAt = &at
	}
	_, err = tx.Exec(ctx, `INSERT INTO jobs (kind, payload, dedupe_key, max_attempts, run_at) VALUES ($1, $2, $3, $4, coalesce($5, now()))
		ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING`,
		kind, b, nullIfEmpty(dedupeKey), maxAttempts, runAt)
	if err != nil {
		return fmt.Errorf("store: enqueue %s: %w", kind, err)
	}
	return nil
}

// ClaimJob takes the next due job of kinds for worker, leasing it for
// lease: a queued job whose time has come, or a running one whose lease
// expired (its worker died). fault.ErrNotFound when there is none.
func (s *Store) ClaimJob(ctx context.Context, kinds []string, worker string, lease time.Duration) (Job, error) {
	var j Job
	err := s.pool.QueryRow(ctx, `
		UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = now() + $3::interval,
			locked_by = $2, updated_at = now()
		WHERE id = (
			SELECT id FROM jobs
			WHERE kind = ANY($1) AND attempts < max_attempts
			  AND ((status = 'queued' AND run_at <= now()) OR (status = 'running' AND lease_until < now()))
			ORDER BY run_at, created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id, kind, payload, attempts, max_attempts`, kinds, worker, lease).
		Scan(&j.ID, &j.Kind, &j.Payload, &j.Attempts, &j.MaxAttempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, fmt.Errorf("store: claim job: %w", fault.ErrNotFound)
	}
	if err != nil {
		return j, fmt.Errorf("store: claim job: %w", err)
	}
	return j, nil
}

// FailAbandonedJobs fails running jobs whose lease expired on their last
// attempt (no retry is left for them) and returns them.
func (s *Store) FailAbandonedJobs(ctx context.Context, kinds []string) ([]Job, error) {
	rows, err := s.pool.Query(ctx, `UPDATE jobs SET status = 'failed', finished_at = now(), updated_at = now(),
			last_error = coalesce(last_error || '; ', '') || 'worker lost on the last attempt'
		WHERE kind = ANY($1) AND status = 'running' AND lease_until < now() AND attempts >= max_attempts
		RETURNING id, kind, payload, attempts, max_attempts`, kinds)
	if err != nil {
		return nil, fmt.Errorf("store: fail abandoned jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) {
		var j Job
		err := r.Scan(&j.ID, &j.Kind, &j.Payload, &j.Attempts, &j.MaxAttempts)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: fail abandoned jobs: %w", err)
	}
	return jobs, nil
}

// ExtendJobLease keeps a long job's lease while its worker is alive.
func (s *Store) ExtendJobLease(ctx context.Context, id uuid.UUID, worker string, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET lease_until = now() + $3::interval, updated_at = now()
		WHERE id = $1 AND status = 'running' AND locked_by = $2`, id, worker, lease)
	if err != nil {
		return fmt.Errorf("store: extend lease: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: extend lease: the job is no longer ours: %w", fault.ErrNotFound)
	}
	return nil
}

// FinishJob records a job's outcome: done, retried at retryAt, or failed
// for good when retryAt is zero.
func (s *Store) FinishJob(ctx context.Context, id uuid.UUID, worker string, jobErr error, retryAt time.Time) error {
	var err error
	switch {
	case jobErr == nil:
		_, err = s.pool.Exec(ctx, `UPDATE jobs SET status = 'succeeded', finished_at = now(), lease_until = NULL,
			updated_at = now() WHERE id = $1 AND locked_by = $2`, id, worker)
	case !retryAt.IsZero():
		_, err = s.pool.Exec(ctx, `UPDATE jobs SET status = 'queued', run_at = $3, lease_until = NULL, locked_by = NULL,
			last_error = $4, updated_at = now() WHERE id = $1 AND locked_by = $2`, id, worker, retryAt, truncate(jobErr.Error(), 2000))
	default:
		_, err = s.pool.Exec(ctx, `UPDATE jobs SET status = 'failed', finished_at = now(), lease_until = NULL,
			last_error = $3, updated_at = now() WHERE id = $1 AND locked_by = $2`, id, worker, truncate(jobErr.Error(), 2000))
	}
	if err != nil {
		return fmt.Errorf("store: finish job: %w", err)
	}
	return nil
}

// JobStatus reads a job's status and last error (for tests and operators).
func (s *Store) JobStatus(ctx context.Context, id uuid.UUID) (status string, attempts int, lastErr string, err error) {
	var le *string
	err = s.pool.QueryRow(ctx, `SELECT status, attempts, last_error FROM jobs WHERE id = $1`, id).Scan(&status, &attempts, &le)
	if le != nil {
		lastErr = *le
	}
	return status, attempts, lastErr, notFound("job status", err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
