package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// The content hash is recorded with the chunks it describes; an unchanged
// refresh keeps the chunks and the position — and when the worker that
// swapped them in died before recording the position, the refresh that
// finds them unchanged records one past the swap, never none or the one
// before it.
func TestContentHashAndKeepIngest(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	worker := New(mustRolePool(t, db.URL, WorkerRole))
	owner, doc := uuid.New(), uuid.New()
	mustExec(t, db, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'k@example.com', 'K', 'teacher', 'x')`, owner)
	mustExec(t, db, `INSERT INTO documents (id, owner_id, title, source_type, source_url) VALUES ($1, $2, 'Page', 'web', 'https://example.com/')`, doc, owner)
	hash := strings.Repeat("ab", 32)
	vec := make([]float32, 768)
	vec[0] = 1
	if err := worker.StartIngest(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := worker.StageChunks(ctx, doc, []StagedChunk{{Ordinal: 0, Text: "Legato.", TokenCount: 2, PageStart: 1, PageEnd: 1,
		CharStart: 0, CharEnd: 7, Embedding: vec}}); err != nil {
		t.Fatal(err)
	}
	lsn, err := worker.FinishIngest(ctx, doc, PageReport{}, hash)
	if err != nil {
		t.Fatal(err)
	}
	src, err := worker.IngestSourceOf(ctx, doc)
	if err != nil || src.ContentHash == nil || *src.ContentHash != hash || src.ChunkCount != 1 {
		t.Fatalf("source after ingest: %+v %v", src, err)
	}

	// An unchanged refresh: the position stays.
	if err := worker.StartIngest(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := worker.KeepIngest(ctx, doc); err != nil {
		t.Fatal(err)
	}
	var status, kept string
	db.Pool.QueryRow(ctx, `SELECT status, index_lsn::text FROM documents WHERE id = $1`, doc).Scan(&status, &kept)
	if status != DocCompleted || kept != lsn.String() {
		t.Errorf("kept: %s at %s, want completed at %s", status, kept, lsn)
	}

	// As FinishIngest's swap leaves a document whose worker dies before
	// the second step: processing, no position.
	mustExec(t, db, `UPDATE documents SET status = 'processing', index_lsn = NULL WHERE id = $1`, doc)
	if err := worker.KeepIngest(ctx, doc); err != nil {
		t.Fatal(err)
	}
	d, err := New(db.Pool).DocumentByID(ctx, owner, doc)
	if err != nil || d.Status != DocCompleted || d.IndexLSN == nil || *d.IndexLSN < lsn {
		t.Errorf("after a lost second step: %+v %v", d, err)
	}
	// KeepIngest only ends a refresh that is running.
	if err := worker.KeepIngest(ctx, doc); err == nil {
		t.Error("KeepIngest of a completed document succeeded")
	}
}
