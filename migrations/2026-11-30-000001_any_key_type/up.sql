-- Any single-column key: pglive_watch finds the table's primary key itself,
-- accepts smallint, integer, bigint, uuid and text keys, and refuses
-- composite or missing keys with a clear error instead of watching a table
-- whose notices could never name a row. The notify function is unchanged:
-- it already sends keys as JSON (numbers for integers, strings otherwise).
DROP FUNCTION pglive_watch(regclass, text);

CREATE FUNCTION pglive_watch(tbl regclass, pk_column text DEFAULT NULL)
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

-- items keeps the article's name but gets a real-world key: bigint. It
-- travels as a decimal string, so a browser never rounds it.
ALTER TABLE items ALTER COLUMN id TYPE bigint;
ALTER SEQUENCE items_id_seq AS bigint;
