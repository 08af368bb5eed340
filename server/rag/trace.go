package rag

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const tracerScope = "github.com/sostenuto/sostenuto/server/rag"

// TracedProvider records an "llm.answer" span around each answer of p:
// the model, the passages given, an event at the first streamed token,
// and the answer's model, length and citations. With tp nil it returns p
// itself.
func TracedProvider(p Provider, tp trace.TracerProvider) Provider {
	if tp == nil || p == nil {
		return p
	}
	return &tracedProvider{p: p, tr: tp.Tracer(tracerScope)}
}

type tracedProvider struct {
	p  Provider
	tr trace.Tracer
}

// Model names p's model as the service would without the decorator (it
// is part of answer keys).
func (t *tracedProvider) Model() string {
	if m, ok := t.p.(interface{ Model() string }); ok {
		return m.Model()
	}
	return fmt.Sprintf("%T", t.p)
}

// Answer implements Provider.
func (t *tracedProvider) Answer(ctx context.Context, req Request, emit func(string) error) (Answer, error) {
	ctx, span := t.tr.Start(ctx, "llm.answer", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if !span.IsRecording() {
		return t.p.Answer(ctx, req, emit)
	}
	span.SetAttributes(attribute.String("gen_ai.request.model", t.Model()), attribute.Int("rag.passages", len(req.Passages)))
	deltas := 0
	a, err := t.p.Answer(ctx, req, func(d string) error {
		if deltas == 0 {
			span.AddEvent("first_token")
		}
		deltas++
		return emit(d)
	})
	span.SetAttributes(attribute.Int("rag.deltas", deltas))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "answer failed")
		return a, err
	}
	span.SetAttributes(attribute.String("gen_ai.response.model", a.Model), attribute.Int("rag.answer_chars", len(a.Content)),
		attribute.Int("rag.cited", len(a.Cited)))
	return a, nil
}

// TracedRewriter records an "llm.rewrite" span around each follow-up
// rewrite of r. With tp nil it returns r itself.
func TracedRewriter(r Rewriter, tp trace.TracerProvider) Rewriter {
	if tp == nil || r == nil {
		return r
	}
	return &tracedRewriter{r: r, tr: tp.Tracer(tracerScope)}
}

type tracedRewriter struct {
	r  Rewriter
	tr trace.Tracer
}

// Rewrite implements Rewriter.
func (t *tracedRewriter) Rewrite(ctx context.Context, history []Turn, question string) (string, error) {
	ctx, span := t.tr.Start(ctx, "llm.rewrite", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.Int("rag.history", len(history))))
	defer span.End()
	out, err := t.r.Rewrite(ctx, history, question)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "rewrite failed")
	}
	return out, err
}
