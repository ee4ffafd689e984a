-- Demo tables for pglive. Text columns that the server sorts by use
-- COLLATE "C" on purpose: the server orders rows in Rust by byte order and
-- must agree with the database's ORDER BY.

-- Generic BEFORE UPDATE row trigger: keep updated_at current.
CREATE OR REPLACE FUNCTION pglive_touch() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE items (
    id         SERIAL PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id         SERIAL PRIMARY KEY,
    title      TEXT COLLATE "C" NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    status     TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    priority   SMALLINT NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 3),
    assignee   TEXT COLLATE "C" CHECK (assignee IS NULL OR char_length(assignee) BETWEEN 1 AND 100),
    due_date   DATE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX tasks_status_idx ON tasks (status);
CREATE INDEX tasks_assignee_idx ON tasks (assignee);

CREATE TRIGGER pglive_touch_updated_at BEFORE UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION pglive_touch();
CREATE TRIGGER pglive_touch_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION pglive_touch();

SELECT pglive_watch('items');
SELECT pglive_watch('tasks');
