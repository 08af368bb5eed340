-- +goose Up
-- The changefeed publishes teacher–student relationships, so that every
-- node learns whose teachers changed (replication: Changes.scope_changes)
-- and forgets what it cached of their scope (server/search.ScopeCache).
-- Only the pair is published, and it is the replica identity (the unique
-- constraint relationships_pair_key, over NOT NULL columns), so a delete
-- sends the student and the teacher, not just the row's id.
ALTER TABLE relationships REPLICA IDENTITY USING INDEX relationships_pair_key;
ALTER PUBLICATION sostenuto_changefeed ADD TABLE relationships (teacher_id, student_id);

-- +goose Down
ALTER PUBLICATION sostenuto_changefeed DROP TABLE relationships;
ALTER TABLE relationships REPLICA IDENTITY DEFAULT;
