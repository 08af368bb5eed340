package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// rlsWorld is two teachers with everything a user can own, a student of the
// first, a grantee of the first's project, an admin and a stranger.
type rlsWorld struct {
	app                                           *Store
	alice, bob, student, grantee, admin, stranger uuid.UUID
	// alice's objects
	project, privateDoc, publicDoc, chunk, publicChunk, session, annotation uuid.UUID
}

func newRLSWorld(t *testing.T) *rlsWorld {
	t.Helper()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	pool, err := OpenPool(ctx, db.URL, AppRole)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := &rlsWorld{app: New(pool)}
	ids := []*uuid.UUID{&w.alice, &w.bob, &w.student, &w.grantee, &w.admin, &w.stranger,
		&w.project, &w.privateDoc, &w.publicDoc, &w.chunk, &w.publicChunk, &w.session, &w.annotation}
	for _, p := range ids {
		*p = uuid.New()
	}
	owner := db.Pool // fixtures as the table owner, outside RLS
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := owner.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for i, u := range []struct {
		id   uuid.UUID
		role string
	}{{w.alice, "teacher"}, {w.bob, "teacher"}, {w.student, "student"}, {w.grantee, "student"}, {w.admin, "admin"}, {w.stranger, "student"}} {
		exec(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, $2, 'U', $3, 'x')`, u.id, fmt.Sprintf("u%d@example.com", i), u.role)
	}
	exec(`INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`, w.alice, w.student)
	exec(`INSERT INTO projects (id, owner_id, title, filename, object_key) VALUES ($1, $2, 'P', 'p.pdf', 'k1')`, w.project, w.alice)
	exec(`INSERT INTO projects (owner_id, title, filename, object_key) VALUES ($1, 'B', 'b.pdf', 'k2')`, w.bob)
	exec(`INSERT INTO project_grants (project_id, user_id, permission, granted_by) VALUES ($1, $2, 'view', $3)`, w.project, w.grantee, w.alice)
	exec(`INSERT INTO annotations (id, project_id, author_id, page, type, content) VALUES ($1, $2, $3, 1, 'note', '{"text":"x","x":0.5,"y":0.5}')`, w.annotation, w.project, w.alice)
	exec(`INSERT INTO annotation_chunks (annotation_id, project_id, author_id, page, text, embedding, version)
		VALUES ($1, $2, $3, 1, 'x', array_fill(0.1, ARRAY[768])::vector, 1)`, w.annotation, w.project, w.alice)
	exec(`INSERT INTO documents (id, owner_id, title, source_type) VALUES ($1, $2, 'Private', 'text')`, w.privateDoc, w.alice)
	exec(`INSERT INTO documents (id, owner_id, title, source_type, is_public) VALUES ($1, $2, 'Public', 'text', true)`, w.publicDoc, w.alice)
	for _, c := range []struct{ id, doc uuid.UUID }{{w.chunk, w.privateDoc}, {w.publicChunk, w.publicDoc}} {
		exec(`INSERT INTO chunks (id, document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding)
			VALUES ($1, $2, $3, 0, 'legato', 1, 0, 6, array_fill(0.1, ARRAY[768])::vector)`, c.id, c.doc, w.alice)
	}
	exec(`INSERT INTO chat_sessions (id, user_id) VALUES ($1, $2)`, w.session, w.alice)
	exec(`INSERT INTO chat_messages (session_id, role, content) VALUES ($1, 'user', 'How do I pedal?')`, w.session)
	return w
}

// visible returns the ids of table's rows the user may read, with RLS the
// only check: the queries have no WHERE clause at all.
func (w *rlsWorld) visible(t *testing.T, user uuid.UUID, table, idCol string) map[uuid.UUID]bool {
	t.Helper()
	got := map[uuid.UUID]bool{}
	err := w.app.AsUser(context.Background(), user, func(tx pgx.Tx) error {
		rows, _ := tx.Query(context.Background(), "SELECT "+idCol+" FROM "+table)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		for _, id := range ids {
			got[id] = true
		}
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return got
}

// With the application's checks switched off — raw SELECTs with no WHERE —
// Row Level Security alone denies every cross-user read.
func TestRLSDeniesCrossUserReads(t *testing.T) {
	w := newRLSWorld(t)
	type want map[uuid.UUID]bool
	cases := []struct {
		table, idCol string
		object       uuid.UUID
		allowed      want // users who may read object
	}{
		{"projects", "id", w.project, want{w.alice: true, w.grantee: true, w.admin: true}},
		{"project_grants", "project_id", w.project, want{w.alice: true, w.grantee: true, w.admin: true}},
		{"annotations", "id", w.annotation, want{w.alice: true, w.grantee: true, w.admin: true}},
		// A note's chunk: the project's viewers, not the teacher's students.
		{"annotation_chunks", "annotation_id", w.annotation, want{w.alice: true, w.grantee: true, w.admin: true}},
		{"documents", "id", w.privateDoc, want{w.alice: true, w.student: true, w.admin: true}},
		{"documents", "id", w.publicDoc, want{w.alice: true, w.student: true, w.admin: true, w.bob: true, w.grantee: true, w.stranger: true}},
		{"chunks", "id", w.chunk, want{w.alice: true, w.student: true, w.admin: true}},
		{"chunks", "id", w.publicChunk, want{w.alice: true, w.student: true, w.admin: true, w.bob: true, w.grantee: true, w.stranger: true}},
		{"chat_sessions", "id", w.session, want{w.alice: true}},
		{"chat_messages", "session_id", w.session, want{w.alice: true}},
	}
	users := map[string]uuid.UUID{"alice": w.alice, "bob": w.bob, "student": w.student, "grantee": w.grantee, "admin": w.admin, "stranger": w.stranger}
	for _, tc := range cases {
		for name, u := range users {
			sees := w.visible(t, u, tc.table, tc.idCol)[tc.object]
			if sees != tc.allowed[u] {
				t.Errorf("%s reading %s %s: sees=%v, want %v", name, tc.table, tc.object, sees, tc.allowed[u])
			}
		}
	}
	// A transaction that names no user sees nothing in any protected table.
	for _, table := range []string{"projects", "project_grants", "annotations", "annotation_chunks", "documents", "chunks", "chat_sessions", "chat_messages"} {
		var n int
		if err := w.app.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s without a user: %d rows (%v)", table, n, err)
		}
	}
}

func TestRLSDeniesCrossUserWrites(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	try := func(user uuid.UUID, sql string, args ...any) (int64, error) {
		var n int64
		err := w.app.AsUser(ctx, user, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, sql, args...)
			n = tag.RowsAffected()
			return err
		})
		return n, err
	}
	// Changes to rows the user may not change affect nothing.
	for _, tc := range []struct {
		name string
		user uuid.UUID
		sql  string
		args []any
	}{
		{"bob renames alice's project", w.bob, `UPDATE projects SET title = 'pwned' WHERE id = $1`, []any{w.project}},
		{"viewer renames the project", w.grantee, `UPDATE projects SET title = 'pwned' WHERE id = $1`, []any{w.project}},
		{"viewer deletes the project", w.grantee, `DELETE FROM projects WHERE id = $1`, []any{w.project}},
		{"viewer upgrades its grant", w.grantee, `UPDATE project_grants SET permission = 'admin' WHERE project_id = $1`, []any{w.project}},
		{"bob deletes alice's annotation", w.bob, `DELETE FROM annotations WHERE id = $1`, []any{w.annotation}},
		{"viewer edits alice's annotation", w.grantee, `UPDATE annotations SET page = 2 WHERE id = $1`, []any{w.annotation}},
		{"student publishes alice's document", w.student, `UPDATE documents SET is_public = true WHERE id = $1`, []any{w.privateDoc}},
		{"bob deletes alice's public document", w.bob, `DELETE FROM documents WHERE id = $1`, []any{w.publicDoc}},
		{"student deletes a chunk", w.student, `DELETE FROM chunks WHERE id = $1`, []any{w.chunk}},
		{"viewer rewrites a note's chunk", w.grantee, `UPDATE annotation_chunks SET text = 'pwned' WHERE annotation_id = $1`, []any{w.annotation}},
		{"bob deletes a note's chunk", w.bob, `DELETE FROM annotation_chunks WHERE annotation_id = $1`, []any{w.annotation}},
		{"admin reads into alice's chat", w.admin, `UPDATE chat_sessions SET title = 'x' WHERE id = $1`, []any{w.session}},
	} {
		n, err := try(tc.user, tc.sql, tc.args...)
		if err != nil || n != 0 {
			t.Errorf("%s: %d rows, %v", tc.name, n, err)
		}
	}
	// Inserts in someone else's name are refused outright.
	for _, tc := range []struct {
		name string
		user uuid.UUID
		sql  string
		args []any
	}{
		{"project owned by alice, made by bob", w.bob, `INSERT INTO projects (owner_id, title, filename, object_key) VALUES ($1, 'x', 'x.pdf', 'k9')`, []any{w.alice}},
		{"grant on alice's project by bob", w.bob, `INSERT INTO project_grants (project_id, user_id, permission) VALUES ($1, $2, 'admin')`, []any{w.project, w.bob}},
		{"grant by a viewer", w.grantee, `INSERT INTO project_grants (project_id, user_id, permission) VALUES ($1, $2, 'view')`, []any{w.project, w.stranger}},
		{"annotation by a viewer", w.grantee, `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES ($1, $2, 1, 'note', '{}')`, []any{w.project, w.grantee}},
		{"annotation in another's name", w.alice, `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES ($1, $2, 1, 'note', '{}')`, []any{w.project, w.grantee}},
		{"note chunk in a project bob may not see", w.bob, `INSERT INTO annotation_chunks (annotation_id, project_id, author_id, page, text, embedding, version)
			VALUES ($1, $2, $3, 1, 'x', array_fill(0.1, ARRAY[768])::vector, 1)`, []any{uuid.New(), w.project, w.bob}},
		{"document for alice by bob", w.bob, `INSERT INTO documents (owner_id, title, source_type) VALUES ($1, 'x', 'text')`, []any{w.alice}},
		{"message into alice's chat", w.bob, `INSERT INTO chat_messages (session_id, role, content) VALUES ($1, 'user', 'hi')`, []any{w.session}},
		{"chat session for alice", w.bob, `INSERT INTO chat_sessions (user_id) VALUES ($1)`, []any{w.alice}},
	} {
		_, err := try(tc.user, tc.sql, tc.args...)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: %v, want an RLS violation (42501)", tc.name, err)
		}
	}
	// The owner still can.
	if n, err := try(w.alice, `UPDATE projects SET title = 'Nocturne' WHERE id = $1`, w.project); err != nil || n != 1 {
		t.Errorf("owner update: %d, %v", n, err)
	}
}

// The request path's role owns no tables and cannot bypass RLS; the worker
// role reaches only what ingestion needs.
func TestRolesAreNarrow(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	var bypass bool
	var owned int
	if err := db.Pool.QueryRow(ctx, `SELECT rolbypassrls FROM pg_roles WHERE rolname = $1`, AppRole).Scan(&bypass); err != nil || bypass {
		t.Errorf("%s BYPASSRLS = %v (%v)", AppRole, bypass, err)
	}
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tableowner IN ($1, $2)`, AppRole, WorkerRole).Scan(&owned)
	if owned != 0 {
		t.Errorf("the request and worker roles own %d tables", owned)
	}
	worker := mustRolePool(t, db.URL, WorkerRole)
	for _, sql := range []string{"SELECT count(*) FROM documents", "SELECT count(*) FROM chunks", "SELECT count(*) FROM jobs"} {
		if _, err := worker.Exec(ctx, sql); err != nil {
			t.Errorf("worker: %s: %v", sql, err)
		}
	}
	for _, sql := range []string{"SELECT count(*) FROM users", "SELECT count(*) FROM refresh_tokens", "SELECT count(*) FROM projects", "SELECT count(*) FROM chat_messages", "DELETE FROM documents"} {
		if _, err := worker.Exec(ctx, sql); err == nil {
			t.Errorf("worker may run %q", sql)
		}
	}
}

func mustRolePool(t *testing.T, url, role string) *pgxpool.Pool {
	t.Helper()
	p, err := OpenPool(context.Background(), url, role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestVisibleChunksAsRLS: VisibleChunks (the chat's re-check, its ids sent
// as binary UUIDs) marks exactly the chunks and annotation chunks, among
// those asked, that each user reads under Row Level Security with no WHERE
// clause; an id that names nothing is never marked.
func TestVisibleChunksAsRLS(t *testing.T) {
	w := newRLSWorld(t)
	asked := []uuid.UUID{w.chunk, w.publicChunk, w.annotation, uuid.New()}
	marked := 0
	for _, u := range []uuid.UUID{w.alice, w.bob, w.student, w.grantee, w.admin, w.stranger} {
		want := w.visible(t, u, "chunks", "id")
		for id := range w.visible(t, u, "annotation_chunks", "annotation_id") {
			want[id] = true
		}
		got, err := w.app.VisibleChunks(context.Background(), u, asked)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range asked {
			if got[id] != want[id] {
				t.Errorf("user %v, id %v: VisibleChunks says %v, RLS %v", u, id, got[id], want[id])
			}
		}
		if len(got) > len(want) {
			t.Errorf("user %v: %d marked, %d visible", u, len(got), len(want))
		}
		marked += len(got)
	}
	if marked == 0 {
		t.Fatal("nothing marked: the test checks nothing")
	}
}
