package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/rerank"
)

// localReranker is a local Workers AI server for
// @cf/baai/bge-reranker-base that scores a context by how often it says
// "nocturne"; down makes it answer 500.
type localReranker struct {
	srv   *httptest.Server
	calls atomic.Int64
	down  atomic.Bool
}

func newLocalReranker(t *testing.T) (*localReranker, *rerank.Client) {
	lr := &localReranker{}
	lr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr.calls.Add(1)
		var in struct {
			Query    string `json:"query"`
			Contexts []struct {
				Text string `json:"text"`
			} `json:"contexts"`
		}
		if lr.down.Load() || r.URL.Path != "/accounts/acct/ai/run/"+rerank.WorkersAIModel || json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, `{"success":false}`, 500)
			return
		}
		var resp []map[string]any
		for i, c := range in.Contexts {
			resp = append(resp, map[string]any{"id": i, "score": float64(strings.Count(strings.ToLower(c.Text), "nocturne"))})
		}
		json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"response": resp}, "success": true}) //nolint:errcheck
	}))
	t.Cleanup(lr.srv.Close)
	return lr, &rerank.Client{Format: rerank.FormatWorkersAI, BaseURL: lr.srv.URL, AccountID: "acct", Timeout: 2 * time.Second}
}

// rerank in search and chat, through the API: asked per query, the hits
// come back in the reranker's order with rerank_score and reranked: true,
// in one round trip; with the provider down they come back in the fused
// order, flagged, with 200 and no tag (the next answer may be reranked);
// the tag depends on rerank; a non-boolean rerank is a 400.
func TestSearchRerank(t *testing.T) {
	lr, client := newLocalReranker(t)
	a := newAPIWith(t, apiSettings{engine: true, reranker: client})
	teacher := a.register("t@example.com", "teacher").AccessToken
	for _, d := range []map[string]any{
		{"title": "Pedalling", "content": "Pedal pedal pedal: the damper pedal just after the chord."},
		{"title": "Nocturnes", "content": "A Chopin nocturne, nocturne and nocturne, with some pedal."},
	} {
		d["source_type"], d["is_public"] = "text", false
		doc := a.createDocument(teacher, d)
		a.process(teacher, doc.Document.ID)
		a.waitDocument(teacher, doc.Document.ID)
	}
	search := func(body map[string]any) (searchAnswer, response) {
		var ans searchAnswer
		r := a.mustStatus(a.call("POST", "/api/search", teacher, body), 200)
		r.decode(t, &ans)
		return ans, r
	}
	var fused searchAnswer
	for deadline := time.Now().Add(10 * time.Second); len(fused.Results) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		fused, _ = search(map[string]any{"query": "pedal", "k": 2})
	}
	if len(fused.Results) != 2 || fused.Results[0].Title != "Pedalling" || fused.Index.Reranked != nil || fused.Results[0].RerankScore != nil || lr.calls.Load() != 0 {
		t.Fatalf("fused: %+v", fused)
	}
	re, r := search(map[string]any{"query": "pedal", "k": 2, "rerank": true})
	if re.Index.Reranked == nil || !*re.Index.Reranked || re.Results[0].Title != "Nocturnes" || re.Results[0].RerankScore == nil || lr.calls.Load() != 1 {
		t.Fatalf("reranked: %+v (calls %d)", re, lr.calls.Load())
	}
	if etag := r.header.Get("ETag"); etag == "" || a.call("POST", "/api/search", teacher, map[string]any{"query": "pedal", "k": 2}, "If-None-Match", etag).status != 200 {
		t.Errorf("the tag of a reranked answer %q revalidates the fused one", etag)
	}
	lr.down.Store(true)
	down, r := search(map[string]any{"query": "pedal", "k": 2, "rerank": true})
	if down.Index.Reranked == nil || *down.Index.Reranked || down.Index.RerankError != "unavailable" || down.Results[0].Title != "Pedalling" ||
		down.Results[0].RerankScore != nil || r.header.Get("ETag") != "" || lr.calls.Load() != 2 {
		t.Errorf("provider down: %+v, ETag %q, calls %d", down.Index, r.header.Get("ETag"), lr.calls.Load())
	}
	var reply map[string]any
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "pedal", "rerank": true}), 200).decode(t, &reply)
	if reply["reranked"] != false || reply["rerank_error"] != "unavailable" || reply["content"] == "" || lr.calls.Load() != 3 {
		t.Errorf("chat with the provider down: %v (calls %d)", reply, lr.calls.Load())
	}
	lr.down.Store(false)
	reply = nil
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "pedal", "rerank": true}), 200).decode(t, &reply)
	if reply["reranked"] != true || reply["sources"].([]any)[0].(map[string]any)["title"] != "Nocturnes" {
		t.Errorf("chat reranked: %v", reply)
	}
	for name, body := range map[string]map[string]any{
		"string": {"query": "x", "rerank": "yes"}, "number": {"query": "x", "rerank": 1}, "object": {"query": "x", "rerank": map[string]any{}},
	} {
		for _, path := range []string{"/api/search", "/api/chat/query"} {
			if r := a.call("POST", path, teacher, body); r.status != 400 || !strings.Contains(string(r.body), "invalid_input") {
				t.Errorf("%s rerank %s: %d %s", path, name, r.status, r.body)
			}
		}
	}
}

// Without a reranker, a requested rerank keeps the fused order and says
// not_configured.
func TestSearchRerankNotConfigured(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	teacher := a.register("t@example.com", "teacher").AccessToken
	var ans searchAnswer
	a.mustStatus(a.call("POST", "/api/search", teacher, map[string]any{"query": "pedal", "rerank": true}), 200).decode(t, &ans)
	if ans.Index.Reranked == nil || *ans.Index.Reranked || ans.Index.RerankError != "not_configured" {
		t.Errorf("index %+v", ans.Index)
	}
}
