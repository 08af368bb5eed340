-- +goose Up
-- Chunks of a document being (re)processed are written here in batches as
-- they are embedded; one final transaction swaps them into chunks, so a
-- reader (and the changefeed) never sees half a document.
CREATE TABLE chunk_staging (
    document_id   uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal       integer     NOT NULL,
    text          text        NOT NULL,
    token_count   integer     NOT NULL,
    page_start    integer     NOT NULL,
    page_end      integer     NOT NULL,
    char_start    integer     NOT NULL,
    char_end      integer     NOT NULL,
    time_start_ms bigint,
    time_end_ms   bigint,
    embedding     vector(768) NOT NULL,
    PRIMARY KEY (document_id, ordinal)
);

GRANT SELECT, INSERT, DELETE ON chunk_staging TO sostenuto_worker;
-- The worker moves staged chunks in and reads the owners it copies.
GRANT SELECT ON relationships TO sostenuto_worker;

-- Search hits carry their document's title: the changefeed carries it too.
ALTER PUBLICATION sostenuto_changefeed SET TABLE chunks, documents (id, owner_id, is_public, title);
