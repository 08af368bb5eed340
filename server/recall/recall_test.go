package recall

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/index/vector"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/replication"
)

func TestRecallAgainstExact(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	owner, doc := uuid.New(), uuid.New()
	db.Pool.Exec(ctx, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'o@example.com', 'O', 'teacher', 'x')`, owner)
	db.Pool.Exec(ctx, `INSERT INTO documents (id, owner_id, title, source_type) VALUES ($1, $2, 'D', 'text')`, doc, owner)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 300 {
		parts := make([]string, 768)
		for j := range parts {
			parts[j] = fmt.Sprintf("%.4f", r.NormFloat64())
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			VALUES ($1, $2, $3, 'x', 1, 0, 1, $4::vector)`, doc, owner, i, "["+strings.Join(parts, ",")+"]"); err != nil {
			t.Fatal(err)
		}
	}
	e, err := replication.LoadBase(ctx, db.URL, index.Config{Vector: vector.DefaultConfig(768), ExactBelow: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if e.Len() != 300 {
		t.Fatalf("loaded %d chunks", e.Len())
	}
	rc, err := Check(ctx, db.URL, e, 25)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recall@10 %.3f (min %.3f) over %d samples", rc.Mean, rc.Min, rc.Samples)
	if rc.Samples != 25 || rc.Mean < 0.9 {
		t.Errorf("recall %+v", rc)
	}
}

// Once the active model keeps its vectors in chunk_embeddings (after a
// re-embedding), the check compares the index with that model's vectors,
// not with chunks.embedding (stale, or NULL once dropped).
func TestRecallOfAModelApartFromTheColumn(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	owner, doc := uuid.New(), uuid.New()
	db.Pool.Exec(ctx, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 'o@example.com', 'O', 'teacher', 'x')`, owner)
	db.Pool.Exec(ctx, `INSERT INTO documents (id, owner_id, title, source_type) VALUES ($1, $2, 'D', 'text')`, doc, owner)
	r := rand.New(rand.NewPCG(1, 2))
	vec := func(n int) string {
		parts := make([]string, n)
		for j := range parts {
			parts[j] = fmt.Sprintf("%.4f", r.NormFloat64())
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for i := range 200 {
		// The column holds one vector, the same for every chunk: an
		// exact search over it ranks by id alone.
		if _, err := db.Pool.Exec(ctx, `WITH c AS (INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			VALUES ($1, $2, $3, 'x', 1, 0, 1, $4::vector) RETURNING id)
			INSERT INTO chunk_embeddings (chunk_id, model, embedding) SELECT id, 'm16', $5::vector FROM c`,
			doc, owner, i, "["+strings.Repeat("1,", 767)+"1]", vec(16)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE embedding_state SET active_model = 'm16', active_dim = 16, column_model = NULL`); err != nil {
		t.Fatal(err)
	}
	e, err := replication.LoadBase(ctx, db.URL, index.Config{Vector: vector.DefaultConfig(768), ExactBelow: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if m := e.Model(); m.Active != "m16" || len(e.ModelChunks("m16")) != 200 {
		t.Fatalf("loaded %+v with %d vectors", m, len(e.ModelChunks("m16")))
	}
	rc, err := Check(ctx, db.URL, e, 25)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Samples != 25 || rc.Mean < 0.9 {
		t.Errorf("recall %+v", rc)
	}
}
