package edge

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sostenuto/sostenuto/server/clientip"
)

const secret = "edge-test-secret-0123456789abcdef0123"

// fakeNode is an HTTP server that answers like a node where it matters:
// /api/ready, an empty key set, and whatever handler the test gives.
type fakeNode struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	seen []*http.Request
}

func newFakeNode(t *testing.T, h http.HandlerFunc) *fakeNode {
	f := &fakeNode{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/ready":
			w.WriteHeader(200)
			return
		case "/api/auth/jwks.json":
			io.WriteString(w, `{"keys":[]}`)
			return
		}
		f.hits.Add(1)
		f.mu.Lock()
		f.seen = append(f.seen, r.Clone(context.Background()))
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeNode) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return nil
	}
	return f.seen[len(f.seen)-1]
}

func newEdge(t *testing.T, mod func(*Config), nodes ...*fakeNode) (*Edge, *httptest.Server) {
	t.Helper()
	cfg := Config{HS256Secrets: [][]byte{[]byte(secret)}, Issuers: []string{"sostenuto"}, Audiences: []string{"sostenuto-api"},
		HealthInterval: 50 * time.Millisecond, CacheEntries: 100}
	for _, n := range nodes {
		u, _ := url.Parse(n.URL)
		cfg.Nodes = append(cfg.Nodes, u)
	}
	cfg.JWKSURLs = []string{nodes[0].URL + "/api/auth/jwks.json"}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.Start(ctx)
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return e, srv
}

func token(t *testing.T, sub string, mod func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": "sostenuto", "aud": []string{"sostenuto-api"}, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, method, u, tok string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, u, body)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func read(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Bad tokens are answered at the edge; the node never sees them.
func TestTokensCheckedAtTheEdge(t *testing.T) {
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	_, srv := newEdge(t, nil, node)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	foreign, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "u",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString(otherKey)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "u",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	bad := map[string]string{
		"garbage":       "abc.def.ghi",
		"foreign key":   foreign,
		"alg none":      none,
		"expired":       token(t, "u", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no expiry":     token(t, "u", func(c jwt.MapClaims) { delete(c, "exp") }),
		"wrong issuer":  token(t, "u", func(c jwt.MapClaims) { c["iss"] = "someone" }),
		"wrong aud":     token(t, "u", func(c jwt.MapClaims) { c["aud"] = "other" }),
		"no subject":    token(t, "", nil),
		"huge":          strings.Repeat("a", 9000),
		"future iat":    token(t, "u", func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }),
		"tampered body": token(t, "u", nil)[:20] + "x" + token(t, "u", nil)[21:],
	}
	for name, tok := range bad {
		resp := get(t, "GET", srv.URL+"/api/projects", tok, nil)
		body := read(t, resp)
		if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"code":"unauthenticated"`) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	if n := node.hits.Load(); n != 0 {
		t.Errorf("the node saw %d requests with bad tokens", n)
	}
	if resp := get(t, "GET", srv.URL+"/api/projects", token(t, "u", nil), nil); resp.StatusCode != 200 {
		t.Errorf("a good token: %d", resp.StatusCode)
	}
	// On a route that needs no token, a stale one is dropped, not refused.
	if resp := get(t, "POST", srv.URL+"/api/auth/refresh", bad["expired"], strings.NewReader(`{}`)); resp.StatusCode != 200 ||
		node.last().Header.Get("Authorization") != "" {
		t.Errorf("refresh with an expired token: %d, Authorization %q reached the node", resp.StatusCode, node.last().Header.Get("Authorization"))
	}
	if resp := get(t, "GET", srv.URL+"/api/health", "", nil); resp.StatusCode != 200 || node.hits.Load() != 3 {
		t.Errorf("no token: %d, node hits %d", resp.StatusCode, node.hits.Load())
	}
}

// X-Forwarded-For comes from the real peer; a client's own copy is dropped
// unless the client is a trusted proxy. Request ids travel both ways.
func TestForwardedHeaders(t *testing.T) {
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	_, srv := newEdge(t, nil, node)
	resp := get(t, "GET", srv.URL+"/x", "", nil, "X-Forwarded-For", "6.6.6.6", "X-Request-ID", "trace-123")
	resp.Body.Close()
	got := node.last()
	if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("untrusted peer: X-Forwarded-For %q", xff)
	}
	if got.Header.Get("X-Request-ID") != "trace-123" || resp.Header.Values("X-Request-ID")[0] != "trace-123" || len(resp.Header.Values("X-Request-ID")) != 1 {
		t.Errorf("request id to node %q, to client %q", got.Header.Get("X-Request-ID"), resp.Header.Values("X-Request-ID"))
	}
	resp = get(t, "GET", srv.URL+"/x", "", nil, "X-Request-ID", "bad id with spaces")
	resp.Body.Close()
	if id := node.last().Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") || resp.Header.Get("X-Request-ID") != id {
		t.Errorf("a malformed id was not replaced: %q / %q", id, resp.Header.Get("X-Request-ID"))
	}

	trusted, _ := clientip.Parse("127.0.0.1")
	_, srv2 := newEdge(t, func(c *Config) { c.TrustedProxies = trusted }, node)
	get(t, "GET", srv2.URL+"/x", "", nil, "X-Forwarded-For", "198.51.100.7").Body.Close()
	if xff := strings.Join(node.last().Header.Values("X-Forwarded-For"), ","); xff != "198.51.100.7, 127.0.0.1" {
		t.Errorf("trusted peer: X-Forwarded-For %q", xff)
	}
}

// Server-sent events pass through as they are written.
func TestEventStreamUnbuffered(t *testing.T) {
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, "event: sources\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(600 * time.Millisecond)
		io.WriteString(w, "event: done\ndata: {}\n\n")
	})
	_, srv := newEdge(t, nil, node)
	start := time.Now()
	resp := get(t, "POST", srv.URL+"/api/chat/query", token(t, "u", nil), strings.NewReader(`{"query":"q"}`), "Accept", "text/event-stream", "Content-Type", "application/json")
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	first := time.Since(start)
	if err != nil || line != "event: sources\n" || first > 400*time.Millisecond {
		t.Fatalf("first line %q after %s (%v)", line, first, err)
	}
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "event: done") || time.Since(start) < 600*time.Millisecond {
		t.Errorf("rest %q", rest)
	}
}

// Idempotent requests move to another node when one is down or breaks the
// connection; a POST that may have reached a node is not sent twice.
func TestRetries(t *testing.T) {
	var broken atomic.Bool
	breaker := func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			io.ReadAll(r.Body)
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close() // the connection breaks after the request arrived
			return
		}
		w.Header().Set("X-Node", "a")
		w.WriteHeader(200)
	}
	a := newFakeNode(t, breaker)
	b := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Node", "b")
		w.Write(body)
	})
	_, srv := newEdge(t, nil, a, b)
	// Both nodes take a share.
	for i := 0; i < 200; i++ {
		read(t, get(t, "GET", srv.URL+"/api/projects", "", nil))
	}
	if a.hits.Load() < 40 || b.hits.Load() < 40 {
		t.Errorf("spread a=%d b=%d", a.hits.Load(), b.hits.Load())
	}
	// a breaks connections: GETs and bodies the edge kept go to b.
	broken.Store(true)
	for i := 0; i < 50; i++ {
		resp := get(t, "PUT", srv.URL+"/api/x", "", strings.NewReader("payload"))
		if body := read(t, resp); resp.StatusCode != 200 || body != "payload" {
			t.Fatalf("PUT through a broken node: %d %q", resp.StatusCode, body)
		}
	}
	// A POST is not retried once a node may have received it.
	aBefore, bBefore := a.hits.Load(), b.hits.Load()
	failed := 0
	for i := 0; i < 50; i++ {
		resp := get(t, "POST", srv.URL+"/api/projects", "", strings.NewReader(`{}`))
		read(t, resp)
		if resp.StatusCode == 502 {
			failed++
		}
	}
	if da, db := a.hits.Load()-aBefore, b.hits.Load()-bBefore; da+db != 50 || int64(failed) != da {
		t.Errorf("POSTs: a=%d b=%d failed=%d (each sent once; a's fail)", da, db, failed)
	}
	// A node that is down (refuses connections): everything goes to b,
	// POSTs included (nothing was sent).
	a.Close()
	for i := 0; i < 50; i++ {
		resp := get(t, "POST", srv.URL+"/api/projects", "", strings.NewReader(`{}`))
		if read(t, resp); resp.StatusCode != 200 || resp.Header.Get("X-Node") != "b" {
			t.Fatalf("with a down: %d from %q", resp.StatusCode, resp.Header.Get("X-Node"))
		}
	}
	b.Close()
	resp := get(t, "GET", srv.URL+"/api/projects", "", nil)
	if body := read(t, resp); resp.StatusCode != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Errorf("no node: %d %s", resp.StatusCode, body)
	}
}

// The answer cache serves a kept answer only after the node's 304, only to
// the user it was made for, and survives a restart through its file.
func TestAnswerCache(t *testing.T) {
	var version atomic.Int64
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		etag := `W/"` + r.Header.Get("Authorization")[len(r.Header.Get("Authorization"))-8:] + "-" + string(rune('a'+version.Load())) + `"`
		if r.Header.Get("If-None-Match") == etag {
			w.Header().Set("ETag", etag)
			w.WriteHeader(304)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "private, no-cache")
		io.WriteString(w, `{"answer":"`+strings.TrimSpace(string(body[10:15]))+`","v":`+string(rune('0'+version.Load()))+`}`)
	})
	file := filepath.Join(t.TempDir(), "cache.gob")
	e, srv := newEdge(t, func(c *Config) { c.CacheFile = file }, node)
	alice, bob := token(t, "alice", nil), token(t, "bob", nil)
	ask := func(tok, q string, hdr ...string) (string, string) {
		resp := get(t, "POST", srv.URL+"/api/search", tok, strings.NewReader(`{"query":"`+q+`"}`), append(hdr, "Content-Type", "application/json")...)
		body := read(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("search: %d %s", resp.StatusCode, body)
		}
		return body, resp.Header.Get("X-Edge-Cache")
	}
	if _, c := ask(alice, "scale"); c != "miss" {
		t.Errorf("first: %s", c)
	}
	if b, c := ask(alice, "scale"); c != "hit" || b != `{"answer":"scale","v":0}` {
		t.Errorf("second: %s %s", c, b)
	}
	if node.last().Header.Get("If-None-Match") == "" {
		t.Error("the hit was not revalidated")
	}
	if _, c := ask(bob, "scale"); c != "miss" {
		t.Errorf("another user: %s", c)
	}
	if _, c := ask(alice, "chord"); c != "miss" {
		t.Errorf("another question: %s", c)
	}
	version.Store(1) // the index changed: the kept answer is replaced
	if b, c := ask(alice, "scale"); c != "miss" || b != `{"answer":"scale","v":1}` {
		t.Errorf("after a change: %s %s", c, b)
	}
	// Streams and the client's own conditions bypass the cache.
	if _, c := ask(alice, "scale", "Accept", "text/event-stream"); c != "" {
		t.Errorf("stream: %q", c)
	}
	// Across a restart, through the file.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	_, srv2 := newEdge(t, func(c *Config) { c.CacheFile = file }, node)
	resp := get(t, "POST", srv2.URL+"/api/search", alice, strings.NewReader(`{"query":"scale"}`), "Content-Type", "application/json")
	if body := read(t, resp); resp.Header.Get("X-Edge-Cache") != "hit" || body != `{"answer":"scale","v":1}` {
		t.Errorf("after restart: %s %s", resp.Header.Get("X-Edge-Cache"), body)
	}
}

// The health endpoint says how many nodes are up.
func TestHealth(t *testing.T) {
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {})
	_, srv := newEdge(t, nil, node)
	if resp := get(t, "GET", srv.URL+"/edge/health", "", nil); resp.StatusCode != 200 || !strings.Contains(read(t, resp), `"nodes_healthy":1`) {
		t.Errorf("health %d", resp.StatusCode)
	}
	node.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp := get(t, "GET", srv.URL+"/edge/health", "", nil)
		read(t, resp)
		if resp.StatusCode == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the edge still reports a closed node healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = net.Dial

// With origins configured the edge answers CORS itself, for its own
// answers (a refused token) and the nodes' alike.
func TestEdgeCORS(t *testing.T) {
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://node-says.example")
		w.WriteHeader(200)
	})
	_, srv := newEdge(t, func(c *Config) { c.CORSOrigins = []string{"https://app.example.com"} }, node)
	resp := get(t, "GET", srv.URL+"/api/projects", "", nil, "Origin", "https://app.example.com")
	read(t, resp)
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example.com" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("proxied answer: %v", resp.Header)
	}
	resp = get(t, "GET", srv.URL+"/api/projects", "bad.token.here", nil, "Origin", "https://app.example.com")
	read(t, resp)
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("the edge's own 401: %d %v", resp.StatusCode, resp.Header)
	}
	resp = get(t, "OPTIONS", srv.URL+"/api/projects", "", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "DELETE")
	read(t, resp)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Methods") != "DELETE" || node.hits.Load() != 1 {
		t.Errorf("preflight: %d %v (node hits %d)", resp.StatusCode, resp.Header, node.hits.Load())
	}
}
