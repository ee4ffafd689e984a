-- Demo data for pglive (deterministic, up to the clock). Idempotent: each
-- table is seeded only while it is empty. Run: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f dev/seed.sql
BEGIN;

INSERT INTO items (name)
SELECT name
FROM unnest(ARRAY[
    'Anvil', 'Bicycle', 'Compass', 'Drum', 'Easel',
    'Fiddle', 'Globe', 'Hammock', 'Inkwell', 'Jigsaw',
    'Kettle', 'Lantern', 'Mandolin', 'Notebook', 'Oar',
    'Pocket watch', 'Quill', 'Rucksack', 'Sextant', 'Telescope'
]) WITH ORDINALITY AS t(name, n)
WHERE NOT EXISTS (SELECT 1 FROM items)
ORDER BY n;

INSERT INTO tasks (title, status, priority, assignee, due_date)
SELECT
    (ARRAY['Write', 'Review', 'Fix', 'Ship', 'Test', 'Document', 'Refactor', 'Plan'])[1 + (g - 1) % 8]
        || ' ' ||
    (ARRAY['login page', 'billing export', 'search index', 'release notes', 'onboarding flow',
           'metrics dashboard', 'API pagination', 'mobile layout', 'backup job', 'audit log'])[1 + (g * 3) % 10]
        || ' #' || g,
    (ARRAY['todo', 'in_progress', 'done'])[1 + g % 3],
    (g + g / 4) % 4,
    (ARRAY['alice', 'bob', 'carol', NULL])[1 + (g * 5) % 4],
    CASE WHEN g % 5 = 0 THEN NULL ELSE current_date + ((g * 11) % 29 - 7) END
FROM generate_series(1, 40) AS g
WHERE NOT EXISTS (SELECT 1 FROM tasks)
ORDER BY g;

-- Comments on the first tasks, spread over the last weeks (some within the
-- hour, some today, some older) so that the panel's range filter has
-- something to show. Whether to seed is decided once, before the insert, so
-- that the edits below touch only the comments this run added.
CREATE TEMPORARY TABLE seed_comments ON COMMIT DROP AS
SELECT NOT EXISTS (SELECT 1 FROM comments) AS seed;

INSERT INTO comments (task_id, author, body, created_at)
SELECT
    t.id,
    (ARRAY['alice', 'bob', 'carol'])[1 + (t.n + c) % 3],
    (ARRAY[
        'Looks good to me.',
        'Can we split this into two smaller changes?',
        'I can pick this up tomorrow.',
        'Blocked on the staging database; will retry after lunch.',
        'Added a note to the release checklist.',
        'Does this need a migration?'
    ])[1 + (t.n * 2 + c) % 6],
    -- Minutes ago grow geometrically: 8, 12, 17, ... up to four weeks.
    now() - make_interval(mins => (8 * power(1.45, (t.n - 1) * 3 + c))::int)
FROM (SELECT id, (row_number() OVER (ORDER BY id))::int AS n FROM tasks ORDER BY id LIMIT 8) AS t(id, n)
CROSS JOIN generate_series(0, 2) AS c
WHERE (t.n + c) % 4 <> 0 AND (SELECT seed FROM seed_comments)
ORDER BY t.n, c;

-- A few edits: the trigger sets edited_at when the body changes; then
-- edited_at is spread after each comment's creation, as real edits would be.
UPDATE comments
SET body = body || ' (Edit: done, see the linked change.)'
WHERE (SELECT seed FROM seed_comments)
  AND id IN (
      SELECT id
      FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS r FROM comments) AS numbered
      WHERE r % 4 = 2
  );

UPDATE comments
SET edited_at = least(now(), created_at + make_interval(mins => 3 + char_length(author) * 7))
WHERE (SELECT seed FROM seed_comments) AND edited_at IS NOT NULL;

COMMIT;
