package conformance

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/blob"
)

// upstream is an HTTP server on a fixed loopback address that speaks the
// node endpoints the edges rely on (readiness, the key set, the object
// decision, the answer routes with ETags, an event stream) and misbehaves
// on demand (502, 503, 504, a broken connection, or nothing listening).
// The edges' end-to-end scenarios against a real node are in
// server/worker_test.go; this one makes the rules observable.
type upstream struct {
	t        *testing.T
	addr     string
	mu       sync.Mutex
	srv      *http.Server
	mode     atomic.Value // "ok", "502", "503", "504", "break", "down"
	hits     atomic.Int64 // requests other than readiness, keys, decisions and the mirror
	seen     []*http.Request
	keys     *keys
	store    blob.Store
	object   atomic.Value // the decision's answer (JSON)
	version  atomic.Int64 // moves the answers' ETags
	sseDelay time.Duration
}

// keys are the signing keys the nodes publish: k1 from the start, k2 once
// published (a rotation).
type keys struct {
	k1, k2     ed25519.PrivateKey
	published2 atomic.Bool
}

func newKeys() *keys {
	_, k1, _ := ed25519.GenerateKey(nil)
	_, k2, _ := ed25519.GenerateKey(nil)
	return &keys{k1: k1, k2: k2}
}

func (k *keys) jwks() []byte {
	one := func(kid string, key ed25519.PrivateKey) map[string]string {
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
			"x": base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey))}
	}
	set := []map[string]string{one("k1", k.k1)}
	if k.published2.Load() {
		set = append(set, one("k2", k.k2))
	}
	b, _ := json.Marshal(map[string]any{"keys": set})
	return b
}

func newUpstream(t *testing.T, k *keys, store blob.Store) *upstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, addr: ln.Addr().String(), keys: k, store: store, sseDelay: 700 * time.Millisecond}
	u.mode.Store("ok")
	u.object.Store([]byte(`{}`))
	u.serve(ln)
	t.Cleanup(func() { u.setMode("ok"); u.stop() })
	return u
}

func (u *upstream) url() string { return "http://" + u.addr }

func (u *upstream) serve(ln net.Listener) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.srv = &http.Server{Handler: http.HandlerFunc(u.handle), ReadHeaderTimeout: 5 * time.Second}
	go u.srv.Serve(ln) //nolint:errcheck // ends with stop
}

func (u *upstream) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		u.srv.Close()
		u.srv = nil
	}
}

// setMode changes the behaviour; "down" closes the listener (connections
// are refused), anything else listens again on the same address.
func (u *upstream) setMode(m string) {
	was := u.mode.Swap(m)
	switch {
	case m == "down" && was != "down":
		u.stop()
	case m != "down" && was == "down":
		var ln net.Listener
		var err error
		for i := 0; i < 50; i++ {
			if ln, err = net.Listen("tcp", u.addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			u.t.Fatalf("listen again on %s: %v", u.addr, err)
		}
		u.serve(ln)
	}
}

func (u *upstream) reset() {
	u.hits.Store(0)
	u.mu.Lock()
	u.seen = nil
	u.mu.Unlock()
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstream) handle(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/ready":
		w.WriteHeader(200)
		return
	case strings.HasPrefix(r.URL.Path, "/mirror/"):
		u.mirror(w, r)
		return
	}
	if r.Header.Get("X-Request-ID") != "" { // passed on by an edge (its own key fetches carry none)
		u.hits.Add(1)
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.mu.Unlock()
	}
	switch {
	case r.URL.Path == "/api/auth/jwks.json":
		w.Header().Set("Content-Type", "application/json")
		w.Write(u.keys.jwks()) //nolint:errcheck // test server
	case strings.HasSuffix(r.URL.Path, "/object"):
		w.Header().Set("Content-Type", "application/json")
		w.Write(u.object.Load().([]byte)) //nolint:errcheck // test server
	default:
		u.misbehave(w, r)
	}
}

func (u *upstream) misbehave(w http.ResponseWriter, r *http.Request) {
	switch m := u.mode.Load().(string); m {
	case "break":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	case "502", "503", "504":
		var status int
		fmt.Sscan(m, &status) //nolint:errcheck // one of the three
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d,"code":"unavailable"}`, status)
	default:
		u.answer(w, r)
	}
}

// answer is the node's answer: an event stream when asked for one, else
// JSON tagged by the caller's token, the body and the data version (the
// node's answer tags hold the caller's scope likewise), 304 on a match.
func (u *upstream) answer(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		u.events(w)
		return
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%d", r.Header.Get("Authorization"), r.URL.Path, body, u.version.Load())))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"for": r.Header.Get("Authorization"), "path": r.URL.Path, "body": string(body)}) //nolint:errcheck // test server
}

func (u *upstream) events(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	io.WriteString(w, "event: sources\ndata: []\n\n") //nolint:errcheck // test server
	w.(http.Flusher).Flush()
	time.Sleep(u.sseDelay)
	io.WriteString(w, "event: done\ndata: {}\n\n") //nolint:errcheck // test server
}

// mirror serves the stored objects with their ETags (the Worker's
// BLOB_MIRROR, which loads them into local R2).
func (u *upstream) mirror(w http.ResponseWriter, r *http.Request) {
	rc, info, err := u.store.Open(r.Context(), strings.TrimPrefix(r.URL.Path, "/mirror/"), nil)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer rc.Close()
	w.Header().Set("ETag", info.ETag)
	w.Header().Set("Content-Length", fmt.Sprint(info.Size))
	io.Copy(w, rc) //nolint:errcheck // test server
}
