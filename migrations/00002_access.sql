-- +goose Up
-- Row Level Security as defense in depth behind server/access.
--
-- The request path runs as sostenuto_app: it owns no tables and has no
-- BYPASSRLS. Each transaction names its user with
--   SELECT set_config('sostenuto.user_id', '<uuid>', true)
-- and the policies below allow only what that user may see or change.
-- Background workers run as sostenuto_worker, which may touch documents,
-- chunks and jobs only. The table owner (the migrating role) bypasses RLS.
--
-- The roles are cluster-wide. They are created here when missing (this needs
-- CREATEROLE); the local bootstrap (scripts/pg.sh) creates them beforehand.

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sostenuto_app') THEN
        CREATE ROLE sostenuto_app NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sostenuto_worker') THEN
        CREATE ROLE sostenuto_worker NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT pg_has_role(current_user, 'sostenuto_app', 'MEMBER') THEN
        EXECUTE format('GRANT sostenuto_app TO %I', current_user);
    END IF;
    IF NOT pg_has_role(current_user, 'sostenuto_worker', 'MEMBER') THEN
        EXECUTE format('GRANT sostenuto_worker TO %I', current_user);
    END IF;
END
$$;
-- +goose StatementEnd

-- Failed sign-ins, per account and per client address, shared by all nodes.
CREATE TABLE auth_throttle (
    key            text        PRIMARY KEY,
    failures       integer     NOT NULL DEFAULT 0,
    window_start   timestamptz NOT NULL DEFAULT now(),
    blocked_until  timestamptz,
    CONSTRAINT auth_throttle_key_check CHECK (key ~ '^(account|ip):.' AND length(key) <= 300),
    CONSTRAINT auth_throttle_failures_check CHECK (failures >= 0)
);

-- The user of the current transaction, or NULL.
CREATE FUNCTION sostenuto_uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('sostenuto.user_id', true), '')::uuid $$;

-- The helpers below read tables as their owner (SECURITY DEFINER), so the
-- policies that call them do not recurse into each other.
CREATE FUNCTION sostenuto_is_admin() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM users WHERE id = sostenuto_uid() AND role = 'admin') $$;

-- The current user's permission on a project: 0 none, 1 view, 2 edit, 3 admin.
CREATE FUNCTION sostenuto_project_perm(p uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT CASE
        WHEN sostenuto_uid() IS NULL THEN 0
        WHEN sostenuto_is_admin() THEN 3
        WHEN EXISTS (SELECT 1 FROM projects WHERE id = p AND owner_id = sostenuto_uid()) THEN 3
        ELSE coalesce((SELECT CASE permission WHEN 'admin' THEN 3 WHEN 'edit' THEN 2 ELSE 1 END
                       FROM project_grants WHERE project_id = p AND user_id = sostenuto_uid()), 0)
    END $$;

-- Whether the current user may see a document: its owner, admins, everyone
-- when public, and the owner's students when private.
CREATE FUNCTION sostenuto_document_visible(d uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM documents doc
        WHERE doc.id = d AND sostenuto_uid() IS NOT NULL AND (
            doc.is_public OR doc.owner_id = sostenuto_uid() OR sostenuto_is_admin()
            OR EXISTS (SELECT 1 FROM relationships r WHERE r.teacher_id = doc.owner_id AND r.student_id = sostenuto_uid())))
    $$;

CREATE FUNCTION sostenuto_owns_chat_session(s uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM chat_sessions WHERE id = s AND user_id = sostenuto_uid()) $$;

REVOKE ALL ON FUNCTION sostenuto_is_admin(), sostenuto_project_perm(uuid), sostenuto_document_visible(uuid),
    sostenuto_owns_chat_session(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sostenuto_uid(), sostenuto_is_admin(), sostenuto_project_perm(uuid),
    sostenuto_document_visible(uuid), sostenuto_owns_chat_session(uuid) TO sostenuto_app, sostenuto_worker;

-- Privileges. The request path may read and write the application's tables
-- (RLS narrows the seven below); the worker only what ingestion needs.
GRANT USAGE ON SCHEMA public TO sostenuto_app, sostenuto_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, refresh_tokens, relationships, projects, project_grants,
    annotations, documents, chunks, chat_sessions, chat_messages, jobs, auth_throttle TO sostenuto_app;
GRANT SELECT, UPDATE ON documents TO sostenuto_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON chunks, jobs TO sostenuto_worker;

-- Projects.
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
-- The owner test on the row itself also lets INSERT ... RETURNING see the
-- new row, which the helper's snapshot does not hold yet.
CREATE POLICY projects_select ON projects FOR SELECT TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR sostenuto_project_perm(id) >= 1);
CREATE POLICY projects_insert ON projects FOR INSERT TO sostenuto_app WITH CHECK (owner_id = sostenuto_uid());
CREATE POLICY projects_update ON projects FOR UPDATE TO sostenuto_app
    USING (sostenuto_project_perm(id) >= 2) WITH CHECK (sostenuto_project_perm(id) >= 2);
CREATE POLICY projects_delete ON projects FOR DELETE TO sostenuto_app USING (sostenuto_project_perm(id) >= 3);

-- Grants: a grantee sees its own; a project admin sees and manages all.
ALTER TABLE project_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY project_grants_select ON project_grants FOR SELECT TO sostenuto_app
    USING (user_id = sostenuto_uid() OR sostenuto_project_perm(project_id) >= 3);
CREATE POLICY project_grants_insert ON project_grants FOR INSERT TO sostenuto_app
    WITH CHECK (sostenuto_project_perm(project_id) >= 3);
CREATE POLICY project_grants_update ON project_grants FOR UPDATE TO sostenuto_app
    USING (sostenuto_project_perm(project_id) >= 3) WITH CHECK (sostenuto_project_perm(project_id) >= 3);
CREATE POLICY project_grants_delete ON project_grants FOR DELETE TO sostenuto_app
    USING (sostenuto_project_perm(project_id) >= 3);

-- Annotations: seen with view, written with edit, changed by their author
-- (who can still see the project) or a project admin.
ALTER TABLE annotations ENABLE ROW LEVEL SECURITY;
CREATE POLICY annotations_select ON annotations FOR SELECT TO sostenuto_app
    USING (sostenuto_project_perm(project_id) >= 1);
CREATE POLICY annotations_insert ON annotations FOR INSERT TO sostenuto_app
    WITH CHECK (author_id = sostenuto_uid() AND sostenuto_project_perm(project_id) >= 2);
CREATE POLICY annotations_update ON annotations FOR UPDATE TO sostenuto_app
    USING ((author_id = sostenuto_uid() AND sostenuto_project_perm(project_id) >= 1) OR sostenuto_project_perm(project_id) >= 3)
    WITH CHECK ((author_id = sostenuto_uid() AND sostenuto_project_perm(project_id) >= 1) OR sostenuto_project_perm(project_id) >= 3);
CREATE POLICY annotations_delete ON annotations FOR DELETE TO sostenuto_app
    USING ((author_id = sostenuto_uid() AND sostenuto_project_perm(project_id) >= 1) OR sostenuto_project_perm(project_id) >= 3);

-- Documents: visible as the contract says; changed by the owner or an admin.
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_select ON documents FOR SELECT TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR (is_public AND sostenuto_uid() IS NOT NULL) OR sostenuto_document_visible(id));
CREATE POLICY documents_insert ON documents FOR INSERT TO sostenuto_app WITH CHECK (owner_id = sostenuto_uid());
CREATE POLICY documents_update ON documents FOR UPDATE TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR sostenuto_is_admin()) WITH CHECK (owner_id = sostenuto_uid() OR sostenuto_is_admin());
CREATE POLICY documents_delete ON documents FOR DELETE TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR sostenuto_is_admin());
CREATE POLICY documents_worker ON documents FOR ALL TO sostenuto_worker USING (true) WITH CHECK (true);

-- Chunks: seen through their document.
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY chunks_select ON chunks FOR SELECT TO sostenuto_app USING (sostenuto_document_visible(document_id));
CREATE POLICY chunks_write ON chunks FOR ALL TO sostenuto_app
    USING (owner_id = sostenuto_uid() OR sostenuto_is_admin()) WITH CHECK (owner_id = sostenuto_uid() OR sostenuto_is_admin());
CREATE POLICY chunks_worker ON chunks FOR ALL TO sostenuto_worker USING (true) WITH CHECK (true);

-- Chat: only the owner, admins included.
ALTER TABLE chat_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY chat_sessions_owner ON chat_sessions FOR ALL TO sostenuto_app
    USING (user_id = sostenuto_uid()) WITH CHECK (user_id = sostenuto_uid());
ALTER TABLE chat_messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY chat_messages_owner ON chat_messages FOR ALL TO sostenuto_app
    USING (sostenuto_owns_chat_session(session_id)) WITH CHECK (sostenuto_owns_chat_session(session_id));
