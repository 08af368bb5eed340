package store

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// A re-embedding build's batch and a user's write of the same document's
// chunks (a delete or a re-ingest, which lock them one by one) never
// deadlock: the batch passes by the chunk the user holds and commits, the
// user's write then goes through, and the chunk passed by is returned to
// a later batch when the user's write rolls back. Before, the batch held
// chunk a (the foreign key's lock) while waiting for b, the user held b
// and waited for a, and PostgreSQL failed one of them (40P01).
func TestPutEmbeddingsNeverDeadlocksWithAUsersWrite(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	worker := New(mustRolePool(t, db.URL, WorkerRole))
	owner, doc := uuid.New(), uuid.New()
	mustExec(t, db, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'e@example.com', 'E', 'teacher', 'x')`, owner)
	mustExec(t, db, `INSERT INTO documents (id, owner_id, title, source_type) VALUES ($1, $2, 'Etudes', 'text')`, doc, owner)
	ids := make([]uuid.UUID, 4)
	for i := range ids {
		ids[i] = uuid.New()
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }) // PostgreSQL's uuid order
	for i, id := range ids {
		mustExec(t, db, `INSERT INTO chunks (id, document_id, owner_id, ordinal, text, token_count, char_start, char_end)
			VALUES ($1, $2, $3, $4, 'legato', 1, 0, 6)`, id, doc, owner, i)
	}
	if _, err := worker.AdoptEmbeddingModel(ctx, "hash-768", ColumnDim); err != nil {
		t.Fatal(err)
	}
	if err := worker.StartEmbeddingBuild(ctx, "small-4", 4); err != nil {
		t.Fatal(err)
	}
	batch := func(a, b uuid.UUID) error {
		return worker.PutEmbeddings(ctx, "small-4", []ChunkText{{a, "legato"}, {b, "legato"}}, [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}})
	}

	// The user deletes b, then (while the batch runs) a, in one transaction.
	a, b := ids[0], ids[1]
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE id = $1`, b); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- batch(a, b) }()
	var batchErr error
	finished := false
	select {
	case batchErr = <-done:
		finished = true
	case <-time.After(3 * time.Second): // waiting for b, holding a
	}
	if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE id = $1`, a); err != nil {
		t.Errorf("the user's delete failed: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Errorf("the user's commit failed: %v", err)
	}
	if !finished {
		batchErr = <-done
	}
	if batchErr != nil {
		t.Errorf("the batch failed: %v", batchErr)
	}

	// A chunk passed by while the user's write held it is built later.
	c, d := ids[2], ids[3]
	tx, err = db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE id = $1`, d); err != nil {
		t.Fatal(err)
	}
	if err := batch(c, d); err != nil {
		t.Fatalf("batch beside a held chunk: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := worker.ChunksWithout(ctx, "small-4", 10)
	if err != nil || len(left) != 1 || left[0].ID != d {
		t.Errorf("chunks without a vector after the batch: %v %v, want %v alone", left, err, d)
	}
}
