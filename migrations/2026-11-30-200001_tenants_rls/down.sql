DROP POLICY IF EXISTS comments_task ON comments;
DROP POLICY IF EXISTS tasks_public ON tasks;
DROP POLICY IF EXISTS items_public ON items;
DROP POLICY IF EXISTS tasks_tenant ON tasks;
DROP POLICY IF EXISTS items_tenant ON items;
ALTER TABLE comments DISABLE ROW LEVEL SECURITY;
ALTER TABLE tasks DISABLE ROW LEVEL SECURITY;
ALTER TABLE items DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON items, tasks, comments FROM pglive_user, pglive_anon;
REVOKE ALL ON SEQUENCE items_id_seq, tasks_id_seq FROM pglive_user;
REVOKE USAGE ON SCHEMA public FROM pglive_user, pglive_anon;
ALTER TABLE tasks DROP COLUMN tenant;
ALTER TABLE items DROP COLUMN tenant;
DROP FUNCTION pglive_claim(text);
-- The roles stay: they are the cluster's, not this database's.
