package access

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

func TestCanGrant(t *testing.T) {
	for _, tc := range []struct {
		held, req Permission
		ok        bool
	}{
		{Admin, View, true}, {Admin, Edit, true}, {Admin, Admin, true},
		{Edit, View, false}, {Edit, Edit, false}, {View, View, false}, {None, View, false},
		{Admin, None, false},
	} {
		if got := CanGrant(tc.held, tc.req); got != tc.ok {
			t.Errorf("CanGrant(%s, %s) = %v, want %v", tc.held, tc.req, got, tc.ok)
		}
	}
}

func TestProjectPermissionRule(t *testing.T) {
	owner, other := uuid.New(), uuid.New()
	f := store.ProjectFacts{OwnerID: owner}
	for _, tc := range []struct {
		name  string
		actor Actor
		grant string
		want  Permission
	}{
		{"owner", Actor{ID: owner, Role: "teacher"}, "", Admin},
		{"app admin", Actor{ID: other, Role: "admin"}, "", Admin},
		{"viewer", Actor{ID: other, Role: "student"}, "view", View},
		{"editor", Actor{ID: other, Role: "student"}, "edit", Edit},
		{"project admin", Actor{ID: other, Role: "teacher"}, "admin", Admin},
		{"stranger", Actor{ID: other, Role: "teacher"}, "", None},
	} {
		f.Grant = tc.grant
		if got := ProjectPermission(tc.actor, f); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

type world struct {
	svc                                             *Service
	alice, bob, student, viewer, editor, admin      Actor
	project, otherProject, annotation, doc, session uuid.UUID
	viewerNote                                      uuid.UUID
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	pool, err := store.OpenPool(ctx, db.URL, store.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := &world{svc: New(store.New(pool))}
	mk := func(role string) Actor { return Actor{ID: uuid.New(), Role: role} }
	w.alice, w.bob, w.student, w.viewer, w.editor, w.admin = mk("teacher"), mk("teacher"), mk("student"), mk("student"), mk("student"), mk("admin")
	w.project, w.otherProject, w.annotation, w.doc, w.session, w.viewerNote = uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, a := range []Actor{w.alice, w.bob, w.student, w.viewer, w.editor, w.admin} {
		exec(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ($1, $2, 'U', $3, 'x')`, a.ID, uuid.NewString()[:8]+"@example.com", a.Role)
	}
	exec(`INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)`, w.alice.ID, w.student.ID)
	exec(`INSERT INTO projects (id, owner_id, title, filename, object_key) VALUES ($1, $2, 'P', 'p.pdf', 'k1'), ($3, $4, 'Q', 'q.pdf', 'k2')`, w.project, w.alice.ID, w.otherProject, w.bob.ID)
	exec(`INSERT INTO project_grants (project_id, user_id, permission) VALUES ($1, $2, 'view'), ($1, $3, 'edit'), ($4, $2, 'admin')`, w.project, w.viewer.ID, w.editor.ID, w.otherProject)
	exec(`INSERT INTO annotations (id, project_id, author_id, page, type, content) VALUES ($1, $2, $3, 1, 'note', '{}'), ($4, $2, $5, 1, 'note', '{}')`,
		w.annotation, w.project, w.editor.ID, w.viewerNote, w.viewer.ID)
	exec(`INSERT INTO documents (id, owner_id, title, source_type) VALUES ($1, $2, 'D', 'text')`, w.doc, w.alice.ID)
	exec(`INSERT INTO chat_sessions (id, user_id) VALUES ($1, $2)`, w.session, w.alice.ID)
	return w
}

func TestProjectDecisions(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		actor Actor
		need  Permission
		err   error
	}{
		{"owner admin", w.alice, Admin, nil},
		{"app admin", w.admin, Admin, nil},
		{"viewer views", w.viewer, View, nil},
		{"viewer edits", w.viewer, Edit, fault.ErrForbidden},
		{"editor edits", w.editor, Edit, nil},
		{"editor administers", w.editor, Admin, fault.ErrForbidden},
		{"stranger views", w.bob, View, fault.ErrNotFound},
		{"student of owner views", w.student, View, fault.ErrNotFound}, // relationships do not share projects
	} {
		_, err := w.svc.Project(ctx, tc.actor, w.project, tc.need)
		if !errors.Is(err, tc.err) && !(tc.err == nil && err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := w.svc.Project(ctx, w.alice, uuid.New(), View); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("missing project: %v", err)
	}
}

// Annotations are judged through their project as stored: the viewer holds
// admin on another project, which says nothing about this annotation.
func TestAnnotationThroughParent(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		actor Actor
		write bool
		err   error
	}{
		{"author edits", w.editor, true, nil},
		{"project owner edits", w.alice, true, nil},
		{"app admin edits", w.admin, true, nil},
		{"viewer reads", w.viewer, false, nil},
		{"viewer edits another's", w.viewer, true, fault.ErrForbidden},
		{"stranger reads", w.bob, false, fault.ErrNotFound},
	} {
		_, err := w.svc.Annotation(ctx, tc.actor, w.annotation, tc.write)
		if !errors.Is(err, tc.err) && !(tc.err == nil && err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := w.svc.Annotation(ctx, w.viewer, w.viewerNote, true); err != nil {
		t.Errorf("viewer edits its own note: %v", err)
	}
}

func TestDocumentAndChatDecisions(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		actor  Actor
		see    error
		manage error
	}{
		{"owner", w.alice, nil, nil},
		{"admin", w.admin, nil, nil},
		{"owner's student", w.student, nil, fault.ErrForbidden},
		{"other teacher", w.bob, fault.ErrNotFound, fault.ErrNotFound},
		{"grantee of a project", w.viewer, fault.ErrNotFound, fault.ErrNotFound},
	} {
		if _, err := w.svc.Document(ctx, tc.actor, w.doc); !errors.Is(err, tc.see) && !(tc.see == nil && err == nil) {
			t.Errorf("%s sees: %v, want %v", tc.name, err, tc.see)
		}
		if _, err := w.svc.ManageDocument(ctx, tc.actor, w.doc); !errors.Is(err, tc.manage) && !(tc.manage == nil && err == nil) {
			t.Errorf("%s manages: %v, want %v", tc.name, err, tc.manage)
		}
	}
	if err := w.svc.ChatSession(ctx, w.alice, w.session); err != nil {
		t.Errorf("owner's chat: %v", err)
	}
	for _, a := range []Actor{w.admin, w.student, w.bob} {
		if err := w.svc.ChatSession(ctx, a, w.session); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("%s reads another's chat: %v", a.Role, err)
		}
	}
}

func TestCreateRelationshipRule(t *testing.T) {
	teacher, admin, student := Actor{ID: uuid.New(), Role: "teacher"}, Actor{ID: uuid.New(), Role: "admin"}, Actor{ID: uuid.New(), Role: "student"}
	other := uuid.New()
	if id, err := CreateRelationship(teacher, uuid.Nil); err != nil || id != teacher.ID {
		t.Errorf("teacher: %v %v", id, err)
	}
	if _, err := CreateRelationship(teacher, other); !errors.Is(err, fault.ErrForbidden) {
		t.Errorf("teacher naming another: %v", err)
	}
	if id, err := CreateRelationship(admin, other); err != nil || id != other {
		t.Errorf("admin: %v %v", id, err)
	}
	if _, err := CreateRelationship(admin, uuid.Nil); !errors.Is(err, fault.ErrInvalid) {
		t.Errorf("admin without teacher: %v", err)
	}
	if _, err := CreateRelationship(student, uuid.Nil); !errors.Is(err, fault.ErrForbidden) {
		t.Errorf("student: %v", err)
	}
}
