package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/sostenuto/sostenuto/server/fault"
)

// The embedding models (migration 00012): which model is active, which is
// being built beside it, and the vectors by model. Every write to
// embedding_state takes its row's lock, so a switch, an abandon and an
// ingest's final transaction never interleave.

// ColumnDim is the dimension of chunks.embedding (vector(768)): only a
// model of this dimension keeps its vectors in that column.
const ColumnDim = 768

// EmbeddingState is the row of embedding_state.
type EmbeddingState struct {
	Active       string // "" until a node names it
	ActiveDim    int
	Building     string // "" when nothing is being built
	BuildingDim  int
	Column       string // the model chunks.embedding holds ("" none)
	BuildStarted *time.Time
}

// embeddingStateRow scans embedding_state.
type embeddingStateRow struct {
	Active       *string    `db:"active_model"`
	ActiveDim    *int       `db:"active_dim"`
	Building     *string    `db:"building_model"`
	BuildingDim  *int       `db:"building_dim"`
	Column       *string    `db:"column_model"`
	BuildStarted *time.Time `db:"build_started_at"`
}

func (r embeddingStateRow) state() EmbeddingState {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	derefInt := func(n *int) int {
		if n == nil {
			return 0
		}
		return *n
	}
	return EmbeddingState{Active: deref(r.Active), ActiveDim: derefInt(r.ActiveDim), Building: deref(r.Building),
		BuildingDim: derefInt(r.BuildingDim), Column: deref(r.Column), BuildStarted: r.BuildStarted}
}

const embeddingStateSelect = `SELECT active_model, active_dim, building_model, building_dim, column_model, build_started_at
	FROM embedding_state`

// readEmbeddingState reads the row, locked as lock says ("", "FOR SHARE",
// "FOR UPDATE").
func readEmbeddingState(ctx context.Context, q pgx.Tx, lock string) (EmbeddingState, error) {
	rows, err := q.Query(ctx, embeddingStateSelect+" "+lock)
	if err != nil {
		return EmbeddingState{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[embeddingStateRow])
	return r.state(), err
}

// EmbeddingState reads which models are active and being built.
func (s *Store) EmbeddingState(ctx context.Context) (EmbeddingState, error) {
	var st EmbeddingState
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		st, err = readEmbeddingState(ctx, tx, "")
		return err
	})
	if err != nil {
		return st, fmt.Errorf("store: embedding state: %w", err)
	}
	return st, nil
}

// AdoptEmbeddingModel names the active model when none is named yet (a
// database from before 00012, or a new one): the model this node is
// configured with by default, whose vectors chunks.embedding holds when
// its dimension is the column's. A model already named is left alone and
// returned.
func (s *Store) AdoptEmbeddingModel(ctx context.Context, model string, dim int) (EmbeddingState, error) {
	var st EmbeddingState
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if st, err = readEmbeddingState(ctx, tx, "FOR UPDATE"); err != nil || st.Active != "" {
			return err
		}
		column := &model
		if dim != ColumnDim {
			var stored int
			if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM chunks WHERE embedding IS NOT NULL)
				+ (SELECT count(*) FROM annotation_chunks WHERE embedding IS NOT NULL)`).Scan(&stored); err != nil {
				return err
			}
			if stored > 0 {
				return fmt.Errorf("%w: the database holds %d vectors of %d dimensions; name a %d-dimensional default embedder, then re-embed",
					fault.ErrConflict, stored, ColumnDim, ColumnDim)
			}
			column = nil
		}
		_, err = tx.Exec(ctx, `UPDATE embedding_state SET active_model = $1, active_dim = $2, column_model = $3, updated_at = now()`,
			model, dim, column)
		st = EmbeddingState{Active: model, ActiveDim: dim, Column: model}
		if column == nil {
			st.Column = ""
		}
		return err
	})
	if err != nil {
		return st, fmt.Errorf("store: adopt embedding model: %w", err)
	}
	return st, nil
}

// EmbedBuildJob is the job kind that builds a model's vectors; DropJob
// the one that deletes a model's vectors no longer needed.
const (
	EmbedBuildJob = "embedding_build"
	EmbedDropJob  = "embedding_drop"
)

// EmbedJob is the payload of both jobs.
type EmbedJob struct {
	Model string `json:"model"`
}

// StartEmbeddingBuild starts building model (dim dimensions) beside the
// active one and queues the job that builds it: ErrConflict when a build
// runs or model is active already.
func (s *Store) StartEmbeddingBuild(ctx context.Context, model string, dim int) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := readEmbeddingState(ctx, tx, "FOR UPDATE")
		switch {
		case err != nil:
			return err
		case st.Building != "":
			return fmt.Errorf("%w: model %s is being built; abandon it first", fault.ErrConflict, st.Building)
		case st.Active == model:
			return fmt.Errorf("%w: model %s is active already", fault.ErrConflict, model)
		case st.Active == "":
			return fmt.Errorf("%w: no active model is named yet (start a node first)", fault.ErrConflict)
		}
		// Vectors left by an earlier build of the same model are stale.
		if _, err := tx.Exec(ctx, `SELECT sostenuto_clear_embeddings($1)`, model); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE embedding_state SET building_model = $1, building_dim = $2,
			build_started_at = now(), updated_at = now()`, model, dim); err != nil {
			return err
		}
		return EnqueueJob(ctx, tx, EmbedBuildJob, EmbedJob{Model: model}, EmbedBuildJob+":"+model+":"+uuid.NewString(), 1000)
	})
	if err != nil {
		return fmt.Errorf("store: start embedding build: %w", err)
	}
	return nil
}

// AbandonEmbeddingBuild stops the build in progress (ErrNotFound when none)
// and queues the deletion of its vectors; every index drops its graph
// when the state's update reaches it.
func (s *Store) AbandonEmbeddingBuild(ctx context.Context) (string, error) {
	var model string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := readEmbeddingState(ctx, tx, "FOR UPDATE")
		if err != nil {
			return err
		}
		if st.Building == "" {
			return fmt.Errorf("%w: no model is being built", fault.ErrNotFound)
		}
		model = st.Building
		if _, err := tx.Exec(ctx, `UPDATE embedding_state SET building_model = NULL, building_dim = NULL,
			build_started_at = NULL, updated_at = now()`); err != nil {
			return err
		}
		return EnqueueJob(ctx, tx, EmbedDropJob, EmbedJob{Model: model}, EmbedDropJob+":"+uuid.NewString(), 100)
	})
	if err != nil {
		return "", fmt.Errorf("store: abandon embedding build: %w", err)
	}
	return model, nil
}

// EmbeddingProgress counts the chunks (teachers' notes included) and those
// holding a vector of model,
// as user (an admin sees them all) or, with uuid.Nil, as the store's role
// (the worker sees them all).
func (s *Store) EmbeddingProgress(ctx context.Context, user uuid.UUID, model string) (done, total int, err error) {
	count := func(q pgx.Tx) error {
		return q.QueryRow(ctx, `SELECT (SELECT count(*) FROM chunk_embeddings WHERE model = $1)
				+ (SELECT count(*) FROM annotation_embeddings WHERE model = $1),
			(SELECT count(*) FROM chunks) + (SELECT count(*) FROM annotation_chunks)`,
			model).Scan(&done, &total)
	}
	if user == uuid.Nil {
		err = pgx.BeginFunc(ctx, s.pool, count)
	} else {
		err = s.AsUser(ctx, user, count)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: embedding progress: %w", err)
	}
	return done, total, nil
}

// ChunkText is a chunk's text, to embed (a knowledge chunk's, or a
// teacher's note's: ID is then the annotation's).
type ChunkText struct {
	ID   uuid.UUID
	Text string
}

// ChunksWithout lists up to n chunks of either kind without a vector of
// model, in id order.
func (s *Store) ChunksWithout(ctx context.Context, model string, n int) ([]ChunkText, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, text FROM (
			(SELECT c.id, c.text FROM chunks c
			WHERE NOT EXISTS (SELECT 1 FROM chunk_embeddings e WHERE e.model = $1 AND e.chunk_id = c.id) ORDER BY c.id LIMIT $2)
			UNION ALL
			(SELECT a.annotation_id, a.text FROM annotation_chunks a
			WHERE NOT EXISTS (SELECT 1 FROM annotation_embeddings e WHERE e.model = $1 AND e.chunk_id = a.annotation_id)
			ORDER BY a.annotation_id LIMIT $2)) u
		ORDER BY id LIMIT $2`, model, n)
	if err != nil {
		return nil, fmt.Errorf("store: chunks without vectors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChunkText, error) {
		var c ChunkText
		return c, r.Scan(&c.ID, &c.Text)
	})
	if err != nil {
		return nil, fmt.Errorf("store: chunks without vectors: %w", err)
	}
	return out, nil
}

// ErrNotBuilding marks vectors of a model no longer being built (the build
// was abandoned, or switched): the job stops.
var ErrNotBuilding = errors.New("store: the model is not being built")

// PutEmbeddings stores vectors of model, the one being built, of chunks
// (vecs[i] embeds chunks[i].Text), in one transaction; chunks deleted
// meanwhile, and notes whose text changed meanwhile, are passed by.
//
// It first locks the rows it writes for (FOR SHARE SKIP LOCKED): a chunk
// or note that a user's write holds (a document deleted or re-ingested, a
// note edited) is passed by too, and ChunksWithout returns it to a later
// batch if it is still there. So the build never waits for a user's
// write while holding rows that write needs next: without this the two
// deadlocked, and PostgreSQL failed one of them (40P01), possibly the
// user's request.
func (s *Store) PutEmbeddings(ctx context.Context, model string, chunks []ChunkText, vecs [][]float32) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := readEmbeddingState(ctx, tx, "FOR SHARE")
		if err != nil {
			return err
		}
		if st.Building != model {
			return ErrNotBuilding
		}
		ids := make([]uuid.UUID, len(chunks))
		for i, c := range chunks {
			ids[i] = c.ID
		}
		knowledge, err := lockFree(ctx, tx, `SELECT id FROM chunks WHERE id = ANY($1) ORDER BY id FOR SHARE SKIP LOCKED`, ids)
		if err != nil {
			return err
		}
		notes, err := lockFree(ctx, tx, `SELECT annotation_id FROM annotation_chunks WHERE annotation_id = ANY($1)
			ORDER BY annotation_id FOR SHARE SKIP LOCKED`, ids)
		if err != nil {
			return err
		}
		return tx.SendBatch(ctx, embeddingWrites(model, chunks, vecs, knowledge, notes)).Close()
	})
	if err != nil {
		return fmt.Errorf("store: put embeddings: %w", err)
	}
	return nil
}

// lockFree runs q, a SELECT of ids … FOR SHARE SKIP LOCKED, and returns
// the ids it locked.
func lockFree(ctx context.Context, tx pgx.Tx, q string, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	rows, err := tx.Query(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]bool, len(got))
	for _, id := range got {
		out[id] = true
	}
	return out, nil
}

// embeddingWrites queues the inserts of the vectors of the chunks and
// notes PutEmbeddings locked.
func embeddingWrites(model string, chunks []ChunkText, vecs [][]float32, knowledge, notes map[uuid.UUID]bool) *pgx.Batch {
	b := &pgx.Batch{}
	for i, c := range chunks {
		if knowledge[c.ID] {
			b.Queue(`INSERT INTO chunk_embeddings (chunk_id, model, embedding)
				VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, c.ID, model, pgvector.NewVector(vecs[i]))
		}
		if notes[c.ID] {
			b.Queue(`INSERT INTO annotation_embeddings (chunk_id, model, embedding)
				SELECT annotation_id, $2, $3 FROM annotation_chunks WHERE annotation_id = $1 AND text = $4 ON CONFLICT DO NOTHING`,
				c.ID, model, pgvector.NewVector(vecs[i]), c.Text)
		}
	}
	return b
}

// IndexEmbeddingModel makes the HNSW indexes the PostgreSQL fallback
// searches model's vectors with (dim dimensions; at most 2,000, past which
// the fallback scans them exactly). It runs before the switch and takes a
// while (about as long as pgvector builds an index of that many vectors);
// writes of vectors wait meanwhile, searches do not.
func (s *Store) IndexEmbeddingModel(ctx context.Context, model string, dim int) error {
	if _, err := s.pool.Exec(ctx, `SELECT sostenuto_index_model($1, $2)`, model, dim); err != nil {
		return fmt.Errorf("store: index embedding model: %w", err)
	}
	return nil
}

// SwitchEmbeddingModel makes model, the one being built, active, in one
// update of embedding_state, if every chunk has its vector; switched is
// false when some do not (yet: chunks ingested meanwhile). The old
// model's vectors are queued for deletion.
func (s *Store) SwitchEmbeddingModel(ctx context.Context, model string) (switched bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := readEmbeddingState(ctx, tx, "FOR UPDATE")
		if err != nil {
			return err
		}
		if st.Building != model {
			return ErrNotBuilding
		}
		var missing bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chunks c WHERE NOT EXISTS
				(SELECT 1 FROM chunk_embeddings e WHERE e.model = $1 AND e.chunk_id = c.id))
			OR EXISTS (SELECT 1 FROM annotation_chunks a WHERE NOT EXISTS
				(SELECT 1 FROM annotation_embeddings e WHERE e.model = $1 AND e.chunk_id = a.annotation_id))`, model).Scan(&missing); err != nil || missing {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE embedding_state SET active_model = building_model, active_dim = building_dim,
			building_model = NULL, building_dim = NULL, build_started_at = NULL, column_model = NULL, updated_at = now()`); err != nil {
			return err
		}
		switched = true
		return EnqueueJob(ctx, tx, EmbedDropJob, EmbedJob{Model: st.Active}, EmbedDropJob+":"+uuid.NewString(), 100)
	})
	if err != nil {
		return false, fmt.Errorf("store: switch embedding model: %w", err)
	}
	return switched, nil
}

// DropEmbeddings deletes up to n vectors of model, a model neither active
// nor being built (or the column's vectors once the column's model left);
// it returns how many went, 0 when none is left.
func (s *Store) DropEmbeddings(ctx context.Context, model string, n int) (int, error) {
	var dropped int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := readEmbeddingState(ctx, tx, "FOR SHARE")
		if err != nil || st.Active == model || st.Building == model {
			return err // in use again: nothing to drop
		}
		for _, q := range []string{
			`DELETE FROM chunk_embeddings WHERE model = $1 AND chunk_id IN
				(SELECT chunk_id FROM chunk_embeddings WHERE model = $1 LIMIT $2)`,
			`DELETE FROM annotation_embeddings WHERE model = $1 AND chunk_id IN
				(SELECT chunk_id FROM annotation_embeddings WHERE model = $1 LIMIT $2)`,
		} {
			tag, err := tx.Exec(ctx, q, model, n)
			if dropped += tag.RowsAffected(); err != nil || dropped > 0 {
				return err
			}
		}
		if st.Column != "" {
			_, err := tx.Exec(ctx, `SELECT sostenuto_unindex_model($1)`, model)
			return err
		}
		for _, q := range []string{
			`UPDATE chunks SET embedding = NULL WHERE id IN (SELECT id FROM chunks WHERE embedding IS NOT NULL LIMIT $1)`,
			`UPDATE annotation_chunks SET embedding = NULL WHERE annotation_id IN
				(SELECT annotation_id FROM annotation_chunks WHERE embedding IS NOT NULL LIMIT $1)`,
		} {
			tag, err := tx.Exec(ctx, q, n)
			if dropped += tag.RowsAffected(); err != nil || dropped > 0 {
				return err
			}
		}
		_, err = tx.Exec(ctx, `SELECT sostenuto_unindex_model($1)`, model)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: drop embeddings: %w", err)
	}
	return int(dropped), nil
}
