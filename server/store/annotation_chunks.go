package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/sostenuto/sostenuto/index"
)

// AnnotationIndexJob is the job kind that makes an annotation's chunk
// when its write could not embed the text (the embedder failed or timed
// out): the annotation is saved, and indexed by this job later.
const AnnotationIndexJob = "annotation_index"

// AnnotationIndexPayload names the annotation to index.
type AnnotationIndexPayload struct {
	AnnotationID uuid.UUID `json:"annotation_id"`
}

// annotationIndexAttempts bounds the job's attempts (backoff between).
const annotationIndexAttempts = 20

// SearchableText is what search and chat find of an annotation: a note's
// text, a highlight's comment, trimmed; "" for a drawing, a highlight
// without a comment, or content that does not parse.
func SearchableText(typ string, content json.RawMessage) string {
	var c struct {
		Text    string `json:"text"`
		Comment string `json:"comment"`
	}
	if json.Unmarshal(content, &c) != nil {
		return ""
	}
	switch typ {
	case "note":
		return strings.TrimSpace(c.Text)
	case "highlight":
		return strings.TrimSpace(c.Comment)
	}
	return ""
}

// syncAnnotationChunk makes a's chunk agree with a, in a's write
// transaction: no searchable text, no chunk; with vec (the text's
// embedding), the chunk at a's version; without it (the embedder failed),
// no chunk yet and an annotation_index job to make it.
func syncAnnotationChunk(ctx context.Context, tx pgx.Tx, a Annotation, vec []float32) error {
	text := SearchableText(a.Type, a.Content)
	if text == "" || vec == nil {
		if _, err := tx.Exec(ctx, `DELETE FROM annotation_chunks WHERE annotation_id = $1`, a.ID); err != nil {
			return err
		}
	}
	if text == "" {
		return nil
	}
	if vec == nil {
		// No dedupe key: each write's job indexes its own version, and
		// the version guard of the upsert keeps the newest.
		return EnqueueJob(ctx, tx, AnnotationIndexJob, AnnotationIndexPayload{AnnotationID: a.ID}, "", annotationIndexAttempts)
	}
	return upsertAnnotationChunk(ctx, tx, a, text, vec)
}

// upsertAnnotationChunk writes a's chunk unless one of a newer version is
// there.
func upsertAnnotationChunk(ctx context.Context, tx pgx.Tx, a Annotation, text string, vec []float32) error {
	_, err := tx.Exec(ctx, `INSERT INTO annotation_chunks (annotation_id, project_id, author_id, page, text, embedding, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (annotation_id) DO UPDATE SET page = EXCLUDED.page, text = EXCLUDED.text, embedding = EXCLUDED.embedding,
			version = EXCLUDED.version, updated_at = now()
		WHERE annotation_chunks.version < EXCLUDED.version`,
		a.ID, a.ProjectID, a.AuthorID, a.Page, text, pgvector.NewVector(vec), a.Version)
	return err
}

// AnnotationToIndex loads an annotation for the annotation_index job (as
// the worker, whatever the project); fault.ErrNotFound when it is gone.
func (s *Store) AnnotationToIndex(ctx context.Context, id uuid.UUID) (Annotation, error) {
	a, err := oneAnnotation(s.pool.Query(ctx, `SELECT `+annotationColumns+` FROM annotations WHERE id = $1`, id))
	return a, notFound("annotation to index", err)
}

// IndexAnnotation writes the chunk of annotation a (as loaded by
// AnnotationToIndex, its text embedded as vec) if a is still at that
// version; a newer write made its own chunk or queued its own job.
func (s *Store) IndexAnnotation(ctx context.Context, a Annotation, vec []float32) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var current int
		err := tx.QueryRow(ctx, `SELECT version FROM annotations WHERE id = $1`, a.ID).Scan(&current)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && current != a.Version) {
			return nil
		}
		if err != nil {
			return err
		}
		return syncAnnotationChunk(ctx, tx, a, vec)
	})
	if err != nil {
		return fmt.Errorf("store: index annotation: %w", err)
	}
	return nil
}

// walPosition is PostgreSQL's WAL insert position after a commit: a
// write's X-Index-LSN.
func (s *Store) walPosition(ctx context.Context) (index.LSN, error) {
	var lsn index.LSN
	if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("store: wal position: %w", err)
	}
	return lsn, nil
}
