-- pglive change capture: one generic statement-level trigger function that
-- reports which rows of which table changed, on the NOTIFY channel 'pglive'.
--
-- Payload (compact JSON text, keys in this order):
--   {"v":1,"schema":"public","table":"items","op":"UPDATE","keys":[1,2],"old_keys":[1,2]}
--   INSERT   keys = new primary keys,   old_keys = null
--   DELETE   keys = old primary keys,   old_keys = null
--   UPDATE   keys = new primary keys,   old_keys = old primary keys
--   TRUNCATE keys = null,               old_keys = null
-- keys = null means "anything on this table may have changed: refresh it all".
-- It is also sent when there are more than 500 keys, when the payload would
-- exceed 7000 bytes (NOTIFY's hard limit is 8000), or when building the keyed
-- payload failed. Statements that touched no rows send nothing.
-- The trigger never makes the writer's transaction fail because of pglive.

CREATE OR REPLACE FUNCTION pglive_notify() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    max_keys  CONSTANT integer := 500;   -- more changed rows than this: keyless
    max_bytes CONSTANT integer := 7000;  -- NOTIFY payloads must stay < 8000 bytes
    pk        text := coalesce(TG_ARGV[0], 'id');
    head      text;
    keys      text;   -- JSON array text, or NULL
    old_keys  text;   -- JSON array text, or NULL
    n_keys    integer := 0;
    n_old     integer := 0;
    payload   text;
BEGIN
    -- Everything before the payload is known to be small is fallible only in
    -- odd cases (a dropped/renamed key column, a type without a JSON form);
    -- those degrade to "refresh the whole table", never to a failed write.
    head := '{"v":1,"schema":' || to_json(TG_TABLE_SCHEMA::text)::text
         || ',"table":' || to_json(TG_TABLE_NAME::text)::text
         || ',"op":"' || TG_OP || '"';
    BEGIN
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            -- Read at most max_keys + 1 rows: enough to know we are over the cap
            -- without aggregating a 100,000-row transition table.
            EXECUTE format(
                'SELECT count(*)::integer, ''['' || string_agg(k, '','') || '']'''
                ' FROM (SELECT to_jsonb(%I)::text AS k FROM pglive_new LIMIT %s) s',
                pk, max_keys + 1)
            INTO n_keys, keys;
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            EXECUTE format(
                'SELECT count(*)::integer, ''['' || string_agg(k, '','') || '']'''
                ' FROM (SELECT to_jsonb(%I)::text AS k FROM pglive_old LIMIT %s) s',
                pk, max_keys + 1)
            INTO n_old, old_keys;
        END IF;

        IF TG_OP = 'TRUNCATE' THEN
            payload := head || ',"keys":null,"old_keys":null}';
        ELSIF n_keys = 0 AND n_old = 0 THEN
            RETURN NULL;  -- the statement touched no rows
        ELSIF n_keys > max_keys OR n_old > max_keys THEN
            payload := head || ',"keys":null,"old_keys":null}';
        ELSIF TG_OP = 'DELETE' THEN
            -- For a DELETE the removed rows' keys are "the keys".
            payload := head || ',"keys":' || old_keys || ',"old_keys":null}';
        ELSE
            payload := head || ',"keys":' || keys
                    || ',"old_keys":' || coalesce(old_keys, 'null') || '}';
        END IF;

        IF octet_length(payload) > max_bytes THEN
            payload := head || ',"keys":null,"old_keys":null}';
        END IF;

        PERFORM pg_notify('pglive', payload);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pglive_notify on %.% (%): % [SQLSTATE %]; sending a keyless notification',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, SQLERRM, SQLSTATE;
        BEGIN
            PERFORM pg_notify('pglive', head || ',"keys":null,"old_keys":null}');
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pglive_notify on %.%: could not notify: % [SQLSTATE %]',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM, SQLSTATE;
        END;
    END;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pglive_notify() IS
    'pglive: statement-level AFTER trigger (transition tables pglive_new/pglive_old); '
    'TG_ARGV[0] = primary-key column. Sends pg_notify(''pglive'', {"v":1,"schema","table","op","keys","old_keys"}).';

-- Attach pglive's four statement-level triggers to a table (idempotent).
CREATE OR REPLACE FUNCTION pglive_watch(tbl regclass, pk_column text DEFAULT 'id')
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = tbl AND attname = pk_column AND attnum > 0 AND NOT attisdropped
    ) THEN
        RAISE EXCEPTION 'pglive_watch: table % has no column %', tbl, quote_ident(pk_column);
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

-- Remove pglive's triggers from a table (idempotent, and quiet: no NOTICEs).
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
