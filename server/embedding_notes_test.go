package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/store"
)

// noteByVector finds a note by a vector search as token (from lsn on)
// and says which model answered.
func (a *testAPI) noteByVector(token, lsn, text string) (uuid.UUID, string) {
	a.t.Helper()
	ans := a.searchAt(token, lsn, map[string]any{"query": text, "mode": "vector", "k": 1, "kinds": []string{"annotation"}})
	if len(ans.Results) == 0 {
		return uuid.Nil, ans.Index.EmbeddingModel
	}
	return ans.Results[0].ChunkID, ans.Index.EmbeddingModel
}

// writeNote writes a note on project p as token and returns its id and
// its X-Index-LSN.
func (a *testAPI) writeNote(token string, p uuid.UUID, text string) (uuid.UUID, string) {
	a.t.Helper()
	r := a.mustStatus(a.call("POST", "/api/annotations", token, noteBody(p, 2, text)), 201)
	var n annotationResponse
	r.decode(a.t, &n)
	return n.ID, r.header.Get(HeaderIndexLSN)
}

// Teachers' notes change model with the knowledge: a note written
// before a re-embedding, one written during it and one written after the
// switch are all found by a vector search of the new model (and its
// 256-dimensional vectors are in annotation_embeddings, the column
// emptied); an edited note's vector follows its new text; PostgreSQL's
// fallback searches the notes' vectors of the new model through the
// model's own HNSW indexes, as the user (a stranger finds none).
func TestReembedCarriesTeachersNotes(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true, models: twoHashes(t), reembedRate: 3})
	w := newAnnotationWorld(a)
	admin := a.admin("admin@example.com").AccessToken
	tok, student := w.teacher.AccessToken, w.student.AccessToken
	for i := range 9 {
		a.ingestText(tok, fmt.Sprintf("Etude %d", i), true, fmt.Sprintf("Practise legato scales slowly, etude number %d.", i))
	}
	before, _ := a.writeNote(tok, w.p1, "Half pedal through the middle section and lift on the rests.")
	a.mustStatus(a.call("POST", "/api/admin/embedding", admin, map[string]any{"model": "hash256"}), 202)
	if st := a.embeddingStatus(admin); st.Building == nil || st.Building.Total != 10 {
		t.Fatalf("building: %+v (want 9 chunks and 1 note)", st.Building)
	}
	during, _ := a.writeNote(tok, w.p1, "Voice the top of each chord over the thumb.")
	if st := a.embeddingStatus(admin); st.Building == nil {
		t.Fatal("the build ended before the second note: nothing was written during it")
	}
	// Once this node's index switched, a note's write embeds with the new
	// model (in the moment between PostgreSQL's switch and the index's,
	// the write's vector is refused and the annotation_index job embeds
	// the note again).
	a.waitFor("the switch", func() bool { m, _ := a.searchModel(tok, "legato scales"); return m == "hash256" })
	after, lsn := a.writeNote(tok, w.p1, "Keep the wrist loose in the octave passage.")
	for id, text := range map[uuid.UUID]string{before: "Half pedal through the middle section and lift on the rests.",
		during: "Voice the top of each chord over the thumb.", after: "Keep the wrist loose in the octave passage."} {
		if got, model := a.noteByVector(student, lsn, text); got != id || model != "hash256" {
			t.Errorf("%q: found %s by %q, want %s by hash256", text, got, model, id)
		}
	}
	a.waitFor("the notes' old vectors dropped", func() bool {
		return a.count(`SELECT count(*) FROM annotation_chunks WHERE embedding IS NOT NULL`) == 0
	})
	if n := a.count(`SELECT count(*) FROM annotation_embeddings WHERE model = 'hash256' AND vector_dims(embedding) = 256`); n != 3 {
		t.Fatalf("%d notes hold a 256-dimensional vector, want 3", n)
	}
	checkEditedNoteVector(t, a, w, after)
	checkFallbackNotesByModel(t, a, w)
}

// checkEditedNoteVector: a note's new text replaces its vector of the
// active model (one row), and the vector search follows the text.
func checkEditedNoteVector(t *testing.T, a *testAPI, w annotationWorld, id uuid.UUID) {
	text := "Drop the arm into the first beat of every bar."
	r := a.mustStatus(a.call("PATCH", "/api/annotations/"+id.String(), w.teacher.AccessToken,
		map[string]any{"content": map[string]any{"text": text, "x": 0.2, "y": 0.3}}, "If-Match", `"1"`), 200)
	if got, model := a.noteByVector(w.student.AccessToken, r.header.Get(HeaderIndexLSN), text); got != id || model != "hash256" {
		t.Fatalf("the edited note: found %s by %q", got, model)
	}
	if n := a.count(fmt.Sprintf(`SELECT count(*) FROM annotation_embeddings WHERE chunk_id = '%s'`, id)); n != 1 {
		t.Fatalf("the edited note holds %d vectors", n)
	}
}

// checkFallbackNotesByModel: PostgreSQL's vector search over the new
// model's note vectors, as the user, with the model's indexes made.
func checkFallbackNotesByModel(t *testing.T, a *testAPI, w annotationWorld) {
	ctx := context.Background()
	for _, table := range []string{"chunk_embeddings", "annotation_embeddings"} {
		if n := a.count(fmt.Sprintf(`SELECT count(*) FROM pg_indexes WHERE indexname = '%s_' || md5('hash256') || '_idx'`, table)); n != 1 {
			t.Errorf("%s: no HNSW index of the model", table)
		}
	}
	q, err := embed.Hash{Dims: 256}.Embed(ctx, []string{"Voice the top of each chord over the thumb."})
	if err != nil {
		t.Fatal(err)
	}
	notes := store.SearchFilter{Annotations: true}
	hits, err := a.store.SearchVector(ctx, w.student.User.ID, "hash256", q[0], 1, 10, notes)
	if err != nil || len(hits) != 1 || hits[0].Score < 0.99 {
		t.Fatalf("the fallback's note search: %+v, %v", hits, err)
	}
	if hits, err := a.store.SearchVector(ctx, w.stranger.User.ID, "hash256", q[0], 3, 10, notes); err != nil || len(hits) != 0 {
		t.Fatalf("a stranger's fallback search found %+v (%v)", hits, err)
	}
}
