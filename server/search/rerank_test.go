package search_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/rerank"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/search/searchtest"
)

// rerankServer is a local /rerank server (Cohere's format) that scores a
// document (its title and text) by how often it says "nocturne", or
// fails as told.
type rerankServer struct {
	srv   *httptest.Server
	calls atomic.Int64
	mode  atomic.Value // "ok", "500", "garbage", "slow"
}

func newRerankServer(t *testing.T) *rerankServer {
	rs := &rerankServer{}
	rs.mode.Store("ok")
	rs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.calls.Add(1)
		var in struct {
			Query     string   `json:"query"`
			Documents []string `json:"documents"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch rs.mode.Load() {
		case "500":
			http.Error(w, "down", 500)
			return
		case "garbage":
			w.Write([]byte(`{"results":[{"index":"zero"}]`)) //nolint:errcheck
			return
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		var res []map[string]any
		for i, d := range in.Documents {
			res = append(res, map[string]any{"index": i, "relevance_score": float64(strings.Count(strings.ToLower(d), "nocturne"))})
		}
		json.NewEncoder(w).Encode(map[string]any{"results": res}) //nolint:errcheck
	}))
	t.Cleanup(rs.srv.Close)
	return rs
}

// Against the real engine: the fused order puts the pedal document
// first; the reranker (which favours "nocturne") reorders, scores the
// hits, and costs one round trip. With the provider failing (500,
// garbage, timeout) the fused order comes back, flagged, never an error.
func TestRerankDecorator(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	_, pedal, _ := w.Document(t, w.Teacher, "Pedal", "Pedal pedal pedal: the damper pedal after the chord.", true)
	_, noct, lsn := w.Document(t, w.Teacher, "Nocturnes", "Chopin nocturne, nocturne, nocturne; some pedal.", true)
	w.WaitIndexed(t, lsn)
	rs := newRerankServer(t)
	client := &rerank.Client{Format: rerank.FormatCohere, BaseURL: rs.srv.URL, Timeout: 300 * time.Millisecond}
	rr := search.NewRerank(n.fallback, search.RerankConfig{Reranker: client, TopN: 10})
	ctx := context.Background()
	q := query(w.Teacher, "pedal", lsn)
	q.K = 2

	fused, err := rr.Search(ctx, q)
	if err != nil || len(fused.Hits) != 2 || fused.Hits[0].ChunkID != pedal || fused.Rerank != nil || rs.calls.Load() != 0 {
		t.Fatalf("not asked: %+v %v (calls %d)", fused, err, rs.calls.Load())
	}
	q.Rerank = true
	res, err := rr.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rerank == nil || !res.Rerank.Reranked || order(res) != order2(noct, pedal) {
		t.Fatalf("reranked: %+v", res.Rerank)
	}
	if res.Hits[0].RerankScore == nil || *res.Hits[0].RerankScore != 4 || rs.calls.Load() != 1 {
		t.Errorf("score %v, calls %d", res.Hits[0].RerankScore, rs.calls.Load())
	}
	for _, mode := range []string{"500", "garbage", "slow"} {
		rs.mode.Store(mode)
		before := rs.calls.Load()
		res, err := rr.Search(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		want := map[string]string{"500": "unavailable", "garbage": "bad_response", "slow": "timeout"}[mode]
		if res.Rerank == nil || res.Rerank.Reranked || res.Rerank.Error != want || order(res) != order(fused) {
			t.Errorf("%s: %+v, order %s", mode, res.Rerank, order(res))
		}
		if res.Hits[0].RerankScore != nil || rs.calls.Load()-before != 1 {
			t.Errorf("%s: score %v, %d round trips", mode, res.Hits[0].RerankScore, rs.calls.Load()-before)
		}
	}
	res, err = search.NewRerank(n.fallback, search.RerankConfig{}).Search(ctx, q)
	if err != nil || res.Rerank == nil || res.Rerank.Error != "not_configured" || order(res) != order(fused) {
		t.Errorf("not configured: %+v %v", res.Rerank, err)
	}
}

func order(res search.Result) string {
	var ids []string
	for _, h := range res.Hits {
		ids = append(ids, h.ChunkID.String())
	}
	return strings.Join(ids, ",")
}

func order2(a, b uuid.UUID) string { return a.String() + "," + b.String() }

// A requested rerank of a query with nothing to search (punctuation only:
// an Empty result) still says what came of it, as any other: reranked
// (nothing to send, no round trip) with a reranker, not_configured
// without one.
func TestRerankEmptyQuery(t *testing.T) {
	w := searchtest.New(t)
	n := newNode(t, w)
	rs := newRerankServer(t)
	client := &rerank.Client{Format: rerank.FormatCohere, BaseURL: rs.srv.URL, Timeout: 300 * time.Millisecond}
	q := query(w.Teacher, "?!", 0)
	q.Rerank = true
	res, err := search.NewRerank(n.fallback, search.RerankConfig{Reranker: client, TopN: 10}).Search(context.Background(), q)
	if err != nil || !res.Empty || res.Rerank == nil || !res.Rerank.Reranked || rs.calls.Load() != 0 {
		t.Errorf("with a reranker: empty %v, rerank %+v, %v, %d round trips", res.Empty, res.Rerank, err, rs.calls.Load())
	}
	res, err = search.NewRerank(n.fallback, search.RerankConfig{}).Search(context.Background(), q)
	if err != nil || !res.Empty || res.Rerank == nil || res.Rerank.Error != "not_configured" {
		t.Errorf("without: empty %v, rerank %+v, %v", res.Empty, res.Rerank, err)
	}
}
