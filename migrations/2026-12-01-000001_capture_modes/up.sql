-- Capture modes and a cheaper NOTIFY path.
--
-- 1. pglive_watch generates one trigger function per watched table, with
--    static SQL: its statements are planned once per session, where the
--    generic pglive_notify() planned two EXECUTE format(...) statements per
--    UPDATE. An UPDATE that changed no key no longer repeats the keys in
--    old_keys (null means "the same as keys"); the payload is otherwise the
--    one described in 2026-11-27-000001_pglive_notify.
-- 2. pglive_watched records what is watched (table, key column, its trigger
--    function), so that the capture mode can be switched for every watched
--    table at once.
-- 3. pglive_settings.capture is the database's capture mode, switched by
--    pglive_capture_mode(mode), which the server calls at start:
--      'notify' (the default): the triggers are attached, there is no
--               publication.
--      'wal':   the triggers are detached, so writers never pay NOTIFY, and
--               the publication `pglive` lists every watched table (its key
--               and replica identity columns only). pglive reads it through
--               a logical replication slot of its own.
--    pglive_watch and pglive_unwatch keep the triggers or the publication in
--    step with the mode.
--
-- The generic pglive_notify() stays (unused by pglive_watch) for triggers
-- that were attached to it by hand.

CREATE TABLE pglive_watched (
    tbl             regclass PRIMARY KEY,
    key_column      text NOT NULL,
    -- Qualified, quoted name of the table's generated trigger function.
    notify_function text NOT NULL
);

COMMENT ON TABLE pglive_watched IS
    'pglive: the watched tables; maintained by pglive_watch/pglive_unwatch, never edited by hand.';

CREATE TABLE pglive_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    capture   text NOT NULL DEFAULT 'notify' CHECK (capture IN ('notify', 'wal'))
);

INSERT INTO pglive_settings DEFAULT VALUES;

COMMENT ON TABLE pglive_settings IS
    'pglive: the capture mode of this database (switch it with pglive_capture_mode).';

-- The key column pglive_watch will use for tbl, after the checks of
-- 2026-11-30-000001_any_key_type (one column, unique, NOT NULL, of a type
-- pglive keys rows by).
CREATE FUNCTION pglive_key_column(tbl regclass, pk_column text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    pk_cols text[];
    key_type regtype;
BEGIN
    SELECT array_agg(a.attname::text ORDER BY k.ord)
      INTO pk_cols
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = tbl AND i.indisprimary;

    IF array_length(pk_cols, 1) > 1 THEN
        RAISE EXCEPTION 'pglive_watch: table % has a composite primary key (%); pglive keys rows by one column',
            tbl, array_to_string(pk_cols, ', ')
            USING HINT = 'Add a single-column key (e.g. a bigint identity or a uuid) and make it the primary key.';
    END IF;
    IF pk_column IS NULL THEN
        IF pk_cols IS NULL THEN
            RAISE EXCEPTION 'pglive_watch: table % has no primary key', tbl
                USING HINT = 'Give it a single-column primary key, or name a unique NOT NULL key column: pglive_watch(table, column).';
        END IF;
        pk_column := pk_cols[1];
    END IF;

    SELECT a.atttypid::regtype INTO key_type
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = pk_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'pglive_watch: table % has no column %', tbl, quote_ident(pk_column);
    END IF;
    IF pk_cols IS NULL OR pk_cols[1] <> pk_column THEN
        -- Not the primary key: it must still identify rows.
        IF NOT EXISTS (
            SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
               AND a.attname = pk_column AND a.attnotnull
        ) THEN
            RAISE EXCEPTION 'pglive_watch: column %.% is not a unique NOT NULL key', tbl, quote_ident(pk_column);
        END IF;
    END IF;
    IF key_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'uuid'::regtype,
                        'text'::regtype, 'character varying'::regtype) THEN
        RAISE EXCEPTION 'pglive_watch: key column %.% has type %; pglive keys rows by smallint, integer, bigint, uuid or text',
            tbl, quote_ident(pk_column), key_type;
    END IF;
    RETURN pk_column;
END;
$$;

-- (Re)generates tbl's trigger function and returns its qualified name. The
-- key column and its JSON form are written into the function's SQL, so no
-- statement is built at run time. The payload, its caps (500 keys, 7,000
-- bytes, else keyless) and the rule that the trigger never fails the writer
-- are those of pglive_notify().
CREATE FUNCTION pglive_notify_function(tbl regclass, key_column text)
RETURNS text
LANGUAGE plpgsql
AS $gen$
DECLARE
    nsp      name;
    rel      name;
    fname    text;
    key_type regtype;
    key_json text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    -- Next to its table, named after it; by oid when the name would be cut.
    fname := 'pglive_notify_' || rel;
    IF octet_length(fname) > 63 THEN
        fname := 'pglive_notify_' || tbl::oid;
    END IF;
    SELECT a.atttypid::regtype INTO key_type
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    -- Keys travel as JSON: numbers for integer keys, strings otherwise.
    IF key_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
        key_json := format('%I::text', key_column);
    ELSE
        key_json := format('to_json(%I::text)::text', key_column);
    END IF;

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.%2$I() RETURNS trigger
LANGUAGE plpgsql
AS $body$
DECLARE
    n_keys   integer := 0;
    keys     text;
    old_keys text;
    head     text;
    payload  text;
BEGIN
    head := '{"v":1,"schema":' || to_json(TG_TABLE_SCHEMA::text)::text
         || ',"table":' || to_json(TG_TABLE_NAME::text)::text
         || ',"op":"' || TG_OP || '"';
    BEGIN
        -- At most 501 rows are read: enough to know the cap was passed.
        IF TG_OP = 'INSERT' THEN
            SELECT count(*)::integer, string_agg(k, ',') INTO n_keys, keys
              FROM (SELECT %3$s AS k FROM pglive_new LIMIT 501) s;
        ELSIF TG_OP = 'UPDATE' THEN
            SELECT count(*)::integer, string_agg(k, ',') INTO n_keys, keys
              FROM (SELECT %3$s AS k FROM pglive_new LIMIT 501) s;
            -- The old keys only when some row's key changed; else they are
            -- the new ones and old_keys stays null.
            IF n_keys BETWEEN 1 AND 500 AND EXISTS (
                SELECT 1 FROM pglive_old o
                 WHERE NOT EXISTS (SELECT 1 FROM pglive_new n WHERE n.%4$I = o.%4$I)
            ) THEN
                SELECT string_agg(k, ',') INTO old_keys
                  FROM (SELECT %3$s AS k FROM pglive_old LIMIT 501) s;
            END IF;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT count(*)::integer, string_agg(k, ',') INTO n_keys, keys
              FROM (SELECT %3$s AS k FROM pglive_old LIMIT 501) s;
        END IF;

        IF TG_OP = 'TRUNCATE' OR n_keys > 500 THEN
            payload := head || ',"keys":null,"old_keys":null}';
        ELSIF n_keys = 0 THEN
            RETURN NULL;  -- the statement touched no rows
        ELSE
            payload := head || ',"keys":[' || keys || '],"old_keys":'
                    || coalesce('[' || old_keys || ']', 'null') || '}';
            IF octet_length(payload) > 7000 THEN
                payload := head || ',"keys":null,"old_keys":null}';
            END IF;
        END IF;

        PERFORM pg_notify('pglive', payload);
    EXCEPTION WHEN OTHERS THEN
        -- A renamed or dropped key column, say: refresh the whole table
        -- rather than fail the writer.
        RAISE WARNING 'pglive_notify on %%.%% (%%): %% [SQLSTATE %%]; sending a keyless notification',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, SQLERRM, SQLSTATE;
        BEGIN
            PERFORM pg_notify('pglive', head || ',"keys":null,"old_keys":null}');
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pglive_notify on %%.%%: could not notify: %% [SQLSTATE %%]',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM, SQLSTATE;
        END;
    END;
    RETURN NULL;
END;
$body$
$f$, nsp, fname, key_json, key_column);

    EXECUTE format(
        'COMMENT ON FUNCTION %I.%I() IS %L', nsp, fname,
        format('pglive: NOTIFY trigger of %s (key %s), generated by pglive_watch; do not edit.', tbl, key_column));
    RETURN format('%I.%I', nsp, fname);
END;
$gen$;

-- Attaches tbl's four statement-level triggers to its function.
CREATE FUNCTION pglive_attach(tbl regclass, notify_function text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pglive_detach(tbl);
    EXECUTE format(
        'CREATE TRIGGER pglive_insert AFTER INSERT ON %s'
        ' REFERENCING NEW TABLE AS pglive_new'
        ' FOR EACH STATEMENT EXECUTE FUNCTION %s()', tbl, notify_function);
    EXECUTE format(
        'CREATE TRIGGER pglive_update AFTER UPDATE ON %s'
        ' REFERENCING OLD TABLE AS pglive_old NEW TABLE AS pglive_new'
        ' FOR EACH STATEMENT EXECUTE FUNCTION %s()', tbl, notify_function);
    EXECUTE format(
        'CREATE TRIGGER pglive_delete AFTER DELETE ON %s'
        ' REFERENCING OLD TABLE AS pglive_old'
        ' FOR EACH STATEMENT EXECUTE FUNCTION %s()', tbl, notify_function);
    EXECUTE format(
        'CREATE TRIGGER pglive_truncate AFTER TRUNCATE ON %s'
        ' FOR EACH STATEMENT EXECUTE FUNCTION %s()', tbl, notify_function);
END;
$$;

-- Removes pglive's triggers from tbl (idempotent, and quiet: no NOTICEs).
CREATE FUNCTION pglive_detach(tbl regclass)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    trg name;
BEGIN
    FOR trg IN
        SELECT tgname FROM pg_trigger
        WHERE tgrelid = tbl AND NOT tgisinternal
          AND tgname IN ('pglive_insert', 'pglive_update', 'pglive_delete', 'pglive_truncate')
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trg, tbl);
    END LOOP;
END;
$$;

-- Logical replication needs a replica identity for UPDATE and DELETE: with
-- none, PostgreSQL refuses those writes on a published table. A table keyed
-- by its primary key has one by default; a table keyed by another unique
-- column and without a primary key gets that column's index.
CREATE FUNCTION pglive_prepare_identity(tbl regclass, key_column text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    ident "char";
    idx   regclass;
BEGIN
    SELECT relreplident INTO ident FROM pg_class WHERE oid = tbl;
    IF ident = 'f' OR ident = 'i'
       OR (ident = 'd' AND EXISTS (SELECT 1 FROM pg_index WHERE indrelid = tbl AND indisprimary)) THEN
        RETURN;
    END IF;
    SELECT i.indexrelid::regclass INTO idx
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
       AND i.indimmediate AND a.attname = key_column AND a.attnotnull
     LIMIT 1;
    IF idx IS NULL THEN
        RAISE EXCEPTION 'pglive: table % has no replica identity for WAL capture', tbl
            USING HINT = 'Give it a primary key, or a unique, immediate, NOT NULL index on its key column.';
    END IF;
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I', tbl,
                   (SELECT relname FROM pg_class WHERE oid = idx));
END;
$$;

-- tbl's entry in the publication: only its key and replica identity
-- columns, so the walsender sends pglive a row's key and not the row (a
-- column list must cover the replica identity; with REPLICA IDENTITY FULL
-- that is every column, so no list is given).
CREATE FUNCTION pglive_publication_entry(tbl regclass, key_column text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    ident "char";
    cols  text;
BEGIN
    SELECT relreplident INTO ident FROM pg_class WHERE oid = tbl;
    -- Column lists exist from PostgreSQL 15 on.
    IF ident = 'f' OR current_setting('server_version_num')::integer < 150000 THEN
        RETURN tbl::text;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
       AND (a.attname = key_column OR EXISTS (
             SELECT 1 FROM pg_index i
              WHERE i.indrelid = tbl AND a.attnum = ANY (i.indkey)
                AND ((ident = 'd' AND i.indisprimary) OR (ident = 'i' AND i.indisreplident))));
    RETURN format('%s (%s)', tbl, cols);
END;
$$;

-- Forgets watched tables that were dropped (their triggers went with them).
CREATE FUNCTION pglive_forget_dropped()
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    fn text;
BEGIN
    FOR fn IN
        DELETE FROM pglive_watched w
         WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = w.tbl)
        RETURNING w.notify_function
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', fn);
    END LOOP;
END;
$$;

-- (Re)creates the publication `pglive` from pglive_watched.
CREATE FUNCTION pglive_publish()
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    entries text;
BEGIN
    SELECT string_agg(pglive_publication_entry(tbl, key_column), ', ' ORDER BY tbl::oid)
      INTO entries FROM pglive_watched;
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pglive') THEN
        DROP PUBLICATION pglive;
    END IF;
    IF entries IS NULL THEN
        CREATE PUBLICATION pglive;
    ELSE
        EXECUTE 'CREATE PUBLICATION pglive FOR TABLE ' || entries;
    END IF;
END;
$$;

-- Switches the database's capture mode and returns the previous one.
-- Idempotent; cheap when the mode is already in place.
CREATE FUNCTION pglive_capture_mode(mode text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    previous text;
    w        record;
BEGIN
    IF mode IS NULL OR mode NOT IN ('notify', 'wal') THEN
        RAISE EXCEPTION 'pglive_capture_mode: mode must be ''notify'' or ''wal'', not %', quote_nullable(mode);
    END IF;
    -- The row lock serializes concurrent switches.
    SELECT capture INTO previous FROM pglive_settings FOR UPDATE;
    PERFORM pglive_forget_dropped();
    IF mode = 'notify' THEN
        FOR w IN SELECT * FROM pglive_watched LOOP
            IF (SELECT count(*) FROM pg_trigger
                 WHERE tgrelid = w.tbl AND NOT tgisinternal
                   AND tgname IN ('pglive_insert', 'pglive_update', 'pglive_delete', 'pglive_truncate')) <> 4 THEN
                PERFORM pglive_attach(w.tbl, w.notify_function);
            END IF;
        END LOOP;
        IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pglive') THEN
            DROP PUBLICATION pglive;
        END IF;
    ELSE
        FOR w IN SELECT * FROM pglive_watched LOOP
            PERFORM pglive_detach(w.tbl);
            PERFORM pglive_prepare_identity(w.tbl, w.key_column);
        END LOOP;
        IF previous <> 'wal' OR NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pglive') THEN
            PERFORM pglive_publish();
        END IF;
    END IF;
    UPDATE pglive_settings SET capture = mode;
    RETURN previous;
END;
$$;

COMMENT ON FUNCTION pglive_capture_mode(text) IS
    'pglive: switch capture between ''notify'' (triggers) and ''wal'' (publication pglive, no triggers); returns the previous mode.';

-- Watch a table: record it, generate its trigger function, and attach the
-- triggers (notify mode) or add it to the publication (wal mode). Idempotent.
CREATE OR REPLACE FUNCTION pglive_watch(tbl regclass, pk_column text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    key_col text;
    fn      text;
    old_fn  text;
    mode    text;
BEGIN
    key_col := pglive_key_column(tbl, pk_column);
    PERFORM pglive_forget_dropped();
    PERFORM pglive_detach(tbl);
    SELECT w.notify_function INTO old_fn FROM pglive_watched w WHERE w.tbl = pglive_watch.tbl;
    fn := pglive_notify_function(tbl, key_col);
    IF old_fn IS NOT NULL AND old_fn <> fn THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', old_fn);
    END IF;
    INSERT INTO pglive_watched AS w (tbl, key_column, notify_function)
    VALUES (tbl, key_col, fn)
    ON CONFLICT ON CONSTRAINT pglive_watched_pkey
    DO UPDATE SET key_column = EXCLUDED.key_column, notify_function = EXCLUDED.notify_function;

    SELECT capture INTO mode FROM pglive_settings;
    IF mode = 'wal' THEN
        PERFORM pglive_prepare_identity(tbl, key_col);
        IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pglive') THEN
            PERFORM pglive_publish();
        ELSE
            IF EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
                        WHERE p.pubname = 'pglive' AND r.prrelid = tbl) THEN
                EXECUTE format('ALTER PUBLICATION pglive DROP TABLE %s', tbl);
            END IF;
            EXECUTE 'ALTER PUBLICATION pglive ADD TABLE ' || pglive_publication_entry(tbl, key_col);
        END IF;
    ELSE
        PERFORM pglive_attach(tbl, fn);
    END IF;
END;
$$;

-- Stop watching a table (idempotent, and quiet).
CREATE OR REPLACE FUNCTION pglive_unwatch(tbl regclass)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    fn text;
BEGIN
    PERFORM pglive_detach(tbl);
    IF EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
                WHERE p.pubname = 'pglive' AND r.prrelid = tbl) THEN
        EXECUTE format('ALTER PUBLICATION pglive DROP TABLE %s', tbl);
    END IF;
    DELETE FROM pglive_watched w WHERE w.tbl = pglive_unwatch.tbl RETURNING w.notify_function INTO fn;
    IF fn IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', fn);
    END IF;
END;
$$;

-- Tables watched before this migration move to their own functions.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.tgrelid::regclass AS tbl,
               split_part(encode(tg.tgargs, 'escape'), '\000', 1) AS key_column
          FROM pg_trigger tg
         WHERE tg.tgname = 'pglive_insert' AND NOT tg.tgisinternal
           AND tg.tgfoid = 'pglive_notify()'::regprocedure
    LOOP
        PERFORM pglive_watch(t.tbl, nullif(t.key_column, ''));
    END LOOP;
END;
$$;
