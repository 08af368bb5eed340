package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/fault"
)

// The ingestion worker's queries; they run as sostenuto_worker.

// IngestSource is what processing a document needs to know.
type IngestSource struct {
	ID         uuid.UUID
	OwnerID    uuid.UUID
	Title      string
	SourceType string
	SourceURL  *string
	Content    *string
	ObjectKey  *string
	// ContentHash names what the stored chunks were made from (nil: not
	// known); ChunkCount counts them.
	ContentHash *string
	ChunkCount  int
}

// IngestSourceOf loads a document's source for processing.
func (s *Store) IngestSourceOf(ctx context.Context, id uuid.UUID) (IngestSource, error) {
	var src IngestSource
	err := s.pool.QueryRow(ctx, `SELECT id, owner_id, title, source_type, source_url, content, object_key, content_hash, chunk_count
		FROM documents WHERE id = $1`, id).
		Scan(&src.ID, &src.OwnerID, &src.Title, &src.SourceType, &src.SourceURL, &src.Content, &src.ObjectKey, &src.ContentHash, &src.ChunkCount)
	return src, notFound("ingest source", err)
}

// StartIngest marks a document processing and clears chunks staged by an
// earlier, interrupted attempt.
func (s *Store) StartIngest(ctx context.Context, id uuid.UUID) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE documents SET status = 'processing', error = NULL, error_code = NULL, chunks_done = 0,
			chunks_total = 0, ocr_pages_done = 0, ocr_pages_total = 0, updated_at = now() WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("store: start ingest: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("store: start ingest: %w", fault.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `DELETE FROM chunk_staging WHERE document_id = $1`, id)
		return err
	})
}

// IngestProgress records chunks embedded and stored so far.
func (s *Store) IngestProgress(ctx context.Context, id uuid.UUID, done, total int) error {
	_, err := s.pool.Exec(ctx, `UPDATE documents SET chunks_done = $2, chunks_total = $3, updated_at = now()
		WHERE id = $1`, id, done, total)
	if err != nil {
		return fmt.Errorf("store: ingest progress: %w", err)
	}
	return nil
}

// StagedChunk is a chunk with its embedding, ready to store.
type StagedChunk struct {
	Ordinal     int
	Text        string
	TokenCount  int
	PageStart   int
	PageEnd     int
	CharStart   int
	CharEnd     int
	TimeStartMs *int64
	TimeEndMs   *int64
	Embedding   []float32
	Language    string // the document's, ISO 639-1 ("" is English)
	// Model is the embedding model that made Embedding ("": the one
	// active before models were named).
	Model string
}

// StageChunks writes a batch of chunks of a document in one transaction.
func (s *Store) StageChunks(ctx context.Context, doc uuid.UUID, batch []StagedChunk) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, c := range batch {
			b.Queue(`INSERT INTO chunk_staging (document_id, ordinal, text, token_count, page_start, page_end,
				char_start, char_end, time_start_ms, time_end_ms, embedding, language, model)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce(nullif($12, ''), 'en'), nullif($13, ''))`,
				doc, c.Ordinal, c.Text, c.TokenCount, c.PageStart, c.PageEnd, c.CharStart, c.CharEnd,
				c.TimeStartMs, c.TimeEndMs, pgvector.NewVector(c.Embedding), c.Language, c.Model)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: stage chunks: %w", err)
		}
		return nil
	})
}

// FinishIngest swaps the staged chunks in for the document's old ones in
// one transaction, recording hash (what they were made from) with them,
// then marks the document completed together with the WAL position after
// that commit (the index holds the new chunks once it has applied it) and
// returns that position. A crash between the two leaves the document
// processing, and the job's retry redoes it.
func (s *Store) FinishIngest(ctx context.Context, id uuid.UUID, pages PageReport, hash string) (index.LSN, error) {
	pages = pages.orEmpty()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		inColumn, err := stagedModelActive(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE document_id = $1`, id); err != nil {
			return err
		}
		// The staged chunks' language becomes the document's, in the same
		// transaction as its chunks.
		if _, err := tx.Exec(ctx, `UPDATE documents SET language = coalesce((SELECT language FROM chunk_staging
			WHERE document_id = $1 ORDER BY ordinal LIMIT 1), language) WHERE id = $1`, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO chunks (document_id, owner_id, ordinal, text, token_count, page_start,
				page_end, char_start, char_end, time_start_ms, time_end_ms, embedding, language)
			SELECT s.document_id, d.owner_id, s.ordinal, s.text, s.token_count, s.page_start, s.page_end,
				s.char_start, s.char_end, s.time_start_ms, s.time_end_ms, CASE WHEN $2 THEN s.embedding END, s.language
			FROM chunk_staging s JOIN documents d ON d.id = s.document_id
			WHERE s.document_id = $1 ORDER BY s.ordinal`, id, inColumn)
		if err != nil {
			return err
		}
		if err := stagedEmbeddings(ctx, tx, id, inColumn); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM chunk_staging WHERE document_id = $1`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE documents SET chunk_count = $2, chunks_done = $2,
				chunks_total = $2, empty_pages = $3, ocr_pages = $4, ocr_confidence = $5, low_confidence_pages = $6,
				error = NULL, error_code = NULL, content_hash = nullif($7, ''), index_lsn = NULL, updated_at = now()
			WHERE id = $1`, id, tag.RowsAffected(), pages.Empty, len(pages.OCR), pages.OCR, pages.LowConfidence, hash)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: finish ingest: %w", err)
	}
	var lsn index.LSN
	// Completed and its position become visible together: a reader never
	// sees a completed document without the position to wait for.
	err = s.pool.QueryRow(ctx, `UPDATE documents SET status = 'completed', processed_at = now(),
			index_lsn = pg_current_wal_insert_lsn() WHERE id = $1
		RETURNING index_lsn::text`, id).Scan(&lsn)
	if err != nil {
		return 0, fmt.Errorf("store: finish ingest: %w", err)
	}
	return lsn, nil
}

// KeepIngest ends a refresh that found the source unchanged: the chunks
// stay as they are (no chunk is written, so the changefeed carries none),
// the document is completed again with processed_at moved and index_lsn
// kept — unless FinishIngest's swap committed and its worker died before
// recording the position (index_lsn is NULL then): the position now, past
// that swap, is recorded.
func (s *Store) KeepIngest(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE documents SET status = 'completed', processed_at = now(), chunks_done = chunk_count,
			chunks_total = chunk_count, error = NULL, error_code = NULL,
			index_lsn = coalesce(index_lsn, pg_current_wal_insert_lsn()), updated_at = now()
		WHERE id = $1 AND status = 'processing'`, id)
	if err != nil {
		return fmt.Errorf("store: keep ingest: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: keep ingest: %w", fault.ErrNotFound)
	}
	return nil
}

// FailIngest records why processing failed, as a stable code and a
// sentence for the document's viewers; with retrying, the document waits
// for its next attempt (queued) instead of failing.
func (s *Store) FailIngest(ctx context.Context, id uuid.UUID, code, message string, retrying bool) error {
	status := DocFailed
	if retrying {
		status = DocQueued
	}
	_, err := s.pool.Exec(ctx, `UPDATE documents SET status = $2, error = $3, error_code = $4, updated_at = now()
		WHERE id = $1 AND status <> 'completed'`, id, status, truncate(message, 2000), code)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: fail ingest: %w", err)
	}
	return nil
}

// ChunkCount counts a document's stored chunks.
func (s *Store) ChunkCount(ctx context.Context, doc uuid.UUID) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM chunks WHERE document_id = $1`, doc).Scan(&n)
	return n, err
}

// ErrStaleModel marks a document embedded by a model that is no longer the
// active one (the model switched while it was processed): the job retries
// and embeds it again.
var ErrStaleModel = errors.New("store: the document was embedded by a model no longer active")

// stagedModelActive checks, under a share lock of embedding_state (a switch
// waits for the ingest, or the ingest for the switch), that a document's
// staged vectors are the active model's; inColumn tells whether they go in
// chunks.embedding (the column's model, or no model named yet) or in
// chunk_embeddings.
func stagedModelActive(ctx context.Context, tx pgx.Tx, doc uuid.UUID) (inColumn bool, err error) {
	st, err := readEmbeddingState(ctx, tx, "FOR SHARE")
	if err != nil || st.Active == "" {
		return true, err
	}
	var stale bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chunk_staging WHERE document_id = $1
		AND coalesce(model, $3) <> $2)`, doc, st.Active, st.Column).Scan(&stale)
	if err != nil {
		return false, err
	}
	if stale {
		return false, fmt.Errorf("%w (active: %s)", ErrStaleModel, st.Active)
	}
	return st.Active == st.Column, nil
}

// stagedEmbeddings copies a document's staged vectors into chunk_embeddings
// when they are not the column's.
func stagedEmbeddings(ctx context.Context, tx pgx.Tx, doc uuid.UUID, inColumn bool) error {
	if inColumn {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO chunk_embeddings (chunk_id, model, embedding)
		SELECT c.id, s.model, s.embedding FROM chunk_staging s
		JOIN chunks c ON c.document_id = s.document_id AND c.ordinal = s.ordinal
		WHERE s.document_id = $1`, doc)
	return err
}
