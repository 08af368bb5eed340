package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/fault"
)

// Document statuses.
const (
	DocPending    = "pending"
	DocQueued     = "queued"
	DocProcessing = "processing"
	DocCompleted  = "completed"
	DocFailed     = "failed"
)

// Source types.
const (
	SourcePDF     = "pdf"
	SourceWeb     = "web"
	SourceYouTube = "youtube"
	SourceText    = "text"
)

// IngestJob is the job kind that processes a document.
const IngestJob = "ingest.document"

// IngestPayload names the document to process. Refresh: a refresh, which
// keeps the chunks when the source's content is unchanged.
type IngestPayload struct {
	DocumentID uuid.UUID `json:"document_id"`
	Refresh    bool      `json:"refresh,omitempty"`
}

// Document is a knowledge-base source.
type Document struct {
	ID          uuid.UUID
	OwnerID     uuid.UUID
	Title       string
	SourceType  string
	SourceURL   *string
	IsPublic    bool
	Status      string
	ChunkCount  int
	Error       *string // a sentence for a person
	ErrorCode   *string // why, for programs (docs/INGESTION.md)
	Language    string  // ISO 639-1, detected at ingestion ("en" until then)
	CreatedAt   time.Time
	ProcessedAt *time.Time
	// ContentHash names what the chunks were made from (docs/INGESTION.md
	// "Refresh"); nil before the first processing.
	ContentHash *string

	ObjectKey   *string
	ChunksDone  int
	ChunksTotal int
	EmptyPages  []int32
	IndexLSN    *index.LSN

	OCRPages           int // pages read by OCR
	OCRPagesDone       int
	OCRPagesTotal      int
	OCRConfidence      []PageConfidence
	LowConfidencePages []int32
}

// documentRow is how a documents row scans; Document(r) is the record.
type documentRow struct {
	ID          uuid.UUID  `db:"id"`
	OwnerID     uuid.UUID  `db:"owner_id"`
	Title       string     `db:"title"`
	SourceType  string     `db:"source_type"`
	SourceURL   *string    `db:"source_url"`
	IsPublic    bool       `db:"is_public"`
	Status      string     `db:"status"`
	ChunkCount  int        `db:"chunk_count"`
	Error       *string    `db:"error"`
	ErrorCode   *string    `db:"error_code"`
	Language    string     `db:"language"`
	CreatedAt   time.Time  `db:"created_at"`
	ProcessedAt *time.Time `db:"processed_at"`
	ContentHash *string    `db:"content_hash"`

	ObjectKey   *string    `db:"object_key"`
	ChunksDone  int        `db:"chunks_done"`
	ChunksTotal int        `db:"chunks_total"`
	EmptyPages  []int32    `db:"empty_pages"`
	IndexLSN    *index.LSN `db:"index_lsn"`

	OCRPages           int              `db:"ocr_pages"`
	OCRPagesDone       int              `db:"ocr_pages_done"`
	OCRPagesTotal      int              `db:"ocr_pages_total"`
	OCRConfidence      []PageConfidence `db:"ocr_confidence"`
	LowConfidencePages []int32          `db:"low_confidence_pages"`
}

// scanDocument scans a row into a Document.
func scanDocument(row pgx.CollectableRow) (Document, error) {
	r, err := pgx.RowToStructByName[documentRow](row)
	return Document(r), err
}

func (d *Document) utc() {
	d.CreatedAt = d.CreatedAt.UTC()
	if d.ProcessedAt != nil {
		t := d.ProcessedAt.UTC()
		d.ProcessedAt = &t
	}
}

const documentColumns = `id, owner_id, title, source_type, source_url, is_public, status, chunk_count, error,
	error_code, language, created_at, processed_at, content_hash, object_key, chunks_done, chunks_total, empty_pages, index_lsn::text AS index_lsn,
	ocr_pages, ocr_pages_done, ocr_pages_total, ocr_confidence, low_confidence_pages`

func oneDocument(rows pgx.Rows, err error) (Document, error) {
	if err != nil {
		return Document{}, err
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDocument)
	d.utc()
	return d, err
}

// NewDocument is what creating a document needs.
type NewDocument struct {
	ID         uuid.UUID
	OwnerID    uuid.UUID
	Title      string
	SourceType string
	SourceURL  *string
	Content    *string
	ObjectKey  *string
	IsPublic   bool
}

// CreateDocument inserts a pending document as its owner.
func (s *Store) CreateDocument(ctx context.Context, nd NewDocument) (Document, error) {
	var d Document
	err := s.AsUser(ctx, nd.OwnerID, func(tx pgx.Tx) error {
		var err error
		d, err = oneDocument(tx.Query(ctx, `INSERT INTO documents (id, owner_id, title, source_type, source_url, content, object_key, is_public)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+documentColumns,
			nd.ID, nd.OwnerID, nd.Title, nd.SourceType, nd.SourceURL, nd.Content, nd.ObjectKey, nd.IsPublic))
		return err
	})
	if err != nil {
		return Document{}, fmt.Errorf("store: create document: %w", err)
	}
	return d, nil
}

// DocumentByID loads a document as user (RLS hides what it may not see).
func (s *Store) DocumentByID(ctx context.Context, user, id uuid.UUID) (Document, error) {
	var d Document
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		d, err = oneDocument(tx.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, id))
		return err
	})
	return d, notFound("document", err)
}

// DocumentFilter narrows a document list.
type DocumentFilter struct {
	Status, SourceType, Q string
}

// ListDocuments lists the documents user may see, newest first.
func (s *Store) ListDocuments(ctx context.Context, user uuid.UUID, f DocumentFilter, page Page) ([]Document, string, error) {
	after, hasAfter, err := decodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	var items []Document
	err = s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+documentColumns+` FROM documents
			WHERE ($1 = '' OR status = $1) AND ($2 = '' OR source_type = $2)
			  AND ($3 = '' OR title ILIKE '%' || $3 || '%')
			  AND (NOT $4 OR (created_at, id) < ($5, $6))
			ORDER BY created_at DESC, id DESC LIMIT $7`,
			f.Status, f.SourceType, escapeLike(f.Q), hasAfter, after.T, after.ID, page.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanDocument)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list documents: %w", err)
	}
	for i := range items {
		items[i].utc()
	}
	return pageOf(items, page.Limit, func(d Document) string { return encodeCursor(d.CreatedAt, d.ID) })
}

// QueueDocument marks a document queued and enqueues its processing, in
// one transaction; a document already queued or processing keeps its job.
func (s *Store) QueueDocument(ctx context.Context, user, id uuid.UUID) (Document, error) {
	var d Document
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		d, err = oneDocument(tx.Query(ctx, `UPDATE documents SET status = 'queued', error = NULL, error_code = NULL, chunks_done = 0,
				chunks_total = 0, updated_at = now()
			WHERE id = $1 AND status NOT IN ('queued', 'processing') RETURNING `+documentColumns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			d, err = oneDocument(tx.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, id))
			return err
		}
		if err != nil {
			return err
		}
		return EnqueueJob(ctx, tx, IngestJob, IngestPayload{DocumentID: id}, "ingest:"+id.String(), 5)
	})
	return d, notFound("queue document", err)
}

// SealDocumentObject makes sealed (a copy of the upload key from) the
// object a document is processed from, unless its object changed
// meanwhile; the document is returned as it is now, so the caller can tell
// by its ObjectKey whether its copy won.
func (s *Store) SealDocumentObject(ctx context.Context, user, id uuid.UUID, from, sealed string) (Document, error) {
	var d Document
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		d, err = oneDocument(tx.Query(ctx, `UPDATE documents SET object_key = $2, updated_at = now()
			WHERE id = $1 AND object_key = $3 RETURNING `+documentColumns, id, sealed, from))
		if errors.Is(err, pgx.ErrNoRows) {
			d, err = oneDocument(tx.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, id))
		}
		return err
	})
	return d, notFound("seal document", err)
}

// DeleteDocument deletes a document (its chunks go with it) and enqueues
// the deletion of its stored objects (see DeleteProject); it returns the
// WAL position after the commit, at which the chunks are gone from the
// changefeed's view.
func (s *Store) DeleteDocument(ctx context.Context, user, id uuid.UUID) (index.LSN, error) {
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var key *string
		var created time.Time
		if err := tx.QueryRow(ctx, `DELETE FROM documents WHERE id = $1 RETURNING object_key, created_at`, id).Scan(&key, &created); err != nil {
			return err
		}
		if key != nil {
			return enqueueObjectDeletes(ctx, tx, *key, created)
		}
		return nil
	})
	if err != nil {
		return 0, notFound("delete document", err)
	}
	return s.walPosition(ctx)
}

// DocumentPatch is an edit of a document: nil fields stay.
type DocumentPatch struct {
	Title    *string
	IsPublic *bool
}

// UpdateDocument changes a document's title or visibility as user (Row
// Level Security lets its owner and admins) and returns it with the WAL
// position after the commit: from there the changefeed has carried the
// change to every index that applied it.
func (s *Store) UpdateDocument(ctx context.Context, user, id uuid.UUID, p DocumentPatch) (Document, index.LSN, error) {
	var d Document
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		d, err = oneDocument(tx.Query(ctx, `UPDATE documents SET title = coalesce($2, title), is_public = coalesce($3, is_public),
				updated_at = now()
			WHERE id = $1 RETURNING `+documentColumns, id, p.Title, p.IsPublic))
		return err
	})
	if err != nil {
		return Document{}, 0, notFound("update document", err)
	}
	lsn, err := s.walPosition(ctx)
	return d, lsn, err
}

// RefreshDocument queues a refresh of a web or YouTube document (fetched
// again from its URL) in one transaction with its job. fault.ErrConflict
// when the document is queued or processing already, or has no URL to
// fetch again.
func (s *Store) RefreshDocument(ctx context.Context, user, id uuid.UUID) (Document, error) {
	var d Document
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		d, err = oneDocument(tx.Query(ctx, `UPDATE documents SET status = 'queued', error = NULL, error_code = NULL, chunks_done = 0,
				chunks_total = 0, updated_at = now()
			WHERE id = $1 AND status NOT IN ('queued', 'processing') AND source_type IN ('web', 'youtube')
			  AND source_url IS NOT NULL AND object_key IS NULL
			RETURNING `+documentColumns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrConflict
		}
		if err != nil {
			return err
		}
		// No dedupe key: the status above lets one refresh in at a time,
		// and a finished job still marked running must not swallow it.
		return EnqueueJob(ctx, tx, IngestJob, IngestPayload{DocumentID: id, Refresh: true}, "", 5)
	})
	if err != nil {
		return Document{}, fmt.Errorf("store: refresh document: %w", err)
	}
	return d, nil
}
