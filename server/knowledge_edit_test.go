package server

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/rag"
)

// searchHits searches at base (a node or an edge) and returns the answer.
func (a *testAPI) searchHits(base, token string, body map[string]any, hdr ...string) (searchResponse, response) {
	a.t.Helper()
	r := a.mustStatus(a.callAt(base, "POST", "/api/search", token, body, hdr...), 200)
	var res searchResponse
	r.decode(a.t, &res)
	return res, r
}

// ask asks the chat at base (a node or an edge) and returns the reply.
func (a *testAPI) ask(base, token string, body map[string]any, hdr ...string) (rag.Reply, response) {
	a.t.Helper()
	r := a.mustStatus(a.callAt(base, "POST", "/api/chat/query", token, body, hdr...), 200)
	var rep rag.Reply
	r.decode(a.t, &rep)
	return rep, r
}

// hitTitles lists the titles of doc's hits ([] when it has none).
func hitTitles(res searchResponse, doc uuid.UUID) []string {
	titles := []string{}
	for _, h := range res.Results {
		if h.DocumentID == doc {
			titles = append(titles, h.Title)
		}
	}
	return titles
}

// sourceTitles lists the titles of doc's sources ([] when it has none).
func sourceTitles(rep rag.Reply, doc uuid.UUID) []string {
	titles := []string{}
	for _, s := range rep.Sources {
		if s.DocumentID == doc {
			titles = append(titles, s.Title)
		}
	}
	return titles
}

// with is body with key set to value (body itself is unchanged).
func with(body map[string]any, key string, value any) map[string]any {
	out := map[string]any{key: value}
	for k, v := range body {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// A title or visibility change, made on one node, reaches another node's
// index, caches and answers by the X-Index-LSN of the PATCH: a student who
// found a stranger teacher's public document (in search and chat, kept by
// the node and by the edge in front of it) finds it renamed from the
// title change's position, and never again from the position of its
// making private; a chat answer kept before, asked again without min_lsn
// after the PATCH, goes within the node's lag bound.
func TestDocumentEditReachesEveryNode(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true})
	b := newAPIWith(t, apiSettings{engine: true, peer: a})
	edge := b.startEdge()
	teacher := a.register("teacher@example.com", "teacher").AccessToken
	student := a.register("student@example.com", "student").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Voicing", "source_type": "text", "is_public": true,
		"content": "Voicing a chord: let the top note sing above the inner voices, with the weight of the arm behind the fifth finger."})
	doc := d.Document.ID
	a.process(teacher, doc)
	st := a.waitDocument(teacher, doc)
	if st.Status != "completed" || st.IndexLSN == nil {
		t.Fatalf("ingest: %+v", st)
	}
	search := map[string]any{"query": "voicing top note inner voices"}
	chat := map[string]any{"query": "How do I voice a chord so the top note sings above the inner voices?"}

	// The student finds it on node B (search, chat, through the edge).
	res, sr := b.searchHits(b.url, student, with(search, "min_lsn", *st.IndexLSN))
	if got := hitTitles(res, doc); len(got) != 1 || got[0] != "Voicing" {
		t.Fatalf("search on B before: %v", got)
	}
	searchTag := sr.header.Get("ETag")
	// The node keeps the answer (asked again until the index stops
	// moving: the document's last status update follows its index_lsn).
	var chatTag string
	for i := 0; ; i++ {
		rep, cr := b.ask(b.url, student, chat)
		if got := sourceTitles(rep, doc); len(got) != 1 {
			t.Fatalf("chat on B before: %+v", rep)
		}
		if rep.Cached {
			chatTag = cr.header.Get("ETag")
			break
		}
		if i == 50 {
			t.Fatalf("the chat answer was not kept: %+v", rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep, er := b.ask(edge, student, chat)
	if rep, er = b.ask(edge, student, chat); len(sourceTitles(rep, doc)) != 1 || er.header.Get("X-Edge-Cache") != "hit" {
		t.Fatalf("chat through the edge before (%s): %+v", er.header.Get("X-Edge-Cache"), rep)
	}

	// Renamed on node A: from its position, node B's hits and sources
	// carry the new title, kept answers included.
	r := a.mustStatus(a.call("PATCH", "/api/knowledge/"+doc.String(), teacher, map[string]any{"title": "Voicing chords"}), 200)
	var patched documentResponse
	r.decode(t, &patched)
	lsn := r.header.Get(HeaderIndexLSN)
	if patched.Title != "Voicing chords" || !patched.IsPublic || lsn == "" {
		t.Fatalf("PATCH title: %+v, X-Index-LSN %q", patched, lsn)
	}
	if res, _ := b.searchHits(b.url, student, with(search, "min_lsn", lsn)); len(hitTitles(res, doc)) != 1 || hitTitles(res, doc)[0] != "Voicing chords" {
		t.Errorf("search on B after the rename: %v", hitTitles(res, doc))
	}
	if rep, _ := b.ask(b.url, student, with(chat, "min_lsn", lsn)); len(sourceTitles(rep, doc)) != 1 || sourceTitles(rep, doc)[0] != "Voicing chords" {
		t.Errorf("chat on B after the rename: %+v", rep)
	}

	// Made private on node A.
	r = a.mustStatus(a.call("PATCH", "/api/knowledge/"+doc.String(), teacher, map[string]any{"is_public": false}), 200)
	r.decode(t, &patched)
	lsn = r.header.Get(HeaderIndexLSN)
	if patched.IsPublic || patched.Title != "Voicing chords" || lsn == "" {
		t.Fatalf("PATCH is_public: %+v, X-Index-LSN %q", patched, lsn)
	}
	// Without min_lsn, within B's lag bound (5 s): the kept chat answers
	// (B's cache, the edge's) are not served, and no answer cites the
	// document (a kept answer is served without PostgreSQL until B applies
	// the change; docs/SECURITY.md "Chat cache hits and the scope cache").
	start := time.Now()
	for {
		rep, _ := b.ask(b.url, student, chat)
		rep2, er := b.ask(edge, student, chat)
		if er.header.Get("X-Edge-Cache") == "" {
			t.Errorf("the edge did not keep the chat: %v", er.header)
		}
		if len(sourceTitles(rep, doc)) == 0 && len(sourceTitles(rep2, doc)) == 0 {
			break // (the edge may keep the new answer from an earlier round)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("chat on B and through the edge %s after: %+v, %+v", time.Since(start), rep, rep2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// From the PATCH's position: B's index does not find it, and the tags
	// kept before no longer hold.
	res, sr = b.searchHits(b.url, student, with(search, "min_lsn", lsn), "If-None-Match", searchTag)
	if len(hitTitles(res, doc)) != 0 || sr.header.Get("ETag") == searchTag || res.Index.Source != SourceLocal {
		t.Errorf("search on B after: %v, %+v", hitTitles(res, doc), res.Index)
	}
	rep, cr := b.ask(b.url, student, with(chat, "min_lsn", lsn), "If-None-Match", chatTag)
	// (It may be kept: the answer of the new state asked just before.)
	if len(sourceTitles(rep, doc)) != 0 || cr.status != 200 || cr.header.Get("ETag") == chatTag {
		t.Errorf("chat on B after: %+v", rep)
	}
	if res, _ := b.searchHits(edge, student, with(search, "min_lsn", lsn)); len(hitTitles(res, doc)) != 0 {
		t.Errorf("search through the edge after: %v", hitTitles(res, doc))
	}
	// Its owner still finds it, on both nodes.
	for _, n := range []*testAPI{a, b} {
		if res, _ := n.searchHits(n.url, teacher, with(search, "min_lsn", lsn)); len(hitTitles(res, doc)) != 1 {
			t.Errorf("the owner's search on %s: %v", n.url, hitTitles(res, doc))
		}
	}
}

// A bad edit answers 400 naming the field and changes nothing; a document
// the caller may not see is 404, one it may see but not manage 403.
func TestPatchDocumentValidation(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher").AccessToken
	other := a.register("o@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Scales", "source_type": "text", "content": "Thumb under.", "is_public": false})
	path := "/api/knowledge/" + d.Document.ID.String()
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]any{"title": "New", "owner_id": "x"}, "owner_id"},
		{map[string]any{"title": "   "}, "title"},
		{map[string]any{"title": ""}, "title"},
		{map[string]any{"title": strings.Repeat("x", 301)}, "title"},
		{map[string]any{"title": nil}, "title"},
		{map[string]any{"title": 5}, "title"},
		{map[string]any{"is_public": "yes", "title": "New"}, "is_public"},
		{map[string]any{"is_public": nil}, "is_public"},
		{map[string]any{}, "title"},
		{`[]`, "(body)"},
	} {
		r := a.call("PATCH", path, teacher, c.body)
		p := r.problem(t)
		if r.status != 400 || p.Code != CodeInvalidInput || len(p.Errors) == 0 || p.Errors[0].Field != c.field {
			t.Errorf("%v: %d %+v", c.body, r.status, p)
		}
	}
	var now documentResponse
	a.mustStatus(a.call("GET", path, teacher, nil), 200).decode(t, &now)
	if now.Title != "Scales" || now.IsPublic {
		t.Errorf("bad edits changed the document: %+v", now)
	}
	if r := a.call("PATCH", path, other, map[string]any{"title": "Mine"}); r.status != 404 {
		t.Errorf("another teacher's private document: %d", r.status)
	}
	a.mustStatus(a.call("PATCH", path, teacher, map[string]any{"is_public": true}), 200)
	if r := a.call("PATCH", path, other, map[string]any{"title": "Mine"}); r.status != 403 || r.problem(t).Code != CodeForbidden {
		t.Errorf("another teacher's public document: %d %s", r.status, r.body)
	}
	var got documentResponse
	a.mustStatus(a.call("PATCH", path, teacher, map[string]any{"title": "  Scales in thirds ", "is_public": false}), 200).decode(t, &got)
	if got.Title != "Scales in thirds" || got.IsPublic {
		t.Errorf("edit: %+v", got)
	}
}
