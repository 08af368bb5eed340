package search

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/index"
)

// tracerScope names the spans of this package.
const tracerScope = "github.com/sostenuto/sostenuto/server/search"

// Traced records a "search" span around each search of next: the query's
// mode, k and use, then the answer's source, hits and lagging flag. The
// engine's stages (search.vector, search.bm25, search.fuse) and the query's
// embedding become its children. With tp nil it returns next itself.
func Traced(next Searcher, tp trace.TracerProvider) Searcher {
	if tp == nil {
		return next
	}
	return &traced{next: next, tr: tp.Tracer(tracerScope)}
}

type traced struct {
	next Searcher
	tr   trace.Tracer
}

// Search implements Searcher.
func (t *traced) Search(ctx context.Context, q Query) (Result, error) {
	ctx, span := t.tr.Start(ctx, "search")
	defer span.End()
	if !span.IsRecording() {
		return t.next.Search(ctx, q)
	}
	use := q.Use
	if use == "" {
		use = "search"
	}
	span.SetAttributes(attribute.String("search.mode", modeOf(q)), attribute.Int("search.k", q.K),
		attribute.String("search.use", use), attribute.Bool("search.min_lsn", q.MinLSN != 0))
	var callerErr error // OnLocal's own answer (304) is not a failure
	if onLocal := q.OnLocal; onLocal != nil {
		q.OnLocal = func(version string, scope Scope) error {
			callerErr = onLocal(version, scope)
			return callerErr
		}
	}
	res, err := t.next.Search(ctx, q)
	endSearch(span, res, err, callerErr)
	return res, err
}

// endSearch records a search's outcome on its span.
func endSearch(span trace.Span, res Result, err, callerErr error) {
	switch {
	case err != nil && callerErr != nil && errors.Is(err, callerErr):
		span.SetAttributes(attribute.Bool("search.ended_by_caller", true))
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, "search failed")
	default:
		span.SetAttributes(attribute.String("search.source", res.Source), attribute.Int("search.hits", len(res.Hits)),
			attribute.Bool("search.lagging", res.Lagging), attribute.Bool("search.empty", res.Empty))
	}
}

func modeOf(q Query) string {
	if q.Mode == "" {
		return ModeHybrid
	}
	return q.Mode
}

// traceStages records the engine's stages as children of ctx's span when
// it records, each at the start and for the duration the engine measured
// (a hybrid search's vector and BM25 lists run at once, then fusion).
func traceStages(ctx context.Context, mode string, tm index.Timings) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return
	}
	tr := parent.TracerProvider().Tracer(tracerScope)
	if mode != ModeBM25 {
		stage(ctx, tr, "search.vector", tm.VectorStart, tm.VectorStart.Add(tm.Vector))
	}
	if mode != ModeVector {
		stage(ctx, tr, "search.bm25", tm.TextStart, tm.TextStart.Add(tm.Text))
	}
	stage(ctx, tr, "search.fuse", tm.FuseStart, tm.FuseStart.Add(tm.Fuse))
}

func stage(ctx context.Context, tr trace.Tracer, name string, start, end time.Time) {
	_, span := tr.Start(ctx, name, trace.WithTimestamp(start))
	span.End(trace.WithTimestamp(end))
}

// TracedReranker records a "rerank" span around each call of r: how many
// passages. With tp or r nil it returns r itself.
func TracedReranker(r Reranker, tp trace.TracerProvider) Reranker {
	if tp == nil || r == nil {
		return r
	}
	return &tracedReranker{r: r, tr: tp.Tracer(tracerScope)}
}

type tracedReranker struct {
	r  Reranker
	tr trace.Tracer
}

// Unwrap returns the traced reranker (its identity is the rerank stage's).
func (t *tracedReranker) Unwrap() Reranker { return t.r }

// Rerank implements Reranker.
func (t *tracedReranker) Rerank(ctx context.Context, query string, passages []string) ([]float64, error) {
	ctx, span := t.tr.Start(ctx, "rerank", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if !span.IsRecording() {
		return t.r.Rerank(ctx, query, passages)
	}
	span.SetAttributes(attribute.Int("rerank.passages", len(passages)))
	scores, err := t.r.Rerank(ctx, query, passages)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "rerank failed")
	}
	return scores, err
}
