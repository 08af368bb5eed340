-- +goose Up
-- Annotations in search and chat (docs/SECURITY.md "Annotations in search
-- and chat"). A note's text, or a highlight's comment, is a chunk of kind
-- annotation: one row per annotation, written in the annotation's own
-- transaction (or later by the annotation_index job when the embedder
-- failed), visible exactly to the users with view permission on its
-- project. The changefeed carries these rows, and projects' owners and
-- grants, so every node's index learns each project's principals.

-- An annotation chunk names its annotation's project and author; the
-- composite key makes the database hold them equal to the annotation's.
ALTER TABLE annotations ADD CONSTRAINT annotations_id_project_author_key UNIQUE (id, project_id, author_id);

CREATE TABLE annotation_chunks (
    annotation_id  uuid        PRIMARY KEY,
    project_id     uuid        NOT NULL,
    author_id      uuid        NOT NULL,
    page           integer     NOT NULL,
    text           text        NOT NULL,
    language       text        NOT NULL DEFAULT 'en',
    embedding      vector(768) NOT NULL,
    -- The annotation's version the chunk was made from.
    version        bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    tsv            tsvector    GENERATED ALWAYS AS (to_tsvector(sostenuto_ts_config(language), text)) STORED,
    CONSTRAINT annotation_chunks_annotation_fkey FOREIGN KEY (annotation_id, project_id, author_id)
        REFERENCES annotations (id, project_id, author_id) ON DELETE CASCADE,
    CONSTRAINT annotation_chunks_page_check CHECK (page >= 1),
    CONSTRAINT annotation_chunks_text_check CHECK (length(text) BETWEEN 1 AND 20000),
    CONSTRAINT annotation_chunks_language_check CHECK (language ~ '^[a-z]{2}$'),
    CONSTRAINT annotation_chunks_version_check CHECK (version >= 1)
);
CREATE INDEX annotation_chunks_project_idx ON annotation_chunks (project_id);
CREATE INDEX annotation_chunks_tsv_idx ON annotation_chunks USING gin (tsv);
CREATE INDEX annotation_chunks_embedding_idx ON annotation_chunks USING hnsw (embedding vector_cosine_ops);

-- Seen with view permission on the project (owner, grantees, admins);
-- written by whoever may change the annotation (its author while they can
-- see the project, or a project admin), as annotations_update says.
ALTER TABLE annotation_chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY annotation_chunks_select ON annotation_chunks FOR SELECT TO sostenuto_app
    USING (sostenuto_project_perm(project_id) >= 1);
CREATE POLICY annotation_chunks_write ON annotation_chunks FOR ALL TO sostenuto_app
    USING ((author_id = sostenuto_uid() AND sostenuto_project_perm(project_id) >= 1) OR sostenuto_project_perm(project_id) >= 3)
    WITH CHECK ((author_id = sostenuto_uid() AND sostenuto_project_perm(project_id) >= 1) OR sostenuto_project_perm(project_id) >= 3);
-- The worker (the annotation_index job) reads annotations and writes their
-- chunks, whatever the project.
CREATE POLICY annotation_chunks_worker ON annotation_chunks FOR ALL TO sostenuto_worker USING (true) WITH CHECK (true);
CREATE POLICY annotations_worker ON annotations FOR SELECT TO sostenuto_worker USING (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON annotation_chunks TO sostenuto_app, sostenuto_worker;
GRANT SELECT ON annotations TO sostenuto_worker;

-- The changefeed: annotation chunks whole (a delete sends annotation_id),
-- projects' owners and titles (a delete sends id), and grants by their key
-- (any permission includes view; a delete sends project_id, user_id). The
-- replica identity of each is its primary key, which every column list
-- holds.
ALTER PUBLICATION sostenuto_changefeed ADD TABLE annotation_chunks,
    projects (id, owner_id, title), project_grants (project_id, user_id);

-- +goose Down
ALTER PUBLICATION sostenuto_changefeed DROP TABLE annotation_chunks, projects, project_grants;
DROP POLICY annotations_worker ON annotations;
REVOKE SELECT ON annotations FROM sostenuto_worker;
DROP TABLE annotation_chunks;
ALTER TABLE annotations DROP CONSTRAINT annotations_id_project_author_key;
