-- +goose Up
-- OCR of scanned PDF pages (docs/INGESTION.md "OCR"). Each column describes
-- the last processing of the document:
--   ocr_pages             pages read by OCR (the API's Document.ocr_pages);
--   ocr_pages_done/_total progress of the OCR while it runs;
--   ocr_confidence        one {"page": n, "confidence": c} per OCR'd page,
--                         c the mean word confidence (0-100) Tesseract gave;
--   low_confidence_pages  the OCR'd pages whose mean confidence was below
--                         the configured bound (their text is still used).
ALTER TABLE documents
    ADD COLUMN ocr_pages integer NOT NULL DEFAULT 0,
    ADD COLUMN ocr_pages_done integer NOT NULL DEFAULT 0,
    ADD COLUMN ocr_pages_total integer NOT NULL DEFAULT 0,
    ADD COLUMN ocr_confidence jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN low_confidence_pages integer[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT documents_ocr_check CHECK (ocr_pages >= 0 AND ocr_pages_done >= 0
        AND ocr_pages_done <= ocr_pages_total AND jsonb_typeof(ocr_confidence) = 'array');
