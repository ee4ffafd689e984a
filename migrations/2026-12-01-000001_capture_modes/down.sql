-- Back to one generic trigger function: every watched table gets
-- pglive_notify() again, in notify mode, with the pglive_watch and
-- pglive_unwatch of 2026-11-30-000001_any_key_type. Replica identities set
-- for WAL capture are left as they are.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pglive') THEN
        DROP PUBLICATION pglive;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pglive_unwatch(tbl regclass)
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

CREATE OR REPLACE FUNCTION pglive_watch(tbl regclass, pk_column text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    pk_column := pglive_key_column(tbl, pk_column);
    PERFORM pglive_unwatch(tbl);

    EXECUTE format(
        'CREATE TRIGGER pglive_insert AFTER INSERT ON %s'
        ' REFERENCING NEW TABLE AS pglive_new'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
    EXECUTE format(
        'CREATE TRIGGER pglive_update AFTER UPDATE ON %s'
        ' REFERENCING OLD TABLE AS pglive_old NEW TABLE AS pglive_new'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
    EXECUTE format(
        'CREATE TRIGGER pglive_delete AFTER DELETE ON %s'
        ' REFERENCING OLD TABLE AS pglive_old'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
    EXECUTE format(
        'CREATE TRIGGER pglive_truncate AFTER TRUNCATE ON %s'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
END;
$$;

DO $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT * FROM pglive_watched LOOP
        IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = w.tbl) THEN
            PERFORM pglive_watch(w.tbl, w.key_column);
        END IF;
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', w.notify_function);
    END LOOP;
END;
$$;

-- pglive_watch is restored; its checks go back into its body.
CREATE OR REPLACE FUNCTION pglive_watch(tbl regclass, pk_column text DEFAULT NULL)
RETURNS void
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

    PERFORM pglive_unwatch(tbl);

    EXECUTE format(
        'CREATE TRIGGER pglive_insert AFTER INSERT ON %s'
        ' REFERENCING NEW TABLE AS pglive_new'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
    EXECUTE format(
        'CREATE TRIGGER pglive_update AFTER UPDATE ON %s'
        ' REFERENCING OLD TABLE AS pglive_old NEW TABLE AS pglive_new'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
    EXECUTE format(
        'CREATE TRIGGER pglive_delete AFTER DELETE ON %s'
        ' REFERENCING OLD TABLE AS pglive_old'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
    EXECUTE format(
        'CREATE TRIGGER pglive_truncate AFTER TRUNCATE ON %s'
        ' FOR EACH STATEMENT EXECUTE FUNCTION pglive_notify(%L)', tbl, pk_column);
END;
$$;

DROP FUNCTION pglive_capture_mode(text);
DROP FUNCTION pglive_publish();
DROP FUNCTION pglive_forget_dropped();
DROP FUNCTION pglive_publication_entry(regclass, text);
DROP FUNCTION pglive_prepare_identity(regclass, text);
DROP FUNCTION pglive_attach(regclass, text);
DROP FUNCTION pglive_detach(regclass);
DROP FUNCTION pglive_notify_function(regclass, text);
DROP FUNCTION pglive_key_column(regclass, text);
DROP TABLE pglive_watched;
DROP TABLE pglive_settings;
