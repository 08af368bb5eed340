package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/server/tracing/tracingtest"
)

// The exporter speaks OTLP/HTTP: spans reach a receiver as protobuf on
// /v1/traces (added to an endpoint without a path), with the service's
// name, version and instance on the resource, and the parent links kept.
func TestOTLPExportOverHTTP(t *testing.T) {
	col := tracingtest.Start(t)
	p, err := New(context.Background(), Config{Endpoint: col.URL, SampleRatio: 1, Service: "sostenuto", Version: "v9", Instance: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Tracer().Tracer("test")
	ctx, parent := tr.Start(context.Background(), "POST /api/search")
	_, child := tr.Start(ctx, "search", trace.WithAttributes(attribute.Int("search.k", 10)))
	child.End()
	parent.End()
	if err := p.Shutdown(context.Background()); err != nil { // flushes the batch
		t.Fatal(err)
	}
	spans := map[string]tracingtest.Span{}
	for _, s := range col.Spans() {
		spans[s.Name] = s
	}
	if errs := col.Errors(); len(errs) > 0 || len(spans) != 2 {
		t.Fatalf("receiver: spans %v, refused %q", spans, errs)
	}
	root, search := spans["POST /api/search"], spans["search"]
	if res := root.Resource; res["service.name"] != "sostenuto" || res["service.version"] != "v9" || res["service.instance.id"] != "node-a" {
		t.Errorf("resource %v", res)
	}
	if search.ParentID != root.SpanID || root.ParentID != "" || search.TraceID != root.TraceID || search.Attributes["search.k"] != "10" {
		t.Errorf("spans %+v", spans)
	}
}

// Off is nil: no provider, and a shutdown that does nothing.
func TestOffWithoutEndpoint(t *testing.T) {
	p, err := New(context.Background(), Config{SampleRatio: 1})
	if err != nil || p.Tracer() != nil || p.Shutdown(context.Background()) != nil {
		t.Fatalf("off provider: %v, %v", p.Tracer(), err)
	}
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if got := Middleware(nil, nil)(h); got == nil || Transport(http.DefaultTransport, nil, "x") != http.DefaultTransport {
		t.Error("off: middleware or transport installed")
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":                "http://collector:4318/v1/traces",
		"http://collector:4318/":               "http://collector:4318/v1/traces",
		"https://otlp.example.org/v1/traces":   "https://otlp.example.org/v1/traces",
		"https://tempo.example.org/otlp/v1/tr": "https://tempo.example.org/otlp/v1/tr",
	} {
		if got, err := TracesURL(in); err != nil || got != want {
			t.Errorf("%s: %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"collector:4318", "grpc://collector:4317", "http://", "ftp://x/"} {
		if _, err := TracesURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := New(context.Background(), Config{Endpoint: "http://c:4318", SampleRatio: 2}); err == nil {
		t.Error("a sample ratio of 2 accepted")
	}
}

// The middleware continues a caller's traceparent, names the span by the
// route once known, and the log handler puts the trace id on log lines
// made with the request's context; the transport carries the trace on.
func TestMiddlewareTransportAndLogs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var logs bytes.Buffer
	logger := Logger(slog.New(slog.NewJSONHandler(&logs, nil)), tp)
	var sent string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent = r.Header.Get("traceparent") }))
	defer upstream.Close()
	client := &http.Client{Transport: Transport(http.DefaultTransport, tp, "upstream")}
	h := Middleware(tp, func(r *http.Request) (string, string) { return r.Method + " /things/{id}", "/things/{id}" })(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			logger.InfoContext(r.Context(), "request")
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			w.WriteHeader(http.StatusTeapot)
		}))
	req := httptest.NewRequest(http.MethodGet, "/things/42", nil)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	out, server := spans[0], spans[1]
	if server.Name() != "GET /things/{id}" || server.SpanKind() != trace.SpanKindServer ||
		server.Parent().SpanID().String() != "b7ad6b7169203331" || !server.Parent().IsRemote() ||
		server.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("server span %s kind %s parent %s", server.Name(), server.SpanKind(), server.Parent().SpanID())
	}
	if out.Parent().SpanID() != server.SpanContext().SpanID() || out.SpanKind() != trace.SpanKindClient {
		t.Errorf("client span's parent %s", out.Parent().SpanID())
	}
	want := "00-0af7651916cd43dd8448eb211c80319c-" + out.SpanContext().SpanID().String() + "-01"
	if sent != want {
		t.Errorf("upstream got traceparent %q, want %q", sent, want)
	}
	if !strings.Contains(logs.String(), `"trace_id":"0af7651916cd43dd8448eb211c80319c"`) {
		t.Errorf("log line without the trace id: %s", logs.String())
	}
	attrs := map[string]string{}
	for _, kv := range server.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["http.route"] != "/things/{id}" || attrs["http.response.status_code"] != "418" || attrs["url.path"] != "/things/42" {
		t.Errorf("attributes %v", attrs)
	}
}

// A request not sampled records nothing, yet its trace still travels:
// the next hop gets a traceparent flagged not sampled, so it does not
// start a sampled trace of its own.
func TestUnsampledStillPropagates(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	var sent string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent = r.Header.Get("traceparent") }))
	defer upstream.Close()
	client := &http.Client{Transport: Transport(http.DefaultTransport, tp, "upstream")}
	h := Middleware(tp, func(r *http.Request) (string, string) { return r.Method, "" })(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL, nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if len(rec.Ended()) != 0 || len(sent) != 55 || !strings.HasSuffix(sent, "-00") {
		t.Errorf("%d spans recorded; upstream got traceparent %q", len(rec.Ended()), sent)
	}
}
