// Package recall checks how well an index's vector search agrees with
// pgvector's exact search: `sostenuto recall` runs it once on an index
// built from PostgreSQL, and a serving node samples its live index with it
// every SOSTENUTO_RECALL_EVERY (sostenuto_index_recall_at_10).
package recall

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication"
)

// Result is how well an engine's vector search agrees with PostgreSQL's
// exact search for the same query vectors.
type Result struct {
	Samples int
	Mean    float64 // recall@10, averaged
	Min     float64
	Elapsed time.Duration
}

// Check samples up to n stored chunk vectors as queries and compares e's
// top-10 (every chunk in scope) with pgvector's exact top-10 (a
// sequential scan). url must reach the tables without Row Level Security
// (the owning role).
func Check(ctx context.Context, url string, e *index.Engine, n int) (Result, error) {
	start := time.Now()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return Result{}, fmt.Errorf("recall: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	samples, err := sample(ctx, conn, n)
	if err != nil {
		return Result{}, err
	}
	r := Result{Min: 1}
	if len(samples) == 0 {
		r.Min = 0
	}
	for _, c := range samples {
		rc, err := one(ctx, conn, e, c)
		if err != nil {
			return Result{}, err
		}
		r.Mean += rc
		r.Min = min(r.Min, rc)
		r.Samples++
	}
	if r.Samples > 0 {
		r.Mean /= float64(r.Samples)
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

// sample reads up to n consecutive chunks from a random offset.
func sample(ctx context.Context, conn *pgx.Conn, n int) ([]index.Chunk, error) {
	var total int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&total); err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	if total == 0 {
		return nil, nil
	}
	return replication.NewSource(conn).SampleChunks(ctx, rand.IntN(max(1, total-n+1)), n)
}

// one is the recall@10 of e for the query vector of chunk c.
func one(ctx context.Context, conn *pgx.Conn, e *index.Engine, c index.Chunk) (float64, error) {
	exact, err := exactTop10(ctx, conn, c.ID)
	if err != nil {
		return 0, err
	}
	// Knowledge chunks only: the exact scan reads chunks, not annotation_chunks.
	hits, err := e.Search(index.Query{K: 10, Mode: index.ModeVector, Vector: c.Vector, Scope: index.Scope{Admin: true},
		Kinds: []index.Kind{index.KindKnowledge}})
	if err != nil {
		return 0, fmt.Errorf("recall: %w", err)
	}
	want := map[index.ID]bool{}
	for _, id := range exact {
		want[index.ID(id)] = true
	}
	got := 0
	for _, h := range hits {
		if want[h.Chunk.ID] {
			got++
		}
	}
	if len(want) == 0 {
		return 1, nil
	}
	return float64(got) / float64(len(want)), nil
}

// exactTop10 runs a true exact scan for the stored vector of chunk id:
// index scans off inside the transaction, and the simple protocol so no
// cached plan is reused.
func exactTop10(ctx context.Context, conn *pgx.Conn, id index.ID) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_indexscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM chunks
			ORDER BY embedding <=> (SELECT embedding FROM chunks WHERE id = $1) LIMIT 10 /* exact */`,
			pgx.QueryExecModeSimpleProtocol, uuid.UUID(id))
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recall: exact search: %w", err)
	}
	return ids, nil
}

// Sampler checks the live engine's recall against PostgreSQL every Every
// and reports each result.
type Sampler struct {
	URL     string
	Live    *index.Live
	Ready   func() bool
	Every   time.Duration
	Samples int
	Report  func(Result, error)
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if s.Ready != nil && !s.Ready() {
				continue
			}
			r, err := Check(ctx, s.URL, s.Live.Engine(), s.Samples)
			if ctx.Err() == nil {
				s.Report(r, err)
			}
		}
	}
}
