package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// syncBuffer collects log output written from handler goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

func newTestServer(t *testing.T, db Pinger) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if db == nil {
		db = pingFunc(func(context.Context) error { return nil })
	}
	s := New(Config{Version: "test"}, Deps{
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Registry: NewRegistry(),
		DB:       db,
	})
	return s, logs
}

func do(t *testing.T, h http.Handler, method, path string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeProblemBody(t *testing.T, rec *httptest.ResponseRecorder) Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, rec.Body)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Type == "" || p.Title == "" || p.Status != rec.Code || p.Code == "" || p.Detail == "" {
		t.Errorf("incomplete problem %+v for status %d", p, rec.Code)
	}
	return p
}

func TestHealth(t *testing.T) {
	s, _ := newTestServer(t, pingFunc(func(context.Context) error { return errors.New("down") }))
	rec := do(t, s.Handler(), "GET", "/api/health", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"ok"`) {
		t.Errorf("health while the database is down = %d %s; want 200 ok", rec.Code, rec.Body)
	}
}

func TestRequestID(t *testing.T) {
	s, logs := newTestServer(t, nil)
	h := s.Handler()
	gen := do(t, h, "GET", "/api/health", nil).Header().Get(HeaderRequestID)
	if len(gen) != 36 {
		t.Errorf("generated request id %q, want a UUID", gen)
	}
	if got := do(t, h, "GET", "/api/health", nil, HeaderRequestID, "edge-42.a").Header().Get(HeaderRequestID); got != "edge-42.a" {
		t.Errorf("propagated request id = %q, want edge-42.a", got)
	}
	if got := do(t, h, "GET", "/api/health", nil, HeaderRequestID, "bad id\r\nx").Header().Get(HeaderRequestID); got == "" || strings.ContainsAny(got, " \r\n") {
		t.Errorf("malformed incoming id answered as %q, want a fresh one", got)
	}
	if !strings.Contains(logs.String(), `"request_id":"edge-42.a"`) {
		t.Error("access log lacks the propagated request id")
	}
}

func TestAccessLogLine(t *testing.T) {
	s, logs := newTestServer(t, nil)
	do(t, s.Handler(), "GET", "/api/ready", nil)
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("log line is not one JSON object: %v\n%s", err, logs)
	}
	for k, want := range map[string]any{"msg": "request", "component": "http", "method": "GET", "route": "/api/ready", "status": float64(200)} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	for _, k := range []string{"request_id", "duration_ms", "time"} {
		if _, ok := line[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, line)
		}
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	s, logs := newTestServer(t, nil)
	s.router.Get("/api/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	rec := do(t, s.Handler(), "GET", "/api/boom", nil)
	if rec.Code != 500 {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	p := decodeProblemBody(t, rec)
	if p.Code != CodeInternal || strings.Contains(rec.Body.String(), "kaboom") {
		t.Errorf("problem %+v leaks the panic or has the wrong code", p)
	}
	if !strings.Contains(p.Detail, rec.Header().Get(HeaderRequestID)) {
		t.Errorf("detail %q does not quote the request id", p.Detail)
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("panic not logged with its value and the 500:\n%s", logs)
	}
	// The server keeps serving.
	if rec := do(t, s.Handler(), "GET", "/api/health", nil); rec.Code != 200 {
		t.Errorf("after a panic, health = %d", rec.Code)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	s, _ := newTestServer(t, nil)
	rec := do(t, s.Handler(), "GET", "/api/nope", nil)
	if rec.Code != 404 || decodeProblemBody(t, rec).Code != CodeNotFound {
		t.Errorf("unknown route = %d %s", rec.Code, rec.Body)
	}
	rec = do(t, s.Handler(), "DELETE", "/api/health", nil)
	if rec.Code != 405 || decodeProblemBody(t, rec).Code != CodeMethodNotAllowed {
		t.Errorf("wrong method = %d %s", rec.Code, rec.Body)
	}
}

func TestReadyReportsDatabase(t *testing.T) {
	var down bool
	s, _ := newTestServer(t, pingFunc(func(context.Context) error {
		if down {
			return errors.New("connection refused")
		}
		return nil
	}))
	if rec := do(t, s.Handler(), "GET", "/api/ready", nil); rec.Code != 200 {
		t.Fatalf("ready = %d %s", rec.Code, rec.Body)
	}
	down = true
	rec := do(t, s.Handler(), "GET", "/api/ready", nil)
	if rec.Code != 503 {
		t.Fatalf("ready with the database down = %d", rec.Code)
	}
	p := decodeProblemBody(t, rec)
	if p.Code != CodeUnavailable || !strings.Contains(p.Detail, "database") || rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 problem %+v lacks the reason or Retry-After", p)
	}
	if strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("503 problem %+v repeats the driver's error", p)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	s, _ := newTestServer(t, nil)
	do(t, s.Handler(), "GET", "/api/health", nil)
	rec := do(t, s.Handler(), "GET", "/metrics", nil)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `http_requests_total{method="GET",route="/api/health",status="200"} 1`) ||
		!strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics = %d, missing series:\n%.2000s", rec.Code, body)
	}
}
