package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/rag"
)

// startRedis runs a real redis-server (Debian's package; `make test`
// installs it) on a free port and returns a cache store on it.
func startRedis(t *testing.T) cache.Store {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed (apt-get install redis-server; make test installs it): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
	}
	r, err := cache.NewRedis(fmt.Sprintf("redis://127.0.0.1:%d/0", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

type cachedChat struct {
	Content string       `json:"content"`
	Sources []rag.Source `json:"sources"`
	Cached  bool         `json:"cached"`
	Timings struct {
		EmbedMs int64 `json:"embed_ms"`
	} `json:"timings"`
}

// Nothing a user observes depends on what another user asked: after user A
// asks a question in chat, user B generating an embedding for the same
// text is told cached: false (B's own repeat: true); B's chat answer to
// A's question is not cached and cites none of A's private sources; and
// the same through the edge. In process and with Redis.
func TestCachesArePerUser(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			set := apiSettings{engine: true}
			if backend == "redis" {
				set.cache = startRedis(t)
			}
			a := newAPIWith(t, set)
			edgeURL := a.startEdge()
			teacher := a.register("a@example.com", "teacher").AccessToken
			other := a.register("b@example.com", "teacher").AccessToken
			d := a.createDocument(teacher, map[string]any{"title": "Voicing", "source_type": "text", "is_public": false,
				"content": "Voicing: let the top note of each chord sing above the others."})
			a.process(teacher, d.Document.ID)
			a.waitDocument(teacher, d.Document.ID)
			const q = "How do I voice the top note of a chord?"
			chatAbout := func(base, tok, q string) cachedChat {
				var c cachedChat
				a.mustStatus(a.callAt(base, "POST", "/api/chat/query", tok, map[string]any{"query": q}), 200).decode(t, &c)
				return c
			}
			chat := func(base, tok string) cachedChat { return chatAbout(base, tok, q) }
			embedAt := func(base, tok, text string) (embeddingResponse, response) {
				var e embeddingResponse
				r := a.mustStatus(a.callAt(base, "POST", "/api/embeddings/generate", tok, map[string]any{"text": text}), 200)
				r.decode(t, &e)
				return e, r
			}
			for deadline := time.Now().Add(10 * time.Second); len(chat(a.url, teacher).Sources) == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the index never held the document")
				}
			}
			// The document's own row may reach the index a moment after its
			// chunks (a later transaction moves the data version): ask again
			// until A's repeat is answered from the cache.
			cached := false
			for deadline := time.Now().Add(10 * time.Second); !cached && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				cached = chat(a.url, teacher).Cached
			}
			if !cached {
				t.Fatal("A's repeated question was not cached: the test proves nothing")
			}

			if e, _ := embedAt(a.url, other, q); e.Cached {
				t.Errorf("B's first embedding of A's question says cached: true")
			}
			if e, _ := embedAt(a.url, other, q); !e.Cached {
				t.Errorf("B's repeat says cached: false")
			}
			if e, _ := embedAt(a.url, teacher, q); !e.Cached {
				t.Errorf("A's embedding of the question A asked says cached: false")
			}
			if c := chat(a.url, other); c.Cached || len(c.Sources) != 0 {
				t.Errorf("B's chat: cached %v, sources %+v", c.Cached, c.Sources)
			}

			// Through the edge, which keeps answers per verified user.
			const text = "Through the edge: relax the shoulders before the run."
			if e, r := embedAt(edgeURL, teacher, text); e.Cached || r.header.Get("X-Edge-Cache") == "hit" {
				t.Errorf("A's first embedding at the edge: cached %v, %s", e.Cached, r.header.Get("X-Edge-Cache"))
			}
			embedAt(edgeURL, teacher, text)
			if e, r := embedAt(edgeURL, other, text); e.Cached || r.header.Get("X-Edge-Cache") == "hit" {
				t.Errorf("B's embedding at the edge after A's: cached %v, %s", e.Cached, r.header.Get("X-Edge-Cache"))
			}
			const q2 = "Should the top note of a chord sing?"
			if c := chatAbout(edgeURL, teacher, q2); len(c.Sources) == 0 {
				t.Errorf("A's chat at the edge found no source: %+v", c)
			}
			if c := chatAbout(edgeURL, other, q2); c.Cached || len(c.Sources) != 0 {
				t.Errorf("B's chat at the edge: cached %v, sources %+v", c.Cached, c.Sources)
			}
		})
	}
}

// slowEmbedder is a local server speaking the OpenAI embeddings wire
// format, answering after delay with the hash embedder's vectors, and
// counting the calls.
func slowEmbedder(t *testing.T, delay time.Duration) (*embed.OpenAI, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		time.Sleep(delay)
		vs, err := embed.Hash{}.Embed(r.Context(), in.Input)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		data := make([]map[string]any, len(vs))
		for i, v := range vs {
			data[i] = map[string]any{"index": i, "embedding": v}
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	t.Cleanup(srv.Close)
	return &embed.OpenAI{BaseURL: srv.URL, ModelName: "slow-test", Retry: embed.RetryPolicy{Attempts: 1, Timeout: 10 * time.Second}}, &calls
}

// A vector computed for another user still saves the embedder's work, but
// is answered no sooner than computing it took: B cannot time its request
// to learn that A asked (nor read it from chat's embed_ms). Measured with a
// hosted-style embedder that takes 200 ms.
func TestSharedEmbeddingHitTakesComputeTime(t *testing.T) {
	const delay = 200 * time.Millisecond
	emb, calls := slowEmbedder(t, delay)
	a := newAPIWith(t, apiSettings{embedder: emb})
	userA := a.register("a@example.com", "teacher").AccessToken
	userB := a.register("b@example.com", "student").AccessToken
	embedTimed := func(tok, text string) (embeddingResponse, time.Duration) {
		var e embeddingResponse
		start := time.Now()
		a.mustStatus(a.call("POST", "/api/embeddings/generate", tok, map[string]any{"text": text}), 200).decode(t, &e)
		return e, time.Since(start)
	}
	const text = "Which fingering suits the left hand in bar twelve?"
	first, tookA := embedTimed(userA, text)
	if first.Cached || tookA < delay || calls.Load() != 1 {
		t.Fatalf("A's first: cached %v in %s, %d calls", first.Cached, tookA, calls.Load())
	}
	if again, _ := embedTimed(userA, text); !again.Cached || calls.Load() != 1 {
		t.Fatalf("A's repeat: cached %v, %d calls (the cache does not work)", again.Cached, calls.Load())
	}
	b, tookB := embedTimed(userB, text)
	t.Logf("embedder %s; A computed in %s; B's shared hit answered in %s", delay, tookA, tookB)
	if b.Cached || tookB < delay*9/10 {
		t.Errorf("B after A: cached %v in %s, want cached: false no sooner than ~%s", b.Cached, tookB, delay)
	}
	if calls.Load() != 1 {
		t.Errorf("%d embedder calls: the shared vector was not reused", calls.Load())
	}

	// Chat reports the embedding time: B's is not A's cache hit either.
	const q = "What does a fermata over a rest mean?"
	var c cachedChat
	a.mustStatus(a.call("POST", "/api/chat/query", userA, map[string]any{"query": q}), 200).decode(t, &c)
	a.mustStatus(a.call("POST", "/api/chat/query", userB, map[string]any{"query": q}), 200).decode(t, &c)
	if c.Timings.EmbedMs < int64(delay/time.Millisecond)*9/10 || c.Cached {
		t.Errorf("B's chat after A's: embed_ms %d, cached %v", c.Timings.EmbedMs, c.Cached)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d embedder calls for two askers of one question, want 2 in all", n)
	}
}
