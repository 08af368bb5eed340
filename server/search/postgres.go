package search

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/store"
)

// Store is what the PostgreSQL search needs of the database; every read
// runs as the acting user, under Row Level Security.
type Store interface {
	WALPosition(ctx context.Context) (index.LSN, error)
	SearchVector(ctx context.Context, user uuid.UUID, model string, v []float32, n, efSearch int, f store.SearchFilter) ([]store.Scored, error)
	SearchText(ctx context.Context, user uuid.UUID, query string, n int, f store.SearchFilter) ([]store.Scored, error)
	SearchChunks(ctx context.Context, user uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]store.SearchChunk, error)
}

// slotWait bounds the wait for a PostgreSQL search slot.
const slotWait = 250 * time.Millisecond

// Postgres searches PostgreSQL: pgvector's HNSW and full-text search
// (ts_rank), fused like the engine's lists (q.Fusion). PostgreSQL always holds every
// committed write, but searching it costs the database far more than the
// index costs this node: a few run at a time, and the rest are told to
// come back (ErrBusy) rather than queue — a queue here is what turns a
// short outage into a long one.
type Postgres struct {
	store Store
	slots Slots
}

// NewPostgres returns the PostgreSQL searcher; slots bound the searches
// running at once.
func NewPostgres(st Store, slots Slots) *Postgres { return &Postgres{store: st, slots: slots} }

// Search implements Searcher. q.Vector must be set unless q.Mode is
// ModeBM25; the scope is the database's (Row Level Security).
func (p *Postgres) Search(ctx context.Context, q Query) (Result, error) {
	release, err := p.take(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	at, err := p.position(ctx, q.MinLSN)
	if err != nil {
		return Result{}, err
	}
	fused, err := p.fuse(ctx, q)
	if err != nil {
		return Result{}, err
	}
	hits, err := p.load(ctx, q.Scope.User, fused)
	if err != nil {
		return Result{}, err
	}
	return Result{Hits: hits, LSN: at, Source: SourcePostgres, Model: modelOf(q)}, nil
}

// take waits up to slotWait for a search slot.
func (p *Postgres) take(ctx context.Context) (release func(), err error) {
	wait := time.NewTimer(slotWait)
	defer wait.Stop()
	select {
	case p.slots <- struct{}{}:
		return func() { <-p.slots }, nil
	case <-wait.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// position is PostgreSQL's current position; an AheadError when min is
// beyond it.
func (p *Postgres) position(ctx context.Context, min index.LSN) (index.LSN, error) {
	at, err := p.store.WALPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("search: wal position: %w", err)
	}
	if min > at {
		return 0, &AheadError{MinLSN: min, At: at}
	}
	return at, nil
}

// fuse runs the mode's lists and fuses them as the engine does (q.Fusion
// over cosine similarity and ts_rank), keeping q.K.
func (p *Postgres) fuse(ctx context.Context, q Query) ([]index.Fused, error) {
	n := max(q.K, depth)
	var lists [2][]index.Scored
	if q.Mode != ModeBM25 {
		hits, err := p.store.SearchVector(ctx, q.Scope.User, q.Model, q.Vector, n, 2*n, q.filter())
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		lists[0] = toScored(hits)
	}
	if q.Mode != ModeVector {
		hits, err := p.store.SearchText(ctx, q.Scope.User, q.Text, n, q.filter())
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		lists[1] = toScored(hits)
	}
	fused := index.FuseMode(q.Mode, q.Fusion, lists[0], lists[1])
	if len(fused) > q.K {
		fused = fused[:q.K]
	}
	return fused, nil
}

// load reads the fused chunks, in order; a chunk deleted or hidden
// between the two reads is left out.
func (p *Postgres) load(ctx context.Context, user uuid.UUID, fused []index.Fused) ([]Hit, error) {
	ids := make([]uuid.UUID, len(fused))
	for i, f := range fused {
		ids[i] = uuid.UUID(f.ID)
	}
	rows, err := p.store.SearchChunks(ctx, user, ids)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	out := make([]Hit, 0, len(fused))
	for _, f := range fused {
		c, ok := rows[uuid.UUID(f.ID)]
		if !ok {
			continue
		}
		h := Hit{ChunkID: c.ID, DocumentID: c.DocumentID, Title: c.Title, PageStart: c.PageStart,
			PageEnd: c.PageEnd, Text: c.Text, Score: f.Score, VectorRank: rankPtr(f.Ranks[0]), BM25Rank: rankPtr(f.Ranks[1]),
			Kind: KindKnowledge}
		if c.Annotation {
			p, a := c.ProjectID, c.AuthorID
			h.Kind, h.ProjectID, h.AuthorID, h.DocumentID = KindAnnotation, &p, &a, p
		}
		out = append(out, h)
	}
	return out, nil
}

func toScored(hits []store.Scored) []index.Scored {
	out := make([]index.Scored, len(hits))
	for i, h := range hits {
		out[i] = index.Scored{ID: index.ID(h.ID), Score: h.Score}
	}
	return out
}
