package server

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// feedbackItem is one entry of the admin list.
type feedbackItem struct {
	MessageID uuid.UUID `json:"message_id"`
	Question  string    `json:"question"`
	Answer    string    `json:"answer"`
	Sources   []struct {
		DocumentID uuid.UUID `json:"document_id"`
	} `json:"sources"`
	Rating    string `json:"rating"`
	Comment   string `json:"comment"`
	CreatedAt string `json:"created_at"`
}

// feedbackRows counts the stored ratings (as the table owner).
func (a *testAPI) feedbackRows(where string) int {
	a.t.Helper()
	var n int
	if err := a.db.Pool.QueryRow(t0(), "SELECT count(*) FROM chat_feedback WHERE "+where).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n
}

// The owner of a session rates its answers (a new rating replaces the
// old); questions, other people's messages and bad input change nothing;
// administrators list the ratings with their questions, by rating and page
// by page; the counter counts them.
func TestChatFeedback(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	other := a.register("o@example.com", "student").AccessToken
	root := a.admin("root@example.com").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(tok, d.Document.ID)
	a.waitDocument(tok, d.Document.ID)
	var s chatSessionResponse
	a.mustStatus(a.call("POST", "/api/chat/sessions", tok, map[string]any{}), 201).decode(t, &s)
	var first, second followupAnswer
	a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": "When do I change the damper pedal?", "session_id": s.ID}), 200).decode(t, &first)
	a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": "What does too much pedal do?", "session_id": s.ID}), 200).decode(t, &second)
	if first.MessageID == nil || second.MessageID == nil {
		t.Fatalf("no message ids: %+v %+v", first, second)
	}
	rate := func(tok string, id uuid.UUID, body map[string]any) response {
		return a.call("POST", "/api/chat/messages/"+id.String()+"/feedback", tok, body)
	}
	a.mustStatus(rate(tok, *first.MessageID, map[string]any{"rating": "up", "comment": "  Clear.  "}), 204)

	// Refused, and nothing changes.
	var msgs struct {
		Messages []chatMessageResponse `json:"messages"`
	}
	a.mustStatus(a.call("GET", "/api/chat/sessions/"+s.ID.String(), tok, nil), 200).decode(t, &msgs)
	refused := []struct {
		name   string
		tok    string
		id     uuid.UUID
		body   map[string]any
		status int
		code   string
	}{
		{"a question", tok, msgs.Messages[0].ID, map[string]any{"rating": "down"}, 400, CodeInvalidInput},
		{"bad rating", tok, *first.MessageID, map[string]any{"rating": "meh"}, 400, CodeInvalidInput},
		{"no rating", tok, *first.MessageID, map[string]any{"comment": "x"}, 400, CodeInvalidInput},
		{"long comment", tok, *first.MessageID, map[string]any{"rating": "down", "comment": strings.Repeat("é", 2001)}, 400, CodeInvalidInput},
		{"NUL in comment", tok, *first.MessageID, map[string]any{"rating": "down", "comment": "a\x00b"}, 400, CodeInvalidInput},
		{"unknown field", tok, *first.MessageID, map[string]any{"rating": "down", "stars": 5}, 400, CodeInvalidInput},
		{"another user", other, *first.MessageID, map[string]any{"rating": "down"}, 404, CodeNotFound},
		{"an administrator", root, *first.MessageID, map[string]any{"rating": "down"}, 404, CodeNotFound},
		{"no such message", tok, uuid.New(), map[string]any{"rating": "down"}, 404, CodeNotFound},
	}
	for _, tc := range refused {
		r := rate(tc.tok, tc.id, tc.body)
		if r.status != tc.status || r.problem(t).Code != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	if n := a.feedbackRows(fmt.Sprintf("message_id = '%s' AND rating = 'up' AND comment = 'Clear.'", *first.MessageID)); n != 1 || a.feedbackRows("true") != 1 {
		t.Errorf("the refused ratings changed something: %d rows", a.feedbackRows("true"))
	}
	a.mustStatus(rate(tok, *first.MessageID, map[string]any{"rating": "up", "comment": strings.Repeat("é", 2000)}), 204)

	// A new rating replaces the old one; the other answer is rated too.
	a.mustStatus(rate(tok, *first.MessageID, map[string]any{"rating": "down", "comment": "Wrong page."}), 204)
	a.mustStatus(rate(tok, *second.MessageID, map[string]any{"rating": "up"}), 204)
	list := func(query string) List[feedbackItem] {
		t.Helper()
		var l List[feedbackItem]
		a.mustStatus(a.call("GET", "/api/chat/feedback"+query, root, nil), 200).decode(t, &l)
		return l
	}
	all := list("")
	if len(all.Items) != 2 || all.Items[0].MessageID != *second.MessageID || all.Items[1].MessageID != *first.MessageID {
		t.Fatalf("list %+v", all.Items)
	}
	f := all.Items[1]
	if f.Rating != "down" || f.Comment != "Wrong page." || f.Question != "When do I change the damper pedal?" || f.Answer != first.Content ||
		len(f.Sources) == 0 || f.Sources[0].DocumentID != d.Document.ID || f.CreatedAt == "" {
		t.Errorf("item %+v", f)
	}
	if l := list("?rating=down"); len(l.Items) != 1 || l.Items[0].MessageID != *first.MessageID {
		t.Errorf("rating=down: %+v", l.Items)
	}
	page := list("?limit=1")
	if len(page.Items) != 1 || page.NextCursor == nil || page.Items[0].MessageID != *second.MessageID {
		t.Fatalf("page 1 %+v", page)
	}
	if next := list("?limit=1&cursor=" + url.QueryEscape(*page.NextCursor)); len(next.Items) != 1 || next.Items[0].MessageID != *first.MessageID || next.NextCursor != nil {
		t.Errorf("page 2 %+v", next)
	}
	for _, q := range []string{"?rating=meh", "?limit=0", "?cursor=nope"} {
		if r := a.call("GET", "/api/chat/feedback"+q, root, nil); r.status != 400 || r.problem(t).Code != CodeInvalidInput {
			t.Errorf("%s: %d", q, r.status)
		}
	}
	for _, tk := range []string{tok, other} {
		if r := a.call("GET", "/api/chat/feedback", tk, nil); r.status != 403 || r.problem(t).Code != CodeForbidden {
			t.Errorf("a non-admin lists feedback: %d", r.status)
		}
	}

	// Counted by rating.
	metrics := string(a.mustStatus(a.call("GET", "/metrics", "", nil), 200).body)
	for _, want := range []string{`sostenuto_chat_feedback_total{rating="up"} 3`, `sostenuto_chat_feedback_total{rating="down"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Ratings go with their session.
	a.mustStatus(a.call("DELETE", "/api/chat/sessions/"+s.ID.String(), tok, nil), 204)
	if l := list(""); len(l.Items) != 0 || a.feedbackRows("true") != 0 {
		t.Errorf("after the session's deletion: %+v", l.Items)
	}
}
