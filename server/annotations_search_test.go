package server

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/embed"
)

// noteBody is a note annotation on page with text.
func noteBody(project uuid.UUID, page int, text string) map[string]any {
	return map[string]any{"project_id": project, "page": page, "type": "note", "content": map[string]any{"text": text, "x": 0.2, "y": 0.3}}
}

// annotationWorld is a teacher's two projects, the first shared with a
// student, and a stranger.
type annotationWorld struct {
	teacher, student, stranger sessionResponse
	p1, p2                     uuid.UUID
}

func newAnnotationWorld(a *testAPI) annotationWorld {
	w := annotationWorld{teacher: a.register("t@example.com", "teacher"), student: a.register("s@example.com", "student"),
		stranger: a.register("x@example.com", "student")}
	w.p1 = a.readyProject(w.teacher.AccessToken, "Nocturne in E-flat", 4).ID
	w.p2 = a.readyProject(w.teacher.AccessToken, "Etude in C", 4).ID
	a.mustStatus(a.call("POST", "/api/projects/"+w.p1.String()+"/access", w.teacher.AccessToken,
		map[string]any{"user_id": w.student.User.ID, "permission": "view"}), 201)
	return w
}

// searchAt searches as token from lsn on.
func (a *testAPI) searchAt(token, lsn string, body map[string]any) searchAnswer {
	a.t.Helper()
	body["min_lsn"] = lsn
	var ans searchAnswer
	a.mustStatus(a.call("POST", "/api/search", token, body), 200).decode(a.t, &ans)
	return ans
}

func annotationHits(ans searchAnswer) []SearchHit {
	var out []SearchHit
	for _, h := range ans.Results {
		if h.Kind == "annotation" {
			out = append(out, h)
		}
	}
	return out
}

// Notes and commented highlights are found by search with their kind,
// project, page and author, exactly by the users who may view the
// project; kinds and project_id filter inside the search (k hits come
// back); edits, deletes and a revoked grant reach the next search at the
// write's X-Index-LSN; drawings and bare highlights are not searchable.
// Run on the in-memory index (through the changefeed) and on PostgreSQL.
func TestAnnotationsInSearch(t *testing.T) {
	for _, engine := range []bool{true, false} {
		name := map[bool]string{true: "index", false: "postgres"}[engine]
		t.Run(name, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{engine: engine})
			w := newAnnotationWorld(a)
			source := map[bool]string{true: SourceLocal, false: SourcePostgres}[engine]
			checkAnnotationHits(t, a, w, source)
		})
	}
}

func checkAnnotationHits(t *testing.T, a *testAPI, w annotationWorld, source string) {
	tok := w.teacher.AccessToken
	r := a.mustStatus(a.call("POST", "/api/annotations", tok, noteBody(w.p1, 3, "Half pedal through the nocturne's middle section; lift on the rests.")), 201)
	var note annotationResponse
	r.decode(t, &note)
	lsn := r.header.Get(HeaderIndexLSN)
	if !strings.Contains(lsn, "/") {
		t.Fatalf("X-Index-LSN %q", lsn)
	}
	ans := a.searchAt(w.student.AccessToken, lsn, map[string]any{"query": "pedal nocturne", "kinds": []string{"annotation"}})
	hits := annotationHits(ans)
	if ans.Index.Source != source || len(hits) != 1 || len(ans.Results) != 1 {
		t.Fatalf("student's search from %s: %+v", ans.Index.Source, ans.Results)
	}
	h := hits[0]
	if h.ChunkID != note.ID || *h.ProjectID != w.p1 || *h.AuthorID != w.teacher.User.ID || h.PageStart != 3 || h.PageEnd != 3 ||
		h.Title != "Nocturne in E-flat" || h.DocumentID != w.p1 {
		t.Errorf("hit %+v", h)
	}
	raw := a.mustStatus(a.call("POST", "/api/search", w.student.AccessToken, map[string]any{"query": "pedal nocturne", "min_lsn": lsn}), 200).body
	if !strings.Contains(string(raw), `"kind":"annotation"`) || !strings.Contains(string(raw), `"author_id":"`+w.teacher.User.ID.String()) ||
		!strings.Contains(string(raw), `"document_id":"`+w.p1.String()) {
		t.Errorf("JSON of the hit: %s", raw)
	}
	if got := annotationHits(a.searchAt(w.stranger.AccessToken, lsn, map[string]any{"query": "pedal nocturne"})); len(got) != 0 {
		t.Fatalf("a stranger found %+v", got)
	}
	checkAnnotationChat(t, a, w, note)
	checkAnnotationFilters(t, a, w)
	checkAnnotationEdits(t, a, w, note)
}

// checkAnnotationChat: the student's question is answered from the note,
// cited with its project, annotation and page; the stranger gets nothing of
// it, and kinds: ["knowledge"] leaves it out.
func checkAnnotationChat(t *testing.T, a *testAPI, w annotationWorld, note annotationResponse) {
	q := map[string]any{"query": "What did my teacher say about pedalling in the middle section?"}
	var res chatResult
	a.mustStatus(a.call("POST", "/api/chat/query", w.student.AccessToken, q), 200).decode(t, &res)
	if len(res.Sources) != 1 || res.Sources[0].Kind != "annotation" || *res.Sources[0].AnnotationID != note.ID ||
		*res.Sources[0].ProjectID != w.p1 || res.Sources[0].Page != 3 || !strings.Contains(res.Content, "Half pedal") || !strings.Contains(res.Content, "[1]") {
		t.Fatalf("the student's answer: %+v", res)
	}
	a.mustStatus(a.call("POST", "/api/chat/query", w.stranger.AccessToken, q), 200).decode(t, &res)
	if len(res.Sources) != 0 || strings.Contains(res.Content, "Half pedal") {
		t.Fatalf("the stranger's answer: %+v", res)
	}
	q["kinds"] = []string{"knowledge"}
	a.mustStatus(a.call("POST", "/api/chat/query", w.student.AccessToken, q), 200).decode(t, &res)
	if len(res.Sources) != 0 {
		t.Fatalf("knowledge only: %+v", res.Sources)
	}
}

// checkAnnotationFilters: three notes in each project; project_id and
// kinds are part of the search, so k hits of the project come back.
func checkAnnotationFilters(t *testing.T, a *testAPI, w annotationWorld) {
	tok := w.teacher.AccessToken
	var lsn string
	for i := range 3 {
		for _, p := range []uuid.UUID{w.p1, w.p2} {
			lsn = a.mustStatus(a.call("POST", "/api/annotations", tok, noteBody(p, 1+i, "Pedal again: catch the bass with the pedal.")), 201).header.Get(HeaderIndexLSN)
		}
	}
	ans := a.searchAt(tok, lsn, map[string]any{"query": "pedal", "k": 3, "kinds": []string{"annotation"}, "project_id": w.p2})
	if len(ans.Results) != 3 {
		t.Fatalf("k 3 in project 2: %d hits", len(ans.Results))
	}
	for _, h := range ans.Results {
		if h.Kind != "annotation" || *h.ProjectID != w.p2 {
			t.Errorf("project 2 search hit %+v", h)
		}
	}
	if got := annotationHits(a.searchAt(tok, lsn, map[string]any{"query": "pedal", "k": 50, "mode": "bm25"})); len(got) != 7 {
		t.Errorf("the teacher finds %d of her 7 notes across her projects", len(got))
	}
	if got := a.searchAt(w.student.AccessToken, lsn, map[string]any{"query": "pedal", "k": 50, "project_id": w.p2}); len(annotationHits(got)) != 0 {
		t.Errorf("a student names a project not shared with her: %+v", got.Results)
	}
	if got := a.searchAt(tok, lsn, map[string]any{"query": "pedal", "mode": "bm25", "kinds": []string{"knowledge"}}); len(got.Results) != 0 {
		t.Errorf("knowledge only: %+v", got.Results)
	}
}

// checkAnnotationEdits: an edit, a delete, highlights and drawings, and a
// revoked grant.
func checkAnnotationEdits(t *testing.T, a *testAPI, w annotationWorld, note annotationResponse) {
	tok, st := w.teacher.AccessToken, w.student.AccessToken
	r := a.mustStatus(a.call("PATCH", "/api/annotations/"+note.ID.String(), tok, map[string]any{"content": map[string]any{"text": "Use una corda in the coda.", "x": 0.1, "y": 0.1}},
		"If-Match", `"1"`), 200)
	lsn := r.header.Get(HeaderIndexLSN)
	if got := annotationHits(a.searchAt(st, lsn, map[string]any{"query": "una corda coda", "mode": "bm25"})); len(got) != 1 || !strings.Contains(got[0].Text, "una corda") {
		t.Fatalf("after the edit: %+v", got)
	}
	if got := annotationHits(a.searchAt(st, lsn, map[string]any{"query": "middle section rests", "mode": "bm25"})); len(got) != 0 {
		t.Errorf("the old text is still found: %+v", got)
	}
	hl := map[string]any{"project_id": w.p1, "page": 2, "type": "highlight", "content": map[string]any{"rects": []map[string]float64{{"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.1}},
		"comment": "Voice the melody above the glissando"}}
	lsn = a.mustStatus(a.call("POST", "/api/annotations", tok, hl), 201).header.Get(HeaderIndexLSN)
	hl["content"] = map[string]any{"rects": []map[string]float64{{"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.1}}}
	a.mustStatus(a.call("POST", "/api/annotations", tok, hl), 201)
	lsn = a.mustStatus(a.call("POST", "/api/annotations", tok, map[string]any{"project_id": w.p1, "page": 2, "type": "drawing",
		"content": map[string]any{"paths": []map[string]any{{"points": [][]float64{{0.1, 0.1}, {0.2, 0.2}}}}}}), 201).header.Get(HeaderIndexLSN)
	if got := annotationHits(a.searchAt(st, lsn, map[string]any{"query": "glissando melody", "mode": "bm25"})); len(got) != 1 || got[0].PageStart != 2 {
		t.Errorf("the commented highlight: %+v", got)
	}
	if n := a.rowCount("annotation_chunks"); n != 8 {
		t.Errorf("%d annotation chunks; want 8 (7 notes and one commented highlight)", n)
	}
	lsn = a.mustStatus(a.call("DELETE", "/api/annotations/"+note.ID.String(), tok, nil), 204).header.Get(HeaderIndexLSN)
	if got := annotationHits(a.searchAt(st, lsn, map[string]any{"query": "una corda coda", "mode": "bm25"})); len(got) != 0 {
		t.Errorf("a deleted note is found: %+v", got)
	}
	r = a.mustStatus(a.call("DELETE", "/api/projects/"+w.p1.String()+"/access/"+w.student.User.ID.String(), tok, nil), 204)
	lsn = r.header.Get(HeaderIndexLSN)
	if got := annotationHits(a.searchAt(st, lsn, map[string]any{"query": "pedal glissando"})); len(got) != 0 {
		t.Errorf("after the revoke the student finds %+v", got)
	}
}

// failingEmbedder fails while fails is above zero (each call takes one).
type failingEmbedder struct {
	embed.Hash
	fails atomic.Int32
}

func (f *failingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("embedder down")
	}
	return f.Hash.Embed(ctx, texts)
}

// An annotation written while the embedder fails is saved (201) and
// indexed later by the annotation_index job: nothing acknowledged is lost.
func TestAnnotationIndexedAfterEmbedderFailure(t *testing.T) {
	emb := &failingEmbedder{}
	a := newAPIWith(t, apiSettings{engine: true, embedder: emb})
	w := newAnnotationWorld(a)
	emb.fails.Store(2) // the write's embedding and the job's first attempt
	r := a.mustStatus(a.call("POST", "/api/annotations", w.teacher.AccessToken, noteBody(w.p1, 2, "Arpeggiate the rolled chord from the bass.")), 201)
	if n := a.rowCount("annotation_chunks"); n != 0 {
		t.Fatalf("%d chunks while the embedder is down", n)
	}
	waitFor(t, func() bool { return a.rowCount("annotation_chunks") == 1 })
	lsn := r.header.Get(HeaderIndexLSN)
	var got []SearchHit
	waitFor(t, func() bool {
		got = annotationHits(a.searchAt(w.student.AccessToken, lsn, map[string]any{"query": "rolled chord arpeggiate", "mode": "bm25"}))
		return len(got) == 1
	})
	if got[0].PageStart != 2 {
		t.Errorf("hit %+v", got[0])
	}
}
