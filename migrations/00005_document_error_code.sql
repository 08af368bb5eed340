-- +goose Up
-- Why a document failed, as a stable snake_case code programs can switch on
-- (blocked_address, fetch_failed, not_found_at_source, too_large, no_text,
-- timeout, unsupported, failed; docs/INGESTION.md), beside documents.error,
-- which from now on is a sentence for a person: no internal addresses, no
-- resolver, driver or provider text. Operators find the detail in the logs
-- and in jobs.last_error.
ALTER TABLE documents ADD COLUMN error_code text,
    ADD CONSTRAINT documents_error_code_check CHECK (error_code IS NULL OR error_code ~ '^[a-z][a-z0-9_]{0,62}$');

-- Errors stored before held the Go error text (a resolver's answer, the
-- address dialed, a provider's response body) that every viewer could read.
-- They cannot be classified reliably from that text, so each gets the
-- generic code and a sentence that says how to learn the reason; the old
-- text stays in jobs.last_error for operators.
UPDATE documents
SET error_code = 'failed',
    error = CASE WHEN status = 'failed'
        THEN 'Processing failed before error codes were recorded; process the document again to learn why.'
        ELSE 'An earlier attempt failed; it will be retried.' END
WHERE error IS NOT NULL;
