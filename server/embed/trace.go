package embed

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Traced records an "embed" span around each call of e: the model and
// how many texts. With tp nil (tracing off) it returns e itself; with e
// nil, nil.
func Traced(e Embedder, tp trace.TracerProvider) Embedder {
	if tp == nil || e == nil {
		return e
	}
	return &traced{Embedder: e, tr: tp.Tracer("github.com/sostenuto/sostenuto/server/embed")}
}

type traced struct {
	Embedder
	tr trace.Tracer
}

// Embed implements Embedder.
func (t *traced) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	ctx, span := t.tr.Start(ctx, "embed", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if !span.IsRecording() {
		return t.Embedder.Embed(ctx, texts)
	}
	span.SetAttributes(attribute.String("embed.model", t.Model()), attribute.Int("embed.texts", len(texts)))
	vs, err := t.Embedder.Embed(ctx, texts)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "embedding failed")
	}
	return vs, err
}

// EmbedNamed embeds with the wrapped embedder, naming the model that did
// (the wrapped one's EmbedNamed when it has one: embed.Active).
func (t *traced) EmbedNamed(ctx context.Context, texts []string) ([][]float32, string, error) {
	ne, ok := t.Embedder.(interface {
		EmbedNamed(ctx context.Context, texts []string) ([][]float32, string, error)
	})
	if !ok {
		vs, err := t.Embed(ctx, texts)
		return vs, t.Model(), err
	}
	ctx, span := t.tr.Start(ctx, "embed", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	vs, name, err := ne.EmbedNamed(ctx, texts)
	span.SetAttributes(attribute.String("embed.model", name), attribute.Int("embed.texts", len(texts)))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "embedding failed")
	}
	return vs, name, err
}
