package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/store"
)

// EmbedBuildConfig bounds a re-embedding.
type EmbedBuildConfig struct {
	// Batch is how many chunks are embedded and stored together (256 if
	// zero): one transaction, one log entry.
	Batch int
	// Rate bounds the chunks embedded per second (0: unbounded), so a
	// build leaves the embedding provider and the database to the
	// requests.
	Rate float64
}

// EmbedBuild handles store.EmbedBuildJob: it embeds every chunk without
// a vector of the job's model, in batches at a bounded rate, and switches
// the model active once none is left. It resumes where a crash left it
// (the vectors stored are the progress) and ends, done, when the build is
// abandoned or switched.
func EmbedBuild(st *store.Store, models *embed.Models, cfg EmbedBuildConfig, logger *slog.Logger) Handler {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	return func(ctx context.Context, job store.Job) error {
		var p store.EmbedJob
		if err := json.Unmarshal(job.Payload, &p); err != nil || p.Model == "" {
			return fmt.Errorf("%w: bad payload", ErrPermanent)
		}
		m, ok := models.Get(p.Model)
		if !ok {
			return fmt.Errorf("jobs: embedding build: model %s is not configured on this node", p.Model)
		}
		b := &builder{st: st, m: m, cfg: cfg, logger: logger.With("component", "jobs", "model", m.Name)}
		if cfg.Rate > 0 {
			b.limit = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Batch, int(cfg.Rate)))
		}
		err := b.run(ctx)
		if errors.Is(err, store.ErrNotBuilding) {
			b.logger.Info("re-embedding ended: the build was abandoned or switched")
			return nil
		}
		return err
	}
}

// builder is one run of a build job.
type builder struct {
	st     *store.Store
	m      embed.Model
	cfg    EmbedBuildConfig
	limit  *rate.Limiter
	logger *slog.Logger
	done   int
}

// run embeds batches until none is missing, then switches.
func (b *builder) run(ctx context.Context) error {
	start := time.Now()
	for {
		batch, err := b.st.ChunksWithout(ctx, b.m.Name, b.cfg.Batch)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			// The fallback's index of the model, before searches need it.
			t := time.Now()
			if err := b.st.IndexEmbeddingModel(ctx, b.m.Name, b.m.Dim); err != nil {
				return err
			}
			b.logger.Info("re-embedding indexed the model for the PostgreSQL fallback", "took", time.Since(t).Round(time.Millisecond))
			switched, err := b.st.SwitchEmbeddingModel(ctx, b.m.Name)
			if err != nil || switched {
				b.logger.Info("re-embedding switched the active model", "chunks", b.done,
					"elapsed", time.Since(start).Round(time.Millisecond), "error", err)
				return err
			}
			continue // chunks arrived meanwhile
		}
		if err := b.batch(ctx, batch); err != nil {
			return err
		}
		if b.done%(b.cfg.Batch*20) < len(batch) {
			b.logger.Info("re-embedding", "chunks", b.done, "per_second", float64(b.done)/time.Since(start).Seconds())
		}
	}
}

// batch embeds and stores one batch, at the bounded rate.
func (b *builder) batch(ctx context.Context, batch []store.ChunkText) error {
	if b.limit != nil {
		if err := b.limit.WaitN(ctx, min(len(batch), b.limit.Burst())); err != nil {
			return err
		}
	}
	texts := make([]string, len(batch))
	for i, c := range batch {
		texts[i] = c.Text
	}
	vecs, err := embed.Batched(ctx, b.m.Embedder, texts, nil)
	if err != nil {
		return fmt.Errorf("jobs: embedding build: %w", err)
	}
	if err := b.st.PutEmbeddings(ctx, b.m.Name, batch, vecs); err != nil {
		return err
	}
	b.done += len(batch)
	return nil
}

// EmbedDrop handles store.EmbedDropJob: it deletes the vectors of a model
// no longer active nor being built, a batch per transaction.
func EmbedDrop(st *store.Store) Handler {
	return func(ctx context.Context, job store.Job) error {
		var p store.EmbedJob
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload", ErrPermanent)
		}
		for {
			n, err := st.DropEmbeddings(ctx, p.Model, 1000)
			if err != nil || n == 0 {
				return err
			}
		}
	}
}
