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

// ModelVec is a text's embedding and the model that made it ("" when the
// node names no models: the vector is the column's).
type ModelVec struct {
	Model string
	Vec   []float32
}

// syncAnnotationChunk makes a's chunk agree with a, in a's write
// transaction: no searchable text, no chunk; with vec (the text's
// embedding by the active model), the chunk at a's version; without it
// (the embedder failed, or the active model changed since it embedded),
// no chunk yet and an annotation_index job to make it.
func syncAnnotationChunk(ctx context.Context, tx pgx.Tx, a Annotation, vec ModelVec) error {
	text := SearchableText(a.Type, a.Content)
	var st EmbeddingState
	if text != "" && vec.Vec != nil {
		// Shared with other writes, exclusive of a switch: the model
		// read stays the active one until this transaction ends.
		var err error
		if st, err = readEmbeddingState(ctx, tx, "FOR SHARE"); err != nil {
			return err
		}
		if !st.embeds(vec.Model) {
			vec.Vec = nil
		}
	}
	if text == "" || vec.Vec == nil {
		if _, err := tx.Exec(ctx, `DELETE FROM annotation_chunks WHERE annotation_id = $1`, a.ID); err != nil {
			return err
		}
	}
	if text == "" {
		return nil
	}
	if vec.Vec == nil {
		// No dedupe key: each write's job indexes its own version, and
		// the version guard of the upsert keeps the newest.
		return EnqueueJob(ctx, tx, AnnotationIndexJob, AnnotationIndexPayload{AnnotationID: a.ID}, "", annotationIndexAttempts)
	}
	return upsertAnnotationChunk(ctx, tx, a, text, vec, st)
}

// embeds reports whether vectors named model are the active model's: the
// same name, or no name while the column holds the active model's (or
// before models are named).
func (st EmbeddingState) embeds(model string) bool {
	if model == "" {
		return st.Active == "" || st.Column == st.Active
	}
	return st.Active == "" || model == st.Active
}

// upsertAnnotationChunk writes a's chunk unless one of a newer version is
// there, its vector in the column when the column holds the active
// model's, else in annotation_embeddings; a new text drops the vectors of
// every other model (a build embeds it again).
func upsertAnnotationChunk(ctx context.Context, tx pgx.Tx, a Annotation, text string, vec ModelVec, st EmbeddingState) error {
	inColumn := st.Active == "" || st.Column == st.Active
	var col any
	if inColumn {
		col = pgvector.NewVector(vec.Vec)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO annotation_chunks (annotation_id, project_id, author_id, page, text, embedding, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (annotation_id) DO UPDATE SET page = EXCLUDED.page, text = EXCLUDED.text, embedding = EXCLUDED.embedding,
			version = EXCLUDED.version, updated_at = now()
		WHERE annotation_chunks.version < EXCLUDED.version`,
		a.ID, a.ProjectID, a.AuthorID, a.Page, text, col, a.Version)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM annotation_embeddings WHERE chunk_id = $1 AND (model <> $2 OR $3)`,
		a.ID, st.Active, inColumn); err != nil || inColumn {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO annotation_embeddings (chunk_id, model, embedding) VALUES ($1, $2, $3)
		ON CONFLICT (model, chunk_id) DO UPDATE SET embedding = EXCLUDED.embedding`, a.ID, st.Active, pgvector.NewVector(vec.Vec))
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
func (s *Store) IndexAnnotation(ctx context.Context, a Annotation, vec ModelVec) error {
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
