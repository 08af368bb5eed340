package store

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// A document's detected language travels with its staged chunks: the swap
// sets it on the document and its chunks in one transaction, and the
// PostgreSQL fallback search analyses each chunk, and the query, in the
// chunk's language: the inflected German query finds the German chunk and
// not the same text stored as English.
func TestIngestLanguageAndFallbackSearch(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	worker := New(mustRolePool(t, db.URL, WorkerRole))
	app := New(mustRolePool(t, db.URL, AppRole))
	owner, german, english := uuid.New(), uuid.New(), uuid.New()
	mustExec(t, db, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'l@example.com', 'L', 'teacher', 'x')`, owner)
	for _, d := range []uuid.UUID{german, english} {
		mustExec(t, db, `INSERT INTO documents (id, owner_id, title, source_type, content) VALUES ($1, $2, 'Übungen', 'text', 'x')`, d, owner)
	}
	const text = "Die Tonleiter in C-Dur jeden Tag langsam üben."
	vec := make([]float32, 768)
	vec[0] = 1
	for doc, lang := range map[uuid.UUID]string{german: "de", english: ""} {
		if err := worker.StartIngest(ctx, doc); err != nil {
			t.Fatal(err)
		}
		if err := worker.StageChunks(ctx, doc, []StagedChunk{{Ordinal: 0, Text: text, TokenCount: 9, PageStart: 1, PageEnd: 1,
			CharStart: 0, CharEnd: len(text), Embedding: vec, Language: lang}}); err != nil {
			t.Fatal(err)
		}
		if _, err := worker.FinishIngest(ctx, doc, PageReport{}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for doc, want := range map[uuid.UUID]string{german: "de", english: "en"} {
		d, err := app.DocumentByID(ctx, owner, doc)
		if err != nil {
			t.Fatal(err)
		}
		var chunkLang string
		if err := db.Pool.QueryRow(ctx, `SELECT language FROM chunks WHERE document_id = $1`, doc).Scan(&chunkLang); err != nil {
			t.Fatal(err)
		}
		if d.Language != want || chunkLang != want {
			t.Errorf("document %s: language %q, its chunk %q; want %q", want, d.Language, chunkLang, want)
		}
	}
	hits, err := app.SearchText(ctx, owner, "Tonleitern", 10, SearchFilter{Knowledge: true, Annotations: true})
	if err != nil {
		t.Fatal(err)
	}
	var chunk uuid.UUID
	if err := db.Pool.QueryRow(ctx, `SELECT id FROM chunks WHERE document_id = $1`, german).Scan(&chunk); err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].ID != chunk {
		t.Errorf("fallback hits %v, want the German chunk %v alone", hits, chunk)
	}
}

func mustExec(t *testing.T, db *pgtest.DB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
