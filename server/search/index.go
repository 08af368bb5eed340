package search

import (
	"context"
	"fmt"
	"time"

	"github.com/sostenuto/sostenuto/index"
)

// Index searches the node's in-memory engine. A read with MinLSN ahead of
// the engine waits, bounded in time and in number of waiters, for the
// applier to reach it (woken by the applier, never polled).
type Index struct {
	live     *index.Live
	ready    func() bool
	teachers Teachers
	waiters  Slots
	wait     time.Duration
	metrics  Metrics
	// lagging: the index as it is, answering while it catches up.
	lagging bool
}

// IndexConfig configures an Index.
type IndexConfig struct {
	// Live is the node's engine; nil: the index never answers.
	Live *index.Live
	// Ready reports whether the engine is fed and within its lag bound;
	// Based whether it holds a complete base (it may lag). Nil: never.
	Ready, Based func() bool
	// Teachers resolves scopes.
	Teachers Teachers
	// Waiters bound the reads waiting at once for MinLSN; Wait bounds
	// each wait.
	Waiters Slots
	Wait    time.Duration
	Metrics Metrics
}

// NewIndex returns the index searcher and its lagging twin: the same
// engine answering as it is (no wait) whenever it holds a complete base
// and the caller's MinLSN, its answers marked Lagging.
func NewIndex(cfg IndexConfig) (ready, lagging *Index) {
	ready = &Index{live: cfg.Live, ready: cfg.Ready, teachers: cfg.Teachers, waiters: cfg.Waiters, wait: cfg.Wait, metrics: cfg.Metrics}
	lagging = &Index{live: cfg.Live, ready: cfg.Based, teachers: cfg.Teachers, metrics: cfg.Metrics, lagging: true}
	return ready, lagging
}

// available reports whether the engine may answer at all.
func (x *Index) available() bool { return x.live != nil && x.ready != nil && x.ready() }

// Version is the data version of the engine (it changes with every
// applied change, not with keepalives); ok is false when the index may
// not answer.
func (x *Index) Version() (version string, ok bool) {
	if !x.available() {
		return "", false
	}
	return x.live.Engine().DataVersion(), true
}

// VersionAt is Version once the engine holds lsn (WaitApplied's bounded
// wait); ok is false when it may not answer or did not get there.
func (x *Index) VersionAt(ctx context.Context, lsn index.LSN) (version string, ok bool) {
	e, err := x.WaitApplied(ctx, lsn)
	if err != nil {
		return "", false
	}
	return e.DataVersion(), true
}

// WaitApplied returns the engine once it holds lsn, waiting up to the
// configured bound; ErrBehind when the index may not answer or did not get
// there in time, ErrTooManyWaiting when every wait slot is taken.
func (x *Index) WaitApplied(ctx context.Context, lsn index.LSN) (*index.Engine, error) {
	if !x.available() {
		return nil, ErrBehind
	}
	if e := x.live.Engine(); index.LSN(e.Position().LSN) >= lsn {
		return e, nil
	}
	if x.wait <= 0 {
		return nil, ErrBehind
	}
	select {
	case x.waiters <- struct{}{}:
		defer func() { <-x.waiters }()
	default:
		x.metrics.limited("lsn_wait")
		return nil, ErrTooManyWaiting
	}
	wctx, cancel := context.WithTimeout(ctx, x.wait)
	defer cancel()
	e, err := x.live.WaitApplied(wctx, lsn)
	if err != nil {
		return nil, ErrBehind
	}
	return e, nil
}

// Search implements Searcher: ErrBehind when the index may not answer
// for q.MinLSN. q.Vector must be set unless q.Mode is ModeBM25.
func (x *Index) Search(ctx context.Context, q Query) (Result, error) {
	e, err := x.WaitApplied(ctx, q.MinLSN)
	if err != nil {
		return Result{}, err
	}
	if q.Scope, err = q.Scope.Resolve(ctx, x.teachers); err != nil {
		return Result{}, err
	}
	if q.OnLocal != nil && !x.lagging {
		if err := q.OnLocal(e.DataVersion(), q.Scope); err != nil {
			return Result{}, err
		}
	}
	return x.searchEngine(ctx, e, q)
}

// searchEngine searches e in q's resolved scope.
func (x *Index) searchEngine(ctx context.Context, e *index.Engine, q Query) (Result, error) {
	var err error
	if q.Scope, err = q.Scope.Resolve(ctx, x.teachers); err != nil {
		return Result{}, err
	}
	var tm index.Timings
	var served index.Served
	hits, err := e.Search(index.Query{Text: q.Text, Vector: q.Vector, K: q.K, Mode: q.Mode, Fusion: q.Fusion, Scope: q.Scope.index(),
		Kinds: q.indexKinds(), ProjectID: q.indexProject(), Timings: &tm, Model: q.Model, Served: &served})
	if err != nil {
		return Result{}, fmt.Errorf("search: index: %w", err)
	}
	traceStages(ctx, modeOf(q), tm)
	x.observe(q, tm)
	out := make([]Hit, len(hits))
	for i, h := range hits {
		out[i] = hitOf(h)
	}
	res := Result{Hits: out, LSN: served.Position.LSN, Source: SourceLocal, Lagging: x.lagging}
	if q.Mode != ModeBM25 {
		res.Model = served.Model
	}
	return res, nil
}

// observe times the engine's lists, by use.
func (x *Index) observe(q Query, tm index.Timings) {
	use := q.Use
	if use == "" {
		use = "search"
	}
	if q.Mode != ModeBM25 && x.metrics.Vector != nil {
		x.metrics.Vector.WithLabelValues(use).Observe(tm.Vector.Seconds())
	}
	if q.Mode != ModeVector && x.metrics.Text != nil {
		x.metrics.Text.WithLabelValues(use).Observe(tm.Text.Seconds())
	}
}
