// Package jobs runs durable background work from the jobs table: every node
// runs a Runner; workers claim jobs with FOR UPDATE SKIP LOCKED under a
// lease (renewed while the handler runs), so a crashed worker's job is
// taken again once its lease expires. Failures retry with exponential
// backoff up to the job's maximum attempts, then the job fails for good.
package jobs

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

// Handler does one job. Returning an error retries it (with backoff) unless
// the error wraps ErrPermanent or the job is on its last attempt
// (job.Attempts == job.MaxAttempts).
type Handler func(ctx context.Context, job store.Job) error

// GiveUp is told when a job of its kind fails for good: its handler failed
// on the last attempt or with ErrPermanent, or its worker was lost on the
// last attempt. It records the failure where users see it.
type GiveUp func(ctx context.Context, job store.Job, cause error)

// ErrPermanent marks a failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

// Config tunes a runner.
type Config struct {
	Lease       time.Duration // how long a claim holds without renewal
	Poll        time.Duration // idle wait between claims
	BackoffBase time.Duration // first retry delay; doubles per attempt
	BackoffMax  time.Duration
}

// DefaultConfig suits production.
var DefaultConfig = Config{Lease: 60 * time.Second, Poll: 500 * time.Millisecond, BackoffBase: 2 * time.Second, BackoffMax: 10 * time.Minute}

// Runner claims and runs jobs of the kinds it has handlers for.
type Runner struct {
	cfg      Config
	store    *store.Store // runs as the worker role
	handlers map[string]Handler
	giveUps  map[string]GiveUp
	kinds    []string
	worker   string
	logger   *slog.Logger
	done     *prometheus.CounterVec   // by kind and outcome
	took     *prometheus.HistogramVec // by kind and outcome
}

// Instrument registers the runner's metrics on reg: jobs run by kind and
// outcome (done, retry, failed) and their durations.
func (r *Runner) Instrument(reg prometheus.Registerer) {
	r.done = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sostenuto_jobs_run_total",
		Help: "Jobs this node ran, by kind (ingest, blob_delete) and outcome (done, retry, failed)."}, []string{"kind", "outcome"})
	r.took = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sostenuto_job_duration_seconds",
		Help:    "How long a job attempt ran, by kind and outcome.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}}, []string{"kind", "outcome"})
	reg.MustRegister(r.done, r.took)
}

// NewRunner returns a runner over st with handlers by job kind.
func NewRunner(cfg Config, st *store.Store, handlers map[string]Handler, logger *slog.Logger) *Runner {
	host, _ := os.Hostname()
	r := &Runner{cfg: cfg, store: st, handlers: handlers, giveUps: map[string]GiveUp{}, logger: logger.With("component", "jobs"),
		worker: host + "/" + uuid.NewString()[:8]}
	for k := range handlers {
		r.kinds = append(r.kinds, k)
	}
	sort.Strings(r.kinds)
	return r
}

// OnGiveUp registers what to do when a job of kind fails for good.
func (r *Runner) OnGiveUp(kind string, fn GiveUp) { r.giveUps[kind] = fn }

// Run claims and runs jobs until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	r.logger.Info("job runner started", "worker", r.worker, "kinds", r.kinds)
	for ctx.Err() == nil {
		if !r.runOne(ctx) {
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.Poll):
			}
		}
	}
	return nil
}

// runOne runs one job if one is due and reports whether it did.
func (r *Runner) runOne(ctx context.Context) bool {
	abandoned, err := r.store.FailAbandonedJobs(ctx, r.kinds)
	if err != nil {
		r.logger.Warn("sweep abandoned jobs", "error", err)
		return false
	}
	for _, j := range abandoned {
		r.logger.Warn("job failed: worker lost on its last attempt", "job", j.ID, "kind", j.Kind)
		r.giveUp(ctx, j, errors.New("the worker was lost on the last attempt"))
	}
	job, err := r.store.ClaimJob(ctx, r.kinds, r.worker, r.cfg.Lease)
	if errors.Is(err, fault.ErrNotFound) {
		return false
	}
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("claim job", "error", err)
		}
		return false
	}
	started := time.Now()
	jobErr := r.execute(ctx, job)
	var retryAt time.Time
	if jobErr != nil && !errors.Is(jobErr, ErrPermanent) && job.Attempts < job.MaxAttempts {
		retryAt = time.Now().Add(r.backoff(job.Attempts))
	}
	log := r.logger.With("job", job.ID, "kind", job.Kind, "attempt", job.Attempts)
	if r.done != nil {
		outcome := "done"
		if jobErr != nil {
			outcome = "retry"
			if retryAt.IsZero() {
				outcome = "failed"
			}
		}
		r.done.WithLabelValues(job.Kind, outcome).Inc()
		r.took.WithLabelValues(job.Kind, outcome).Observe(time.Since(started).Seconds())
	}
	switch {
	case jobErr == nil:
		log.Info("job done")
	case retryAt.IsZero():
		log.Error("job failed for good", "error", jobErr)
		r.giveUp(ctx, job, jobErr)
	default:
		log.Warn("job failed; will retry", "error", jobErr, "retry_at", retryAt)
	}
	// Record the outcome even when ctx ended during the job.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.store.FinishJob(fctx, job.ID, r.worker, jobErr, retryAt); err != nil {
		log.Error("record job outcome", "error", err)
	}
	return true
}

func (r *Runner) giveUp(ctx context.Context, job store.Job, cause error) {
	if fn := r.giveUps[job.Kind]; fn != nil {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		fn(gctx, job, cause)
	}
}

// execute runs the handler, renewing the lease while it works.
func (r *Runner) execute(ctx context.Context, job store.Job) (err error) {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(r.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := r.store.ExtendJobLease(hctx, job.ID, r.worker, r.cfg.Lease); err != nil && hctx.Err() == nil {
					r.logger.Warn("lease lost; abandoning job", "job", job.ID, "error", err)
					cancel()
					return
				}
			}
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("job handler panicked")
			r.logger.Error("job handler panic", "job", job.ID, "panic", p)
		}
	}()
	return r.handlers[job.Kind](hctx, job)
}

// backoff is BackoffBase × 2^(attempt-1), capped, with ±20 % jitter.
func (r *Runner) backoff(attempt int) time.Duration {
	d := r.cfg.BackoffBase << min(attempt-1, 20)
	if d <= 0 || d > r.cfg.BackoffMax {
		d = r.cfg.BackoffMax
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
