package search

import (
	"context"
	"errors"
	"fmt"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/fault"
)

// Embedder embeds query texts.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// NamedEmbedder is an Embedder that says which model made its vectors
// (embed.Active): the query carries the name, and a backend searching
// another model refuses it.
type NamedEmbedder interface {
	EmbedNamed(ctx context.Context, texts []string) ([][]float32, string, error)
}

// Fallback is how the node answers: from the local index when it is ready
// and holds MinLSN (after its bounded wait); else from PostgreSQL, which
// holds every committed write; else, when PostgreSQL is too busy, from the
// index as it is, marked Lagging, if it holds a complete base and MinLSN
// (it may miss the last seconds' changes, never the caller's own
// acknowledged writes); else ErrUnavailable.
type Fallback struct {
	// Index answers first, Lagging last; both may be the halves NewIndex
	// returns.
	Index, Lagging *Index
	// Postgres answers when Index cannot.
	Postgres Searcher
	// Embedder embeds q.Text when q.Vector is nil (outside ModeBM25).
	Embedder Embedder
	// Fusion fills the empty fields of each query's fusion: the node's
	// default for its embedder (FusionDefaults.For).
	Fusion  index.Fusion
	Metrics Metrics
}

// Search implements Searcher. A query whose text has nothing to embed
// answers an Empty result. A query embedded by a model that is no longer
// the active one (the model switched in between) is embedded again, once.
func (f *Fallback) Search(ctx context.Context, q Query) (Result, error) {
	res, err := f.search(ctx, q)
	if errors.Is(err, index.ErrModel) {
		q.Vector, q.Model = nil, ""
		res, err = f.search(ctx, q)
	}
	return res, err
}

// search is one attempt of Search.
func (f *Fallback) search(ctx context.Context, q Query) (Result, error) {
	q.Fusion = Fill(q.Fusion, f.Fusion)
	e, err := f.Index.WaitApplied(ctx, q.MinLSN)
	if errors.Is(err, ErrBehind) {
		return f.notLocal(ctx, q)
	}
	if err != nil {
		return Result{}, err
	}
	if q.Scope, err = q.Scope.Resolve(ctx, f.Index.teachers); err != nil {
		return Result{}, err
	}
	if q.OnLocal != nil {
		if err := q.OnLocal(e.DataVersion(), q.Scope); err != nil {
			return Result{}, err
		}
	}
	if q, err = f.embed(ctx, q); err != nil || q.Vector == nil && q.Mode != ModeBM25 {
		return Result{Hits: []Hit{}, Source: SourcePostgres, Empty: true}, err
	}
	return f.Index.searchEngine(ctx, e, q)
}

// notLocal answers when the index is not ready or behind MinLSN.
func (f *Fallback) notLocal(ctx context.Context, q Query) (Result, error) {
	q, err := f.embed(embed.ForStore(ctx), q)
	if err != nil || q.Vector == nil && q.Mode != ModeBM25 {
		return Result{Hits: []Hit{}, Source: SourcePostgres, Empty: true}, err
	}
	res, err := f.Postgres.Search(ctx, q)
	if !errors.Is(err, ErrBusy) {
		return res, err
	}
	res, err = f.Lagging.Search(ctx, q)
	if !errors.Is(err, ErrBehind) {
		f.Metrics.limited("fallback_lagging")
		return res, err
	}
	f.Metrics.limited("fallback")
	return Result{}, ErrUnavailable
}

// embed sets q.Vector from q.Text when it is needed and missing; a text
// with nothing to embed leaves it nil. The embedder's failures wrap
// fault.ErrEmbeddingModel: its answer never reaches the caller.
func (f *Fallback) embed(ctx context.Context, q Query) (Query, error) {
	if q.Vector != nil || q.Mode == ModeBM25 {
		return q, nil
	}
	var vs [][]float32
	var err error
	if ne, ok := f.Embedder.(NamedEmbedder); ok {
		vs, q.Model, err = ne.EmbedNamed(ctx, []string{q.Text})
	} else {
		vs, err = f.Embedder.Embed(ctx, []string{q.Text})
	}
	if errors.Is(err, embed.ErrEmpty) {
		return q, nil
	}
	if err != nil {
		return q, fmt.Errorf("search: embed query: %w: %w", fault.ErrEmbeddingModel, err)
	}
	q.Vector = vs[0]
	return q, nil
}
