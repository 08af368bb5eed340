package replication

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sostenuto/sostenuto/index"
)

// Every entry a node's Raft applies makes a raft.apply span with its
// index, kind and operation count; keepalives make none.
func TestTracingRaftApplySpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	n, err := StartNode(NodeConfig{ID: "n1", RaftBind: "127.0.0.1:0", Dir: t.TempDir(), Bootstrap: true, Fast: true,
		Insecure: true, Index: testEngineConfig(), ApplyTimeout: 3 * time.Second, Tracer: tp,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.raft.Shutdown().Error() //nolint:errcheck // test teardown
		n.closeStores()
	})
	waitFor(t, "n1 leads", n.IsLeader)
	doc, owner := index.ID(uuid.New()), index.ID(uuid.New())
	ops := index.Ops{Documents: []index.Document{{ID: doc, OwnerID: owner, Title: "Scales"}},
		Upserts: []index.Chunk{{ID: index.ID(uuid.New()), DocumentID: doc, OwnerID: owner, Title: "Scales",
			Text: "slowly, hands separately", Version: 1, Vector: []float32{1, 0, 0, 0}}},
		Position: index.Position{LSN: 100}}
	ctx := context.Background()
	if err := n.Propose(ctx, KeepaliveEntry(90, 1)); err != nil {
		t.Fatal(err)
	}
	if err := n.Propose(ctx, ChangesEntry(ops, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the entries applied", func() bool { return n.raft.AppliedIndex() == n.raft.LastIndex() })
	var applies []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "raft.apply" {
			applies = append(applies, s)
		}
	}
	if len(applies) != 1 {
		t.Fatalf("%d raft.apply spans, want 1 (the changes; keepalives make none)", len(applies))
	}
	got := map[string]string{}
	for _, kv := range applies[0].Attributes() {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	if got["replication.kind"] != "changes" || got["replication.ops"] != "2" || got["raft.index"] != strconv.FormatUint(n.raft.LastIndex(), 10) || got["replication.node"] != "n1" {
		t.Errorf("raft.apply attributes %v", got)
	}
}
