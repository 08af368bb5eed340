package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication"
	"github.com/sostenuto/sostenuto/server/recall"
)

type recallConfig struct {
	log     logConfig
	db      dbConfig
	samples int64
}

func (c *recallConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	return append(s, setting{name: "samples", env: "SOSTENUTO_RECALL_SAMPLES", usage: "chunk vectors to use as queries", def: "100", parse: intVar(&c.samples, 1, 100000)})
}

// runRecall builds the index from PostgreSQL exactly as a node does, then
// compares its vector top-10 with pgvector's exact top-10 for sampled
// chunk vectors. (A serving node samples its live index the same way every
// SOSTENUTO_RECALL_EVERY and exports sostenuto_index_recall_at_10.)
func runRecall(ctx context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg recallConfig
	if err := loadSettings("recall", cfg.settings(), args, env, stderr); err != nil {
		return err
	}
	url, err := cfg.db.resolveURL()
	if err != nil {
		return err
	}
	start := time.Now()
	e, err := replication.LoadBase(ctx, url, index.DefaultConfig())
	if err != nil {
		return fmt.Errorf("load the index: %w", err)
	}
	fmt.Fprintf(stdout, "index: %d chunks loaded in %s\n", e.Len(), time.Since(start).Round(time.Millisecond))
	r, err := recall.Check(ctx, url, e, int(cfg.samples))
	if err != nil {
		return err
	}
	if r.Samples == 0 {
		fmt.Fprintln(stdout, "no chunks to sample")
		return nil
	}
	fmt.Fprintf(stdout, "recall@10 against pgvector's exact search: mean %.3f, min %.3f over %d sampled vectors (%s)\n",
		r.Mean, r.Min, r.Samples, r.Elapsed.Round(time.Millisecond))
	return nil
}
