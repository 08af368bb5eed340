package replication

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// Annotation chunks and project principals travel the changefeed: the
// base carries a project, its grant and a note; a new note, an edit, a
// grant revoked, a note deleted and a project deleted each reach the
// index, and anti-entropy finds a principal the index lost.
func TestFeedCarriesAnnotationsAndGrants(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	teacher, student, project := uuid.New(), uuid.New(), uuid.New()
	note1, note2 := uuid.New(), uuid.New()
	exec(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, 't@example.com', 'T', 'teacher', 'x'),
		($2, 's@example.com', 'S', 'student', 'x')`, teacher, student)
	exec(`INSERT INTO projects (id, owner_id, title, filename, object_key) VALUES ($1, $2, 'Nocturne', 'n.pdf', 'k1')`, project, teacher)
	exec(`INSERT INTO project_grants (project_id, user_id, permission) VALUES ($1, $2, 'view')`, project, student)
	addNote := func(id uuid.UUID, page int, text string, seed int) {
		t.Helper()
		exec(`WITH a AS (INSERT INTO annotations (id, project_id, author_id, page, type, content) VALUES ($1, $2, $3, $4, 'note', '{}') RETURNING id)
			INSERT INTO annotation_chunks (annotation_id, project_id, author_id, page, text, embedding, version)
			SELECT a.id, $2, $3, $4, $5, $6::vector, 1 FROM a`, id, project, teacher, page, text, vec(seed))
	}
	addNote(note1, 3, "half pedal in the nocturne", 1)
	sink := newDirect(t)
	feed := &Feed{URL: db.URL, Logger: slog.New(slog.DiscardHandler), KeepaliveEvery: 200 * time.Millisecond}
	go feed.Run(ctx, sink)
	search := func(user uuid.UUID, text string) []index.Hit {
		h, _ := sink.Live.Engine().Search(index.Query{K: 5, Mode: index.ModeBM25, Text: text, Scope: index.Scope{User: index.ID(user)}})
		return h
	}
	waitFor(t, "base", func() bool { return sink.FSM.State().Based && len(search(student, "pedal")) == 1 })
	if h := search(student, "pedal")[0].Chunk; h.Kind != index.KindAnnotation || h.PageStart != 3 || h.Title != "Nocturne" || h.AuthorID != index.ID(teacher) {
		t.Fatalf("base note %+v", h)
	}
	if len(search(uuid.New(), "pedal")) != 0 {
		t.Fatal("a stranger sees the note")
	}
	addNote(note2, 4, "staccato left hand", 2)
	waitFor(t, "new note", func() bool { return len(search(student, "staccato")) == 1 })
	exec(`UPDATE annotation_chunks SET text = 'legato left hand', version = 2 WHERE annotation_id = $1`, note2)
	waitFor(t, "edit", func() bool { return len(search(student, "legato")) == 1 && len(search(student, "staccato")) == 0 })
	exec(`DELETE FROM annotations WHERE id = $1`, note2)
	waitFor(t, "delete", func() bool { return len(search(teacher, "legato")) == 0 })
	exec(`DELETE FROM project_grants WHERE project_id = $1 AND user_id = $2`, project, student)
	waitFor(t, "revoke", func() bool { return len(search(student, "pedal")) == 0 })
	if len(search(teacher, "pedal")) != 1 {
		t.Fatal("the owner lost the note with the student's grant")
	}
	checkAntiEntropySeesPrincipals(t, ctx, db, sink, project, student)
	exec(`DELETE FROM projects WHERE id = $1`, project)
	waitFor(t, "project delete", func() bool {
		return len(search(teacher, "pedal")) == 0 && len(sink.Live.Engine().Projects()) == 0
	})
}

// checkAntiEntropySeesPrincipals grants the student again behind the
// index's back (applied to PostgreSQL, revoked in the index by hand) and
// checks anti-entropy names the project and its repair fixes it.
func checkAntiEntropySeesPrincipals(t *testing.T, ctx context.Context, db *pgtest.DB, sink direct, project, student uuid.UUID) {
	t.Helper()
	st := sink.Live.Engine().Projects()[index.ID(project)]
	if len(st.Grantees) != 0 {
		t.Fatalf("grantees after the revoke: %v", st.Grantees)
	}
	sink.Live.Engine().Apply(index.Ops{Grants: []index.Grant{{ProjectID: index.ID(project), UserID: index.ID(student)}}})
	pg, projects, _, err := (&AntiEntropy{URL: db.URL}).readVersions(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := diff(pg, sink.Live.Engine().ChunkVersions(), nil)
	d.Projects = diffProjects(projects, sink.Live.Engine().Projects(), nil)
	if len(d.Projects) != 1 || d.Projects[0] != index.ID(project) || len(d.Missing)+len(d.Stale)+len(d.Extra) != 0 {
		t.Fatalf("divergence %+v", d)
	}
	var ops index.Ops
	repairProjects(&ops, projects, sink.Live.Engine().Projects(), d.IDs())
	if err := sink.Propose(ctx, RepairEntry(ops)); err != nil {
		t.Fatal(err)
	}
	if st := sink.Live.Engine().Projects()[index.ID(project)]; len(st.Grantees) != 0 {
		t.Fatalf("repair left grantees %v", st.Grantees)
	}
}
