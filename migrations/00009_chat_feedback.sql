-- +goose Up
-- Feedback on chat answers: one rating (up or down) and an optional comment
-- per assistant message, given by the owner of its session; a new rating
-- replaces the old one. It goes with its message (and so with its session).
CREATE TABLE chat_feedback (
    message_id  uuid        PRIMARY KEY REFERENCES chat_messages (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating      text        NOT NULL,
    comment     text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_feedback_rating_check CHECK (rating IN ('up', 'down')),
    CONSTRAINT chat_feedback_comment_check CHECK (length(comment) <= 2000)
);
-- The admin list: newest first, all or by rating.
CREATE INDEX chat_feedback_updated_idx ON chat_feedback (updated_at DESC, message_id DESC);
CREATE INDEX chat_feedback_rating_idx ON chat_feedback (rating, updated_at DESC, message_id DESC);

-- Whether m is an answer (an assistant message) in a session of the
-- current user: the only messages that user may rate.
CREATE FUNCTION sostenuto_rateable_message(m uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM chat_messages msg JOIN chat_sessions s ON s.id = msg.session_id
        WHERE msg.id = m AND msg.role = 'assistant' AND s.user_id = sostenuto_uid())
    $$;
REVOKE ALL ON FUNCTION sostenuto_rateable_message(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sostenuto_rateable_message(uuid) TO sostenuto_app;

-- A rating is its author's: seen, given and changed by the session's owner only.
ALTER TABLE chat_feedback ENABLE ROW LEVEL SECURITY;
CREATE POLICY chat_feedback_select ON chat_feedback FOR SELECT TO sostenuto_app
    USING (user_id = sostenuto_uid());
CREATE POLICY chat_feedback_insert ON chat_feedback FOR INSERT TO sostenuto_app
    WITH CHECK (user_id = sostenuto_uid() AND sostenuto_rateable_message(message_id));
CREATE POLICY chat_feedback_update ON chat_feedback FOR UPDATE TO sostenuto_app
    USING (user_id = sostenuto_uid())
    WITH CHECK (user_id = sostenuto_uid() AND sostenuto_rateable_message(message_id));
CREATE POLICY chat_feedback_delete ON chat_feedback FOR DELETE TO sostenuto_app
    USING (user_id = sostenuto_uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON chat_feedback TO sostenuto_app;

-- What administrators review: each rated answer with the question before
-- it in its session. Sessions stay their owner's alone; rating an answer
-- shares that one exchange with the administrators, and nothing else of
-- the session. The view runs as its owner (which bypasses RLS) and answers
-- rows only to an administrator; security_barrier keeps a caller's
-- predicates from running before that test.
CREATE VIEW chat_feedback_review WITH (security_barrier) AS
    SELECT f.message_id, f.rating, f.comment, f.created_at, f.updated_at,
           a.content AS answer, a.sources, coalesce(q.content, '') AS question
    FROM chat_feedback f
    JOIN chat_messages a ON a.id = f.message_id
    LEFT JOIN LATERAL (
        SELECT content FROM chat_messages
        WHERE session_id = a.session_id AND role = 'user' AND (created_at, id) < (a.created_at, a.id)
        ORDER BY created_at DESC, id DESC LIMIT 1) q ON true
    WHERE sostenuto_is_admin();
GRANT SELECT ON chat_feedback_review TO sostenuto_app;
