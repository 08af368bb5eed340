package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/sostenuto/sostenuto/migrations"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

func mustPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestUpFromEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewEmptyDB(t, "")
	pool := mustPool(t, db.URL)
	latest, err := migrations.Latest()
	if err != nil || latest < 1 {
		t.Fatalf("Latest() = %d, %v", latest, err)
	}

	res, err := migrations.Up(ctx, pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if res.From != 0 || res.To != latest || res.Applied != migrationCount(t) {
		t.Errorf("Up = %+v, want from 0 to %d, all %d applied", res, latest, migrationCount(t))
	}
	for _, table := range []string{"users", "refresh_tokens", "relationships", "projects", "project_grants",
		"annotations", "documents", "chunks", "chat_sessions", "chat_messages", "jobs"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (%v)", table, err)
		}
	}
	var pubTables []string
	err = pool.QueryRow(ctx, `SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_publication_tables
		WHERE pubname = 'sostenuto_changefeed'`).Scan(&pubTables)
	if err != nil || strings.Join(pubTables, ",") != "annotation_chunks,annotation_embeddings,chunk_embeddings,chunks,documents,embedding_state,project_grants,projects,relationships" {
		t.Errorf("publication tables = %v, %v", pubTables, err)
	}
	var idx string
	err = pool.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_idx'").Scan(&idx)
	if err != nil || !strings.Contains(idx, "hnsw") || !strings.Contains(idx, "vector_cosine_ops") ||
		!strings.Contains(idx, "m='16'") || !strings.Contains(idx, "ef_construction='64'") {
		t.Errorf("hnsw index = %q, %v", idx, err)
	}

	again, err := migrations.Up(ctx, pool, slog.New(slog.DiscardHandler))
	if err != nil || again.Applied != 0 || again.From != latest {
		t.Errorf("second Up = %+v, %v; want nothing applied", again, err)
	}
}

// Several nodes starting at once: the advisory lock serializes them and
// exactly one applies the migrations.
func TestUpConcurrent(t *testing.T) {
	db := pgtest.NewEmptyDB(t, "")
	const nodes = 4
	var wg sync.WaitGroup
	results := make([]migrations.Result, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		pool := mustPool(t, db.URL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			results[i], errs[i] = migrations.Up(ctx, pool, slog.New(slog.DiscardHandler))
		}()
	}
	wg.Wait()
	applied := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		applied += results[i].Applied
	}
	if applied != migrationCount(t) {
		t.Errorf("applied %d migrations across nodes, want %d", applied, migrationCount(t))
	}
}

// migrationCount is the number of migration files: numbers may skip (a
// branch holds 00006 before 00005 lands), so it is not the latest number.
func migrationCount(t *testing.T) int {
	t.Helper()
	names, err := fs.Glob(migrations.FS(), "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("migration files: %v, %v", names, err)
	}
	return len(names)
}

func TestConstraintsRejectBadRows(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	pool := db.Pool
	// Fixtures every case can refer to.
	mustExec(t, pool, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES
		('00000000-0000-0000-0000-000000000001', 'teacher@example.com', 'Teacher', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000002', 'student@example.com', 'Student', 'student', 'x')`)
	mustExec(t, pool, `INSERT INTO projects (id, owner_id, title, filename, object_key) VALUES
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'Minuet', 'minuet.pdf', 'projects/a1.pdf')`)
	mustExec(t, pool, `INSERT INTO documents (id, owner_id, title, source_type) VALUES
		('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-000000000001', 'Method', 'text')`)
	mustExec(t, pool, `INSERT INTO chat_sessions (id, user_id) VALUES
		('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-000000000002')`)

	const (
		teacher = "'00000000-0000-0000-0000-000000000001'"
		student = "'00000000-0000-0000-0000-000000000002'"
		project = "'00000000-0000-0000-0000-0000000000a1'"
		doc     = "'00000000-0000-0000-0000-0000000000d1'"
		vec     = "array_fill(0.1, ARRAY[768])::vector"
	)
	chunk := func(cols, vals string) string {
		return `INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding` + cols +
			`) VALUES (` + doc + `, ` + teacher + `, ` + vals + `)`
	}
	cases := []struct {
		name, sql, constraint string
	}{
		{"email duplicate in other case", `INSERT INTO users (email, display_name, role, password_hash) VALUES ('TEACHER@example.com', 'T', 'teacher', 'x')`, "users_email_key"},
		{"unknown role", `INSERT INTO users (email, display_name, role, password_hash) VALUES ('a@b.c', 'A', 'root', 'x')`, "users_role_check"},
		{"blank display name", `INSERT INTO users (email, display_name, role, password_hash) VALUES ('a@b.c', '  ', 'student', 'x')`, "users_display_name_check"},
		{"no credential", `INSERT INTO users (email, display_name, role) VALUES ('a@b.c', 'A', 'student')`, "users_credential_check"},
		{"malformed email", `INSERT INTO users (email, display_name, role, password_hash) VALUES ('nobody', 'A', 'student', 'x')`, "users_email_check"},
		{"refresh token short hash", `INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES (` + teacher + `, gen_random_uuid(), '\x00', now() + interval '1 day')`, "refresh_tokens_hash_length_check"},
		{"refresh token expired at birth", `INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES (` + teacher + `, gen_random_uuid(), sha256('x'), now() - interval '1 day')`, "refresh_tokens_expiry_check"},
		{"self relationship", `INSERT INTO relationships (teacher_id, student_id) VALUES (` + teacher + `, ` + teacher + `)`, "relationships_distinct_check"},
		{"relationship to nobody", `INSERT INTO relationships (teacher_id, student_id) VALUES (` + teacher + `, gen_random_uuid())`, "relationships_student_id_fkey"},
		{"project unknown status", `INSERT INTO projects (owner_id, title, filename, object_key, status) VALUES (` + teacher + `, 'T', 'f.pdf', 'k1', 'lost')`, "projects_status_check"},
		{"project ready without pages", `INSERT INTO projects (owner_id, title, filename, object_key, status, file_size_bytes) VALUES (` + teacher + `, 'T', 'f.pdf', 'k2', 'ready', 10)`, "projects_ready_check"},
		{"project zero pages", `INSERT INTO projects (owner_id, title, filename, object_key, page_count) VALUES (` + teacher + `, 'T', 'f.pdf', 'k3', 0)`, "projects_page_count_check"},
		{"project not a pdf", `INSERT INTO projects (owner_id, title, filename, object_key, content_type) VALUES (` + teacher + `, 'T', 'f.exe', 'k4', 'application/x-msdownload')`, "projects_content_type_check"},
		{"project shared object key", `INSERT INTO projects (owner_id, title, filename, object_key) VALUES (` + teacher + `, 'T', 'f.pdf', 'projects/a1.pdf')`, "projects_object_key_key"},
		{"grant unknown permission", `INSERT INTO project_grants (project_id, user_id, permission) VALUES (` + project + `, ` + student + `, 'owner')`, "project_grants_permission_check"},
		{"annotation page zero", `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES (` + project + `, ` + teacher + `, 0, 'note', '{}')`, "annotations_page_check"},
		{"annotation unknown type", `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES (` + project + `, ` + teacher + `, 1, 'sticker', '{}')`, "annotations_type_check"},
		{"annotation content not an object", `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES (` + project + `, ` + teacher + `, 1, 'note', '[1]')`, "annotations_content_check"},
		{"annotation on missing project", `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES (gen_random_uuid(), ` + teacher + `, 1, 'note', '{}')`, "annotations_project_id_fkey"},
		{"document unknown source", `INSERT INTO documents (owner_id, title, source_type) VALUES (` + teacher + `, 'T', 'fax')`, "documents_source_type_check"},
		{"web document without url", `INSERT INTO documents (owner_id, title, source_type) VALUES (` + teacher + `, 'T', 'web')`, "documents_web_url_check"},
		{"document url not http", `INSERT INTO documents (owner_id, title, source_type, source_url) VALUES (` + teacher + `, 'T', 'web', 'file:///etc/passwd')`, "documents_source_url_check"},
		{"failed document without error", `INSERT INTO documents (owner_id, title, source_type, status) VALUES (` + teacher + `, 'T', 'text', 'failed')`, "documents_failed_check"},
		{"document error code not snake case", `INSERT INTO documents (owner_id, title, source_type, status, error, error_code) VALUES (` + teacher + `, 'T', 'text', 'failed', 'x', 'Blocked Address!')`, "documents_error_code_check"},
		{"progress past total", `INSERT INTO documents (owner_id, title, source_type, chunks_done, chunks_total) VALUES (` + teacher + `, 'T', 'text', 5, 4)`, "documents_counts_check"},
		{"chunk owner differs from document", `INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding) VALUES (` + doc + `, ` + student + `, 0, 'x', 1, 0, 1, ` + vec + `)`, "chunks_document_fkey"},
		{"chunk wrong dimension", chunk("", `0, 'x', 1, 0, 1, array_fill(0.1, ARRAY[3])::vector`), ""},
		{"chunk pages reversed", chunk(", page_start, page_end", `0, 'x', 1, 0, 1, `+vec+`, 3, 2`), "chunks_pages_check"},
		{"chunk empty span", chunk("", `0, 'x', 1, 5, 5, `+vec), "chunks_offsets_check"},
		{"chunk empty text", chunk("", `0, '', 1, 0, 1, `+vec), "chunks_text_check"},
		{"chunk half a time range", chunk(", time_start_ms", `0, 'x', 1, 0, 1, `+vec+`, 100`), "chunks_times_check"},
		{"chat message unknown role", `INSERT INTO chat_messages (session_id, role, content) VALUES ('00000000-0000-0000-0000-0000000000c1', 'system', 'x')`, "chat_messages_role_check"},
		{"assistant message without confidence", `INSERT INTO chat_messages (session_id, role, content) VALUES ('00000000-0000-0000-0000-0000000000c1', 'assistant', 'x')`, "chat_messages_assistant_check"},
		{"chat message bad confidence", `INSERT INTO chat_messages (session_id, role, content, confidence) VALUES ('00000000-0000-0000-0000-0000000000c1', 'assistant', 'x', 'SURE')`, "chat_messages_confidence_check"},
		{"job bad kind", `INSERT INTO jobs (kind) VALUES ('Drop Table')`, "jobs_kind_check"},
		{"job running without lease", `INSERT INTO jobs (kind, status) VALUES ('ingest', 'running')`, "jobs_lease_check"},
		{"job attempts past max", `INSERT INTO jobs (kind, attempts, max_attempts) VALUES ('ingest', 6, 5)`, "jobs_attempts_check"},
		{"job finished without time", `INSERT INTO jobs (kind, status) VALUES ('ingest', 'succeeded')`, "jobs_finished_check"},
		{"throttle key of no kind", `INSERT INTO auth_throttle (key) VALUES ('user:x')`, "auth_throttle_key_check"},
		{"throttle key too long", `INSERT INTO auth_throttle (key) VALUES ('pair:' || repeat('x', 396))`, "auth_throttle_key_check"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("insert succeeded or failed oddly: %v", err)
			}
			if tc.constraint != "" && pgErr.ConstraintName != tc.constraint {
				t.Errorf("violated %q (%s), want %q", pgErr.ConstraintName, pgErr.Message, tc.constraint)
			}
		})
	}

	// The good rows the bad ones were variations of are accepted.
	mustExec(t, pool, chunk(", page_start, page_end, time_start_ms, time_end_ms", `0, 'Play legato.', 3, 0, 12, `+vec+`, 2, 3, 0, 1500`))
	mustExec(t, pool, `INSERT INTO jobs (kind, dedupe_key) VALUES ('ingest', 'doc:d1')`)
	mustExec(t, pool, `INSERT INTO auth_throttle (key) VALUES ('pair:2001:db8::/64|' || repeat('e', 254))`)
	if _, err := pool.Exec(ctx, `INSERT INTO jobs (kind, dedupe_key) VALUES ('ingest', 'doc:d1')`); !isConstraint(err, "jobs_dedupe_key") {
		t.Errorf("second live job with one dedupe key: %v", err)
	}
}

// Deleting a parent takes its children with it; nothing dangles.
func TestCascades(t *testing.T) {
	pool := pgtest.NewDB(t).Pool
	mustExec(t, pool, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES
		('00000000-0000-0000-0000-000000000001', 't@example.com', 'T', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000002', 's@example.com', 'S', 'student', 'x')`)
	mustExec(t, pool, `INSERT INTO projects (id, owner_id, title, filename, object_key) VALUES
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'P', 'p.pdf', 'k')`)
	mustExec(t, pool, `INSERT INTO project_grants (project_id, user_id, permission, granted_by) VALUES
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000002', 'view', '00000000-0000-0000-0000-000000000001')`)
	mustExec(t, pool, `INSERT INTO annotations (project_id, author_id, page, type, content) VALUES
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000002', 1, 'note', '{"text":"x","x":0.1,"y":0.2}')`)
	mustExec(t, pool, `INSERT INTO documents (id, owner_id, title, source_type) VALUES
		('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-000000000001', 'D', 'text')`)
	mustExec(t, pool, `INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, char_start, char_end, embedding) VALUES
		('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-000000000001', 0, 'x', 1, 0, 1, array_fill(0.1, ARRAY[768])::vector)`)

	mustExec(t, pool, `DELETE FROM users WHERE id = '00000000-0000-0000-0000-000000000002'`)
	assertCount(t, pool, "project_grants", 0)
	assertCount(t, pool, "annotations", 0)
	mustExec(t, pool, `DELETE FROM documents`)
	assertCount(t, pool, "chunks", 0)
	mustExec(t, pool, `DELETE FROM users`)
	assertCount(t, pool, "projects", 0)
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func assertCount(t *testing.T, pool *pgxpool.Pool, table string, want int) {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%s has %d rows, want %d", table, n, want)
	}
}

func isConstraint(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.ConstraintName == name
}

// 00005 gives every error stored before it a code and replaces its text,
// which could hold a resolver's answer or an internal address, with a
// sentence; documents without an error keep none.
func TestErrorCodeMigrationSanitizesOldErrors(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewEmptyDB(t, "")
	pool := mustPool(t, db.URL)
	p, err := goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(pool), migrations.FS(), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	leak := `ingest: fetch http://intranet/: dial tcp: lookup intranet on 10.255.255.53:53: no such host`
	mustExec(t, pool, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES
		('00000000-0000-0000-0000-000000000001', 't@example.com', 'T', 'teacher', 'x')`)
	mustExec(t, pool, `INSERT INTO documents (id, owner_id, title, source_type, source_url, status, error) VALUES
		('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-000000000001', 'Failed', 'web', 'http://intranet/', 'failed', '`+leak+`'),
		('00000000-0000-0000-0000-0000000000d2', '00000000-0000-0000-0000-000000000001', 'Retrying', 'web', 'http://intranet/', 'queued', 'attempt 1 of 5 failed, will retry: `+leak+`'),
		('00000000-0000-0000-0000-0000000000d3', '00000000-0000-0000-0000-000000000001', 'Fine', 'text', NULL, 'pending', NULL)`)
	if _, err := migrations.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT title, error, error_code FROM documents ORDER BY title`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var title string
		var msg, code *string
		if err := rows.Scan(&title, &msg, &code); err != nil {
			t.Fatal(err)
		}
		switch {
		case title == "Fine" && (msg != nil || code != nil):
			t.Errorf("%s: error %v code %v, want none", title, msg, code)
		case title != "Fine" && (msg == nil || code == nil || *code != "failed"):
			t.Errorf("%s: error %v code %v, want code failed", title, msg, code)
		case msg != nil && (strings.Contains(*msg, "10.255") || strings.Contains(*msg, "lookup")):
			t.Errorf("%s: the old text survived: %q", title, *msg)
		}
	}
}
