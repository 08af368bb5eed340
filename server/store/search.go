package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/sostenuto/sostenuto/index"
)

// The PostgreSQL search path: the fallback when the node's in-memory index
// is not ready or lags, and the recall reference. It runs as the acting
// user, so Row Level Security limits it to visible chunks.

// SearchChunk is a chunk as a search hit shows it: a knowledge chunk
// (Annotation false: DocumentID, OwnerID), or an annotation's (ID is the
// annotation's; ProjectID, AuthorID; PageStart = PageEnd = its page;
// Title the project's).
type SearchChunk struct {
	ID         uuid.UUID
	DocumentID uuid.UUID
	OwnerID    uuid.UUID
	Title      string
	PageStart  int
	PageEnd    int
	Text       string
	Annotation bool
	ProjectID  uuid.UUID
	AuthorID   uuid.UUID
}

// SearchFilter says which chunks a PostgreSQL search looks at: knowledge
// chunks, annotation chunks (of one project when ProjectID is set), or
// both. It is part of each list's SQL, so the list still holds n rows.
type SearchFilter struct {
	Knowledge   bool
	Annotations bool
	ProjectID   *uuid.UUID
}

// Scored is a chunk id with its score in one search list (higher is
// better).
type Scored struct {
	ID    uuid.UUID
	Score float64
}

// SearchVector returns the n visible chunks nearest to v, scored by
// cosine similarity: pgvector HNSW with iterative scans (so filtering by
// visibility still yields n rows) over chunks.embedding and
// annotation_chunks.embedding when the active model is the column's, over
// chunk_embeddings and annotation_embeddings otherwise (through the
// model's own HNSW index, made before the switch: sostenuto_index_model).
// model is the model that made v: another than the active one is
// index.ErrModel ("" before models are named: not checked).
func (s *Store) SearchVector(ctx context.Context, user uuid.UUID, model string, v []float32, n, efSearch int, f SearchFilter) ([]Scored, error) {
	var ids []Scored
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", max(efSearch, n))); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL hnsw.iterative_scan = relaxed_order"); err != nil {
			return err
		}
		q, args, err := vectorQuery(ctx, tx, model, v, n, f)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		hits, err := pgx.CollectRows(rows, pgx.RowToStructByName[vectorHit])
		// Relaxed-order iterative scans may return rows slightly out of
		// order, and equal distances come in any order: sort by distance,
		// then id, so the order depends on nothing but the visible rows.
		slices.SortFunc(hits, func(a, b vectorHit) int {
			if c := cmp.Compare(a.Distance, b.Distance); c != 0 {
				return c
			}
			return bytes.Compare(a.ID[:], b.ID[:])
		})
		for _, h := range hits {
			ids = append(ids, Scored{ID: h.ID, Score: 1 - h.Distance})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: vector search: %w", err)
	}
	return ids, nil
}

// searchVectorSQL: the n nearest of each kind asked for (each list
// through its HNSW index), the n nearest of both.
const searchVectorSQL = `
	SELECT id, distance FROM (
		(SELECT id, embedding <=> $1 AS distance FROM chunks WHERE $3
			ORDER BY embedding <=> $1 LIMIT $2)
		UNION ALL
		(SELECT annotation_id, embedding <=> $1 FROM annotation_chunks WHERE $4 AND ($5::uuid IS NULL OR project_id = $5)
			ORDER BY embedding <=> $1 LIMIT $2)) u
	ORDER BY distance, id LIMIT $2`

// vectorHit is a row of the vector search.
type vectorHit struct {
	ID       uuid.UUID
	Distance float64
}

// SearchText returns the n visible chunks best matching query, scored by
// ts_rank (full-text search, terms OR-ed, ranked by ts_rank, then id). Each
// chunk is matched in its own language (chunks.tsv is analysed with
// sostenuto_ts_config(language), migration 00008): the query is analysed
// once per language and each chunk meets the analysis of its language, as
// in the in-memory index (index/DESIGN.md "Languages"). An English chunk
// meets exactly the query it met before languages. ts_rank uses no
// collection statistics (each row is scored alone), so the order depends
// only on the rows the caller may see.
func (s *Store) SearchText(ctx context.Context, user uuid.UUID, query string, n int, f SearchFilter) ([]Scored, error) {
	var ids []Scored
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, searchTextSQL, query, n, f.Knowledge, f.Annotations, f.ProjectID)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Scored])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: text search: %w", err)
	}
	return ids, nil
}

// searchTextSQL: per language sostenuto_ts_config knows (the languages
// documents are detected in, server/ingest), the query's terms OR-ed; each
// chunk meets its language's query through the GIN index on tsv.
// Annotation chunks ($4; of one project with $5) are matched the same way
// beside knowledge chunks ($3).
const searchTextSQL = `
	WITH q AS (
		SELECT l.language, to_tsquery(sostenuto_ts_config(l.language),
			nullif(replace(plainto_tsquery(sostenuto_ts_config(l.language), $1)::text, ' & ', ' | '), '')) AS t
		FROM unnest(ARRAY['en', 'de', 'es', 'fr', 'it', 'nl', 'pt']) AS l(language))
	SELECT id, score FROM (
		SELECT c.id, ts_rank(c.tsv, q.t)::float8 AS score FROM chunks c JOIN q ON q.language = c.language
		WHERE $3 AND q.t IS NOT NULL AND c.tsv @@ q.t
		UNION ALL
		SELECT a.annotation_id, ts_rank(a.tsv, q.t)::float8 FROM annotation_chunks a JOIN q ON q.language = a.language
		WHERE $4 AND ($5::uuid IS NULL OR a.project_id = $5) AND q.t IS NOT NULL AND a.tsv @@ q.t) u
	ORDER BY score DESC, id LIMIT $2`

// SearchChunks loads the visible chunks among ids (of either kind), with
// their documents' (projects') titles.
func (s *Store) SearchChunks(ctx context.Context, user uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]SearchChunk, error) {
	out := map[uuid.UUID]SearchChunk{}
	if len(ids) == 0 {
		return out, nil
	}
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.id, c.document_id, c.owner_id, d.title, c.page_start, c.page_end, c.text,
				false AS annotation, '00000000-0000-0000-0000-000000000000'::uuid AS project_id, c.owner_id AS author_id
			FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ANY($1)
			UNION ALL
			SELECT a.annotation_id, '00000000-0000-0000-0000-000000000000'::uuid, '00000000-0000-0000-0000-000000000000'::uuid,
				p.title, a.page, a.page, a.text, true, a.project_id, a.author_id
			FROM annotation_chunks a JOIN projects p ON p.id = a.project_id WHERE a.annotation_id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c SearchChunk
			if err := rows.Scan(&c.ID, &c.DocumentID, &c.OwnerID, &c.Title, &c.PageStart, &c.PageEnd, &c.Text,
				&c.Annotation, &c.ProjectID, &c.AuthorID); err != nil {
				return err
			}
			out[c.ID] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: search chunks: %w", err)
	}
	return out, nil
}

// WALPosition is PostgreSQL's current write-ahead-log insert position: at
// or past the end of every commit already made, even when commits are
// asynchronous (the write position can lag them by the WAL writer's delay).
func (s *Store) WALPosition(ctx context.Context) (index.LSN, error) {
	var lsn index.LSN
	err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn)
	return lsn, err
}

// TeachersOf lists the teachers user is a student of.
func (s *Store) TeachersOf(ctx context.Context, user uuid.UUID) ([]uuid.UUID, error) {
	rows, _ := s.pool.Query(ctx, `SELECT teacher_id FROM relationships WHERE student_id = $1`, user)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: teachers: %w", err)
	}
	return ids, nil
}

// vectorQuery is the vector search over the active model's vectors: the
// columns' (searchVectorSQL) or the tables of vectors by model
// (searchModelSQL); Row Level Security limits both to visible chunks.
func vectorQuery(ctx context.Context, tx pgx.Tx, model string, v []float32, n int, f SearchFilter) (string, []any, error) {
	st, err := readEmbeddingState(ctx, tx, "")
	if err != nil {
		return "", nil, err
	}
	if model != "" && st.Active != "" && model != st.Active {
		return "", nil, fmt.Errorf("store: %w: the query was embedded by %s, the active model is %s", index.ErrModel, model, st.Active)
	}
	args := []any{pgvector.NewVector(v), n, f.Knowledge, f.Annotations, f.ProjectID}
	if st.Active == "" || st.Active == st.Column {
		return searchVectorSQL, args, nil
	}
	// Cast to the model's dimension: the model's partial HNSW indexes on
	// that expression (sostenuto_index_model) serve this search.
	return strings.ReplaceAll(searchModelSQL, "::vector", fmt.Sprintf("::vector(%d)", st.ActiveDim)), append(args, st.Active), nil
}

// searchModelSQL: searchVectorSQL over the vectors of model $6.
const searchModelSQL = `
	SELECT id, distance FROM (
		(SELECT chunk_id AS id, embedding::vector <=> $1::vector AS distance FROM chunk_embeddings
			WHERE $3 AND model = $6 ORDER BY embedding::vector <=> $1::vector LIMIT $2)
		UNION ALL
		(SELECT e.chunk_id, e.embedding::vector <=> $1::vector FROM annotation_embeddings e
			JOIN annotation_chunks a ON a.annotation_id = e.chunk_id
			WHERE $4 AND e.model = $6 AND ($5::uuid IS NULL OR a.project_id = $5)
			ORDER BY e.embedding::vector <=> $1::vector LIMIT $2)) u
	ORDER BY distance, id LIMIT $2`
