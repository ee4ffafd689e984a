-- The demo becomes multi-user: every item and task belongs to a tenant, and
-- PostgreSQL's row-level security decides what each role and token sees and
-- writes. pglive switches to the token's role (`SET LOCAL ROLE`) and makes
-- its claims visible as `request.jwt.claims` for every read and write it
-- makes for a client (the PostgREST convention), so these are ordinary
-- policies.
--
-- Roles are cluster-wide: they are created once and left in place by the
-- down migration (other databases of the cluster may use them).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pglive_user') THEN
        CREATE ROLE pglive_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pglive_anon') THEN
        CREATE ROLE pglive_anon NOLOGIN;
    END IF;
END
$$;

-- The role pglive connects as (the one running migrations, in development)
-- may become them. In production, connect as an "authenticator" role that
-- can log in, has no privileges of its own, and is granted these roles.
GRANT pglive_user, pglive_anon TO CURRENT_USER;

-- A claim of the current request's token, or NULL.
CREATE FUNCTION pglive_claim(name text) RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> name $$;

ALTER TABLE items ADD COLUMN tenant text COLLATE "C" NOT NULL
    DEFAULT coalesce(pglive_claim('tenant'), 'public')
    CHECK (char_length(tenant) BETWEEN 1 AND 100);
ALTER TABLE tasks ADD COLUMN tenant text COLLATE "C" NOT NULL
    DEFAULT coalesce(pglive_claim('tenant'), 'public')
    CHECK (char_length(tenant) BETWEEN 1 AND 100);
CREATE INDEX items_tenant_idx ON items (tenant);
CREATE INDEX tasks_tenant_idx ON tasks (tenant);

GRANT USAGE ON SCHEMA public TO pglive_user, pglive_anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON items, tasks, comments TO pglive_user;
GRANT SELECT ON items, tasks, comments TO pglive_anon;
GRANT USAGE, SELECT ON SEQUENCE items_id_seq, tasks_id_seq TO pglive_user;

ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;

-- Users see and write their own tenant's rows only.
CREATE POLICY items_tenant ON items TO pglive_user
    USING (tenant = pglive_claim('tenant')) WITH CHECK (tenant = pglive_claim('tenant'));
CREATE POLICY tasks_tenant ON tasks TO pglive_user
    USING (tenant = pglive_claim('tenant')) WITH CHECK (tenant = pglive_claim('tenant'));
-- Without a token (the anonymous role), the public tenant can be read.
CREATE POLICY items_public ON items FOR SELECT TO pglive_anon USING (tenant = 'public');
CREATE POLICY tasks_public ON tasks FOR SELECT TO pglive_anon USING (tenant = 'public');
-- Comments follow their task: visible, and writable, when the task is. The
-- subquery runs under tasks' own policies, so this depends on tasks (see
-- `depends_on` in the comments declaration).
CREATE POLICY comments_task ON comments TO pglive_user, pglive_anon
    USING (EXISTS (SELECT 1 FROM tasks t WHERE t.id = comments.task_id))
    WITH CHECK (EXISTS (SELECT 1 FROM tasks t WHERE t.id = comments.task_id));
