// Package access makes every permission decision of the API. Handlers call
// it on objects as loaded from the database, never on ids or roles a client
// sends: child objects (annotations, chunks, messages) are checked through
// their parent as stored. An object the actor may not see is fault.ErrNotFound
// (answered 404, like a missing one); one it may see but not change is
// fault.ErrForbidden (403).
package access

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

// Actor is the authenticated caller, with its role as stored.
type Actor struct {
	ID   uuid.UUID
	Role string
}

// IsAdmin reports whether the actor is an app admin.
func (a Actor) IsAdmin() bool { return a.Role == store.RoleAdmin }

// Permission on a project: None < View < Edit < Admin.
type Permission int

// Project permissions.
const (
	None Permission = iota
	View
	Edit
	Admin
)

func (p Permission) String() string {
	switch p {
	case View:
		return "view"
	case Edit:
		return "edit"
	case Admin:
		return "admin"
	default:
		return "none"
	}
}

// ParsePermission reads view, edit or admin.
func ParsePermission(s string) (Permission, bool) {
	switch s {
	case "view":
		return View, true
	case "edit":
		return Edit, true
	case "admin":
		return Admin, true
	}
	return None, false
}

// ProjectPermission is the actor's permission on a project with owner, given
// the actor's grant on it ("" for none): the owner and app admins hold Admin.
func ProjectPermission(a Actor, f store.ProjectFacts) Permission {
	if a.IsAdmin() || f.OwnerID == a.ID {
		return Admin
	}
	p, _ := ParsePermission(f.Grant)
	return p
}

// CanGrant reports whether an actor holding held may grant requested:
// granting needs Admin, and nobody grants more than they hold.
func CanGrant(held, requested Permission) bool {
	return held >= Admin && requested >= View && requested <= held
}

// DocumentVisible reports whether the actor may see a document: its owner,
// app admins, everyone when public, the owner's students when private.
func DocumentVisible(a Actor, f store.DocumentFacts) bool {
	return a.IsAdmin() || f.OwnerID == a.ID || f.IsPublic || f.IsStudent
}

// Service loads the facts and decides.
type Service struct {
	store *store.Store
}

// New returns the access service.
func New(st *store.Store) *Service { return &Service{store: st} }

func (s *Service) wrap(op string, err error) error {
	if errors.Is(err, fault.ErrNotFound) {
		return fmt.Errorf("access: %s: %w", op, fault.ErrNotFound)
	}
	return fmt.Errorf("access: %s: %w", op, err)
}

// Project checks the actor holds at least need on project and returns what
// it holds.
func (s *Service) Project(ctx context.Context, a Actor, project uuid.UUID, need Permission) (Permission, error) {
	f, err := s.store.ProjectFacts(ctx, a.ID, project)
	if err != nil {
		return None, s.wrap("project", err)
	}
	p := ProjectPermission(a, f)
	switch {
	case p == None:
		return None, fmt.Errorf("access: project: %w", fault.ErrNotFound)
	case p < need:
		return p, fmt.Errorf("access: project: needs %s, holds %s: %w", need, p, fault.ErrForbidden)
	}
	return p, nil
}

// Annotation checks the actor may see (write false) or change (write true)
// an annotation, through its project as stored: changing needs to be its
// author (still able to see the project) or a project admin.
func (s *Service) Annotation(ctx context.Context, a Actor, annotation uuid.UUID, write bool) (store.AnnotationFacts, error) {
	f, err := s.store.AnnotationFacts(ctx, a.ID, annotation)
	if err != nil {
		return f, s.wrap("annotation", err)
	}
	p, err := s.Project(ctx, a, f.ProjectID, View)
	if err != nil {
		return f, err
	}
	if write && f.AuthorID != a.ID && p < Admin {
		return f, fmt.Errorf("access: annotation: only its author or a project admin may change it: %w", fault.ErrForbidden)
	}
	return f, nil
}

// Document checks the actor may see a document.
func (s *Service) Document(ctx context.Context, a Actor, doc uuid.UUID) (store.DocumentFacts, error) {
	f, err := s.store.DocumentFacts(ctx, a.ID, doc)
	if err != nil {
		return f, s.wrap("document", err)
	}
	if !DocumentVisible(a, f) {
		return f, fmt.Errorf("access: document: %w", fault.ErrNotFound)
	}
	return f, nil
}

// ManageDocument checks the actor may change a document: its owner or an
// app admin. Others who can see it get fault.ErrForbidden.
func (s *Service) ManageDocument(ctx context.Context, a Actor, doc uuid.UUID) (store.DocumentFacts, error) {
	f, err := s.Document(ctx, a, doc)
	if err != nil {
		return f, err
	}
	if f.OwnerID != a.ID && !a.IsAdmin() {
		return f, fmt.Errorf("access: document: only its owner or an admin: %w", fault.ErrForbidden)
	}
	return f, nil
}

// ChatSession checks the actor owns a chat session; nobody else sees it,
// admins included.
func (s *Service) ChatSession(ctx context.Context, a Actor, session uuid.UUID) error {
	owner, err := s.store.ChatSessionOwner(ctx, a.ID, session)
	if err != nil {
		return s.wrap("chat session", err)
	}
	if owner != a.ID {
		return fmt.Errorf("access: chat session: %w", fault.ErrNotFound)
	}
	return nil
}

// Relationship checks the actor is its teacher, its student or an admin.
func (s *Service) Relationship(ctx context.Context, a Actor, id uuid.UUID) (store.Relationship, error) {
	r, err := s.store.RelationshipByID(ctx, id)
	if err != nil {
		return r, s.wrap("relationship", err)
	}
	if !a.IsAdmin() && r.TeacherID != a.ID && r.StudentID != a.ID {
		return r, fmt.Errorf("access: relationship: %w", fault.ErrNotFound)
	}
	return r, nil
}

// CreateRelationship decides who is the teacher of a new relationship:
// teachers link their own students; admins name the teacher; students may
// not create relationships.
func CreateRelationship(a Actor, teacherID uuid.UUID) (uuid.UUID, error) {
	switch {
	case a.IsAdmin():
		if teacherID == uuid.Nil {
			return uuid.Nil, fmt.Errorf("access: relationship: an admin must name teacher_id: %w", fault.ErrInvalid)
		}
		return teacherID, nil
	case a.Role == store.RoleTeacher:
		if teacherID != uuid.Nil && teacherID != a.ID {
			return uuid.Nil, fmt.Errorf("access: relationship: teachers add their own students: %w", fault.ErrForbidden)
		}
		return a.ID, nil
	default:
		return uuid.Nil, fmt.Errorf("access: relationship: only teachers and admins: %w", fault.ErrForbidden)
	}
}
