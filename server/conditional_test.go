package server

import (
	"testing"
	"time"
)

// Kept answers are revalidated: the tag of an answer is what a fresh
// answer's would be only for the same user, the same index content and the
// same request; anything else answers in full.
func TestConditionalAnswers(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling", "source_type": "text", "content": "Change the damper pedal just after each new chord.", "is_public": false})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)
	search := map[string]any{"query": "damper pedal chord"}
	chat := map[string]any{"query": "When do I change the damper pedal?"}

	// The index has the document once a search finds it.
	var first response
	for deadline := time.Now().Add(10 * time.Second); ; {
		first = a.mustStatus(a.call("POST", "/api/search", teacher, search), 200)
		var res searchResponse
		first.decode(t, &res)
		if len(res.Results) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ... and is still once two searches carry one ETag: it follows the
	// index's data version, and the processing's last transaction (the
	// document's row) may land just after the chunk.
	for prev, deadline := "", time.Now().Add(10*time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tag := a.mustStatus(a.call("POST", "/api/search", teacher, search), 200).header.Get("ETag")
		if tag != "" && tag == prev {
			break
		}
		prev = tag
	}
	for _, c := range []struct {
		path string
		body map[string]any
	}{{"/api/search", search}, {"/api/chat/query", chat}, {"/api/embeddings/generate", map[string]any{"text": "Relax the wrist."}}} {
		r := a.mustStatus(a.call("POST", c.path, teacher, c.body), 200)
		etag := r.header.Get("ETag")
		if etag == "" || r.header.Get("Cache-Control") != "private, no-cache" {
			t.Fatalf("%s: ETag %q, Cache-Control %q", c.path, etag, r.header.Get("Cache-Control"))
		}
		if got := a.call("POST", c.path, teacher, c.body, "If-None-Match", etag); got.status != 304 || len(got.body) != 0 {
			t.Errorf("%s revalidated: %d %s", c.path, got.status, got.body)
		}
		// A changed request is a different answer.
		other := map[string]any{}
		for k, v := range c.body {
			other[k] = v.(string) + " again"
		}
		if got := a.call("POST", c.path, teacher, other, "If-None-Match", etag); got.status != 200 {
			t.Errorf("%s with another body: %d", c.path, got.status)
		}
	}
	// Another user with the same tag gets a full answer, and not the
	// teacher's: the tag carries the caller's scope.
	stranger := a.register("s@example.com", "student").AccessToken
	etag := first.header.Get("ETag")
	got := a.call("POST", "/api/search", stranger, search, "If-None-Match", etag)
	var res searchResponse
	a.mustStatus(got, 200).decode(t, &res)
	if len(res.Results) != 0 || got.header.Get("ETag") == etag {
		t.Errorf("the stranger: %d results, tag %q", len(res.Results), got.header.Get("ETag"))
	}
	// The index changes (a new document): the old tag no longer holds.
	d2 := a.createDocument(teacher, map[string]any{"title": "More", "source_type": "text", "content": "Half pedalling keeps some damper resonance under each chord.", "is_public": false})
	a.process(teacher, d2.Document.ID)
	a.waitDocument(teacher, d2.Document.ID)
	deadline := time.Now().Add(10 * time.Second)
	for a.call("POST", "/api/search", teacher, search, "If-None-Match", etag).status == 304 {
		if time.Now().After(deadline) {
			t.Fatal("the tag still matches after the index changed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Inside a session, or streamed, a chat answer has no tag: it is stored.
	var sess struct {
		ID string `json:"id"`
	}
	a.mustStatus(a.call("POST", "/api/chat/sessions", teacher, map[string]any{"title": "s"}), 201).decode(t, &sess)
	r := a.mustStatus(a.call("POST", "/api/chat/query", teacher, map[string]any{"query": chat["query"], "session_id": sess.ID}), 200)
	if r.header.Get("ETag") != "" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("session answer: ETag %q Cache-Control %q", r.header.Get("ETag"), r.header.Get("Cache-Control"))
	}
}
