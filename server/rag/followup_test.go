package rag_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/rag"
)

func mustRule(t *testing.T) *rag.Rule {
	t.Helper()
	r, err := rag.NewRule()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRuleStandalone(t *testing.T) {
	rule := mustRule(t)
	scales := []rag.Turn{{Question: "How do I practise scales with the right hand?", Answer: "Slowly, thumb under. [1]"}}
	tests := []struct {
		name     string
		history  []rag.Turn
		question string
		want     string
	}{
		{"no history", nil, "and the left hand?", "and the left hand?"},
		{"connective, substitute", scales, "and the left hand?", "and the left hand? (practise scales)"},
		{"what about", scales, "What about arpeggios?", "What about arpeggios? (practise scales right hand)"},
		{"pronoun", scales, "How fast should I play them?", "How fast should I play them? (practise scales right hand)"},
		{"short", scales, "Why?", "Why? (practise scales right hand)"},
		{"self-contained", scales, "When should I change the damper pedal?", "When should I change the damper pedal?"},
		{"self-contained with that", scales, "Which exercises strengthen fingers that collapse at the first joint?",
			"Which exercises strengthen fingers that collapse at the first joint?"},
		{"chain", append(scales, rag.Turn{Question: "and the left hand?"}), "how fast?",
			"how fast? (left hand practise scales)"},
		{"second movement", []rag.Turn{{Question: "How do I pedal the first movement of the Moonlight Sonata?"}},
			"what about the second movement?", "what about the second movement? (pedal moonlight sonata)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rule.Rewrite(context.Background(), tc.history, tc.question)
			if err != nil || got != tc.want {
				t.Errorf("Rewrite(%q) = %q, %v; want %q", tc.question, got, err, tc.want)
			}
		})
	}
}

// chatServer speaks the OpenAI chat-completions wire format without
// streaming; answer decides each reply.
type chatServer struct {
	mu       sync.Mutex
	requests []map[string]any
	auth     []string
	answer   func(w http.ResponseWriter, r *http.Request)
}

func (c *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body) //nolint:errcheck // checked through requests
	c.mu.Lock()
	c.requests = append(c.requests, body)
	c.auth = append(c.auth, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
	answer := c.answer
	c.mu.Unlock()
	answer(w, r)
}

func (c *chatServer) answerWith(f func(w http.ResponseWriter, r *http.Request)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = f
}

func completion(w http.ResponseWriter, content string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`, content)
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The hosted rewrite: the model's question when it answers; the rule's,
// and a warning in the log, when it fails, is slow or says nothing.
func TestModelRewriter(t *testing.T) {
	srv := &chatServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	logs := &logBuffer{}
	m := &rag.ModelRewriter{Chat: &rag.Chat{Kind: "openai", BaseURL: ts.URL, ModelName: "rewriter", APIKey: "k"},
		Rule: mustRule(t), Timeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	history := []rag.Turn{{Question: "How do I practise scales with the right hand?", Answer: strings.Repeat("Thumb under. ", 100)}}
	ctx := context.Background()

	srv.answerWith(func(w http.ResponseWriter, _ *http.Request) {
		completion(w, "\"How do I practise scales with the left hand?\"\n")
	})
	got, err := m.Rewrite(ctx, history, "and the left hand?")
	if err != nil || got != "How do I practise scales with the left hand?" {
		t.Fatalf("Rewrite = %q, %v", got, err)
	}
	req := srv.requests[0]
	msgs, _ := req["messages"].([]any)
	if req["model"] != "rewriter" || req["stream"] != false || len(msgs) != 2 || srv.auth[0] != "POST /v1/chat/completions Bearer k" {
		t.Fatalf("request %v %v", srv.auth[0], req)
	}
	user, _ := msgs[1].(map[string]any)["content"].(string)
	if !strings.Contains(user, "Q: How do I practise scales with the right hand?") || !strings.Contains(user, "Last question: and the left hand?") ||
		len([]rune(user)) > 700 {
		t.Errorf("prompt %q", user)
	}
	// No history: nothing is sent.
	if got, _ := m.Rewrite(ctx, nil, " Why? "); got != "Why?" || len(srv.requests) != 1 {
		t.Errorf("without history: %q after %d requests", got, len(srv.requests))
	}

	rule := "and the left hand? (practise scales)"
	failures := map[string]func(w http.ResponseWriter, r *http.Request){
		"status": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		},
		"slow": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			completion(w, "too late")
		},
		"empty":     func(w http.ResponseWriter, _ *http.Request) { completion(w, "  \n ") },
		"malformed": func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html>") },
		"overlong":  func(w http.ResponseWriter, _ *http.Request) { completion(w, strings.Repeat("scales ", 300)) },
	}
	for name, answer := range failures {
		t.Run(name, func(t *testing.T) {
			srv.answerWith(answer)
			before := strings.Count(logs.String(), "the built-in rule did")
			start := time.Now()
			got, err := m.Rewrite(ctx, history, "and the left hand?")
			if err != nil || got != rule {
				t.Errorf("Rewrite = %q, %v; want the rule's %q", got, err, rule)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v, past the timeout", d)
			}
			if strings.Count(logs.String(), "the built-in rule did") != before+1 {
				t.Errorf("no warning logged: %s", logs)
			}
		})
	}
}

// Workers AI's wire format: /accounts/{id}/ai/run/{model}, result.response.
func TestModelRewriterWorkersAI(t *testing.T) {
	srv := &chatServer{answer: func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"result":{"response":"How do I practise scales with the left hand?"},"success":true,"errors":[]}`)
	}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	m := &rag.ModelRewriter{Chat: &rag.Chat{Kind: "workers-ai", BaseURL: ts.URL, AccountID: "acc", ModelName: "@cf/x", APIKey: "tok"}, Rule: mustRule(t)}
	got, err := m.Rewrite(context.Background(), []rag.Turn{{Question: "How do I practise scales with the right hand?"}}, "and the left hand?")
	if err != nil || got != "How do I practise scales with the left hand?" || srv.auth[0] != "POST /accounts/acc/ai/run/@cf/x Bearer tok" {
		t.Errorf("Rewrite = %q, %v (%v)", got, err, srv.auth)
	}
}
