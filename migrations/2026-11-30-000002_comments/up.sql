-- Comments on tasks: a feed with a uuid key, a timestamp range filter and
-- an order on a nullable column (edited_at, null until the body changes).
CREATE TABLE comments (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id    integer NOT NULL REFERENCES tasks (id) ON DELETE CASCADE ON UPDATE CASCADE,
    author     text COLLATE "C" NOT NULL CHECK (char_length(author) BETWEEN 1 AND 100),
    body       text COLLATE "C" NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz
);

CREATE INDEX comments_task_created_idx ON comments (task_id, created_at);

-- edited_at follows the body: set when an UPDATE changes it.
CREATE FUNCTION comments_mark_edited() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.body IS DISTINCT FROM OLD.body THEN
        NEW.edited_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER comments_mark_edited BEFORE UPDATE ON comments
    FOR EACH ROW EXECUTE FUNCTION comments_mark_edited();

SELECT pglive_watch('comments');
