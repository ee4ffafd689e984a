ALTER SEQUENCE items_id_seq AS integer;
ALTER TABLE items ALTER COLUMN id TYPE integer;

DROP FUNCTION pglive_watch(regclass, text);

CREATE FUNCTION pglive_watch(tbl regclass, pk_column text DEFAULT 'id')
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
