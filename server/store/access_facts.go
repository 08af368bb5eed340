package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/fault"
)

// The facts server/access decides on, read as the acting user: Row Level
// Security hides rows the user may not see, so a hidden object is
// fault.ErrNotFound here already.

// ProjectFacts are a project's owner and the acting user's grant on it.
type ProjectFacts struct {
	ID      uuid.UUID
	OwnerID uuid.UUID
	Grant   string // "", view, edit or admin
}

// ProjectFacts loads the owner of project and user's grant on it.
func (s *Store) ProjectFacts(ctx context.Context, user, project uuid.UUID) (ProjectFacts, error) {
	f := ProjectFacts{ID: project}
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT p.owner_id, coalesce(g.permission, '')
			FROM projects p LEFT JOIN project_grants g ON g.project_id = p.id AND g.user_id = $2
			WHERE p.id = $1`, project, user).Scan(&f.OwnerID, &f.Grant)
	})
	return f, notFound("project facts", err)
}

// DocumentFacts are what document visibility depends on.
type DocumentFacts struct {
	ID        uuid.UUID
	OwnerID   uuid.UUID
	IsPublic  bool
	IsStudent bool // the acting user is a student of the owner
}

// DocumentFacts loads a document's owner, publicity and whether user is a
// student of its owner.
func (s *Store) DocumentFacts(ctx context.Context, user, doc uuid.UUID) (DocumentFacts, error) {
	f := DocumentFacts{ID: doc}
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT d.owner_id, d.is_public,
				EXISTS (SELECT 1 FROM relationships r WHERE r.teacher_id = d.owner_id AND r.student_id = $2)
			FROM documents d WHERE d.id = $1`, doc, user).Scan(&f.OwnerID, &f.IsPublic, &f.IsStudent)
	})
	return f, notFound("document facts", err)
}

// ChatSessionOwner returns the owner of a chat session.
func (s *Store) ChatSessionOwner(ctx context.Context, user, session uuid.UUID) (uuid.UUID, error) {
	var owner uuid.UUID
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT user_id FROM chat_sessions WHERE id = $1`, session).Scan(&owner)
	})
	return owner, notFound("chat session owner", err)
}

// AnnotationFacts are an annotation's project and author, as stored.
type AnnotationFacts struct {
	ID        uuid.UUID
	ProjectID uuid.UUID
	AuthorID  uuid.UUID
}

// AnnotationFacts loads the project and author of an annotation.
func (s *Store) AnnotationFacts(ctx context.Context, user, annotation uuid.UUID) (AnnotationFacts, error) {
	f := AnnotationFacts{ID: annotation}
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT project_id, author_id FROM annotations WHERE id = $1`, annotation).
			Scan(&f.ProjectID, &f.AuthorID)
	})
	return f, notFound("annotation facts", err)
}

func notFound(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("store: %s: %w", op, fault.ErrNotFound)
	default:
		return fmt.Errorf("store: %s: %w", op, err)
	}
}
