package search

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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
