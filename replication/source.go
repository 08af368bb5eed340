package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
)

// Querier is what a Source reads through: a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Source reads the index's rows from PostgreSQL: the one place that knows
// which columns of documents and chunks the index holds and how they scan.
// Base loads, repairs, anti-entropy and the recall check all read through
// it.
type Source struct{ q Querier }

// NewSource reads through q; q must see the tables without Row Level
// Security (the owning role).
func NewSource(q Querier) Source { return Source{q: q} }

// documentRow is a document as the index holds it.
type documentRow struct {
	ID       uuid.UUID `db:"id"`
	OwnerID  uuid.UUID `db:"owner_id"`
	IsPublic bool      `db:"is_public"`
	Title    string    `db:"title"`
}

func (r documentRow) document() index.Document {
	return index.Document{ID: index.ID(r.ID), OwnerID: index.ID(r.OwnerID), IsPublic: r.IsPublic, Title: r.Title}
}

// chunkRow is a chunk as the index holds it, with its document's
// visibility and title.
type chunkRow struct {
	ID         uuid.UUID `db:"id"`
	DocumentID uuid.UUID `db:"document_id"`
	OwnerID    uuid.UUID `db:"owner_id"`
	Text       string    `db:"text"`
	PageStart  int       `db:"page_start"`
	PageEnd    int       `db:"page_end"`
	Version    int64     `db:"version"`
	Language   string    `db:"language"`
	Embedding  *string   `db:"embedding"` // NULL once its model left the column
	IsPublic   bool      `db:"is_public"`
	Title      string    `db:"title"`
}

// chunkSelect is the one column list chunks are read with (every chunk has
// its document: chunks_document_fkey).
const chunkSelect = `SELECT c.id, c.document_id, c.owner_id, c.text, c.page_start, c.page_end, c.version, c.language,
	c.embedding::text AS embedding, d.is_public, d.title
	FROM chunks c JOIN documents d ON d.id = c.document_id`

// chunkWithDocument is one scanned chunk and the document it belongs to.
type chunkWithDocument struct {
	chunk index.Chunk
	doc   index.Document
}

// scanChunk is the one scan of a chunk row.
func scanChunk(row pgx.CollectableRow) (chunkWithDocument, error) {
	r, err := pgx.RowToStructByName[chunkRow](row)
	if err != nil {
		return chunkWithDocument{}, err
	}
	c := index.Chunk{ID: index.ID(r.ID), DocumentID: index.ID(r.DocumentID), OwnerID: index.ID(r.OwnerID),
		Text: r.Text, PageStart: r.PageStart, PageEnd: r.PageEnd, Version: r.Version, Language: r.Language}
	if r.Embedding != nil {
		if c.Vector, err = parseVector(*r.Embedding); err != nil {
			return chunkWithDocument{}, err
		}
	}
	doc := index.Document{ID: c.DocumentID, OwnerID: c.OwnerID, IsPublic: r.IsPublic, Title: r.Title}
	return chunkWithDocument{chunk: c, doc: doc}, nil
}

// chunks reads the chunks chunkSelect and tail select, with their
// documents (each once, in first-seen order).
func (s Source) chunks(ctx context.Context, tail string, args ...any) ([]index.Chunk, []index.Document, error) {
	rows, err := s.q.Query(ctx, chunkSelect+tail, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: read chunks: %w", err)
	}
	read, err := pgx.CollectRows(rows, scanChunk)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: read chunks: %w", err)
	}
	chunks := make([]index.Chunk, len(read))
	var docs []index.Document
	seen := map[index.ID]bool{}
	for i, r := range read {
		chunks[i] = r.chunk
		if !seen[r.doc.ID] {
			seen[r.doc.ID] = true
			docs = append(docs, r.doc)
		}
	}
	return chunks, docs, nil
}

// Documents reads every document.
func (s Source) Documents(ctx context.Context) ([]index.Document, error) {
	rows, err := s.q.Query(ctx, `SELECT id, owner_id, is_public, title FROM documents`)
	if err != nil {
		return nil, fmt.Errorf("replication: read documents: %w", err)
	}
	docs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (index.Document, error) {
		r, err := pgx.RowToStructByName[documentRow](row)
		return r.document(), err
	})
	if err != nil {
		return nil, fmt.Errorf("replication: read documents: %w", err)
	}
	return docs, nil
}

// AllChunks reads every chunk, knowledge and annotation chunks alike.
func (s Source) AllChunks(ctx context.Context) ([]index.Chunk, error) {
	chunks, _, err := s.chunks(ctx, "")
	if err != nil {
		return nil, err
	}
	notes, err := s.annotationChunks(ctx, "")
	return append(chunks, notes...), err
}

// Chunks reads the chunks (of either kind) of ids that exist, and the
// documents of the knowledge chunks.
func (s Source) Chunks(ctx context.Context, ids []index.ID) ([]index.Chunk, []index.Document, error) {
	chunks, docs, err := s.chunks(ctx, ` WHERE c.id = ANY($1)`, uuids(ids))
	if err != nil {
		return nil, nil, err
	}
	notes, err := s.annotationChunks(ctx, ` WHERE a.annotation_id = ANY($1)`, uuids(ids))
	return append(chunks, notes...), docs, err
}

// SampleChunks reads up to n chunks from the offset-th on (in no
// particular order).
func (s Source) SampleChunks(ctx context.Context, offset, n int) ([]index.Chunk, error) {
	chunks, _, err := s.chunks(ctx, ` OFFSET $1 LIMIT $2`, offset, n)
	return chunks, err
}

// Versions reads the version of every chunk of either kind (ids nil) or
// of those of ids that exist.
func (s Source) Versions(ctx context.Context, ids []index.ID) (map[index.ID]int64, error) {
	q := `SELECT id, version FROM chunks WHERE $1::uuid[] IS NULL OR id = ANY($1)`
	if ok, err := s.annotated(ctx); err != nil {
		return nil, err
	} else if ok {
		q += ` UNION ALL SELECT annotation_id, version FROM annotation_chunks WHERE $1::uuid[] IS NULL OR annotation_id = ANY($1)`
	}
	var list []uuid.UUID
	if ids != nil {
		list = uuids(ids)
	}
	args := []any{list}
	rows, err := s.q.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("replication: read versions: %w", err)
	}
	versions := map[index.ID]int64{}
	var id uuid.UUID
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		versions[index.ID(id)] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replication: read versions: %w", err)
	}
	return versions, nil
}

func uuids(ids []index.ID) []uuid.UUID {
	us := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		us[i] = uuid.UUID(id)
	}
	return us
}

// loadBase reads every document and chunk as of an exported snapshot.
func loadBase(ctx context.Context, url, snapshot string) (index.Ops, error) {
	var ops index.Ops
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return ops, fmt.Errorf("replication: base: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
			return err
		}
		src := NewSource(tx)
		if ops.Documents, err = src.Documents(ctx); err != nil {
			return err
		}
		projects, err := src.Projects(ctx, nil)
		if err != nil {
			return err
		}
		ops.Projects, ops.Grants = principalOps(projects)
		if ops.Upserts, err = src.AllChunks(ctx); err != nil {
			return err
		}
		if ops.Model, err = src.ModelState(ctx); err != nil || ops.Model == nil {
			return err
		}
		ops.Embeddings, err = src.Embeddings(ctx, modelsHeld(*ops.Model), nil)
		return err
	})
	if err != nil {
		return ops, fmt.Errorf("replication: base: %w", err)
	}
	return ops, nil
}

// LoadBase reads every document and chunk from PostgreSQL into a fresh
// engine (a consistent read), for checks outside a serving node.
func LoadBase(ctx context.Context, url string, cfg index.Config) (*index.Engine, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("replication: load base: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("replication: load base: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("replication: load base: %w", err)
	}
	ops, err := loadBase(ctx, url, snapshot)
	if err != nil {
		return nil, err
	}
	e, err := index.New(cfg)
	if err != nil {
		return nil, err
	}
	return e, e.Apply(ops)
}

// ModelState reads which embedding models the index holds (migration
// 00012); nil while none is named (or in a database without the table).
func (s Source) ModelState(ctx context.Context) (*index.ModelState, error) {
	rows, err := s.q.Query(ctx, `SELECT to_regclass('embedding_state') IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("replication: read embedding state: %w", err)
	}
	exists, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil || !exists {
		return nil, err
	}
	rows, err = s.q.Query(ctx, `SELECT coalesce(active_model, ''), coalesce(active_dim, 0), coalesce(building_model, ''),
		coalesce(building_dim, 0), coalesce(column_model, '') FROM embedding_state`)
	if err != nil {
		return nil, fmt.Errorf("replication: read embedding state: %w", err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (index.ModelState, error) {
		var m index.ModelState
		return m, r.Scan(&m.Active, &m.ActiveDim, &m.Building, &m.BuildingDim, &m.Column)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication: read embedding state: %w", err)
	}
	if m.Active == "" {
		return nil, nil
	}
	return &m, nil
}

// modelsHeld lists the models whose vectors are kept apart from the chunks
// (chunk_embeddings): the active and the building one, unless the column's.
func modelsHeld(m index.ModelState) []string {
	var out []string
	for _, x := range []string{m.Active, m.Building} {
		if x != "" && x != m.Column {
			out = append(out, x)
		}
	}
	return out
}

// Embeddings reads the vectors of models, of every chunk (ids nil) or of
// those of ids; teachers' notes' too (annotation_embeddings).
func (s Source) Embeddings(ctx context.Context, models []string, ids []index.ID) ([]index.Embedding, error) {
	if len(models) == 0 {
		return nil, nil
	}
	q, args := `SELECT chunk_id, model, embedding::text FROM (
			SELECT chunk_id, model, embedding FROM chunk_embeddings
			UNION ALL SELECT chunk_id, model, embedding FROM annotation_embeddings) e
		WHERE model = ANY($1)`, []any{models}
	if ids != nil {
		q, args = q+` AND chunk_id = ANY($2)`, append(args, uuids(ids))
	}
	rows, err := s.q.Query(ctx, q+` ORDER BY model, chunk_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("replication: read embeddings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index.Embedding, error) {
		var id uuid.UUID
		var x index.Embedding
		var v string
		if err := r.Scan(&id, &x.Model, &v); err != nil {
			return x, err
		}
		x.Chunk = index.ID(id)
		x.Vector, err = parseVector(v)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("replication: read embeddings: %w", err)
	}
	return out, nil
}
