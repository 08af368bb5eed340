package replication

import (
	"context"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/replication/logentry"
)

// applySpan starts the "raft.apply" span of an entry about to be applied:
// its Raft index and term, kind and operation count. Keepalives (one a
// second from the leader, nothing to apply but a position) make none. It
// returns nil when tracing is off or the entry makes no span.
func (n *Node) applySpan(l *raft.Log, e Entry) trace.Span {
	if n.tracer == nil || e.Kind == logentry.KindKeepalive {
		return nil
	}
	_, span := n.tracer.Start(context.Background(), "raft.apply")
	if span.IsRecording() { // sampled
		span.SetAttributes(attribute.Int64("raft.index", int64(l.Index)), attribute.Int64("raft.term", int64(l.Term)),
			attribute.String("replication.kind", e.Kind.String()), attribute.Int("replication.ops", entryOps(e)),
			attribute.String("replication.node", n.cfg.ID))
	}
	return span
}

// endApply ends span (nil: nothing to do) with the FSM's answer.
func endApply(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "apply failed")
	}
	span.End()
}
