package server

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sostenuto/sostenuto/edge"
	"github.com/sostenuto/sostenuto/edge/worker/workertest"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// The end-to-end scenarios of the edge, run against both edges in front
// of a real node (PostgreSQL, the blob store, the index): sostenuto-edge
// in process and the Cloudflare Worker in Miniflare's workerd, with local
// R2 filled from the node's blob store through a mirror of it.

// edgeKinds are the two edges.
var edgeKinds = []string{"go", "worker"}

// startEdgeKind runs an edge of kind in front of nodes (base URLs), with a
// revocation bound of 1 s, and returns its base URL.
func (a *testAPI) startEdgeKind(kind string, nodes ...string) string {
	a.t.Helper()
	if kind == "worker" {
		return workertest.Start(a.t, map[string]string{"NODES": strings.Join(nodes, ","), "AUTHZ_TTL": "1",
			"HEALTH_INTERVAL": "0.1", "BLOB_MIRROR": a.blobMirror()})
	}
	var us []*url.URL
	for _, n := range nodes {
		u, err := url.Parse(n)
		if err != nil {
			a.t.Fatal(err)
		}
		us = append(us, u)
	}
	return a.serveEdge(edge.Config{Nodes: us, Issuers: []string{"sostenuto"}, Audiences: []string{"sostenuto-api"},
		Blob: a.blob, CacheEntries: 100, HealthInterval: 100 * time.Millisecond, AuthzTTL: time.Second})
}

// blobMirror serves the node's blob store read-only with its ETags: the
// Worker copies the objects it needs from here into its local R2 (in a
// deployment the node writes to R2 itself).
func (a *testAPI) blobMirror() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, info, err := a.blob.Open(r.Context(), strings.TrimPrefix(r.URL.Path, "/"), nil)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer rc.Close()
		w.Header().Set("ETag", info.ETag)
		w.Header().Set("Content-Length", fmt.Sprint(info.Size))
		io.Copy(w, rc) //nolint:errcheck // the Worker went away
	}))
	a.t.Cleanup(srv.Close)
	return srv.URL
}

// countedNode serves the node on a listener of its own that counts the
// requests it passes to the node (readiness checks and key fetches aside).
func (a *testAPI) countedNode() (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/ready" && r.URL.Path != "/api/auth/jwks.json" {
			n.Add(1)
		}
		a.handler.ServeHTTP(w, r)
	}))
	a.t.Cleanup(srv.Close)
	return srv.URL, &n
}

// Bad tokens are answered 401 at either edge and never reach the node; a
// good one does.
func TestEdgesRefuseBadTokens(t *testing.T) {
	a := newAPI(t)
	node, seen := a.countedNode()
	tok := a.register("t@example.com", "teacher").AccessToken
	kid, _, _ := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	_, foreignKey, _ := ed25519.GenerateKey(nil)
	forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api",
		"sub": "00000000-0000-0000-0000-000000000001", "exp": time.Now().Add(time.Hour).Unix()})
	forged.Header["kid"] = kid.Header["kid"]
	forgedRaw, _ := forged.SignedString(foreignKey)
	bad := map[string]string{"tampered": tok[:len(tok)-4] + "AAAA", "forged with the node's kid": forgedRaw,
		"garbage": "abc.def.ghi", "huge": strings.Repeat("a", 9000)}
	for _, kind := range edgeKinds {
		t.Run(kind, func(t *testing.T) {
			base := a.startEdgeKind(kind, node)
			before := seen.Load()
			a.mustStatus(a.callAt(base, "GET", "/api/auth/me", tok, nil), 200)
			if seen.Load() != before+1 {
				t.Fatalf("the good token did not reach the node")
			}
			for name, b := range bad {
				before := seen.Load()
				r := a.callAt(base, "GET", "/api/projects", b, nil)
				if p := r.problem(t); r.status != 401 || p.Code != "unauthenticated" {
					t.Errorf("%s: %d %+v", name, r.status, p)
				}
				if seen.Load() != before {
					t.Errorf("%s reached the node", name)
				}
			}
		})
	}
}

// A confirmed PDF streams through either edge as from the node: whole, a
// range, a suffix, 304, 416, HEAD; another user's project answers the
// node's 404. Both stores.
func TestEdgesStreamPDF(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3"})
			tok := a.register("t@example.com", "teacher").AccessToken
			other := a.register("o@example.com", "teacher").AccessToken
			pdf := pdftest.Pages(3)
			id := a.readyProject(tok, "Etude", 3).ID.String()
			etag := a.mustStatus(a.call("GET", "/api/projects/"+id+"/stream", tok, nil), 200).header.Get("ETag")
			for _, kind := range edgeKinds {
				t.Run(kind, func(t *testing.T) {
					base := a.startEdgeKind(kind, a.url)
					a.checkServed(t, base, tok, id, pdf, etag)
					stream := "/api/projects/" + id + "/stream"
					r := a.callAt(base, "GET", stream, tok, nil, "Range", fmt.Sprintf("bytes=%d-", len(pdf)))
					if p := r.problem(t); r.status != 416 || p.Code != "range_not_satisfiable" || r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(pdf)) {
						t.Errorf("416: %d %+v %q", r.status, p, r.header.Get("Content-Range"))
					}
					if st, n, cl := head(t, base+stream, tok); st != 200 || n != 0 || cl != fmt.Sprint(len(pdf)) {
						t.Errorf("HEAD: %d, %d bytes, Content-Length %s", st, n, cl)
					}
					if r := a.callAt(base, "GET", stream, other, nil); r.status != 404 {
						t.Errorf("another user's stream: %d", r.status)
					}
				})
			}
		})
	}
}

// head sends HEAD (not in the OpenAPI document, so not through callAt):
// status, body length, Content-Length.
func head(t *testing.T, u, tok string) (int, int, string) {
	t.Helper()
	req, _ := http.NewRequest("HEAD", u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, len(b), resp.Header.Get("Content-Length")
}

// A revoked grant stops streaming at either edge within the revocation
// bound (authz-ttl, 1 s here); a new grant streams at once (refusals are
// never kept).
func TestEdgesRevocationBound(t *testing.T) {
	a := newAPI(t)
	owner := a.register("t@example.com", "teacher").AccessToken
	student := a.register("s@example.com", "student")
	id := a.readyProject(owner, "Etude", 2).ID.String()
	stream := "/api/projects/" + id + "/stream"
	access := "/api/projects/" + id + "/access"
	for _, kind := range edgeKinds {
		t.Run(kind, func(t *testing.T) {
			base := a.startEdgeKind(kind, a.url)
			a.mustStatus(a.call("POST", access, owner, map[string]any{"user_id": student.User.ID, "permission": "view"}), 201)
			a.mustStatus(a.callAt(base, "GET", stream, student.AccessToken, nil), 200)
			a.mustStatus(a.call("DELETE", access+"/"+student.User.ID.String(), owner, nil), 204)
			revoked := time.Now()
			for a.callAt(base, "GET", stream, student.AccessToken, nil).status == 200 {
				if time.Since(revoked) > 1500*time.Millisecond {
					t.Fatalf("still streaming %v after the revoke; the bound is 1 s", time.Since(revoked))
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%s: the stream stopped %v after the revoke", kind, time.Since(revoked).Round(10*time.Millisecond))
			a.mustStatus(a.call("POST", access, owner, map[string]any{"user_id": student.User.ID, "permission": "view"}), 201)
			if r := a.callAt(base, "GET", stream, student.AccessToken, nil); r.status != 200 {
				t.Errorf("a new grant did not stream at once: %d", r.status)
			}
			a.mustStatus(a.call("DELETE", access+"/"+student.User.ID.String(), owner, nil), 204)
		})
	}
}

// The chat's event stream passes through either edge: the same events, in
// order, as text/event-stream.
func TestEdgesEventStream(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Pedal", "source_type": "text", "is_public": true,
		"content": "Pedalling: change the damper pedal just after the new harmony sounds, so the old one does not blur into it."})
	a.process(tok, d.Document.ID)
	a.waitDocument(tok, d.Document.ID)
	body := map[string]any{"query": "When do I change the damper pedal?"}
	for _, kind := range edgeKinds {
		t.Run(kind, func(t *testing.T) {
			base := a.startEdgeKind(kind, a.url)
			var events []sseEvent
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				r := a.mustStatus(a.callAt(base, "POST", "/api/chat/query", tok, body, "Accept", "text/event-stream"), 200)
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Fatalf("Content-Type %q", ct)
				}
				events = parseSSE(t, r.body)
				if len(events) >= 3 && events[0].data != "[]" || time.Now().After(deadline) {
					break
				}
			}
			if len(events) < 3 || events[0].name != "sources" || events[1].name != "delta" || events[len(events)-1].name != "done" {
				t.Fatalf("events %+v", events)
			}
		})
	}
}

// A kept answer is never served to another user: at either edge, user B
// asking what A asked is a miss and gets B's own answer; A's repeat is a
// hit (revalidated with the node).
func TestEdgesKeptAnswersPerUser(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	teacher := a.register("a@example.com", "teacher").AccessToken
	other := a.register("b@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Voicing", "source_type": "text", "is_public": false,
		"content": "Voicing: let the top note of each chord sing above the others."})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)
	for _, kind := range edgeKinds {
		t.Run(kind, func(t *testing.T) {
			base := a.startEdgeKind(kind, a.url)
			q := map[string]any{"query": "Should the top note of a chord sing? (" + kind + ")"}
			var first cachedChat
			for deadline := time.Now().Add(10 * time.Second); len(first.Sources) == 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("A's chat never found A's document")
				}
				a.mustStatus(a.callAt(base, "POST", "/api/chat/query", teacher, q), 200).decode(t, &first)
			}
			var hit bool
			for deadline := time.Now().Add(5 * time.Second); !hit && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				hit = a.mustStatus(a.callAt(base, "POST", "/api/chat/query", teacher, q), 200).header.Get("X-Edge-Cache") == "hit"
			}
			if !hit {
				t.Fatal("A's repeat was never a hit: the test proves nothing")
			}
			r := a.mustStatus(a.callAt(base, "POST", "/api/chat/query", other, q), 200)
			var b cachedChat
			r.decode(t, &b)
			if r.header.Get("X-Edge-Cache") == "hit" || b.Cached || len(b.Sources) != 0 {
				t.Errorf("B got %s, cached %v, sources %+v", r.header.Get("X-Edge-Cache"), b.Cached, b.Sources)
			}
			text := map[string]any{"text": "relax the shoulders (" + kind + ")"}
			a.mustStatus(a.callAt(base, "POST", "/api/embeddings/generate", teacher, text), 200)
			if r := a.callAt(base, "POST", "/api/embeddings/generate", other, text); r.header.Get("X-Edge-Cache") == "hit" {
				t.Errorf("B's embedding was A's kept answer")
			}
		})
	}
}

// A node killed under load fails no idempotent request at either edge:
// the node serves on two listeners, the edge spreads reads and searches
// over both, and one listener is closed (its connections cut) mid-run.
func TestEdgesNodeKilledUnderLoad(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	for _, kind := range edgeKinds {
		t.Run(kind, func(t *testing.T) {
			n1 := httptest.NewServer(a.handler)
			n2 := httptest.NewServer(a.handler)
			t.Cleanup(n1.Close)
			t.Cleanup(n2.Close)
			base := a.startEdgeKind(kind, n1.URL, n2.URL)
			var served, failed atomic.Int64
			var mu sync.Mutex
			var failures []string
			stop := time.Now().Add(3 * time.Second)
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; time.Now().Before(stop); i++ {
						status, err := idempotentCall(base, tok, w, i)
						if err != nil || status != 200 {
							failed.Add(1)
							mu.Lock()
							failures = append(failures, fmt.Sprintf("%d %v", status, err))
							mu.Unlock()
							continue
						}
						served.Add(1)
					}
				}()
			}
			time.Sleep(time.Second)
			n2.CloseClientConnections()
			n2.Close()
			wg.Wait()
			t.Logf("%s: %d requests served, %d failed", kind, served.Load(), failed.Load())
			if failed.Load() > 0 || served.Load() < 20 {
				t.Errorf("%d failed (%v), %d served", failed.Load(), failures[:min(len(failures), 5)], served.Load())
			}
		})
	}
}

// idempotentCall is one request of the load: a list of projects, a search
// or an embedding (idempotent POSTs), in turn.
func idempotentCall(base, tok string, w, i int) (int, error) {
	var req *http.Request
	switch i % 3 {
	case 0:
		req, _ = http.NewRequest("GET", base+"/api/projects", nil)
	case 1:
		req, _ = http.NewRequest("POST", base+"/api/search", bytes.NewBufferString(fmt.Sprintf(`{"query":"scales %d %d"}`, w, i)))
	default:
		req, _ = http.NewRequest("POST", base+"/api/embeddings/generate", bytes.NewBufferString(fmt.Sprintf(`{"text":"arpeggio %d %d"}`, w, i)))
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	return resp.StatusCode, nil
}

// The API contract holds through the Worker: a walk over the routes a
// client uses, each answer checked against the OpenAPI document
// (checkResponse, in callAt) and carrying X-Request-ID.
func TestWorkerContract(t *testing.T) {
	a := newAPI(t)
	w := a.startEdgeKind("worker", a.url)
	call := func(method, path, tok string, body any, want int, hdr ...string) response {
		t.Helper()
		r := a.mustStatus(a.callAt(w, method, path, tok, body, hdr...), want)
		if r.header.Get("X-Request-ID") == "" {
			t.Errorf("%s %s: no X-Request-ID", method, path)
		}
		return r
	}
	call("GET", "/api/health", "", nil, 200)
	call("GET", "/api/ready", "", nil, 200)
	call("GET", "/api/openapi.json", "", nil, 200)
	var s sessionResponse
	call("POST", "/api/auth/register", "", map[string]any{"email": "t@example.com", "password": "correct horse battery staple",
		"display_name": "T", "role": "teacher"}, 201).decode(t, &s)
	call("POST", "/api/auth/register", "", map[string]any{"email": "s@example.com", "password": "correct horse battery staple",
		"display_name": "S", "role": "student"}, 201)
	call("POST", "/api/auth/login", "", map[string]any{"email": "t@example.com", "password": "correct horse battery staple"}, 200)
	tok := s.AccessToken
	call("GET", "/api/auth/me", tok, nil, 200)
	call("GET", "/api/auth/me", "", nil, 401)
	call("POST", "/api/relationships", tok, map[string]any{"student_email": "s@example.com"}, 201)
	call("GET", "/api/relationships", tok, nil, 200)
	id := a.readyProject(tok, "Etude", 2).ID.String()
	call("GET", "/api/projects?limit=5", tok, nil, 200)
	call("GET", "/api/projects/"+id, tok, nil, 200)
	call("PATCH", "/api/projects/"+id, tok, map[string]any{"title": "Etude op. 10"}, 200)
	call("GET", "/api/projects/"+id+"/stream", tok, nil, 206, "Range", "bytes=0-99")
	img := call("GET", "/api/projects/"+id+"/pages/1/image?width=128", tok, nil, 200)
	call("GET", "/api/projects/"+id+"/pages/1/image?width=128", tok, nil, 304, "If-None-Match", img.header.Get("ETag"))
	call("GET", "/api/projects/"+id+"/pages/1/image?width=9", tok, nil, 400)
	call("GET", "/api/projects/"+id+"/pages/9/image", tok, nil, 404)
	var ann struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
	}
	call("POST", "/api/annotations", tok, map[string]any{"project_id": id, "page": 1, "type": "note",
		"content": map[string]any{"text": "breathe", "x": 0.5, "y": 0.5}}, 201).decode(t, &ann)
	call("GET", "/api/annotations?project_id="+id, tok, nil, 200)
	call("PATCH", "/api/annotations/"+ann.ID, tok, map[string]any{"page": 2}, 200, "If-Match", fmt.Sprintf(`"%d"`, ann.Version))
	call("PATCH", "/api/annotations/"+ann.ID, tok, map[string]any{"page": 1}, 412, "If-Match", fmt.Sprintf(`"%d"`, ann.Version))
	call("POST", "/api/annotations", tok, map[string]any{"project_id": id, "page": 1, "type": "note", "bogus": 1}, 400)
	d := a.createDocument(tok, map[string]any{"title": "Scales", "source_type": "text", "is_public": true,
		"content": "Practise scales slowly with a metronome, hands separately first."})
	a.process(tok, d.Document.ID)
	a.waitDocument(tok, d.Document.ID)
	call("GET", "/api/knowledge", tok, nil, 200)
	call("GET", "/api/knowledge/"+d.Document.ID.String()+"/status", tok, nil, 200)
	call("POST", "/api/search", tok, map[string]any{"query": "scales metronome"}, 200)
	call("POST", "/api/embeddings/generate", tok, map[string]any{"text": "scales"}, 200)
	call("POST", "/api/chat/query", tok, map[string]any{"query": "How should I practise scales?"}, 200)
	var cs struct{ ID string }
	call("POST", "/api/chat/sessions", tok, map[string]any{"title": "Practice"}, 201).decode(t, &cs)
	call("POST", "/api/chat/query", tok, map[string]any{"query": "How should I practise scales?", "session_id": cs.ID}, 200)
	call("GET", "/api/chat/sessions/"+cs.ID, tok, nil, 200)
	call("DELETE", "/api/chat/sessions/"+cs.ID, tok, nil, 204)
	call("POST", "/api/auth/refresh", "", map[string]any{"refresh_token": s.RefreshToken}, 200)
	call("DELETE", "/api/projects/"+id, tok, nil, 204)
	time.Sleep(1100 * time.Millisecond) // past the revocation bound (1 s)
	call("GET", "/api/projects/"+id+"/stream", tok, nil, 404)
}
