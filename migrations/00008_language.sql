-- +goose Up
-- Each knowledge document's language (ISO 639-1, detected at ingestion;
-- docs/INGESTION.md "Language"), copied onto its chunks, which carry it
-- through the changefeed so every node's BM25 index analyses a chunk in its
-- document's language. Rows from before are English, the default.
ALTER TABLE documents ADD COLUMN language text NOT NULL DEFAULT 'en',
    ADD CONSTRAINT documents_language_check CHECK (language ~ '^[a-z]{2}$');
ALTER TABLE chunks ADD COLUMN language text NOT NULL DEFAULT 'en',
    ADD CONSTRAINT chunks_language_check CHECK (language ~ '^[a-z]{2}$');
-- Staged chunks carry the language detected with them; the swap into
-- chunks copies it to the chunks and the document in one transaction.
ALTER TABLE chunk_staging ADD COLUMN language text NOT NULL DEFAULT 'en',
    ADD CONSTRAINT chunk_staging_language_check CHECK (language ~ '^[a-z]{2}$');

-- The text search configuration of a language: the fallback search analyses
-- each chunk, and the query, in its document's language. Languages without
-- one here (none today) are English.
CREATE FUNCTION sostenuto_ts_config(language text) RETURNS regconfig
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE language
        WHEN 'de' THEN 'pg_catalog.german'::regconfig
        WHEN 'es' THEN 'pg_catalog.spanish'::regconfig
        WHEN 'fr' THEN 'pg_catalog.french'::regconfig
        WHEN 'it' THEN 'pg_catalog.italian'::regconfig
        WHEN 'nl' THEN 'pg_catalog.dutch'::regconfig
        WHEN 'pt' THEN 'pg_catalog.portuguese'::regconfig
        ELSE 'pg_catalog.english'::regconfig END $$;
GRANT EXECUTE ON FUNCTION sostenuto_ts_config(text) TO sostenuto_app, sostenuto_worker;

-- chunks.tsv follows the chunk's language. A stored generated column's
-- expression cannot change in place before PostgreSQL 17: the column is
-- added again, which rewrites chunks once (seconds per 100,000 chunks;
-- English rows get the same vector as before).
DROP INDEX chunks_tsv_idx;
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector(sostenuto_ts_config(language), text)) STORED;
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
