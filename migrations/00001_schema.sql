-- +goose Up
-- The whole schema of the API contract. Constraints live here, not only in Go:
-- every enum is a CHECK, every range is a CHECK, every reference is a foreign
-- key with the ON DELETE its lifecycle needs.

-- pgvector is not a trusted extension: on the embedded cluster the bootstrap
-- creates it as superuser; on hosted PostgreSQL (Supabase) it is available.
CREATE EXTENSION IF NOT EXISTS vector;

-- Users. Emails are stored normalized (trimmed, lower-cased) by the
-- application and are unique case-insensitively here as well.
CREATE TABLE users (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email             text        NOT NULL,
    display_name      text        NOT NULL,
    role              text        NOT NULL,
    password_hash     text,
    external_subject  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_role_check CHECK (role IN ('teacher', 'student', 'admin')),
    CONSTRAINT users_email_check CHECK (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    CONSTRAINT users_display_name_check CHECK (length(btrim(display_name)) BETWEEN 1 AND 100),
    -- A user signs in with a password, through Supabase Auth, or both.
    CONSTRAINT users_credential_check CHECK (password_hash IS NOT NULL OR external_subject IS NOT NULL)
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_external_subject_key ON users (external_subject) WHERE external_subject IS NOT NULL;

-- Refresh tokens: only a hash is stored. Tokens of one login form a family;
-- replaying a spent token revokes the family.
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    token_hash  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_hash_length_check CHECK (length(token_hash) = 32),
    CONSTRAINT refresh_tokens_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Teacher-student relationships.
CREATE TABLE relationships (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    teacher_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    student_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT relationships_pair_key UNIQUE (teacher_id, student_id),
    CONSTRAINT relationships_distinct_check CHECK (teacher_id <> student_id)
);
CREATE INDEX relationships_student_idx ON relationships (student_id);

-- Projects: one sheet-music PDF each, stored in the blob store under a key
-- the server makes.
CREATE TABLE projects (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title            text        NOT NULL,
    description      text        NOT NULL DEFAULT '',
    filename         text        NOT NULL,
    content_type     text        NOT NULL DEFAULT 'application/pdf',
    object_key       text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending_upload',
    file_size_bytes  bigint,
    page_count       integer,
    etag             text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_object_key_key UNIQUE (object_key),
    CONSTRAINT projects_status_check CHECK (status IN ('pending_upload', 'ready')),
    CONSTRAINT projects_title_check CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    CONSTRAINT projects_description_check CHECK (length(description) <= 5000),
    CONSTRAINT projects_filename_check CHECK (length(filename) BETWEEN 1 AND 255),
    CONSTRAINT projects_content_type_check CHECK (content_type = 'application/pdf'),
    CONSTRAINT projects_file_size_check CHECK (file_size_bytes IS NULL OR file_size_bytes >= 0),
    CONSTRAINT projects_page_count_check CHECK (page_count IS NULL OR page_count >= 1),
    -- A ready project has been checked: its size and page count are known.
    CONSTRAINT projects_ready_check CHECK (status <> 'ready' OR (file_size_bytes IS NOT NULL AND page_count IS NOT NULL))
);
CREATE INDEX projects_owner_idx ON projects (owner_id, created_at DESC, id DESC);

-- Grants of a project to other users: view < edit < admin.
CREATE TABLE project_grants (
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permission  text        NOT NULL,
    granted_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id),
    CONSTRAINT project_grants_permission_check CHECK (permission IN ('view', 'edit', 'admin'))
);
CREATE INDEX project_grants_user_idx ON project_grants (user_id);

-- Annotations on a project's pages. content is validated per type by the
-- application; the database bounds its shape and size.
CREATE TABLE annotations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    author_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    page        integer     NOT NULL,
    type        text        NOT NULL,
    content     jsonb       NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT annotations_page_check CHECK (page >= 1),
    CONSTRAINT annotations_type_check CHECK (type IN ('highlight', 'note', 'drawing')),
    CONSTRAINT annotations_content_check CHECK (jsonb_typeof(content) = 'object' AND pg_column_size(content) <= 262144),
    CONSTRAINT annotations_version_check CHECK (version >= 1)
);
CREATE INDEX annotations_project_page_idx ON annotations (project_id, page, created_at, id);

-- Knowledge documents: method books, articles, lesson videos, notes.
CREATE TABLE documents (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text        NOT NULL,
    source_type   text        NOT NULL,
    source_url    text,
    content       text,
    object_key    text,
    is_public     boolean     NOT NULL DEFAULT false,
    status        text        NOT NULL DEFAULT 'pending',
    chunk_count   integer     NOT NULL DEFAULT 0,
    chunks_done   integer     NOT NULL DEFAULT 0,
    chunks_total  integer     NOT NULL DEFAULT 0,
    empty_pages   integer[]   NOT NULL DEFAULT '{}',
    error         text,
    index_lsn     pg_lsn,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    -- Lets chunks reference (document, owner) so a chunk's owner always
    -- matches its document's.
    CONSTRAINT documents_id_owner_key UNIQUE (id, owner_id),
    CONSTRAINT documents_object_key_key UNIQUE (object_key),
    CONSTRAINT documents_source_type_check CHECK (source_type IN ('pdf', 'web', 'youtube', 'text')),
    CONSTRAINT documents_status_check CHECK (status IN ('pending', 'queued', 'processing', 'completed', 'failed')),
    CONSTRAINT documents_title_check CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    CONSTRAINT documents_source_url_check CHECK (source_url IS NULL OR (length(source_url) <= 2048 AND source_url ~ '^https?://')),
    CONSTRAINT documents_web_url_check CHECK (source_type <> 'web' OR source_url IS NOT NULL),
    CONSTRAINT documents_content_check CHECK (content IS NULL OR length(content) <= 10485760),
    CONSTRAINT documents_counts_check CHECK (chunk_count >= 0 AND chunks_done >= 0 AND chunks_total >= 0 AND chunks_done <= chunks_total),
    CONSTRAINT documents_failed_check CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX documents_owner_idx ON documents (owner_id, created_at DESC, id DESC);
CREATE INDEX documents_public_idx ON documents (created_at DESC, id DESC) WHERE is_public;

-- Chunks: retrievable passages of a document with their embedding. The page
-- range and character offsets locate a chunk in its source; captions keep
-- their time range in milliseconds. version grows on every rewrite so
-- replicas can compare (id, version) sets.
CREATE TABLE chunks (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id  uuid        NOT NULL,
    owner_id     uuid        NOT NULL,
    ordinal      integer     NOT NULL,
    text         text        NOT NULL,
    token_count  integer     NOT NULL,
    page_start   integer     NOT NULL DEFAULT 1,
    page_end     integer     NOT NULL DEFAULT 1,
    char_start   integer     NOT NULL,
    char_end     integer     NOT NULL,
    time_start_ms bigint,
    time_end_ms   bigint,
    embedding    vector(768) NOT NULL,
    tsv          tsvector    GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    version      bigint      NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chunks_document_fkey FOREIGN KEY (document_id, owner_id)
        REFERENCES documents (id, owner_id) ON DELETE CASCADE,
    CONSTRAINT chunks_ordinal_key UNIQUE (document_id, ordinal),
    CONSTRAINT chunks_ordinal_check CHECK (ordinal >= 0),
    CONSTRAINT chunks_text_check CHECK (length(text) BETWEEN 1 AND 65536),
    CONSTRAINT chunks_token_count_check CHECK (token_count >= 1),
    CONSTRAINT chunks_pages_check CHECK (page_start >= 1 AND page_end >= page_start),
    CONSTRAINT chunks_offsets_check CHECK (char_start >= 0 AND char_end > char_start),
    CONSTRAINT chunks_times_check CHECK ((time_start_ms IS NULL) = (time_end_ms IS NULL)
        AND (time_start_ms IS NULL OR (time_start_ms >= 0 AND time_end_ms >= time_start_ms))),
    CONSTRAINT chunks_version_check CHECK (version >= 1)
);
CREATE INDEX chunks_owner_idx ON chunks (owner_id);
CREATE INDEX chunks_embedding_hnsw_idx ON chunks
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);

-- Chat sessions and their messages; only the owner sees them.
CREATE TABLE chat_sessions (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_sessions_title_check CHECK (length(title) <= 200)
);
CREATE INDEX chat_sessions_user_idx ON chat_sessions (user_id, updated_at DESC, id DESC);

CREATE TABLE chat_messages (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id  uuid        NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role        text        NOT NULL,
    content     text        NOT NULL,
    sources     jsonb       NOT NULL DEFAULT '[]',
    confidence  text,
    model       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_messages_role_check CHECK (role IN ('user', 'assistant')),
    CONSTRAINT chat_messages_content_check CHECK (length(content) <= 100000),
    CONSTRAINT chat_messages_sources_check CHECK (jsonb_typeof(sources) = 'array'),
    CONSTRAINT chat_messages_confidence_check CHECK (confidence IS NULL OR confidence IN ('HIGH', 'MEDIUM', 'LOW')),
    CONSTRAINT chat_messages_assistant_check CHECK (role <> 'assistant' OR confidence IS NOT NULL)
);
CREATE INDEX chat_messages_session_idx ON chat_messages (session_id, created_at, id);

-- Durable background work (ingestion, object deletion, ...). Workers claim
-- with FOR UPDATE SKIP LOCKED and hold a lease; an expired lease makes the
-- job claimable again. dedupe_key keeps one live job per purpose.
CREATE TABLE jobs (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text        NOT NULL,
    payload       jsonb       NOT NULL DEFAULT '{}',
    status        text        NOT NULL DEFAULT 'queued',
    dedupe_key    text,
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 5,
    run_at        timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz,
    locked_by     text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CONSTRAINT jobs_kind_check CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
    CONSTRAINT jobs_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0 AND max_attempts >= 1 AND attempts <= max_attempts),
    CONSTRAINT jobs_payload_check CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT jobs_lease_check CHECK (status <> 'running' OR (lease_until IS NOT NULL AND locked_by IS NOT NULL)),
    CONSTRAINT jobs_finished_check CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);
CREATE UNIQUE INDEX jobs_dedupe_key ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX jobs_claim_idx ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE status = 'running';

-- The changefeed: chunk rows and the visibility columns of documents. The
-- Raft leader reads it through one logical replication slot (pgoutput).
CREATE PUBLICATION sostenuto_changefeed FOR TABLE chunks, documents (id, owner_id, is_public);
