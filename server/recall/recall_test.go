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
