package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
	"github.com/sostenuto/sostenuto/server/rag"
)

func TestChatSessions(t *testing.T) {
	a := newAPI(t)
	alice := a.register("alice@example.com", "student").AccessToken
	bob := a.register("bob@example.com", "student").AccessToken
	root := a.admin("root@example.com").AccessToken

	var s chatSessionResponse
	a.mustStatus(a.call("POST", "/api/chat/sessions", alice, map[string]any{"title": "  Pedalling  "}), 201).decode(t, &s)
	if s.Title != "Pedalling" || s.ID == uuid.Nil {
		t.Fatalf("session %+v", s)
	}
	var untitled chatSessionResponse
	a.mustStatus(a.call("POST", "/api/chat/sessions", alice, nil), 201).decode(t, &untitled)
	if r := a.call("POST", "/api/chat/sessions", alice, map[string]any{"title": strings.Repeat("x", 201)}); r.status != 400 {
		t.Errorf("long title: %d", r.status)
	}
	var list List[chatSessionResponse]
	a.mustStatus(a.call("GET", "/api/chat/sessions", alice, nil), 200).decode(t, &list)
	if len(list.Items) != 2 || list.Items[0].ID != untitled.ID {
		t.Errorf("alice's sessions %+v", list.Items)
	}
	a.mustStatus(a.call("GET", "/api/chat/sessions", bob, nil), 200).decode(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("bob sees %d sessions", len(list.Items))
	}
	// Only the owner sees or deletes a session; others get 404.
	path := "/api/chat/sessions/" + s.ID.String()
	for _, tok := range []string{bob, root} {
		if r := a.call("GET", path, tok, nil); r.status != 404 {
			t.Errorf("a stranger reads a session: %d", r.status)
		}
		if r := a.call("DELETE", path, tok, nil); r.status != 404 {
			t.Errorf("a stranger deletes a session: %d", r.status)
		}
	}
	var got struct {
		Session  chatSessionResponse   `json:"session"`
		Messages []chatMessageResponse `json:"messages"`
	}
	a.mustStatus(a.call("GET", path, alice, nil), 200).decode(t, &got)
	if got.Session.ID != s.ID || got.Messages == nil || len(got.Messages) != 0 {
		t.Errorf("session %+v", got)
	}
	a.mustStatus(a.call("DELETE", path, alice, nil), 204)
	a.mustStatus(a.call("GET", path, alice, nil), 404)
	a.mustStatus(a.call("GET", "/api/chat/sessions/not-a-uuid", alice, nil), 404)
}

type chatResult struct {
	Content    string       `json:"content"`
	Sources    []rag.Source `json:"sources"`
	Confidence string       `json:"confidence"`
	Model      string       `json:"model"`
	Timings    struct {
		EmbedMs  *int64 `json:"embed_ms"`
		SearchMs *int64 `json:"search_ms"`
		LLMMs    *int64 `json:"llm_ms"`
	} `json:"timings"`
}

func TestChatQuery(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher").AccessToken
	stranger := a.register("s@example.com", "student").AccessToken
	content := "The damper pedal lifts every damper so strings ring on. Change the pedal just after each new chord, " +
		"lifting and pressing again in one motion. Too much pedal blurs the harmony.\n\n" +
		"Scales build even fingers. Practise them slowly with a metronome, hands separately first."
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling basics", "source_type": "text", "content": content, "is_public": false})
	a.process(teacher, d.Document.ID)
	if st := a.waitDocument(teacher, d.Document.ID); st.Status != "completed" {
		t.Fatalf("ingest: %+v", st)
	}

	var res chatResult
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When should I change the damper pedal?"}), 200).decode(t, &res)
	if !strings.Contains(res.Content, "[1]") || !strings.Contains(res.Content, "chord") || len(res.Sources) == 0 {
		t.Fatalf("answer %+v", res)
	}
	if s := res.Sources[0]; s.N != 1 || s.DocumentID != d.Document.ID || s.Title != "Pedalling basics" || s.Page != 1 || s.Snippet == "" {
		t.Errorf("source %+v", s)
	}
	if res.Model != rag.ExtractiveModel || res.Confidence == "" || res.Timings.LLMMs == nil {
		t.Errorf("answer %+v", res)
	}
	// A private document never answers a stranger.
	a.mustStatus(a.call("POST", "/api/chat/query", stranger, map[string]any{"query": "When should I change the damper pedal?"}), 200).decode(t, &res)
	if len(res.Sources) != 0 || res.Content != rag.NothingFound || res.Confidence != "LOW" {
		t.Errorf("a stranger's answer %+v", res)
	}

	// In a session, the exchange is stored.
	var s chatSessionResponse
	a.mustStatus(a.call("POST", "/api/chat/sessions", teacher, map[string]any{}), 201).decode(t, &s)
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "How do I practise scales?", "session_id": s.ID}), 200).decode(t, &res)
	var got struct {
		Messages []chatMessageResponse `json:"messages"`
	}
	a.mustStatus(a.call("GET", "/api/chat/sessions/"+s.ID.String(), teacher, nil), 200).decode(t, &got)
	if len(got.Messages) != 2 || got.Messages[0].Role != "user" || got.Messages[1].Role != "assistant" ||
		got.Messages[1].Content != res.Content || got.Messages[1].Confidence == nil || *got.Messages[1].Confidence != res.Confidence {
		t.Errorf("messages %+v", got.Messages)
	}
	// Someone else's session: 404, nothing answered or stored.
	if r := a.call("POST", "/api/chat/query", stranger, map[string]any{"query": "scales", "session_id": s.ID}); r.status != 404 {
		t.Errorf("a stranger's session: %d", r.status)
	}

	// SSE: sources, deltas, done (the same object as the JSON answer).
	r := a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When should I change the damper pedal?"}, "Accept", "text/event-stream"), 200)
	if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := parseSSE(t, r.body)
	if len(events) < 3 || events[0].name != "sources" || events[len(events)-1].name != "done" {
		t.Fatalf("events %+v", events)
	}
	var deltas strings.Builder
	for _, e := range events[1 : len(events)-1] {
		if e.name != "delta" {
			t.Fatalf("event %q between sources and done", e.name)
		}
		var d struct{ Text string }
		json.Unmarshal([]byte(e.data), &d)
		deltas.WriteString(d.Text)
	}
	var done chatResult
	json.Unmarshal([]byte(events[len(events)-1].data), &done)
	if done.Content != deltas.String() || done.Content == "" || len(done.Sources) == 0 {
		t.Errorf("done %q, deltas %q", done.Content, deltas.String())
	}

	for name, body := range map[string]any{
		"empty":       map[string]any{"query": " "},
		"k":           map[string]any{"query": "x", "k": 21},
		"bad session": map[string]any{"query": "x", "session_id": "nope"},
		"unknown":     map[string]any{"query": "x", "stream": true},
	} {
		if r := a.call("POST", "/api/chat/query", teacher, body); r.status != 400 {
			t.Errorf("%s: %d", name, r.status)
		}
	}
}

type sseEvent struct{ name, data string }

func parseSSE(t *testing.T, body []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data += strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

// A hosted model that is down: the extractive answer stands in, and the
// answer's model says so; a working one streams its own words.
func TestChatHostedModel(t *testing.T) {
	x, _ := rag.NewExtractive()
	var down atomic.Bool
	down.Store(true)
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte("Change the damper pedal")) {
			http.Error(w, "the prompt lacks the passage", 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"After each chord [1].\"}}]}\n\ndata: [DONE]\n\n")
	}))
	defer llm.Close()
	a := newAPIWith(t, apiSettings{answerer: &rag.Fallback{
		Primary:   &rag.Chat{Kind: "openai", BaseURL: llm.URL, ModelName: "test-llm", Attempts: 1, Terms: x},
		Secondary: x,
	}})
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)
	var res chatResult
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When do I change the damper pedal?"}), 200).decode(t, &res)
	if !strings.HasPrefix(res.Model, rag.ExtractiveModel+" (fallback:") || !strings.Contains(res.Content, "[1]") {
		t.Errorf("with the model down: %+v", res)
	}
	down.Store(false)
	a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": "When do I change the damper pedal?"}), 200).decode(t, &res)
	if res.Model != "test-llm" || res.Content != "After each chord [1]." || res.Confidence == "" {
		t.Errorf("with the model up: %+v", res)
	}
}

// The same question twice is answered from the cache (when the local
// index answers); another user never gets it; a change in what may be seen
// shows in the next answers.
func TestChatCache(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)
	type cachedResult struct {
		chatResult
		Cached bool `json:"cached"`
	}
	ask := func(tok, q string) cachedResult {
		var res cachedResult
		a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": q}), 200).decode(t, &res)
		return res
	}
	waitAnswer := func(tok string, ok func(cachedResult) bool) cachedResult {
		deadline := time.Now().Add(10 * time.Second)
		for {
			res := ask(tok, "When do I change the damper pedal?")
			if ok(res) || time.Now().After(deadline) {
				return res
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	first := waitAnswer(teacher, func(r cachedResult) bool { return len(r.Sources) > 0 }) // the index has it
	second := ask(teacher, "  when do I change the DAMPER pedal? ")
	if !second.Cached || second.Content != first.Content || len(second.Sources) != len(first.Sources) {
		t.Errorf("first %+v, second %+v", first, second)
	}
	// Another user does not get this user's cached answer.
	stranger := a.register("s@example.com", "student").AccessToken
	if res := ask(stranger, "When do I change the damper pedal?"); len(res.Sources) != 0 || res.Cached {
		t.Errorf("the stranger got %+v", res)
	}
	// Made public: the stranger finds it as soon as the index has it.
	if _, err := a.db.Pool.Exec(t0(), `UPDATE documents SET is_public = true WHERE id = $1`, d.Document.ID); err != nil {
		t.Fatal(err)
	}
	if res := waitAnswer(stranger, func(r cachedResult) bool { return len(r.Sources) > 0 }); len(res.Sources) == 0 {
		t.Errorf("after the change: %+v", res)
	}
	// Made private again: a cached answer that cites it goes as soon as
	// the index applies the change (within the lag bound), at once for a
	// question whose min_lsn is the change's position; a new question is
	// re-checked in PostgreSQL, before the index even knows.
	if res := ask(stranger, "When do I change the damper pedal?"); !res.Cached { // cached now
		t.Fatalf("not cached: %+v", res)
	}
	if _, err := a.db.Pool.Exec(t0(), `UPDATE documents SET is_public = false WHERE id = $1`, d.Document.ID); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := a.db.Pool.QueryRow(t0(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	var res cachedResult
	a.mustStatus(a.call("POST", "/api/chat/query", stranger, map[string]any{"query": "When do I change the damper pedal?", "min_lsn": lsn}), 200).decode(t, &res)
	if len(res.Sources) != 0 || res.Cached {
		t.Errorf("a cached answer outlived the document's visibility (min_lsn %s): %+v", lsn, res)
	}
	// Embeddings are cached too.
	var e1, e2 embeddingResponse
	a.mustStatus(a.call("POST", "/api/embeddings/generate", teacher, map[string]any{"text": "Relax the wrist."}), 200).decode(t, &e1)
	a.mustStatus(a.call("POST", "/api/embeddings/generate", teacher, map[string]any{"text": "relax the  wrist."}), 200).decode(t, &e2)
	if e1.Cached || !e2.Cached || len(e2.Embedding) != len(e1.Embedding) {
		t.Errorf("embeddings cached %v %v", e1.Cached, e2.Cached)
	}
}

// Citations point at the right page of a real multi-page PDF.
func TestChatCitesPDFPages(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	topics := map[int]string{
		1: "Posture: sit at the front half of the bench with relaxed shoulders.",
		2: "Scales: practise scales slowly with a metronome, hands separately first.",
		3: "Pedalling: change the damper pedal just after each new chord to avoid blurring.",
		4: "Trills: begin trills slowly and evenly from the upper note in Baroque music.",
	}
	body := pdftest.Generate(4, func(i int) string {
		var b strings.Builder
		for range 40 { // a page of text, so each page makes its own chunk
			b.WriteString(topics[i] + "\n")
		}
		return b.String()
	})
	d := a.createDocument(tok, map[string]any{"title": "Method book", "source_type": "pdf", "is_public": false})
	if st := a.upload(projectWithUpload{Upload: *d.Upload}, body); st != 200 {
		t.Fatalf("upload %d", st)
	}
	a.process(tok, d.Document.ID)
	if st := a.waitDocument(tok, d.Document.ID); st.Status != "completed" {
		t.Fatalf("status %+v", st)
	}
	for page, q := range map[int]string{3: "When should I change the damper pedal?", 4: "How do I begin trills in Baroque music?"} {
		var res chatResult
		a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": q}), 200).decode(t, &res)
		if len(res.Sources) == 0 || !strings.Contains(res.Content, "[1]") {
			t.Fatalf("%q: %+v", q, res)
		}
		if s := res.Sources[0]; s.Page != page || s.DocumentID != d.Document.ID || !strings.Contains(s.Snippet, strings.SplitN(topics[page], ":", 2)[0]) {
			t.Errorf("%q: first source %+v, want page %d", q, s, page)
		}
	}
}
