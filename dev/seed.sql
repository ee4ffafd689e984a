-- Demo data for pglive (deterministic). Idempotent: each table is seeded only
-- while it is empty. Run: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f dev/seed.sql
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

COMMIT;
