package replication

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
)

// Recall is how well an engine's vector search agrees with PostgreSQL's
// exact search for the same query vectors.
type Recall struct {
	Samples int
	Mean    float64 // recall@10, averaged
	Min     float64
	Elapsed time.Duration
}

// CheckRecall samples up to n stored chunk vectors as queries and compares
// e's top-10 (every chunk in scope) with pgvector's exact top-10 (a
// sequential scan). url must reach the tables without Row Level Security
// (the owning role).
func CheckRecall(ctx context.Context, url string, e *index.Engine, n int) (Recall, error) {
	start := time.Now()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return Recall{}, fmt.Errorf("replication: recall: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var total int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&total); err != nil {
		return Recall{}, err
	}
	if total == 0 {
		return Recall{Elapsed: time.Since(start)}, nil
	}
	rows, err := conn.Query(ctx, `SELECT embedding::text FROM chunks OFFSET $1 LIMIT $2`, rand.IntN(max(1, total-n+1)), n)
	if err != nil {
		return Recall{}, err
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Recall{}, err
	}
	r := Recall{Min: 1}
	for _, t := range texts {
		v, err := parseVector(t)
		if err != nil {
			return Recall{}, err
		}
		exact, err := exactTop10(ctx, conn, t)
		if err != nil {
			return Recall{}, err
		}
		hits, err := e.Search(index.Query{K: 10, Mode: index.ModeVector, Vector: v, Scope: index.Scope{Admin: true}})
		if err != nil {
			return Recall{}, err
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
		rc := 1.0
		if len(want) > 0 {
			rc = float64(got) / float64(len(want))
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

// exactTop10 runs a true exact scan: index scans off inside the
// transaction, and the simple protocol so no cached plan is reused.
func exactTop10(ctx context.Context, conn *pgx.Conn, vec string) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_indexscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM chunks ORDER BY embedding <=> $1::vector LIMIT 10 /* exact */`,
			pgx.QueryExecModeSimpleProtocol, vec)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	return ids, err
}

// LoadBase reads every document and chunk from PostgreSQL into a fresh
// engine (a consistent read), for checks outside a serving node.
func LoadBase(ctx context.Context, url string, cfg index.Config) (*index.Engine, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	var snapshot string
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	defer func() { tx.Rollback(context.WithoutCancel(ctx)); conn.Close(context.WithoutCancel(ctx)) }()
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return nil, err
	}
	ops, err := (&Feed{URL: url}).loadBase(ctx, snapshot)
	if err != nil {
		return nil, err
	}
	e, err := index.New(cfg)
	if err != nil {
		return nil, err
	}
	return e, e.Apply(ops)
}

// RecallSampler checks the live engine's recall against PostgreSQL every
// Every and reports each result.
type RecallSampler struct {
	URL     string
	Live    *index.Live
	Ready   func() bool
	Every   time.Duration
	Samples int
	Report  func(Recall, error)
}

// Run samples until ctx ends.
func (s *RecallSampler) Run(ctx context.Context) error {
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
			r, err := CheckRecall(ctx, s.URL, s.Live.Engine(), s.Samples)
			if ctx.Err() == nil {
				s.Report(r, err)
			}
		}
	}
}
