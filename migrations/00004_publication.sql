-- +goose Up
-- The changefeed publishes documents' titles (search hits and citations show
-- them). 00003 was amended to say so after some databases had applied it;
-- this re-states the publication so every database agrees.
ALTER PUBLICATION sostenuto_changefeed SET TABLE chunks, documents (id, owner_id, is_public, title);

-- +goose Down
ALTER PUBLICATION sostenuto_changefeed SET TABLE chunks, documents (id, owner_id, is_public);
