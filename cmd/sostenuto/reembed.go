package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/store"
)

// reembedConfig is what `sostenuto reembed` reads: the database and the
// embedders (to know a model's dimension).
type reembedConfig struct {
	log    logConfig
	db     dbConfig
	ingest ingestConfig
	wait   bool
	every  time.Duration
}

func (c *reembedConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	s = append(s, c.ingest.settings()...)
	return append(s,
		setting{name: "wait", usage: "start and status: follow the build's progress until the model is switched or the build ends", def: "false", parse: boolVar(&c.wait)},
		setting{name: "every", usage: "how often --wait reports progress", def: "2s", parse: durationVar(&c.every, 100*time.Millisecond, time.Hour)})
}

// runReembed starts, follows or abandons a re-embedding: `reembed start
// MODEL [--wait]`, `reembed status [--wait]`, `reembed abandon`. The nodes'
// job runners do the work; this command talks to the database only.
func runReembed(ctx context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	use := fmt.Errorf("%w: sostenuto reembed start MODEL [--wait] | status [--wait] | abandon", errUsage)
	if len(args) == 0 {
		return use
	}
	var cfg reembedConfig
	rest := args[1:]
	model := ""
	if args[0] == "start" {
		if len(rest) == 0 {
			return use
		}
		model, rest = rest[0], rest[1:]
	}
	if err := loadSettings("reembed "+args[0], cfg.settings(), rest, env, stderr); err != nil {
		return err
	}
	pool, err := openPool(ctx, &cfg.db, store.WorkerRole, 10*time.Second, cfg.log.logger(stderr))
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	switch args[0] {
	case "start":
		return cfg.start(ctx, st, model, stdout)
	case "status":
		return cfg.status(ctx, st, stdout)
	case "abandon":
		m, err := st.AbandonEmbeddingBuild(ctx)
		if err == nil {
			fmt.Fprintf(stdout, "abandoned the build of %s; its vectors are being deleted\n", m)
		}
		return err
	}
	return use
}

// start starts a build of model (one of the configured embedders).
func (c *reembedConfig) start(ctx context.Context, st *store.Store, model string, stdout io.Writer) error {
	models, err := c.ingest.models()
	if err != nil {
		return err
	}
	m, ok := models.Get(model)
	if !ok {
		return &configError{setting: envName("embedders"), err: fmt.Errorf("%s is not a configured embedder (configured: %v)", model, models.Names())}
	}
	if err := st.StartEmbeddingBuild(ctx, m.Name, m.Dim); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-embedding every chunk with %s (%d dimensions); the nodes' job runners build it\n", m.Name, m.Dim)
	return c.status(ctx, st, stdout)
}

// status prints the models and the build's progress, once or (--wait)
// until the build ends.
func (c *reembedConfig) status(ctx context.Context, st *store.Store, stdout io.Writer) error {
	var last progressSample
	for {
		s, err := st.EmbeddingState(ctx)
		if err != nil {
			return err
		}
		if s.Building == "" {
			_, total, err := st.EmbeddingProgress(ctx, uuid.Nil, s.Active)
			fmt.Fprintf(stdout, "active: %s (%d dimensions), %d chunks; nothing is being built\n", s.Active, s.ActiveDim, total)
			return err
		}
		done, total, err := st.EmbeddingProgress(ctx, uuid.Nil, s.Building)
		if err != nil {
			return err
		}
		now := progressSample{at: time.Now(), done: done}
		fmt.Fprintf(stdout, "active: %s; building: %s (%d dimensions), %s\n", s.Active, s.Building, s.BuildingDim, now.line(last, total, s.BuildStarted))
		if !c.wait {
			return nil
		}
		last = now
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.every):
		}
	}
}

// progressSample is a build's progress at one moment.
type progressSample struct {
	at   time.Time
	done int
}

// line says how far the build got, how fast it goes (since the last
// sample, else since it started) and when it should end.
func (p progressSample) line(last progressSample, total int, started *time.Time) string {
	var rate float64
	switch {
	case !last.at.IsZero() && p.at.After(last.at):
		rate = float64(p.done-last.done) / p.at.Sub(last.at).Seconds()
	case started != nil && p.at.After(*started):
		rate = float64(p.done) / p.at.Sub(*started).Seconds()
	}
	out := fmt.Sprintf("%d/%d chunks (%.1f%%), %.0f chunks/s", p.done, total, 100*float64(p.done)/float64(max(total, 1)), rate)
	if rate > 0 && total > p.done {
		out += fmt.Sprintf(", about %s left", time.Duration(float64(total-p.done)/rate*float64(time.Second)).Round(time.Second))
	}
	return out
}
