package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// visibleBefore00014 is sostenuto_document_visible as 00002 defined it (a
// SQL function), under another name: what 00014's PL/pgSQL body must
// answer alike.
const visibleBefore00014 = `CREATE FUNCTION visible_before_00014(d uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM documents doc
        WHERE doc.id = d AND sostenuto_uid() IS NOT NULL AND (
            doc.is_public OR doc.owner_id = sostenuto_uid() OR sostenuto_is_admin()
            OR EXISTS (SELECT 1 FROM relationships r WHERE r.teacher_id = doc.owner_id AND r.student_id = sostenuto_uid())))
    $$`

// TestDocumentVisibleAsBefore checks that sostenuto_document_visible
// (PL/pgSQL since 00014) answers as 00002's SQL body for every user (an
// admin, two teachers, a student of one, a student of both, a student of
// none, a user who does not exist, none) and every document (public and
// private of each owner, one that does not exist, NULL).
func TestDocumentVisibleAsBefore(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewDB(t).Pool
	mustExec(t, pool, visibleBefore00014)
	mustExec(t, pool, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES
		('00000000-0000-0000-0000-000000000001', 't1@example.com', 'T1', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000002', 't2@example.com', 'T2', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000003', 's1@example.com', 'S1', 'student', 'x'),
		('00000000-0000-0000-0000-000000000004', 's2@example.com', 'S2', 'student', 'x'),
		('00000000-0000-0000-0000-000000000005', 's3@example.com', 'S3', 'student', 'x'),
		('00000000-0000-0000-0000-000000000006', 'ad@example.com', 'Ad', 'admin', 'x')`)
	mustExec(t, pool, `INSERT INTO relationships (teacher_id, student_id) VALUES
		('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000003'),
		('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000004'),
		('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000004')`)
	mustExec(t, pool, `INSERT INTO documents (owner_id, title, source_type, is_public)
		SELECT u.id, 'Doc', 'text', p FROM users u, (VALUES (true), (false)) v(p)`)
	users := []string{"", "00000000-0000-0000-0000-0000000000ff"}
	docs := []*string{nil, ptr("00000000-0000-0000-0000-0000000000dd")}
	rows, _ := pool.Query(ctx, `SELECT id::text FROM users`)
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	users = append(users, known...)
	rows, _ = pool.Query(ctx, `SELECT id::text FROM documents`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ids {
		docs = append(docs, ptr(d))
	}
	seen := map[bool]int{}
	for _, u := range users {
		for _, d := range docs {
			var now, before bool
			err := pool.QueryRow(ctx, `SELECT set_config('sostenuto.user_id', $1, true) IS NULL,
				sostenuto_document_visible($2::uuid), visible_before_00014($2::uuid)`, u, d).Scan(new(bool), &now, &before)
			if err != nil {
				t.Fatal(err)
			}
			if now != before {
				t.Errorf("user %q, document %v: visible %v, 00002's body says %v", u, deref(d), now, before)
			}
			seen[now]++
		}
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("the pairs are all alike (%v): the test checks nothing", seen)
	}
}

// TestChunksPolicyAsksAdminOnce checks that a read of chunks as
// sostenuto_app asks sostenuto_is_admin() once per statement (an
// InitPlan), not once per row, since 00014.
func TestChunksPolicyAsksAdminOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewDB(t).Pool
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE sostenuto_app`); err != nil {
		t.Fatal(err)
	}
	rows, _ := tx.Query(ctx, `EXPLAIN SELECT id FROM chunks WHERE id = ANY('{00000000-0000-0000-0000-000000000001}'::uuid[])`)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	for _, l := range lines {
		if strings.Contains(l, "Filter:") && strings.Contains(l, "sostenuto_is_admin()") {
			t.Errorf("sostenuto_is_admin() is asked per row:\n%s", plan)
		}
	}
	if !strings.Contains(plan, "InitPlan") {
		t.Errorf("no InitPlan in the plan:\n%s", plan)
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// permBefore00014 is sostenuto_project_perm as 00002 defined it.
const permBefore00014 = `CREATE FUNCTION perm_before_00014(p uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT CASE
        WHEN sostenuto_uid() IS NULL THEN 0
        WHEN sostenuto_is_admin() THEN 3
        WHEN EXISTS (SELECT 1 FROM projects WHERE id = p AND owner_id = sostenuto_uid()) THEN 3
        ELSE coalesce((SELECT CASE permission WHEN 'admin' THEN 3 WHEN 'edit' THEN 2 ELSE 1 END
                       FROM project_grants WHERE project_id = p AND user_id = sostenuto_uid()), 0)
    END $$`

// TestProjectPermAsBefore checks that sostenuto_project_perm (PL/pgSQL
// since 00014) answers as 00002's SQL body for every user (an admin, two
// owners, grantees with view, edit and admin on the first's project and
// one with view on both, a stranger, a user who does not exist, none) and
// every project (both, one that does not exist, NULL).
func TestProjectPermAsBefore(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewDB(t).Pool
	mustExec(t, pool, permBefore00014)
	mustExec(t, pool, `INSERT INTO users (id, email, display_name, role, password_hash) VALUES
		('00000000-0000-0000-0000-000000000001', 't1@example.com', 'T1', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000002', 't2@example.com', 'T2', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000003', 'gv@example.com', 'GV', 'student', 'x'),
		('00000000-0000-0000-0000-000000000004', 'ge@example.com', 'GE', 'student', 'x'),
		('00000000-0000-0000-0000-000000000005', 'ga@example.com', 'GA', 'teacher', 'x'),
		('00000000-0000-0000-0000-000000000006', 'gb@example.com', 'GB', 'student', 'x'),
		('00000000-0000-0000-0000-000000000007', 'st@example.com', 'ST', 'student', 'x'),
		('00000000-0000-0000-0000-000000000008', 'ad@example.com', 'Ad', 'admin', 'x')`)
	mustExec(t, pool, `INSERT INTO projects (id, owner_id, title, filename, object_key) VALUES
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'P1', 'p1.pdf', 'k1'),
		('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-000000000002', 'P2', 'p2.pdf', 'k2')`)
	mustExec(t, pool, `INSERT INTO project_grants (project_id, user_id, permission) VALUES
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000003', 'view'),
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000004', 'edit'),
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000005', 'admin'),
		('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000006', 'view'),
		('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-000000000006', 'view'),
		('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-000000000008', 'edit')`)
	users := []string{"", "00000000-0000-0000-0000-0000000000ff"}
	for i := 1; i <= 8; i++ {
		users = append(users, fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
	}
	projects := []*string{nil, ptr("00000000-0000-0000-0000-0000000000a1"), ptr("00000000-0000-0000-0000-0000000000a2"),
		ptr("00000000-0000-0000-0000-0000000000dd")}
	seen := map[int]int{}
	for _, u := range users {
		for _, p := range projects {
			var now, before int
			err := pool.QueryRow(ctx, `SELECT set_config('sostenuto.user_id', $1, true) IS NULL,
				sostenuto_project_perm($2::uuid), perm_before_00014($2::uuid)`, u, p).Scan(new(bool), &now, &before)
			if err != nil {
				t.Fatal(err)
			}
			if now != before {
				t.Errorf("user %q, project %v: permission %d, 00002's body says %d", u, deref(p), now, before)
			}
			seen[now]++
		}
	}
	for perm := range 4 {
		if seen[perm] == 0 {
			t.Errorf("no pair has permission %d (%v): the test does not cover it", perm, seen)
		}
	}
}
