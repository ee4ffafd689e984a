-- A partition hint: pglive_watch(tbl, partition => 'tenant') says that
-- every security context with a `tenant` claim sees only the rows whose
-- `tenant` column equals that claim (as text), as a policy such as
-- `USING (tenant = pglive_claim('tenant'))` makes it. The table's trigger
-- then puts the distinct partition values of each statement's rows, old and
-- new, in the notice (`"parts":{"claim":"tenant","values":[...]}`), and the
-- server reads changed rows only for the contexts whose claim is among them
-- (and for every context without the claim), instead of for every context.
-- `partition_claim` names the claim when it differs from the column.
--
-- The hint is a promise the operator makes: pglive cannot check a policy.
-- A context that could see rows of other partitions (an admin role with a
-- tenant claim, say) would miss their changes; such roles should not carry
-- the claim. WAL capture ignores the hint (it reads for every context).
--
-- The demo tables items and tasks are partitioned by tenant, as their
-- policies are.

ALTER TABLE pglive_watched
    ADD COLUMN partition_column text,
    ADD COLUMN partition_claim text,
    ADD CONSTRAINT pglive_watched_partition CHECK ((partition_column IS NULL) = (partition_claim IS NULL));

-- As in 2026-12-01-000001_capture_modes, plus the partition values.
CREATE OR REPLACE FUNCTION pglive_notify_function(tbl regclass, key_column text)
RETURNS text
LANGUAGE plpgsql
AS $gen$
DECLARE
    nsp      name;
    rel      name;
    fname    text;
    key_type regtype;
    key_json text;
    part_col text;
    claim    text;
    parts_new text := '';
    parts_upd text := '';
    parts_old text := '';
BEGIN
    SELECT w.partition_column, w.partition_claim INTO part_col, claim
      FROM pglive_watched w WHERE w.tbl = pglive_notify_function.tbl;
    IF part_col IS NOT NULL THEN
        -- The distinct partition values of the statement's rows, old and
        -- new, as text; more than 100 of them say nothing useful (null).
        parts_new := format(
            'SELECT CASE WHEN count(*) <= 100 THEN json_agg(p)::text END INTO parts'
            ' FROM (SELECT DISTINCT %1$I::text AS p FROM pglive_new WHERE %1$I IS NOT NULL LIMIT 101) s;', part_col);
        parts_old := replace(parts_new, 'pglive_new', 'pglive_old');
        parts_upd := format(
            'SELECT CASE WHEN count(*) <= 100 THEN json_agg(p)::text END INTO parts'
            ' FROM (SELECT p FROM (SELECT %1$I::text AS p FROM pglive_new UNION SELECT %1$I::text FROM pglive_old) u'
            ' WHERE p IS NOT NULL LIMIT 101) s;', part_col);
    END IF;
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
    parts    text;
BEGIN
    head := '{"v":1,"schema":' || to_json(TG_TABLE_SCHEMA::text)::text
         || ',"table":' || to_json(TG_TABLE_NAME::text)::text
         || ',"op":"' || TG_OP || '"';
    BEGIN
        -- At most 501 rows are read: enough to know the cap was passed.
        IF TG_OP = 'INSERT' THEN
            SELECT count(*)::integer, string_agg(k, ',') INTO n_keys, keys
              FROM (SELECT %3$s AS k FROM pglive_new LIMIT 501) s;
            IF n_keys BETWEEN 1 AND 500 THEN
                %5$s
            END IF;
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
            IF n_keys BETWEEN 1 AND 500 THEN
                %6$s
            END IF;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT count(*)::integer, string_agg(k, ',') INTO n_keys, keys
              FROM (SELECT %3$s AS k FROM pglive_old LIMIT 501) s;
            IF n_keys BETWEEN 1 AND 500 THEN
                %7$s
            END IF;
        END IF;

        IF TG_OP = 'TRUNCATE' OR n_keys > 500 THEN
            payload := head || ',"keys":null,"old_keys":null}';
        ELSIF n_keys = 0 THEN
            RETURN NULL;  -- the statement touched no rows
        ELSE
            payload := head || ',"keys":[' || keys || '],"old_keys":'
                    || coalesce('[' || old_keys || ']', 'null')
                    || coalesce(',"parts":{"claim":' || %8$L || ',"values":' || parts || '}', '') || '}';
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
$f$, nsp, fname, key_json, key_column, parts_new, parts_upd, parts_old, to_json(claim)::text);

    EXECUTE format(
        'COMMENT ON FUNCTION %I.%I() IS %L', nsp, fname,
        format('pglive: NOTIFY trigger of %s (key %s%s), generated by pglive_watch; do not edit.', tbl, key_column,
               CASE WHEN part_col IS NULL THEN '' ELSE format(', partition %s, claim %s', part_col, claim) END));
    RETURN format('%I.%I', nsp, fname);
END;
$gen$;

DROP FUNCTION pglive_watch(regclass, text);

-- As in 2026-12-01-000001_capture_modes, plus the partition.
CREATE FUNCTION pglive_watch(
    tbl regclass, pk_column text DEFAULT NULL, "partition" text DEFAULT NULL, partition_claim text DEFAULT NULL
)
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
    IF "partition" IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute a
         WHERE a.attrelid = tbl AND a.attname = "partition" AND a.attnum > 0 AND NOT a.attisdropped
    ) THEN
        RAISE EXCEPTION 'pglive_watch: table % has no column % to partition by', tbl, quote_ident("partition");
    END IF;
    IF partition_claim IS NOT NULL AND "partition" IS NULL THEN
        RAISE EXCEPTION 'pglive_watch: partition_claim needs a partition column';
    END IF;
    PERFORM pglive_forget_dropped();
    PERFORM pglive_detach(tbl);
    SELECT w.notify_function INTO old_fn FROM pglive_watched w WHERE w.tbl = pglive_watch.tbl;
    -- The partition is recorded first: the trigger function's generator reads it.
    INSERT INTO pglive_watched AS w (tbl, key_column, notify_function, partition_column, partition_claim)
    VALUES (tbl, key_col, coalesce(old_fn, ''), "partition", coalesce(partition_claim, "partition"))
    ON CONFLICT ON CONSTRAINT pglive_watched_pkey
    DO UPDATE SET key_column = EXCLUDED.key_column, partition_column = EXCLUDED.partition_column,
                  partition_claim = EXCLUDED.partition_claim;
    fn := pglive_notify_function(tbl, key_col);
    IF old_fn IS NOT NULL AND old_fn <> fn THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', old_fn);
    END IF;
    UPDATE pglive_watched w SET notify_function = fn WHERE w.tbl = pglive_watch.tbl;

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

COMMENT ON FUNCTION pglive_watch(regclass, text, text, text) IS
    'pglive: make a table live (key column, optional partition column and claim); idempotent.';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pglive_watched WHERE tbl = 'items'::regclass) THEN
        PERFORM pglive_watch('items', "partition" => 'tenant');
    END IF;
    IF EXISTS (SELECT 1 FROM pglive_watched WHERE tbl = 'tasks'::regclass) THEN
        PERFORM pglive_watch('tasks', "partition" => 'tenant');
    END IF;
END;
$$;
