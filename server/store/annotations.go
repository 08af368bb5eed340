package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/fault"
)

// ErrStale marks a write against a version that is no longer current.
var ErrStale = errors.New("stale version")

// Annotation is a mark on one page of a project.
type Annotation struct {
	ID        uuid.UUID
	ProjectID uuid.UUID
	AuthorID  uuid.UUID
	Page      int
	Type      string
	Content   json.RawMessage
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// annotationRow is how an annotations row scans; Annotation(r) is the record.
type annotationRow struct {
	ID        uuid.UUID       `db:"id"`
	ProjectID uuid.UUID       `db:"project_id"`
	AuthorID  uuid.UUID       `db:"author_id"`
	Page      int             `db:"page"`
	Type      string          `db:"type"`
	Content   json.RawMessage `db:"content"`
	Version   int             `db:"version"`
	CreatedAt time.Time       `db:"created_at"`
	UpdatedAt time.Time       `db:"updated_at"`
}

// scanAnnotation scans a row into a Annotation.
func scanAnnotation(row pgx.CollectableRow) (Annotation, error) {
	r, err := pgx.RowToStructByName[annotationRow](row)
	return Annotation(r), err
}

const annotationColumns = "id, project_id, author_id, page, type, content, version, created_at, updated_at"

func oneAnnotation(rows pgx.Rows, err error) (Annotation, error) {
	if err != nil {
		return Annotation{}, err
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAnnotation)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, err
}

// CreateAnnotation inserts an annotation by author and, in the same
// transaction, its chunk (vec is its searchable text's embedding; nil: a
// job makes the chunk later). It returns the WAL position after the
// commit (X-Index-LSN).
func (s *Store) CreateAnnotation(ctx context.Context, a Annotation, vec ModelVec) (Annotation, index.LSN, error) {
	var out Annotation
	err := s.AsUser(ctx, a.AuthorID, func(tx pgx.Tx) error {
		var err error
		out, err = oneAnnotation(tx.Query(ctx, `INSERT INTO annotations (project_id, author_id, page, type, content)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+annotationColumns, a.ProjectID, a.AuthorID, a.Page, a.Type, a.Content))
		if err != nil {
			return err
		}
		return syncAnnotationChunk(ctx, tx, out, vec)
	})
	if err != nil {
		return Annotation{}, 0, fmt.Errorf("store: create annotation: %w", err)
	}
	lsn, err := s.walPosition(ctx)
	return out, lsn, err
}

// AnnotationByID loads an annotation as user.
func (s *Store) AnnotationByID(ctx context.Context, user, id uuid.UUID) (Annotation, error) {
	var a Annotation
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		a, err = oneAnnotation(tx.Query(ctx, `SELECT `+annotationColumns+` FROM annotations WHERE id = $1`, id))
		return err
	})
	return a, notFound("annotation", err)
}

// ListAnnotations lists a project's annotations (of one page when page >
// 0), oldest first.
func (s *Store) ListAnnotations(ctx context.Context, user, project uuid.UUID, pageNo int, page Page) ([]Annotation, string, error) {
	after, hasAfter, err := decodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	var items []Annotation
	err = s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+annotationColumns+` FROM annotations
			WHERE project_id = $1 AND ($2 = 0 OR page = $2) AND (NOT $3 OR (created_at, id) > ($4, $5))
			ORDER BY created_at, id LIMIT $6`, project, pageNo, hasAfter, after.T, after.ID, page.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanAnnotation)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list annotations: %w", err)
	}
	for i := range items {
		items[i].CreatedAt, items[i].UpdatedAt = items[i].CreatedAt.UTC(), items[i].UpdatedAt.UTC()
	}
	return pageOf(items, page.Limit, func(a Annotation) string { return encodeCursor(a.CreatedAt, a.ID) })
}

// AnnotationPatch changes an annotation's page and content.
type AnnotationPatch struct {
	Page    *int
	Content json.RawMessage // nil: unchanged
}

// UpdateAnnotation applies a patch when the stored version is still
// version (optimistic concurrency); otherwise ErrStale. The chunk follows
// in the same transaction (vec: the embedding of the patched annotation's
// searchable text; nil: a job makes the chunk later). It returns the WAL
// position after the commit.
func (s *Store) UpdateAnnotation(ctx context.Context, user, id uuid.UUID, version int, patch AnnotationPatch, vec ModelVec) (Annotation, index.LSN, error) {
	var a Annotation
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		a, err = oneAnnotation(tx.Query(ctx, `UPDATE annotations SET page = coalesce($3, page),
				content = coalesce($4, content), version = version + 1, updated_at = now()
			WHERE id = $1 AND version = $2 RETURNING `+annotationColumns, id, version, patch.Page, []byte(patch.Content)))
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if qerr := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM annotations WHERE id = $1)`, id).Scan(&exists); qerr == nil && exists {
				return ErrStale
			}
		}
		if err != nil {
			return err
		}
		return syncAnnotationChunk(ctx, tx, a, vec)
	})
	if errors.Is(err, ErrStale) {
		return Annotation{}, 0, fmt.Errorf("store: update annotation: %w", ErrStale)
	}
	if err != nil {
		return Annotation{}, 0, notFound("update annotation", err)
	}
	lsn, err := s.walPosition(ctx)
	return a, lsn, err
}

// DeleteAnnotation deletes an annotation as user (its chunk goes with it)
// and returns the WAL position after the commit.
func (s *Store) DeleteAnnotation(ctx context.Context, user, id uuid.UUID) (index.LSN, error) {
	var n int64
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM annotations WHERE id = $1`, id)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete annotation: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("store: delete annotation: %w", fault.ErrNotFound)
	}
	return s.walPosition(ctx)
}
