package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/edge"
	"github.com/sostenuto/sostenuto/edge/worker/workertest"
	"github.com/sostenuto/sostenuto/server/blob"
)

const (
	secret    = "conformance-secret-0123456789abcdef"
	projectID = "0b7f3c8e-3f6a-4d5e-9a2b-1c2d3e4f5a6b"
)

// stand is what every suite runs against: two upstream nodes, a store, and
// both edges in front of them.
type stand struct {
	keys   *keys
	a, b   *upstream
	store  blob.Store
	edges  []edgeUnderTest
	client *http.Client
}

type edgeUnderTest struct {
	name, url string
}

func newStand(t *testing.T) *stand {
	t.Helper()
	dir := t.TempDir()
	store, err := blob.NewLocal(dir, "http://127.0.0.1", bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	k := newKeys()
	s := &stand{keys: k, store: store, client: &http.Client{Timeout: 20 * time.Second}}
	s.a, s.b = newUpstream(t, k, store), newUpstream(t, k, store)
	s.edges = []edgeUnderTest{{"go", s.startGoEdge(t)}, {"worker", s.startWorker(t)}}
	return s
}

func (s *stand) startGoEdge(t *testing.T) string {
	ua, _ := url.Parse(s.a.url())
	ub, _ := url.Parse(s.b.url())
	ctx, cancel := context.WithCancel(context.Background())
	e, err := edge.New(ctx, edge.Config{Nodes: []*url.URL{ua, ub}, HealthInterval: 50 * time.Millisecond,
		JWKSURLs: []string{s.a.url() + "/api/auth/jwks.json"}, HS256Secrets: [][]byte{[]byte(secret)},
		Issuers: []string{"sostenuto"}, Audiences: []string{"sostenuto-api"}, Leeway: 30 * time.Second,
		Blob: s.store, AuthzTTL: time.Second, CacheEntries: 100}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.Start(ctx)
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }() //nolint:errcheck // no cache file
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return srv.URL
}

func (s *stand) startWorker(t *testing.T) string {
	return workertest.Start(t, map[string]string{
		"NODES": s.a.url() + "," + s.b.url(), "JWKS_URLS": s.a.url() + "/api/auth/jwks.json",
		"JWT_HS256_SECRET": secret, "JWT_ISSUERS": "sostenuto", "JWT_AUDIENCES": "sostenuto-api", "JWT_LEEWAY": "30",
		"HEALTH_INTERVAL": "0.05", "AUTHZ_TTL": "1", "BLOB_MIRROR": s.a.url() + "/mirror",
	})
}

// do sends one request and reads the whole answer.
func (s *stand) do(t *testing.T, method, u, auth, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func load(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// wantProblem checks an RFC 9457 answer with code.
func wantProblem(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Type   string `json:"type"`
		Title  string `json:"title"`
	}
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(body, &p) != nil || p.Status != status || p.Code != code || p.Type == "" || p.Title == "" {
		t.Errorf("got %d %s %s, want a %d problem %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, status, code)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}
}

// TestConformance runs every vector file against both edges over HTTP.
// The suites share one stand (the Worker takes seconds to start) and run
// in order: the retry suite changes how the nodes behave.
func TestConformance(t *testing.T) {
	s := newStand(t)
	t.Run("tokens", func(t *testing.T) { s.tokens(t) })
	t.Run("ranges", func(t *testing.T) { s.ranges(t) })
	t.Run("answers", func(t *testing.T) { s.answers(t) })
	t.Run("events", func(t *testing.T) { s.events(t) })
	t.Run("retries", func(t *testing.T) { s.retries(t) })
}
