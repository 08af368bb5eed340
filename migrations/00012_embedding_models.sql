-- +goose Up
-- Embedding model identity and re-embedding without downtime (issue 19).
-- Teachers' notes (annotation_chunks, 00010) are chunks too: their
-- vectors follow the same models, in annotation_embeddings.
--
-- embedding_state is one row: the active model (the one every search
-- embeds its query with and every index searches), the model being built
-- beside it while a re-embedding runs, and the model whose vectors the
-- chunks.embedding column holds (the column is vector(768); models of any
-- other dimension, and every model once the column's has been left, keep
-- their vectors in chunk_embeddings). Its row travels the changefeed: the
-- switch is one update of it, committed after every new vector, so every
-- node switches at one log position. NULL active_model: not named yet
-- (the first node to start names the model it is configured with).
CREATE TABLE embedding_state (
    singleton        boolean     PRIMARY KEY DEFAULT true,
    active_model     text,
    active_dim       integer,
    building_model   text,
    building_dim     integer,
    column_model     text,
    build_started_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT embedding_state_singleton_check CHECK (singleton),
    CONSTRAINT embedding_state_active_check CHECK ((active_model IS NULL) = (active_dim IS NULL)
        AND (active_dim IS NULL OR active_dim BETWEEN 1 AND 16000)),
    CONSTRAINT embedding_state_building_check CHECK ((building_model IS NULL) = (building_dim IS NULL)
        AND (building_dim IS NULL OR building_dim BETWEEN 1 AND 16000)
        AND (building_model IS NULL) = (build_started_at IS NULL)
        AND (building_model IS NULL OR building_model <> active_model))
);
INSERT INTO embedding_state DEFAULT VALUES;

-- A chunk's vector by a model other than the column's; any dimension
-- (vector without a type modifier). It goes with its chunk.
CREATE TABLE chunk_embeddings (
    chunk_id   uuid   NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    model      text   NOT NULL,
    embedding  vector NOT NULL,
    PRIMARY KEY (model, chunk_id),
    CONSTRAINT chunk_embeddings_model_check CHECK (length(model) BETWEEN 1 AND 200)
);
CREATE INDEX chunk_embeddings_chunk_idx ON chunk_embeddings (chunk_id);

-- The same for annotation chunks (a note's text, a highlight's comment):
-- a new text of the note drops the vectors of the other models.
CREATE TABLE annotation_embeddings (
    chunk_id   uuid   NOT NULL REFERENCES annotation_chunks (annotation_id) ON DELETE CASCADE,
    model      text   NOT NULL,
    embedding  vector NOT NULL,
    PRIMARY KEY (model, chunk_id),
    CONSTRAINT annotation_embeddings_model_check CHECK (length(model) BETWEEN 1 AND 200)
);
CREATE INDEX annotation_embeddings_chunk_idx ON annotation_embeddings (chunk_id);
ALTER TABLE annotation_chunks ALTER COLUMN embedding DROP NOT NULL;

-- A model's vectors may be of any dimension, so the column may be empty
-- (its model left), and a document is staged with its model's vectors.
ALTER TABLE chunks ALTER COLUMN embedding DROP NOT NULL;
ALTER TABLE chunk_staging ALTER COLUMN embedding TYPE vector;
ALTER TABLE chunk_staging ADD COLUMN model text;

-- Privileges. The request path reads the state and changes it (admins
-- only, checked by the server), reads vectors of chunks it may see, and
-- deletes a model's vectors when a build of it starts (left by an earlier,
-- abandoned build, they would never reach the new build's graphs).
GRANT SELECT, UPDATE ON embedding_state TO sostenuto_app;
GRANT SELECT, UPDATE ON embedding_state TO sostenuto_worker;
GRANT SELECT ON chunk_embeddings TO sostenuto_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON chunk_embeddings TO sostenuto_worker;
GRANT UPDATE ON chunk_staging TO sostenuto_worker;
ALTER TABLE chunk_embeddings ENABLE ROW LEVEL SECURITY;
-- chunks' own policy limits the subquery to the chunks the user may see.
CREATE POLICY chunk_embeddings_select ON chunk_embeddings FOR SELECT TO sostenuto_app
    USING (EXISTS (SELECT 1 FROM chunks c WHERE c.id = chunk_id));
-- Row Level Security would hide private chunks' vectors from that delete:
-- it runs as the tables' owner, and never deletes the active model's.
-- +goose StatementBegin
CREATE FUNCTION sostenuto_clear_embeddings(m text) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        DELETE FROM chunk_embeddings WHERE model = m AND m IS DISTINCT FROM (SELECT active_model FROM embedding_state);
        DELETE FROM annotation_embeddings WHERE model = m AND m IS DISTINCT FROM (SELECT active_model FROM embedding_state)
    $$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION sostenuto_clear_embeddings(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sostenuto_clear_embeddings(text) TO sostenuto_app, sostenuto_worker;
CREATE POLICY chunk_embeddings_worker ON chunk_embeddings FOR ALL TO sostenuto_worker USING (true) WITH CHECK (true);

-- A note's vector is written in the note's own transaction, by whoever
-- may write its chunk (annotation_chunks_write), and seen by whoever may
-- see the note.
GRANT SELECT, INSERT, UPDATE, DELETE ON annotation_embeddings TO sostenuto_app, sostenuto_worker;
ALTER TABLE annotation_embeddings ENABLE ROW LEVEL SECURITY;
CREATE POLICY annotation_embeddings_select ON annotation_embeddings FOR SELECT TO sostenuto_app
    USING (EXISTS (SELECT 1 FROM annotation_chunks a WHERE a.annotation_id = chunk_id));
CREATE POLICY annotation_embeddings_write ON annotation_embeddings FOR ALL TO sostenuto_app
    USING (EXISTS (SELECT 1 FROM annotation_chunks a WHERE a.annotation_id = chunk_id
        AND ((a.author_id = sostenuto_uid() AND sostenuto_project_perm(a.project_id) >= 1) OR sostenuto_project_perm(a.project_id) >= 3)))
    WITH CHECK (EXISTS (SELECT 1 FROM annotation_chunks a WHERE a.annotation_id = chunk_id
        AND ((a.author_id = sostenuto_uid() AND sostenuto_project_perm(a.project_id) >= 1) OR sostenuto_project_perm(a.project_id) >= 3)));
CREATE POLICY annotation_embeddings_worker ON annotation_embeddings FOR ALL TO sostenuto_worker USING (true) WITH CHECK (true);

-- The fallback's vector search over a model held apart from the columns
-- is an HNSW index per model and table, on the vectors cast to the
-- model's dimension (a vector column without a dimension cannot be
-- indexed). A build makes them before its switch; they are dropped with
-- the model's vectors. They run as the tables' owner.
-- +goose StatementBegin
CREATE FUNCTION sostenuto_index_model(m text, dim integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    t text;
BEGIN
    IF dim < 1 OR dim > 2000 THEN
        RETURN; -- HNSW indexes vectors of at most 2,000 dimensions: exact scans
    END IF;
    FOREACH t IN ARRAY ARRAY['chunk_embeddings', 'annotation_embeddings'] LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WHERE model = %L',
            t || '_' || md5(m) || '_idx', t, dim, m);
    END LOOP;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION sostenuto_unindex_model(m text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['chunk_embeddings', 'annotation_embeddings'] LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', t || '_' || md5(m) || '_idx');
    END LOOP;
END $$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION sostenuto_index_model(text, integer), sostenuto_unindex_model(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sostenuto_index_model(text, integer), sostenuto_unindex_model(text) TO sostenuto_worker;

-- All travel the changefeed (ADD, never SET: other migrations change the
-- publication too).
ALTER PUBLICATION sostenuto_changefeed ADD TABLE chunk_embeddings, annotation_embeddings, embedding_state;
