package search

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/tracing"
)

// BenchmarkSearchRequestTracing is BenchmarkSearchRequestPlain with the
// node's tracing wired as server.New wires it (HTTP middleware, search and
// embedder decorators, the engine's stage spans): off (no provider),
// unsampled (a provider sampling no trace) and on (every trace recorded
// and batched to an exporter that drops them).
func BenchmarkSearchRequestTracing(b *testing.B) {
	f := benchFallback(b, 2000)
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	on := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { unsampled.Shutdown(context.Background()); on.Shutdown(context.Background()) }) //nolint:errcheck // benchmark
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"off", nil}, {"unsampled", unsampled}, {"on", on}} {
		b.Run(c.name, func(b *testing.B) {
			traced := *f
			traced.Embedder = embed.Traced(embed.Hash{}, c.tp)
			h := tracing.Middleware(c.tp, func(r *http.Request) (string, string) { return "POST /api/search", "/api/search" })(
				benchHandler(Traced(&traced, c.tp)))
			runSearchRequests(b, h)
		})
	}
}

// stubSearcher stands for the engine in BenchmarkTracingLayers: it embeds
// the query through its embedder and reports the engine's stage timings,
// so only the tracing layers' own cost is measured.
type stubSearcher struct{ e Embedder }

func (s stubSearcher) Search(ctx context.Context, q Query) (Result, error) {
	if _, err := s.e.Embed(ctx, []string{q.Text}); err != nil {
		return Result{}, err
	}
	traceStages(ctx, ModeHybrid, index.Timings{Vector: 200 * time.Microsecond, Text: 100 * time.Microsecond, Fuse: 10 * time.Microsecond})
	return Result{Hits: []Hit{}, Source: SourceLocal}, nil
}

type stubEmbedder struct{}

func (stubEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return [][]float32{nil}, nil
}
func (stubEmbedder) Model() string { return "stub" }

// BenchmarkTracingLayers is the cost tracing adds to one search request,
// apart from the search itself: the HTTP middleware, the search and
// embedder decorators and the engine's stage spans around a searcher that
// does nothing.
func BenchmarkTracingLayers(b *testing.B) {
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	on := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { unsampled.Shutdown(context.Background()); on.Shutdown(context.Background()) }) //nolint:errcheck // benchmark
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"off", nil}, {"unsampled", unsampled}, {"on", on}} {
		b.Run(c.name, func(b *testing.B) {
			s := Traced(stubSearcher{e: embed.Traced(stubEmbedder{}, c.tp)}, c.tp)
			h := tracing.Middleware(c.tp, func(r *http.Request) (string, string) { return "POST /api/search", "/api/search" })(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if _, err := s.Search(r.Context(), Query{Text: "q", K: 10}); err != nil {
						b.Fatal(err)
					}
				}))
			req := httptest.NewRequest(http.MethodPost, "/api/search", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
