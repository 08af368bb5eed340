package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/tracing/tracingtest"
)

// The edge binary with --otlp-endpoint exports its spans over OTLP/HTTP
// under service.name sostenuto-edge, continues the caller's trace, and
// sends the node a traceparent of that trace whose parent is the edge's
// own call span. Spans still queued are exported at SIGTERM.
func TestEdgeBinaryTracing(t *testing.T) {
	bin := build(t, ".", "sostenuto-edge")
	col := tracingtest.Start(t)
	var mu sync.Mutex
	var received string
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/projects" {
			mu.Lock()
			received = r.Header.Get("traceparent")
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	defer node.Close()
	port := freePort(t)
	edge := start(t, "edge", bin, nil, fmt.Sprintf("SOSTENUTO_EDGE_LISTEN=127.0.0.1:%d", port), "SOSTENUTO_EDGE_NODES="+node.URL,
		"SOSTENUTO_EDGE_OTLP_ENDPOINT="+col.URL, "SOSTENUTO_EDGE_TRACE_SAMPLE=0")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitOK(t, base+"/edge/health", 10*time.Second)
	const traceID, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	call(t, "GET", base+"/api/projects", "", nil, "traceparent", "00-"+traceID+"-"+caller+"-01").must(t, 200, nil)
	if err := edge.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := edge.cmd.Wait(); err != nil {
		t.Fatalf("edge exit: %v", err)
	}
	edge.cmd = nil
	spans := map[string]tracingtest.Span{}
	for _, s := range col.Spans() {
		if s.TraceID == traceID {
			spans[s.Name] = s
		}
	}
	server, hop := spans["GET /*"], spans["node"]
	if errs := col.Errors(); len(errs) > 0 || server.Resource["service.name"] != "sostenuto-edge" || server.ParentID != caller || hop.ParentID != server.SpanID {
		t.Fatalf("spans of the trace %+v; refused %q", spans, errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "00-" + traceID + "-" + hop.SpanID + "-01"; received != want {
		t.Errorf("the node received traceparent %q, want %q", received, want)
	}
	if !strings.Contains(edge.logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Error("the edge's access log lacks the trace id")
	}
}
