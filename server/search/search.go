// Package search answers hybrid searches (vector + BM25, fused by a
// convex combination of normalised scores or by reciprocal rank) in a caller's visibility scope. A Searcher is one
// backend: Index (the node's in-memory engine, with read-your-writes
// waits), Postgres (pgvector and full-text search under Row Level
// Security) and Fallback, which composes them the way the node serves
// POST /api/search and the chat's retrieval.
package search

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sostenuto/sostenuto/index"
)

// Searcher answers one search. Implementations are safe for concurrent use.
type Searcher interface {
	Search(ctx context.Context, q Query) (Result, error)
}

// Sources name the backend that answered.
const (
	SourceLocal    = "local"
	SourcePostgres = "postgres"
)

// Modes of a search: both lists fused, or one of them.
const (
	ModeHybrid = index.ModeHybrid
	ModeVector = index.ModeVector
	ModeBM25   = index.ModeBM25
)

// depth is how deep each PostgreSQL list goes before fusion.
const depth = 50

// Query is one search in a caller's scope.
type Query struct {
	Scope Scope
	Text  string
	// Vector is Text's embedding; nil in ModeBM25 (Fallback embeds Text
	// when it is nil in the other modes).
	Vector []float32
	K      int
	Mode   string
	// Fusion is how hybrid fuses its lists; its empty fields take the
	// node's defaults (Fallback.Fusion).
	Fusion index.Fusion
	// MinLSN is the position the answer must reflect (read-your-writes).
	MinLSN index.LSN
	// Use labels the search's metrics: "search" (the default) or "chat".
	Use string
	// Rerank asks the Rerank decorator to rerank the fused list (the
	// caller resolves the configured default).
	Rerank bool
	// Kinds limits the hits to these kinds (KindKnowledge,
	// KindAnnotation); nil: every kind.
	Kinds []string
	// ProjectID, when set, limits annotation hits to one project
	// (knowledge hits are not limited by it).
	ProjectID *uuid.UUID
	// OnLocal, when set, is called once the local index is chosen to
	// answer (ready and holding MinLSN) and the scope is resolved, with the
	// index's data version, before anything is embedded or searched. An
	// error it returns ends the search and is returned as is: a
	// conditional request answers 304 this way without searching.
	OnLocal func(version string, scope Scope) error
	// Model is the embedding model that made Vector (set by whoever
	// embedded it): a backend whose active model is another refuses the
	// query (index.ErrModel) instead of comparing vectors of two models.
	Model string
}

// Hit is one result.
type Hit struct {
	ChunkID    uuid.UUID `json:"chunk_id"`
	DocumentID uuid.UUID `json:"document_id"` // an annotation's: its project's (the score it is on)
	Title      string    `json:"title"`
	PageStart  int       `json:"page_start"`
	PageEnd    int       `json:"page_end"`
	Text       string    `json:"text"`
	Score      float64   `json:"score"`
	VectorRank *int      `json:"vector_rank"`
	BM25Rank   *int      `json:"bm25_rank"`
	// RerankScore is the reranker's score, on hits it reranked.
	RerankScore *float64 `json:"rerank_score,omitempty"`
	// Kind is KindKnowledge or KindAnnotation; ProjectID and AuthorID
	// name an annotation's project and author (ChunkID is the
	// annotation's id, DocumentID is its project's, PageStart = PageEnd = its
	// page, Title its project's).
	Kind      string     `json:"kind"`
	ProjectID *uuid.UUID `json:"project_id,omitempty"`
	AuthorID  *uuid.UUID `json:"author_id,omitempty"`
}

// hitOf is an engine hit as a search hit.
func hitOf(h index.Hit) Hit {
	c := h.Chunk
	out := Hit{ChunkID: uuid.UUID(c.ID), DocumentID: uuid.UUID(c.DocumentID), Title: c.Title,
		PageStart: c.PageStart, PageEnd: c.PageEnd, Text: c.Text, Score: h.Score,
		VectorRank: rankPtr(h.VectorRank), BM25Rank: rankPtr(h.BM25Rank), Kind: KindKnowledge}
	if c.Kind == index.KindAnnotation {
		p, a := uuid.UUID(c.ProjectID), uuid.UUID(c.AuthorID)
		out.Kind, out.ProjectID, out.AuthorID, out.DocumentID = KindAnnotation, &p, &a, p
	}
	return out
}

// Result is a search's answer.
type Result struct {
	Hits []Hit // never nil
	// index.LSN is the changefeed position the answer reflects.
	LSN index.LSN
	// Source is SourceLocal or SourcePostgres.
	Source string
	// Lagging marks an answer from an index that is catching up, given
	// while PostgreSQL was too busy (it may miss the last seconds'
	// changes; never the caller's MinLSN).
	Lagging bool
	// Empty marks a query with nothing to embed (punctuation only):
	// nothing matches, no backend was asked, and index.LSN is unknown.
	Empty bool
	// Rerank is what came of a requested rerank; nil when none was asked.
	Rerank *RerankStatus
	// Model is the embedding model whose vectors answered ("" for BM25
	// alone): the active model at LSN.
	Model string
}

// modelOf is the model a query's vectors answer with ("" for BM25).
func modelOf(q Query) string {
	if q.Mode == ModeBM25 {
		return ""
	}
	return q.Model
}

var (
	// ErrBehind: the index is not ready, or did not reach MinLSN in time.
	ErrBehind = errors.New("search: the index is not ready or behind min_lsn")
	// ErrBusy: every PostgreSQL search slot stayed taken.
	ErrBusy = errors.New("search: the database is busy with other searches")
	// ErrTooManyWaiting: every read-your-writes wait slot is taken.
	ErrTooManyWaiting = errors.New("search: too many searches are waiting for the index")
	// ErrUnavailable: the index is catching up and PostgreSQL is too busy.
	ErrUnavailable = errors.New("search: the index is catching up and the database is busy")
)

// AheadError is a MinLSN beyond PostgreSQL's own position: no write of
// this deployment reached it, so it cannot be waited for.
type AheadError struct {
	MinLSN, At index.LSN
}

// Error says which position is ahead of which.
func (e *AheadError) Error() string {
	return fmt.Sprintf("min_lsn %s is ahead of the database (at %s): no write of this deployment reached it", e.MinLSN, e.At)
}

// Slots bound concurrent work (a semaphore): send to take one, receive to
// give it back.
type Slots chan struct{}

// NewSlots returns n slots.
func NewSlots(n int) Slots { return make(Slots, n) }

// Metrics are the search path's instruments; nil fields are not observed.
type Metrics struct {
	// Limited counts refusals and degraded answers, by limit (lsn_wait,
	// fallback, fallback_lagging).
	Limited *prometheus.CounterVec
	// Vector and Text time the engine's two lists, by use.
	Vector, Text *prometheus.HistogramVec
}

func (m Metrics) limited(what string) {
	if m.Limited != nil {
		m.Limited.WithLabelValues(what).Inc()
	}
}

func rankPtr(r int) *int {
	if r == 0 {
		return nil
	}
	return &r
}
