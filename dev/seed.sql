-- Demo data for pglive (deterministic, up to the clock), for three tenants:
-- `public` (what the anonymous role reads), `acme` (alice in the dashboard's
-- user switcher) and `globex` (bob). Idempotent: each tenant's items and
-- tasks are seeded only while that tenant has none, and comments only while
-- there are none. Run: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f dev/seed.sql
BEGIN;

-- Each tenant gets every third name. NOT EXISTS sees the table as it was
-- before this statement, so a tenant is seeded whole or not at all.
INSERT INTO items (name, tenant)
SELECT n.name, t.tenant
FROM (VALUES (0, 'public'), (1, 'acme'), (2, 'globex')) AS t(k, tenant)
CROSS JOIN unnest(ARRAY[
    'Anvil', 'Bicycle', 'Compass', 'Drum', 'Easel',
    'Fiddle', 'Globe', 'Hammock', 'Inkwell', 'Jigsaw',
    'Kettle', 'Lantern', 'Mandolin', 'Notebook', 'Oar',
    'Pocket watch', 'Quill', 'Rucksack', 'Sextant', 'Telescope'
]) WITH ORDINALITY AS n(name, i)
WHERE n.i % 3 = t.k
  AND NOT EXISTS (SELECT 1 FROM items WHERE items.tenant = t.tenant)
ORDER BY t.k, n.i;

INSERT INTO tasks (title, status, priority, assignee, due_date, tenant)
SELECT
    (ARRAY['Write', 'Review', 'Fix', 'Ship', 'Test', 'Document', 'Refactor', 'Plan'])[1 + (g - 1) % 8]
        || ' ' ||
    (ARRAY['login page', 'billing export', 'search index', 'release notes', 'onboarding flow',
           'metrics dashboard', 'API pagination', 'mobile layout', 'backup job', 'audit log'])[1 + (g * 3) % 10]
        || ' #' || g,
    (ARRAY['todo', 'in_progress', 'done'])[1 + g % 3],
    (g + g / 4) % 4,
    (ARRAY['alice', 'bob', 'carol', NULL])[1 + (g * 5) % 4],
    CASE WHEN g % 5 = 0 THEN NULL ELSE current_date + ((g * 11) % 29 - 7) END,
    tenant
FROM generate_series(1, 45) AS g
-- Tasks 1-15 are public's, 16-30 acme's, 31-45 globex's.
CROSS JOIN LATERAL (SELECT (ARRAY['public', 'acme', 'globex'])[1 + (g - 1) / 15] AS tenant) AS t
WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.tenant = t.tenant)
ORDER BY g;

-- Comments on eight tasks, the first ones of each tenant, spread over the
-- last weeks (some within the hour, some today, some older) so that the
-- panel's range filter has something to show. Whether to seed is decided
-- once, before the insert, so that the edits below touch only the comments
-- this run added.
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
FROM (
    SELECT id, (row_number() OVER (ORDER BY id))::int AS n
    FROM (
        SELECT id, row_number() OVER (PARTITION BY tenant ORDER BY id) AS per_tenant
        FROM tasks
    ) AS ranked
    WHERE per_tenant <= 3
    ORDER BY id
    LIMIT 8
) AS t(id, n)
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
