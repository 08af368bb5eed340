-- +goose Up
-- The chat re-check (and every read of chunks as sostenuto_app) calls the
-- visibility helpers once per row. As SQL functions that cannot be inlined
-- (SECURITY DEFINER), PostgreSQL before 18 plans their bodies again on every
-- call: ~0.1-0.3 ms a row, most of the database's CPU for a chat question.
--
-- sostenuto_document_visible becomes PL/pgSQL, whose plans are cached per
-- session, with the same answer for every (user, document): false without
-- a user or for a document that does not exist; else true when the
-- document is public, the user owns it, is a student of its owner, or is
-- an administrator. Still STABLE (it reads with the calling statement's
-- snapshot), SECURITY DEFINER with a fixed search_path.
-- migrations.TestDocumentVisibleAsBefore compares it with the 00002 body
-- for every pair.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sostenuto_document_visible(d uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE
    uid        uuid := sostenuto_uid();
    doc_owner  uuid;
    doc_public boolean;
BEGIN
    IF uid IS NULL THEN
        RETURN false;
    END IF;
    SELECT doc.owner_id, doc.is_public INTO doc_owner, doc_public FROM documents doc WHERE doc.id = d;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN coalesce(doc_public OR doc_owner = uid
        OR EXISTS (SELECT 1 FROM relationships r WHERE r.teacher_id = doc_owner AND r.student_id = uid)
        OR EXISTS (SELECT 1 FROM users u WHERE u.id = uid AND u.role = 'admin'), false);
END
$$;
-- +goose StatementEnd

-- chunks_write (FOR ALL, so also part of what SELECT sees) asked
-- sostenuto_is_admin() once per row; as an uncorrelated sub-select it is
-- an InitPlan, asked once per statement. Same rows: the function is STABLE
-- and has no argument.
DROP POLICY chunks_write ON chunks;
CREATE POLICY chunks_write ON chunks FOR ALL TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR (SELECT sostenuto_is_admin()))
    WITH CHECK (owner_id = sostenuto_uid() OR (SELECT sostenuto_is_admin()));

-- +goose Down
DROP POLICY chunks_write ON chunks;
CREATE POLICY chunks_write ON chunks FOR ALL TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR sostenuto_is_admin())
    WITH CHECK (owner_id = sostenuto_uid() OR sostenuto_is_admin());
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sostenuto_document_visible(d uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM documents doc
        WHERE doc.id = d AND sostenuto_uid() IS NOT NULL AND (
            doc.is_public OR doc.owner_id = sostenuto_uid() OR sostenuto_is_admin()
            OR EXISTS (SELECT 1 FROM relationships r WHERE r.teacher_id = doc.owner_id AND r.student_id = sostenuto_uid())))
    $$;
-- +goose StatementEnd
