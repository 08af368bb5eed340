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
	probes, err := activeVectors(ctx, conn, samples)
	if err != nil {
		return Result{}, err
	}
	r := Result{Min: 1}
	if len(samples) == 0 {
		r.Min = 0
	}
	for _, c := range probes {
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

// probe is a query: a chunk's stored vector of the active model, kept in
// chunks.embedding (model "") or in chunk_embeddings (model named).
type probe struct {
	id    index.ID
	vec   []float32
	model string
}

// activeVectors turns the sampled chunks into probes of the active model.
func activeVectors(ctx context.Context, conn *pgx.Conn, samples []index.Chunk) ([]probe, error) {
	src := replication.NewSource(conn)
	m, err := src.ModelState(ctx)
	if err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	if m == nil || m.Active == m.Column {
		out := make([]probe, len(samples))
		for i, c := range samples {
			out[i] = probe{id: c.ID, vec: c.Vector}
		}
		return out, nil
	}
	ids := make([]index.ID, len(samples))
	for i, c := range samples {
		ids[i] = c.ID
	}
	es, err := src.Embeddings(ctx, []string{m.Active}, ids)
	if err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	out := make([]probe, len(es))
	for i, x := range es {
		out[i] = probe{id: x.Chunk, vec: x.Vector, model: x.Model}
	}
	return out, nil
}

// one is the recall@10 of e for the query vector of a probe.
func one(ctx context.Context, conn *pgx.Conn, e *index.Engine, c probe) (float64, error) {
	exact, err := exactTop10(ctx, conn, c.id, c.model)
	if err != nil {
		return 0, err
	}
	// Knowledge chunks only: the exact scan reads chunks, not annotation_chunks.
	hits, err := e.Search(index.Query{K: 10, Mode: index.ModeVector, Vector: c.vec, Scope: index.Scope{Admin: true},
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
// With model set (a model kept in chunk_embeddings), its vectors are
// compared.
func exactTop10(ctx context.Context, conn *pgx.Conn, id index.ID, model string) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	q, args := `SELECT id FROM chunks
			ORDER BY embedding <=> (SELECT embedding FROM chunks WHERE id = $1) LIMIT 10 /* exact */`, []any{uuid.UUID(id)}
	if model != "" {
		q, args = `SELECT chunk_id FROM chunk_embeddings WHERE model = $2
			ORDER BY embedding <=> (SELECT embedding FROM chunk_embeddings WHERE chunk_id = $1 AND model = $2) LIMIT 10 /* exact */`,
			append(args, model)
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_indexscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
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
