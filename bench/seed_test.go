package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/embed"
)

// library is a knowledge base seeded straight into PostgreSQL.
type library struct {
	teachers, students []uuid.UUID
}

// seedLibrary loads, into a migrated database: teachers
// (teacher<i>@example.com), students (student<i>@example.com, each linked
// to two teachers), an admin (admin0@example.com), all with the password
// "correct horse battery"; and docs documents of perDoc chunks, each two
// CISI sentences embedded by the hash embedder, owned round-robin by the
// teachers, a third of them public. pgvector's HNSW index is dropped
// during the load and built again after it (one CREATE INDEX is far
// faster than that many inserts into it).
func seedLibrary(b *testing.B, url string, teachers, students, docs, perDoc int, sentences []string) library {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		b.Fatal(err)
	}
	hash, _ := auth.HashPassword("correct horse battery", auth.DefaultHashParams)
	r := rand.New(rand.NewPCG(9, 9))
	var lib library
	mkUser := func(role string, i int) uuid.UUID {
		id := uuid.New()
		if _, err := conn.Exec(ctx, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, $2, 'U', $3, $4)`,
			id, fmt.Sprintf("%s%d@example.com", role, i), role, hash); err != nil {
			b.Fatal(err)
		}
		return id
	}
	mkUser("admin", 0)
	for i := range teachers {
		lib.teachers = append(lib.teachers, mkUser("teacher", i))
	}
	for i := range students {
		s := mkUser("student", i)
		lib.students = append(lib.students, s)
		for _, t := range []int{i % teachers, (i*7 + 3) % teachers} {
			if _, err := conn.Exec(ctx, `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, lib.teachers[t], s); err != nil {
				b.Fatal(err)
			}
		}
	}
	var indexDef string
	if err := conn.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_idx'`).Scan(&indexDef); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DROP INDEX chunks_embedding_hnsw_idx`); err != nil {
		b.Fatal(err)
	}
	hashEmb := embed.Hash{}
	for d := 0; d < docs; d++ {
		owner := lib.teachers[d%teachers]
		doc := uuid.New()
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO documents (id, owner_id, title, source_type, is_public) VALUES ($1, $2, $3, 'text', $4)`,
			doc, owner, fmt.Sprintf("Notes %d", d), d%3 == 0); err != nil {
			b.Fatal(err)
		}
		texts := make([]string, perDoc)
		rows := make([][]any, perDoc)
		for c := range rows {
			texts[c] = sentences[r.IntN(len(sentences))] + " " + sentences[r.IntN(len(sentences))]
		}
		vecs, err := hashEmb.Embed(ctx, texts)
		if err != nil {
			b.Fatal(err)
		}
		for c := range rows {
			rows[c] = []any{doc, owner, c, texts[c], 60, 0, len(texts[c]), pgvector.NewVector(vecs[c])}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"chunks"}, []string{"document_id", "owner_id", "ordinal", "text", "token_count", "char_start", "char_end", "embedding"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, indexDef); err != nil {
		b.Fatal(err)
	}
	return lib
}
