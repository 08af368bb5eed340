package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/rag"
)

// internalText matches what a person reading a document's error must never
// see: IP addresses, resolver and dialer text, Go library messages.
var internalText = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b|\[?[0-9a-f]*::[0-9a-f:]*|(?i)lookup|no such host|dial|tcp|:53\b|` +
	`context deadline|Client\.Timeout|readability|ingest:|embed:|rag:|Get "|EOF|connection refused|SQLSTATE`)

// secretMarker stands for what a provider's error body may hold (keys,
// internal hosts, prompts); it must stay in the operators' logs.
const secretMarker = "SECRET-MARKER-4f1c9a"

// A failed fetch stores a sentence and a stable code; the detail (the
// resolver's answer, the dialed address) goes to the logs only.
func TestDocumentFailureIsASentence(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/huge":
			w.Header().Set("Content-Type", "text/html")
			for range 100 {
				w.Write([]byte(strings.Repeat("<p>lorem ipsum dolor</p>", 1000)))
			}
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
		case "/empty":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><head><title></title></head><body><div></div></body></html>"))
		case "/pdf":
			w.Header().Set("Content-Type", "application/pdf")
			w.Write([]byte("%PDF-1.4"))
		case "/forbidden":
			http.Error(w, "no", http.StatusForbidden)
		default:
			http.NotFound(w, r)
		}
	}))
	defer site.Close()
	a := newAPIWith(t, apiSettings{fetchAllow: []string{site.Listener.Addr().String()}, fetchTimeout: 300 * time.Millisecond})
	tok := a.register("t@example.com", "teacher").AccessToken
	for _, tc := range []struct {
		url, code string
		attempts  int // transient failures are retried (5 attempts), permanent ones are not
	}{
		{"http://no-such-host.invalid/lesson", "fetch_failed", 5},
		{"http://localhost/admin", "blocked_address", 1},
		{site.URL + "/missing", "not_found_at_source", 1},
		{site.URL + "/forbidden", "fetch_failed", 1},
		{site.URL + "/huge", "too_large", 1},
		{site.URL + "/slow", "timeout", 5},
		{site.URL + "/empty", "no_text", 1},
		{site.URL + "/pdf", "unsupported", 1},
	} {
		d := a.createDocument(tok, map[string]any{"title": "Source", "source_type": "web", "source_url": tc.url})
		a.process(tok, d.Document.ID)
		e := a.documentError(tok, d.Document.ID)
		switch {
		case e.Status != "failed" || e.Error == nil || *e.Error == "":
			t.Errorf("%s: %+v, want failed with an error", tc.url, e)
		case e.ErrorCode == nil || *e.ErrorCode != tc.code:
			t.Errorf("%s: error_code %v (%q), want %s", tc.url, deref(e.ErrorCode), *e.Error, tc.code)
		case internalText.MatchString(*e.Error):
			t.Errorf("%s: the error %q carries internal text %q", tc.url, *e.Error, internalText.FindString(*e.Error))
		}
		var attempts int
		if err := a.db.Pool.QueryRow(context.Background(), `SELECT attempts FROM jobs WHERE dedupe_key = $1`,
			"ingest:"+d.Document.ID.String()).Scan(&attempts); err != nil || attempts != tc.attempts {
			t.Errorf("%s: %d attempts (%v), want %d", tc.url, attempts, err, tc.attempts)
		}
		// The document's own JSON says the same.
		var doc struct {
			Error     *string `json:"error"`
			ErrorCode *string `json:"error_code"`
		}
		a.mustStatus(a.call("GET", "/api/knowledge/"+d.Document.ID.String(), tok, nil), 200).decode(t, &doc)
		if deref(doc.ErrorCode) != tc.code || deref(doc.Error) != deref(e.Error) {
			t.Errorf("%s: document %v %v, status %v %v", tc.url, deref(doc.ErrorCode), deref(doc.Error), deref(e.ErrorCode), deref(e.Error))
		}
	}
	// The operators' logs keep the detail, with the document and job ids.
	logs := a.logs.String()
	for _, want := range []string{"no such host", "no-such-host.invalid", `"job":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %q", want)
		}
	}
}

// failingProvider speaks the OpenAI wire format and fails with a body that
// holds the secret marker: 500 on embeddings; on chat, 500 before a token,
// or (mid=true) an error event after the first delta.
func failingProvider(t *testing.T, mid bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mid && r.URL.Path == "/v1/chat/completions" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Pedal after \"}}]}\n\n")
			fmt.Fprintf(w, "data: {\"error\":{\"message\":\"%s upstream 10.9.8.7 overloaded\"}}\n\n", secretMarker)
			return
		}
		http.Error(w, `{"error":{"message":"`+secretMarker+` key sk-live-123 at 10.9.8.7 rejected"}}`, http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A provider's error body never reaches a user: not in chat JSON, not in
// an SSE error event, not in a fallback answer's model name; the logs
// keep it with the request id.
func TestChatProviderErrorStaysInLogs(t *testing.T) {
	x, _ := rag.NewExtractive()
	for _, tc := range []struct {
		name     string
		mid      bool
		fallback bool
	}{{"before the first token", false, false}, {"mid-answer", true, false}, {"with fallback", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			llm := failingProvider(t, tc.mid)
			var answerer rag.Provider = &rag.Chat{Kind: "openai", BaseURL: llm.URL, ModelName: "test-llm", Attempts: 1, Terms: x}
			if tc.fallback {
				answerer = &rag.Fallback{Primary: answerer, Secondary: x}
			}
			a := newAPIWith(t, apiSettings{answerer: answerer})
			tok := a.register("t@example.com", "teacher").AccessToken
			d := a.createDocument(tok, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord."})
			a.process(tok, d.Document.ID)
			a.waitDocument(tok, d.Document.ID)
			q := map[string]any{"query": "When do I change the damper pedal?"}
			for _, accept := range []string{"application/json", "text/event-stream"} {
				r := a.call("POST", "/api/chat/query", tok, q, "Accept", accept)
				if strings.Contains(string(r.body), secretMarker) || strings.Contains(string(r.body), "10.9.8.7") {
					t.Errorf("%s: the provider's body reached the user: %s", accept, r.body)
				}
				if tc.fallback {
					continue
				}
				if accept == "text/event-stream" {
					evs := parseSSE(t, r.body)
					if len(evs) == 0 || evs[len(evs)-1].name != "error" {
						t.Errorf("stream: events %+v, want a final error", evs)
					}
				} else if r.status != http.StatusBadGateway {
					t.Errorf("json: %d %s, want 502", r.status, r.body)
				}
				if id := r.header.Get(HeaderRequestID); !logLineHas(a.logs.String(), id, secretMarker) {
					t.Errorf("%s: no log line holds both request id %s and the provider's detail", accept, id)
				}
			}
		})
	}
}

// An embedding provider's error body never reaches a user: not from
// /api/embeddings/generate, not from chat, not in a document's error.
func TestEmbedderErrorStaysInLogs(t *testing.T) {
	prov := failingProvider(t, false)
	emb := &embed.OpenAI{BaseURL: prov.URL, ModelName: "test-embed", Retry: embed.RetryPolicy{Attempts: 1, Timeout: 5 * time.Second}}
	a := newAPIWith(t, apiSettings{embedder: emb})
	tok := a.register("t@example.com", "teacher").AccessToken
	for _, r := range []response{
		a.call("POST", "/api/embeddings/generate", tok, map[string]any{"text": "legato pedalling"}),
		a.call("POST", "/api/chat/query", tok, map[string]any{"query": "legato pedalling"}),
		a.call("POST", "/api/chat/query", tok, map[string]any{"query": "legato pedalling"}, "Accept", "text/event-stream"),
	} {
		if r.status < 500 || strings.Contains(string(r.body), secretMarker) {
			t.Errorf("%d %s", r.status, r.body)
		}
	}
	d := a.createDocument(tok, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord."})
	a.process(tok, d.Document.ID)
	e := a.documentError(tok, d.Document.ID)
	if e.Status != "failed" || e.Error == nil || strings.Contains(*e.Error, secretMarker) || internalText.MatchString(*e.Error) {
		t.Errorf("document %+v (error %q)", e, deref(e.Error))
	}
	if e.ErrorCode == nil || *e.ErrorCode != "failed" {
		t.Errorf("error_code %v, want failed", deref(e.ErrorCode))
	}
	if !strings.Contains(a.logs.String(), secretMarker) {
		t.Error("the logs lack the provider's detail")
	}
}

// logLineHas reports whether one log line holds every part.
func logLineHas(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && p != "" && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
