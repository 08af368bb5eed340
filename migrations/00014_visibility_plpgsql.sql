-- +goose Up
-- The chat re-check (and every read of chunks and annotation chunks as
-- sostenuto_app) calls the visibility helpers once per row. As SQL
-- functions that cannot be inlined (SECURITY DEFINER), PostgreSQL before 18
-- plans their bodies again on every call: ~0.1-0.3 ms a row, most of the
-- database's CPU for a chat question.
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

-- sostenuto_project_perm (annotation chunks' policies, per row; projects,
-- grants and annotations too) likewise, with the same answer for every
-- (user, project): 0 without a user; 3 for an administrator or the owner;
-- else the grant's (admin 3, edit 2, view 1), 0 without one.
-- migrations.TestProjectPermAsBefore compares it with the 00002 body.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sostenuto_project_perm(p uuid) RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE
    uid   uuid := sostenuto_uid();
    grant_perm text;
BEGIN
    IF uid IS NULL THEN
        RETURN 0;
    END IF;
    IF EXISTS (SELECT 1 FROM users u WHERE u.id = uid AND u.role = 'admin')
        OR EXISTS (SELECT 1 FROM projects pr WHERE pr.id = p AND pr.owner_id = uid) THEN
        RETURN 3;
    END IF;
    SELECT g.permission INTO grant_perm FROM project_grants g WHERE g.project_id = p AND g.user_id = uid;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    RETURN CASE grant_perm WHEN 'admin' THEN 3 WHEN 'edit' THEN 2 ELSE 1 END;
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
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sostenuto_project_perm(p uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT CASE
        WHEN sostenuto_uid() IS NULL THEN 0
        WHEN sostenuto_is_admin() THEN 3
        WHEN EXISTS (SELECT 1 FROM projects WHERE id = p AND owner_id = sostenuto_uid()) THEN 3
        ELSE coalesce((SELECT CASE permission WHEN 'admin' THEN 3 WHEN 'edit' THEN 2 ELSE 1 END
                       FROM project_grants WHERE project_id = p AND user_id = sostenuto_uid()), 0)
    END $$;
-- +goose StatementEnd
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
