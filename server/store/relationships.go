package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Relationship links a teacher to a student.
type Relationship struct {
	ID        uuid.UUID
	TeacherID uuid.UUID
	StudentID uuid.UUID
	CreatedAt time.Time
}

// relationshipRow is how a relationships row scans; Relationship(r) is the record.
type relationshipRow struct {
	ID        uuid.UUID `db:"id"`
	TeacherID uuid.UUID `db:"teacher_id"`
	StudentID uuid.UUID `db:"student_id"`
	CreatedAt time.Time `db:"created_at"`
}

// scanRelationship scans a row into a Relationship.
func scanRelationship(row pgx.CollectableRow) (Relationship, error) {
	r, err := pgx.RowToStructByName[relationshipRow](row)
	return Relationship(r), err
}

const relationshipColumns = "id, teacher_id, student_id, created_at"

// CreateRelationship links teacher and student. An existing link is
// fault.ErrConflict; a missing user is fault.ErrNotFound.
func (s *Store) CreateRelationship(ctx context.Context, teacher, student uuid.UUID) (Relationship, error) {
	rows, _ := s.pool.Query(ctx, `INSERT INTO relationships (teacher_id, student_id) VALUES ($1, $2)
		RETURNING `+relationshipColumns, teacher, student)
	r, err := pgx.CollectExactlyOneRow(rows, scanRelationship)
	switch {
	case uniqueViolation(err, "relationships_pair_key"):
		return Relationship{}, fmt.Errorf("store: create relationship: already linked: %w", fault.ErrConflict)
	case fkViolation(err):
		return Relationship{}, fmt.Errorf("store: create relationship: %w", fault.ErrNotFound)
	case err != nil:
		return Relationship{}, fmt.Errorf("store: create relationship: %w", err)
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return r, nil
}

// RelationshipByID loads a relationship.
func (s *Store) RelationshipByID(ctx context.Context, id uuid.UUID) (Relationship, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+relationshipColumns+` FROM relationships WHERE id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, scanRelationship)
	if errors.Is(err, pgx.ErrNoRows) {
		return Relationship{}, fmt.Errorf("store: relationship %s: %w", id, fault.ErrNotFound)
	}
	if err != nil {
		return Relationship{}, fmt.Errorf("store: relationship %s: %w", id, err)
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return r, nil
}

// ListRelationships lists the relationships user is part of, or all of them
// when user is uuid.Nil, oldest first.
func (s *Store) ListRelationships(ctx context.Context, user uuid.UUID, page Page) ([]Relationship, string, error) {
	after, hasAfter, err := decodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+relationshipColumns+` FROM relationships
		WHERE ($1::uuid IS NULL OR teacher_id = $1 OR student_id = $1)
		  AND (NOT $2 OR (created_at, id) > ($3, $4))
		ORDER BY created_at, id LIMIT $5`,
		nilUUID(user), hasAfter, after.T, after.ID, page.Limit+1)
	items, err := pgx.CollectRows(rows, scanRelationship)
	if err != nil {
		return nil, "", fmt.Errorf("store: list relationships: %w", err)
	}
	for i := range items {
		items[i].CreatedAt = items[i].CreatedAt.UTC()
	}
	return pageOf(items, page.Limit, func(r Relationship) string { return encodeCursor(r.CreatedAt, r.ID) })
}

// DeleteRelationship removes a relationship.
func (s *Store) DeleteRelationship(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM relationships WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("store: delete relationship: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: delete relationship: %w", fault.ErrNotFound)
	}
	return nil
}

func nilUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// pageOf trims a limit+1 query result to limit items and the cursor of the
// next page ("" when this is the last).
func pageOf[T any](items []T, limit int, cursor func(T) string) ([]T, string, error) {
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, cursor(items[limit-1]), nil
}
