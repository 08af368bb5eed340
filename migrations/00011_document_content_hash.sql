-- +goose Up
-- What a document's chunks were made from: the SHA-256 (hex) of its
-- extracted text with the settings that cut and embedded it
-- (docs/INGESTION.md "Refresh"). A refresh that extracts the same text
-- keeps the chunks as they are. NULL until the document is first
-- processed after this migration (the next refresh rebuilds it once).
-- Not published: the index does not need it.
ALTER TABLE documents ADD COLUMN content_hash text,
    ADD CONSTRAINT documents_content_hash_check CHECK (content_hash IS NULL OR content_hash ~ '^[0-9a-f]{64}$');

-- +goose Down
ALTER TABLE documents DROP COLUMN content_hash;
