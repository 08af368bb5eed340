package rag_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/rerank"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/search/searchtest"
	"github.com/sostenuto/sostenuto/server/store"
)

// recorder is an Emitter that keeps what it hears.
type recorder struct {
	sources []rag.Source
	key     string
	deltas  []string
	stop    error // returned by Retrieved
}

func (r *recorder) Retrieved(s []rag.Source, key string) error {
	r.sources, r.key = s, key
	return r.stop
}

func (r *recorder) Delta(text string) error {
	r.deltas = append(r.deltas, text)
	return nil
}

// newService builds the service on the world's real index and database,
// with an in-process cache; ready switches the index.
func newService(t *testing.T, w *searchtest.World) (*rag.Service, *atomic.Bool) {
	t.Helper()
	layers := cache.NewLayers(cache.NewMemory(1000, time.Hour), time.Hour, time.Hour, time.Hour, nil, nil)
	return newServiceWith(t, w, layers, index.Fusion{}, nil)
}

// newServiceWith builds the service over the given cache layers, fusing
// with fusion and reranking (when rr is not nil) with rr.
func newServiceWith(t *testing.T, w *searchtest.World, layers cache.Layers, fusion index.Fusion, rr *search.RerankConfig) (*rag.Service, *atomic.Bool) {
	t.Helper()
	return newServiceOn(t, w, w.Store, layers, fusion, rr, hitsTrusted)
}

// newServiceOn is newServiceWith reading PostgreSQL through st, scopes
// through a ScopeCache over st, re-checking cache hits when recheck.
// hitMode is how a test's service treats its cache hits.
type hitMode int

const (
	hitsTrusted   hitMode = iota // served without PostgreSQL
	hitsRechecked                // RecheckHits
	hitsBehind                   // the index behind a write this node acknowledged (Behind)
)

func newServiceOn(t *testing.T, w *searchtest.World, st *store.Store, layers cache.Layers, fusion index.Fusion, rr *search.RerankConfig, hits hitMode) (*rag.Service, *atomic.Bool) {
	t.Helper()
	ready := &atomic.Bool{}
	ready.Store(true)
	scopes := search.NewScopeCache(w.Live, ready.Load, st, 0)
	idx, lagging := search.NewIndex(search.IndexConfig{Live: w.Live, Ready: ready.Load, Based: w.Based,
		Teachers: scopes, Waiters: search.NewSlots(4), Wait: 2 * time.Second})
	fb := &search.Fallback{Index: idx, Lagging: lagging, Postgres: search.NewPostgres(st, search.NewSlots(2)), Embedder: embed.Hash{}, Fusion: fusion}
	var searcher search.Searcher = fb
	identity := ""
	if rr != nil {
		r := search.NewRerank(fb, *rr)
		searcher, identity = r, r.Identity()
	}
	x, err := rag.NewExtractive()
	if err != nil {
		t.Fatal(err)
	}
	return rag.NewService(rag.Config{Searcher: searcher, Index: idx, Store: st, Teachers: scopes, Embeddings: rag.NewEmbeddings(embed.Hash{}, layers.Embeddings, layers.Askers),
		Answerer: x, Searches: layers.Searches, Answers: layers.Answers, Allow: []string{"example.com"}, Fusion: fusion, Reranker: identity,
		RecheckHits: hits == hitsRechecked, Behind: func() bool { return hits == hitsBehind }}), ready
}

func cites(sources []rag.Source, doc uuid.UUID) bool {
	for _, s := range sources {
		if s.DocumentID == doc {
			return true
		}
	}
	return false
}

// Ask answers from what the asker may see, dedupes equal passages, caches
// the answer (a repeat is Cached and Kept) and sanitizes links.
func TestAskAnswersAndCaches(t *testing.T) {
	w := searchtest.New(t)
	svc, _ := newService(t, w)
	text := "Relax the thumb while playing scales slowly, see https://evil.test/x for more."
	a, _, _ := w.Document(t, w.Teacher, "Scales", text, false)
	_, _, lsn := w.Document(t, w.Teacher, "Scales again", text, false)
	w.WaitIndexed(t, lsn)
	ctx := context.Background()
	var rec recorder
	out, err := svc.Ask(ctx, rag.Question{Text: "How should the thumb be in scales?", K: 5}, search.Scope{User: w.Student}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Sources) != 1 || len(rec.sources) != 1 || rec.key == "" || out.Cached || !out.Kept {
		t.Fatalf("first answer: %+v (heard %d sources, key %q)", out, len(rec.sources), rec.key)
	}
	if strings.Contains(out.Content, "evil.test") || strings.Contains(strings.Join(rec.deltas, ""), "evil.test") || !strings.Contains(out.Content, "[1]") {
		t.Errorf("content %q deltas %q", out.Content, rec.deltas)
	}
	again, err := svc.Ask(ctx, rag.Question{Text: "How should the thumb be in scales?", K: 5}, search.Scope{User: w.Student}, &recorder{})
	if err != nil || !again.Cached || !again.Kept || again.Content != out.Content {
		t.Errorf("repeat: %v %+v", err, again)
	}
	stranger, err := svc.Ask(ctx, rag.Question{Text: "How should the thumb be in scales?", K: 5}, search.Scope{User: w.Stranger}, &recorder{})
	if err != nil || len(stranger.Sources) != 0 || stranger.Content != rag.NothingFound || cites(stranger.Sources, a) {
		t.Errorf("stranger: %v %+v", err, stranger)
	}
}

// A chunk the index still serves but PostgreSQL now hides (the feed
// stopped before the change reached the index) never reaches a fresh
// answer (every miss is re-checked in PostgreSQL). A cached answer is
// served without PostgreSQL only while the index is ready: once the
// node's lag bound passes with nothing applied (the feed stopped) it is
// not, and neither is the cached answer. With RecheckHits, the cached
// answer goes at once.
func TestAskRechecksVisibility(t *testing.T) {
	for _, recheck := range []bool{false, true} {
		w := searchtest.New(t)
		layers := cache.NewLayers(cache.NewMemory(1000, time.Hour), time.Hour, time.Hour, time.Hour, nil, nil)
		svc, ready := newServiceOn(t, w, w.Store, layers, index.Fusion{}, nil, map[bool]hitMode{false: hitsTrusted, true: hitsRechecked}[recheck])
		doc, _, lsn := w.Document(t, w.Teacher, "Scales", "Relax the thumb while playing scales slowly.", true)
		w.WaitIndexed(t, lsn)
		ctx := context.Background()
		q := rag.Question{Text: "How should the thumb be in scales?", K: 5}
		first, err := svc.Ask(ctx, q, search.Scope{User: w.Stranger}, &recorder{})
		if err != nil || !cites(first.Sources, doc) {
			t.Fatalf("before hiding: %v %+v", err, first)
		}
		w.Stop()
		w.Hide(t, doc)
		out, err := svc.Ask(ctx, rag.Question{Text: "thumb scales relax", K: 4}, search.Scope{User: w.Stranger}, &recorder{})
		if err != nil || cites(out.Sources, doc) || out.Cached {
			t.Errorf("recheck %v, fresh, after hiding: %v %+v", recheck, err, out)
		}
		if recheck {
			if out, err := svc.Ask(ctx, q, search.Scope{User: w.Stranger}, &recorder{}); err != nil || cites(out.Sources, doc) || out.Cached {
				t.Errorf("re-checked hit, after hiding: %v %+v", err, out)
			}
		}
		ready.Store(false) // the lag bound passed
		out, err = svc.Ask(ctx, q, search.Scope{User: w.Stranger}, &recorder{})
		if err != nil || cites(out.Sources, doc) || out.Cached {
			t.Errorf("recheck %v, cached, after hiding, index not ready: %v %+v", recheck, err, out)
		}
	}
}

// A cached answer is served without PostgreSQL while the index holds
// what it held when it was kept; a question whose min_lsn is the change's
// position (a document hidden, a relationship removed) is never answered
// from before it: the cached answer goes at once, on this node or any.
func TestAskCachedHonoursMinLSN(t *testing.T) {
	w := searchtest.New(t)
	svc, _ := newService(t, w)
	doc, _, lsn := w.Document(t, w.Teacher, "Scales", "Relax the thumb while playing scales slowly.", false)
	w.WaitIndexed(t, lsn)
	ctx := context.Background()
	q := rag.Question{Text: "How should the thumb be in scales?", K: 5}
	for i, want := range []bool{false, true} {
		out, err := svc.Ask(ctx, q, search.Scope{User: w.Student}, &recorder{})
		if err != nil || !cites(out.Sources, doc) || out.Cached != want {
			t.Fatalf("ask %d: cached %v, %v %+v", i, out.Cached, err, out)
		}
	}
	q.MinLSN = relate(t, w, false) // the student loses the teacher
	out, err := svc.Ask(ctx, q, search.Scope{User: w.Student}, &recorder{})
	if err != nil || cites(out.Sources, doc) || out.Cached {
		t.Fatalf("after the relationship's removal, with its min_lsn: %v %+v", err, out)
	}
	// A public document hidden: the stranger's cached answer goes too.
	pub, _, lsn := w.Document(t, w.Teacher, "Arpeggios", "Arpeggios want a loose wrist and a quiet thumb.", true)
	w.WaitIndexed(t, lsn)
	q = rag.Question{Text: "How should the wrist be in arpeggios?", K: 5}
	for i, want := range []bool{false, true} {
		out, err := svc.Ask(ctx, q, search.Scope{User: w.Stranger}, &recorder{})
		if err != nil || !cites(out.Sources, pub) || out.Cached != want {
			t.Fatalf("stranger's ask %d: cached %v, %v %+v", i, out.Cached, err, out)
		}
	}
	q.MinLSN = w.Hide(t, pub)
	if out, err := svc.Ask(ctx, q, search.Scope{User: w.Stranger}, &recorder{}); err != nil || cites(out.Sources, pub) || out.Cached {
		t.Errorf("after hiding, with its min_lsn: %v %+v", err, out)
	}
}

// relate makes or removes the world's teacher–student relationship in
// PostgreSQL and answers the position after it.
func relate(t *testing.T, w *searchtest.World, on bool) index.LSN {
	t.Helper()
	sql := `DELETE FROM relationships WHERE teacher_id = $1 AND student_id = $2`
	if on {
		sql = `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`
	}
	if _, err := w.DB.Pool.Exec(context.Background(), sql, w.Teacher, w.Student); err != nil {
		t.Fatal(err)
	}
	return w.Position(t)
}

// Without the index, answers come from PostgreSQL and nothing is cached
// (no key); an Emitter that stops at the sources ends Ask before any
// answer is produced.
func TestAskWithoutIndexAndStop(t *testing.T) {
	w := searchtest.New(t)
	svc, ready := newService(t, w)
	doc, _, _ := w.Document(t, w.Teacher, "Scales", "Relax the thumb while playing scales slowly.", true)
	ready.Store(false)
	ctx := context.Background()
	rec := &recorder{}
	out, err := svc.Ask(ctx, rag.Question{Text: "thumb scales", K: 5}, search.Scope{User: w.Stranger}, rec)
	if err != nil || rec.key != "" || !cites(out.Sources, doc) || out.Kept {
		t.Fatalf("from PostgreSQL: %v key %q %+v", err, rec.key, out)
	}
	stop := errors.New("stop")
	rec = &recorder{stop: stop}
	if _, err := svc.Ask(ctx, rag.Question{Text: "thumb scales", K: 5}, search.Scope{User: w.Stranger}, rec); !errors.Is(err, stop) || len(rec.deltas) != 0 {
		t.Errorf("stopped at the sources: %v, %d deltas", err, len(rec.deltas))
	}
}

// Nodes that share a cache but fuse or rerank otherwise (other --fusion*
// or --rerank-* settings, or a restart with them) never answer each
// other's retrievals or answers: each asks afresh under its own key.
func TestAskKeyNamesFusionAndReranker(t *testing.T) {
	w := searchtest.New(t)
	_, _, lsn := w.Document(t, w.Teacher, "Scales", "Relax the thumb while playing scales slowly.", true)
	w.WaitIndexed(t, lsn)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var in struct{ Documents []string }
		json.NewDecoder(r.Body).Decode(&in) //nolint:errcheck
		res := []map[string]any{}
		for i := range in.Documents {
			res = append(res, map[string]any{"index": i, "relevance_score": float64(i)})
		}
		json.NewEncoder(rw).Encode(map[string]any{"results": res}) //nolint:errcheck
	}))
	t.Cleanup(srv.Close)
	client := &rerank.Client{Format: rerank.FormatCohere, BaseURL: srv.URL, ModelName: "rerank-a"}
	layers := cache.NewLayers(cache.NewMemory(1000, time.Hour), time.Hour, time.Hour, time.Hour, nil, nil)
	nodes := []struct {
		name   string
		fusion index.Fusion
		rr     *search.RerankConfig
	}{
		{"convex", index.Fusion{}, &search.RerankConfig{Reranker: client, TopN: 10}},
		{"rrf", index.Fusion{Method: index.FusionRRF}, &search.RerankConfig{Reranker: client, TopN: 10}},
		{"other weights", index.Fusion{Weights: index.Weights{Vector: 0.1, BM25: 0.9}}, &search.RerankConfig{Reranker: client, TopN: 10}},
		{"top 20", index.Fusion{}, &search.RerankConfig{Reranker: client, TopN: 20}},
		{"other model", index.Fusion{}, &search.RerankConfig{Reranker: &rerank.Client{Format: rerank.FormatCohere, BaseURL: srv.URL, ModelName: "rerank-b"}, TopN: 10}},
	}
	keys := map[string]string{}
	for _, n := range nodes {
		svc, _ := newServiceWith(t, w, layers, n.fusion, n.rr)
		var rec recorder
		out, err := svc.Ask(context.Background(), rag.Question{Text: "thumb scales", K: 5, Rerank: true}, search.Scope{User: w.Teacher}, &rec)
		if err != nil || out.Cached || out.Reranked == nil || !*out.Reranked {
			t.Errorf("%s: cached %v, reranked %v, %v (a cache shared with another configuration)", n.name, out.Cached, out.Reranked, err)
		}
		if other, ok := keys[rec.key]; ok || rec.key == "" {
			t.Errorf("%s: key %q, as %s's", n.name, rec.key, other)
		}
		keys[rec.key] = n.name
		again, err := svc.Ask(context.Background(), rag.Question{Text: "thumb scales", K: 5, Rerank: true}, search.Scope{User: w.Teacher}, &recorder{})
		if err != nil || !again.Cached {
			t.Errorf("%s: the repeat is not cached: %v", n.name, err)
		}
	}
}
