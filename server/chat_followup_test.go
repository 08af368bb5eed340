package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/rag"
)

// followupAnswer is a chat answer with the fields a follow-up adds.
type followupAnswer struct {
	chatResult
	StandaloneQuery *string    `json:"standalone_query"`
	MessageID       *uuid.UUID `json:"message_id"`
}

// handCorpus ingests short documents about the two hands (each its own
// chunk) and waits until the node's index holds them; it returns the id
// of the one on left-hand scales.
func handCorpus(a *testAPI, tok string) uuid.UUID {
	a.t.Helper()
	docs := []struct{ title, text string }{
		{"Right-hand scales", "Practise scales with the right hand first: pass the thumb under after the third finger and keep the wrist level."},
		{"Left-hand scales", "Practise scales with the left hand slowly: going up, the third finger crosses over the thumb; keep the wrist loose."},
		{"Waltz bass", "In a waltz the left hand plays the bass note and then two chords. Keep the left hand light."},
		{"Leaps", "For leaps in the left hand, look at the bass note early; the left hand travels in a low arc."},
		{"Pedalling", "Change the damper pedal just after each new chord to avoid blurring the harmony."},
	}
	var leftScales uuid.UUID
	var lsn string
	for _, d := range docs {
		doc := a.createDocument(tok, map[string]any{"title": d.title, "source_type": "text", "content": d.text, "is_public": false})
		a.process(tok, doc.Document.ID)
		st := a.waitDocument(tok, doc.Document.ID)
		if st.Status != "completed" || st.IndexLSN == nil {
			a.t.Fatalf("ingest %q: %+v", d.title, st)
		}
		lsn = *st.IndexLSN
		if d.title == "Left-hand scales" {
			leftScales = doc.Document.ID
		}
	}
	// Wait until the node's index has applied the last one.
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "pedal", "min_lsn": lsn}), 200)
	return leftScales
}

func cites(sources []rag.Source, doc uuid.UUID) bool {
	for _, s := range sources {
		if s.DocumentID == doc {
			return true
		}
	}
	return false
}

// A follow-up in a session is searched with what it refers back to: "and
// the left hand?" after a question on right-hand scales finds the passage
// on left-hand scales, which the bare follow-up does not; a self-contained
// question is searched as asked; the stored answer's id comes back, in
// JSON and in the stream's done event.
func TestChatFollowUp(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	tok := a.register("t@example.com", "teacher").AccessToken
	leftScales := handCorpus(a, tok)
	ask := func(body map[string]any) followupAnswer {
		t.Helper()
		var res followupAnswer
		a.mustStatus(a.call("POST", "/api/chat/query", tok, body), 200).decode(t, &res)
		return res
	}
	bare := ask(map[string]any{"query": "and the left hand?", "k": 2})
	if cites(bare.Sources, leftScales) {
		t.Fatalf("the bare follow-up already finds left-hand scales: %+v", bare.Sources)
	}
	if bare.StandaloneQuery == nil || *bare.StandaloneQuery != "and the left hand?" || bare.MessageID != nil {
		t.Errorf("outside a session: standalone %v, message %v", bare.StandaloneQuery, bare.MessageID)
	}

	var s chatSessionResponse
	a.mustStatus(a.call("POST", "/api/chat/sessions", tok, map[string]any{}), 201).decode(t, &s)
	first := ask(map[string]any{"query": "How do I practise scales with the right hand?", "session_id": s.ID, "k": 2})
	if first.StandaloneQuery == nil || *first.StandaloneQuery != "How do I practise scales with the right hand?" {
		t.Errorf("a first question is searched as asked: %v", first.StandaloneQuery)
	}
	follow := ask(map[string]any{"query": "and the left hand?", "session_id": s.ID, "k": 2})
	if !cites(follow.Sources, leftScales) {
		t.Errorf("the follow-up misses left-hand scales: standalone %v, sources %+v", follow.StandaloneQuery, follow.Sources)
	}
	sq := deref(follow.StandaloneQuery)
	if !strings.Contains(sq, "scales") || !strings.Contains(sq, "left") || strings.Contains(sq, "right") {
		t.Errorf("standalone query %q", sq)
	}
	self := ask(map[string]any{"query": "When should I change the damper pedal?", "session_id": s.ID})
	if deref(self.StandaloneQuery) != "When should I change the damper pedal?" {
		t.Errorf("a self-contained question was rewritten: %q", deref(self.StandaloneQuery))
	}

	// message_id names the stored answer.
	var got struct {
		Messages []chatMessageResponse `json:"messages"`
	}
	a.mustStatus(a.call("GET", "/api/chat/sessions/"+s.ID.String(), tok, nil), 200).decode(t, &got)
	if len(got.Messages) != 6 {
		t.Fatalf("%d messages", len(got.Messages))
	}
	for i, res := range []followupAnswer{first, follow, self} {
		m := got.Messages[2*i+1]
		if res.MessageID == nil || *res.MessageID != m.ID || m.Role != "assistant" || m.Content != res.Content {
			t.Errorf("answer %d: message_id %v, stored %+v", i, res.MessageID, m)
		}
	}
	// The stream's done event carries them too (after sources and deltas);
	// the follow-up now refers to the pedal question.
	r := a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": "and how often?", "session_id": s.ID, "k": 2},
		"Accept", "text/event-stream"), 200)
	events := parseSSE(t, r.body)
	if len(events) < 3 || events[0].name != "sources" || events[len(events)-1].name != "done" {
		t.Fatalf("events %+v", events)
	}
	var done followupAnswer
	decodeJSON(t, events[len(events)-1].data, &done)
	if done.MessageID == nil || !strings.Contains(deref(done.StandaloneQuery), "damper pedal") || done.Content == "" {
		t.Errorf("done %+v", done)
	}

	// Another user's session: 404, nothing stored or carried.
	other := a.register("o@example.com", "teacher").AccessToken
	if r := a.call("POST", "/api/chat/query", other, map[string]any{"query": "and the left hand?", "session_id": s.ID}); r.status != 404 {
		t.Errorf("another user's session: %d", r.status)
	}
}

func decodeJSON(t *testing.T, data string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(data), v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
}

// With a hosted model configured, it makes the follow-up standalone (an
// OpenAI-compatible server here); when it fails, the rule does.
func TestChatFollowUpModel(t *testing.T) {
	var down atomic.Bool
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if down.Load() || r.URL.Path != "/v1/chat/completions" || !bytes.Contains(body, []byte("right hand")) {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"How should I practise scales with the left hand?"}}]}`)
	}))
	defer llm.Close()
	rule, err := rag.NewRule()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a := newAPIWith(t, apiSettings{engine: true, rewriter: &rag.ModelRewriter{Rule: rule, Timeout: 2 * time.Second,
		Chat: &rag.Chat{Kind: "openai", BaseURL: llm.URL, ModelName: "rewriter"}, Logger: slog.New(slog.NewJSONHandler(logs, nil))}})
	tok := a.register("t@example.com", "teacher").AccessToken
	leftScales := handCorpus(a, tok)
	var s chatSessionResponse
	a.mustStatus(a.call("POST", "/api/chat/sessions", tok, map[string]any{}), 201).decode(t, &s)
	ask := func(q string) followupAnswer {
		t.Helper()
		var res followupAnswer
		a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": q, "session_id": s.ID, "k": 2}), 200).decode(t, &res)
		return res
	}
	ask("How do I practise scales with the right hand?")
	res := ask("and the left hand?")
	if deref(res.StandaloneQuery) != "How should I practise scales with the left hand?" || !cites(res.Sources, leftScales) {
		t.Errorf("the model's rewrite: %v, sources %+v", deref(res.StandaloneQuery), res.Sources)
	}
	down.Store(true)
	res = ask("and the left hand?")
	if q := deref(res.StandaloneQuery); !strings.HasPrefix(q, "and the left hand? (") || !strings.Contains(q, "scales") {
		t.Errorf("with the model down, the rule's rewrite: %q", q)
	}
	if !strings.Contains(logs.String(), "the built-in rule did") {
		t.Error("the model's failure is not logged")
	}
}
