package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/edge"
	"github.com/sostenuto/sostenuto/server/rag"
)

// newRecorder is a tracer provider recording every span in process.
func newRecorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) }) //nolint:errcheck // in-process recorder
	return tp, rec
}

// clientTrace is a caller's traceparent: a fresh trace id and span id,
// sampled.
func clientTrace(t *testing.T) (header, traceID, spanID string) {
	t.Helper()
	var b [24]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand does not fail
	traceID, spanID = hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return "00-" + traceID + "-" + spanID + "-01", traceID, spanID
}

// spansOf waits until the trace's ended spans include every name in want,
// and returns them by name (the first of each name).
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, traceID string, want ...string) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			if _, seen := got[s.Name()]; !seen && s.SpanContext().TraceID().String() == traceID {
				got[s.Name()] = s
			}
		}
		missing := []string{}
		for _, name := range want {
			if got[name] == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s lacks spans %q; has %v", traceID, missing, keys(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// attrs are a span's attributes as text.
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

// childOf reports whether child's parent is parent.
func childOf(child, parent sdktrace.ReadOnlySpan) bool {
	return child.Parent().SpanID() == parent.SpanContext().SpanID() &&
		child.Parent().TraceID() == parent.SpanContext().TraceID()
}

// A search answered by the node's index is one trace: the HTTP span
// (continuing the caller's traceparent, named by its route), the search
// span under it, the query's embedding, the engine's three stages and the
// reranker's call under that; the access log line carries the trace id.
func TestTracingSearchSpans(t *testing.T) {
	tp, rec := newRecorder(t)
	_, reranker := newLocalReranker(t)
	a := newAPIWith(t, apiSettings{engine: true, tracer: tp, reranker: reranker})
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)
	query := map[string]any{"query": "damper pedal"}
	waitFor(t, func() bool {
		var res searchResponse
		a.mustStatus(a.call("POST", "/api/search", teacher, query), 200).decode(t, &res)
		return res.Index.Source == SourceLocal && len(res.Results) > 0
	})
	header, traceID, callerSpan := clientTrace(t)
	a.mustStatus(a.call("POST", "/api/search", teacher, map[string]any{"query": "damper pedal", "rerank": true}, "traceparent", header), 200)
	s := spansOf(t, rec, traceID, "POST /api/search", "search", "embed", "search.vector", "search.bm25", "search.fuse", "rerank")
	root := s["POST /api/search"]
	if root.Parent().SpanID().String() != callerSpan || !root.Parent().IsRemote() || root.SpanKind() != trace.SpanKindServer {
		t.Errorf("HTTP span's parent %s (remote %v), want the caller's %s", root.Parent().SpanID(), root.Parent().IsRemote(), callerSpan)
	}
	if at := attrs(root); at["http.route"] != "/api/search" || at["http.response.status_code"] != "200" || at["sostenuto.request_id"] == "" {
		t.Errorf("HTTP span attributes %v", at)
	}
	if !childOf(s["search"], root) {
		t.Error("the search span is not the HTTP span's child")
	}
	if at := attrs(s["search"]); at["search.source"] != SourceLocal || at["search.hits"] == "0" || at["search.mode"] != "hybrid" {
		t.Errorf("search span attributes %v", at)
	}
	for _, name := range []string{"embed", "search.vector", "search.bm25", "search.fuse", "rerank"} {
		if !childOf(s[name], s["search"]) {
			t.Errorf("%s is not the search span's child", name)
		}
	}
	if at := attrs(s["embed"]); at["embed.model"] != "sostenuto-hash-v1" || at["embed.texts"] != "1" {
		t.Errorf("embed span attributes %v", at)
	}
	// The two lists run at once, after the embedding; fusion after both.
	if v, b, f := s["search.vector"], s["search.bm25"], s["search.fuse"]; v.EndTime().After(f.StartTime()) || b.EndTime().After(f.StartTime()) ||
		f.EndTime().After(s["search"].EndTime()) || v.StartTime().Before(s["embed"].EndTime()) || b.StartTime().Before(s["embed"].EndTime()) {
		t.Error("the engine's stages are not laid out after the embedding, the lists before fusion, inside the search")
	}
	if !strings.Contains(a.logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Error("no access log line carries the trace id")
	}
}

// A chat answered by a hosted model records an llm.answer span (the
// model, the first token's arrival) in the request's trace.
func TestTracingChatLLMSpan(t *testing.T) {
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"After each \"}}]}\n\n")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"chord [1].\"}}]}\n\ndata: [DONE]\n\n")
	}))
	defer llm.Close()
	x, _ := rag.NewExtractive()
	tp, rec := newRecorder(t)
	a := newAPIWith(t, apiSettings{tracer: tp, answerer: &rag.Chat{Kind: "openai", BaseURL: llm.URL, ModelName: "test-llm", Attempts: 1, Terms: x}})
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)
	header, traceID, _ := clientTrace(t)
	var res chatResult
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When do I change the damper pedal?"}, "traceparent", header), 200).decode(t, &res)
	if res.Model != "test-llm" {
		t.Fatalf("answered by %q", res.Model)
	}
	s := spansOf(t, rec, traceID, "POST /api/chat/query", "llm.answer", "search", "embed")
	answer := s["llm.answer"]
	if !childOf(answer, s["POST /api/chat/query"]) {
		t.Errorf("llm.answer's parent %s is not the HTTP span", answer.Parent().SpanID())
	}
	at := attrs(answer)
	if at["gen_ai.request.model"] != "test-llm" || at["gen_ai.response.model"] != "test-llm" || at["rag.passages"] == "0" || at["rag.deltas"] != "2" {
		t.Errorf("llm.answer attributes %v", at)
	}
	if ev := answer.Events(); len(ev) != 1 || ev[0].Name != "first_token" {
		t.Errorf("llm.answer events %v", ev)
	}
	if attrs(s["search"])["search.use"] != "chat" {
		t.Errorf("the chat's search span: %v", attrs(s["search"]))
	}
}

// startTracedEdge runs the edge in process in front of this node, with
// its own tracer provider (nil: tracing off), as another process would.
func (a *testAPI) startTracedEdge(tp trace.TracerProvider) string {
	a.t.Helper()
	node, err := url.Parse(a.url)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.serveEdge(edge.Config{Nodes: []*url.URL{node}, Issuers: []string{"sostenuto"}, Audiences: []string{"sostenuto-api"},
		CacheEntries: 100, HealthInterval: 100 * time.Millisecond, Tracer: tp})
}

// Through the edge a request stays one trace across both processes: the
// edge continues the caller's traceparent, its call to the node carries
// the edge's own span as the parent, and the node continues that. An
// edge with tracing off passes the caller's traceparent on untouched.
func TestTracingThroughEdge(t *testing.T) {
	nodeTP, nodeRec := newRecorder(t)
	edgeTP, edgeRec := newRecorder(t)
	a := newAPIWith(t, apiSettings{tracer: nodeTP})
	teacher := a.register("t@example.com", "teacher").AccessToken
	base := a.startTracedEdge(edgeTP)
	header, traceID, callerSpan := clientTrace(t)
	a.mustStatus(a.send(http.DefaultClient, base, "POST", "/api/search", teacher, map[string]any{"query": "scales"}, "traceparent", header), 200)
	e := spansOf(t, edgeRec, traceID, "POST /api/search", "node")
	n := spansOf(t, nodeRec, traceID, "POST /api/search")
	edgeSpan, hop, nodeSpan := e["POST /api/search"], e["node"], n["POST /api/search"]
	if edgeSpan.Parent().SpanID().String() != callerSpan || edgeSpan.SpanKind() != trace.SpanKindServer {
		t.Errorf("the edge's span does not continue the caller's: parent %s", edgeSpan.Parent().SpanID())
	}
	if !childOf(hop, edgeSpan) || hop.SpanKind() != trace.SpanKindClient || attrs(hop)["http.response.status_code"] != "200" {
		t.Errorf("the edge's call to the node: parent %s, %v", hop.Parent().SpanID(), attrs(hop))
	}
	if !childOf(nodeSpan, hop) || !nodeSpan.Parent().IsRemote() {
		t.Errorf("the node's span: parent %s (remote %v), want the edge's call %s", nodeSpan.Parent().SpanID(),
			nodeSpan.Parent().IsRemote(), hop.SpanContext().SpanID())
	}
	if attrs(edgeSpan)["edge.kind"] == "" {
		t.Errorf("edge span attributes %v", attrs(edgeSpan))
	}

	plain := a.startTracedEdge(nil)
	header, traceID, callerSpan = clientTrace(t)
	a.mustStatus(a.send(http.DefaultClient, plain, "POST", "/api/search", teacher, map[string]any{"query": "arpeggios"}, "traceparent", header), 200)
	n = spansOf(t, nodeRec, traceID, "POST /api/search")
	if got := n["POST /api/search"].Parent().SpanID().String(); got != callerSpan {
		t.Errorf("behind an edge without tracing the node's parent is %s, want the caller's %s", got, callerSpan)
	}
}
