-- CASCADE also drops any pglive_* triggers still attached to tables.
DROP FUNCTION IF EXISTS pglive_watch(regclass, text);
DROP FUNCTION IF EXISTS pglive_unwatch(regclass);
DROP FUNCTION IF EXISTS pglive_notify() CASCADE;
