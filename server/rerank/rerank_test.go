package rerank_test

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

	"github.com/sostenuto/sostenuto/server/rerank"
)

// overlap scores a passage by the query words it contains: what the
// local servers below answer, in each provider's wire format.
func overlap(query, passage string) float64 {
	n := 0.0
	for _, w := range strings.Fields(strings.ToLower(query)) {
		if strings.Contains(strings.ToLower(passage), w) {
			n++
		}
	}
	return n
}

// provider is a local server speaking one format; calls counts requests.
type provider struct {
	srv   *httptest.Server
	calls atomic.Int64
	last  atomic.Value // the last request's body
}

func newProvider(t *testing.T, path string, answer func(body map[string]any) any) *provider {
	t.Helper()
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != path || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"error":"bad route or key"}`, http.StatusNotFound)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.last.Store(body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer(body)) //nolint:errcheck
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m["text"].(string))
		} else {
			out = append(out, x.(string))
		}
	}
	return out
}

// Each format's server answers its results best first (not in input
// order), as the real providers do; the client puts them back.
func workersAI(body map[string]any) any {
	var resp []map[string]any
	texts := strs(body["contexts"])
	for i := len(texts) - 1; i >= 0; i-- {
		resp = append(resp, map[string]any{"id": i, "score": overlap(body["query"].(string), texts[i])})
	}
	return map[string]any{"result": map[string]any{"response": resp}, "success": true, "errors": []any{}, "messages": []any{}}
}

func cohere(body map[string]any) any {
	var res []map[string]any
	texts := strs(body["documents"])
	for i := len(texts) - 1; i >= 0; i-- {
		res = append(res, map[string]any{"index": i, "relevance_score": overlap(body["query"].(string), texts[i])})
	}
	return map[string]any{"id": "x", "results": res, "meta": map[string]any{}}
}

func tei(body map[string]any) any {
	var res []map[string]any
	texts := strs(body["texts"])
	for i := len(texts) - 1; i >= 0; i-- {
		res = append(res, map[string]any{"index": i, "score": overlap(body["query"].(string), texts[i])})
	}
	return res
}

var passages = []string{"Scales in thirds.", "The damper pedal after the chord.", "Damper pedal and chord and pedal timing."}

// Every format round-trips: one request in the format's shape, the
// scores back in the passages' order.
func TestClientFormats(t *testing.T) {
	for _, c := range []struct {
		name, path, format string
		answer             func(map[string]any) any
		check              func(t *testing.T, body map[string]any)
	}{
		{"workers-ai", "/accounts/acct/ai/run/@cf/baai/bge-reranker-base", rerank.FormatWorkersAI, workersAI, func(t *testing.T, b map[string]any) {
			if b["top_k"].(float64) != 3 || len(b["contexts"].([]any)) != 3 {
				t.Errorf("workers-ai body %v", b)
			}
		}},
		{"cohere", "/v1/rerank", rerank.FormatCohere, cohere, func(t *testing.T, b map[string]any) {
			if b["model"] != "rerank-m" || b["top_n"].(float64) != 3 || len(b["documents"].([]any)) != 3 {
				t.Errorf("cohere body %v", b)
			}
		}},
		{"tei", "/rerank", rerank.FormatTEI, tei, func(t *testing.T, b map[string]any) {
			if len(b["texts"].([]any)) != 3 || b["query"] != "damper pedal" {
				t.Errorf("tei body %v", b)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newProvider(t, c.path, c.answer)
			base := p.srv.URL
			if c.format == rerank.FormatCohere {
				base += "/v1/"
			}
			cl := &rerank.Client{Format: c.format, BaseURL: base, AccountID: "acct", APIKey: "k", ModelName: map[bool]string{true: "rerank-m"}[c.format == rerank.FormatCohere]}
			got, err := cl.Rerank(context.Background(), "damper pedal", passages)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || got[0] != 0 || got[1] != 2 || got[2] != 2 {
				t.Errorf("scores %v", got)
			}
			if p.calls.Load() != 1 {
				t.Errorf("%d round trips", p.calls.Load())
			}
			c.check(t, p.last.Load().(map[string]any))
		})
	}
}

// Failures are classified, never retried: an error status, a timeout,
// and each kind of malformed body.
func TestClientFailures(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		delay  time.Duration
		want   error
		reason string
	}{
		{"500", 500, `{"error":"boom"}`, 0, rerank.ErrUnavailable, "unavailable"},
		{"429", 429, `{}`, 0, rerank.ErrUnavailable, "unavailable"},
		{"timeout", 200, `{"results":[]}`, 2 * time.Second, rerank.ErrTimeout, "timeout"},
		{"not json", 200, `<html>oops`, 0, rerank.ErrBadResponse, "bad_response"},
		{"too few", 200, `{"results":[{"index":0,"relevance_score":1}]}`, 0, rerank.ErrBadResponse, "bad_response"},
		{"index out of range", 200, `{"results":[{"index":0,"relevance_score":1},{"index":1,"relevance_score":1},{"index":7,"relevance_score":1}]}`, 0, rerank.ErrBadResponse, "bad_response"},
		{"repeated index", 200, `{"results":[{"index":0,"relevance_score":1},{"index":0,"relevance_score":1},{"index":1,"relevance_score":1}]}`, 0, rerank.ErrBadResponse, "bad_response"},
		{"missing score", 200, `{"results":[{"index":0},{"index":1,"relevance_score":1},{"index":2,"relevance_score":1}]}`, 0, rerank.ErrBadResponse, "bad_response"},
		{"huge", 200, `{"results":"` + strings.Repeat("x", 2<<20) + `"}`, 0, rerank.ErrBadResponse, "bad_response"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if c.delay > 0 {
					select {
					case <-time.After(c.delay):
					case <-r.Context().Done():
					}
				}
				w.WriteHeader(c.status)
				w.Write([]byte(c.body)) //nolint:errcheck
			}))
			defer srv.Close()
			cl := &rerank.Client{Format: rerank.FormatCohere, BaseURL: srv.URL, Timeout: 200 * time.Millisecond}
			start := time.Now()
			_, err := cl.Rerank(context.Background(), "damper pedal", passages)
			if !errors.Is(err, c.want) || rerank.Reason(err) != c.reason {
				t.Fatalf("err %v (%s), want %v", err, rerank.Reason(err), c.want)
			}
			if calls.Load() != 1 {
				t.Errorf("%d round trips, want 1", calls.Load())
			}
			if c.delay > 0 && time.Since(start) > time.Second {
				t.Errorf("the timeout took %v", time.Since(start))
			}
		})
	}
}

// Workers AI's envelope: success false or no result is malformed; a
// closed port is unavailable.
func TestClientWorkersAIEnvelope(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"result":null,"success":false,"errors":[{"message":"x"}]}`)) //nolint:errcheck
	}))
	cl := &rerank.Client{Format: rerank.FormatWorkersAI, BaseURL: srv.URL, AccountID: "a"}
	if _, err := cl.Rerank(context.Background(), "q", passages); !errors.Is(err, rerank.ErrBadResponse) {
		t.Errorf("success false: %v", err)
	}
	srv.Close()
	if _, err := cl.Rerank(context.Background(), "q", passages); !errors.Is(err, rerank.ErrUnavailable) {
		t.Errorf("closed server: %v", err)
	}
	if got, err := cl.Rerank(context.Background(), "q", nil); err != nil || len(got) != 0 {
		t.Errorf("no passages: %v %v", got, err)
	}
}
