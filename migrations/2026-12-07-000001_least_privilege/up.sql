-- Least privilege for the demo (and the pattern for any deployment):
--
-- 1. pglive_authenticator: the role the pglive server logs in as. It has no
--    privileges of its own (NOINHERIT: being granted pglive_user and
--    pglive_anon lets it switch to them with SET ROLE, which pglive does
--    for every read and write made for a client, but gives it none of their
--    rights while it is itself). The PostgREST and Supabase "authenticator"
--    pattern. It is created without a password: a local trust-auth cluster
--    (dev/pg.sh) needs none; elsewhere set one
--    (ALTER ROLE pglive_authenticator PASSWORD '...'), or create the role
--    yourself before migrating (docker-compose.yml does, with a password).
--    Migrations keep running as the tables' owner (`pglive migrate` with
--    --migrate-url / MIGRATE_DATABASE_URL).
-- 2. FORCE ROW LEVEL SECURITY on the demo tables: without it the tables'
--    owner bypasses every policy, so a token naming the owner's role, or a
--    server connected as the owner, would read every tenant's rows.
--
-- Roles are cluster-wide: the down migration leaves the role in place.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pglive_authenticator') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'the role pglive_authenticator does not exist, and % may not create it', current_user
                USING HINT = 'As a superuser (or a role with CREATEROLE): CREATE ROLE pglive_authenticator LOGIN NOINHERIT PASSWORD ''...''; then run the migrations again.';
        END IF;
        CREATE ROLE pglive_authenticator LOGIN NOINHERIT;
    END IF;
END
$$;

GRANT pglive_user, pglive_anon TO pglive_authenticator;
-- What the server reads as itself: the database's capture mode.
GRANT SELECT ON pglive_settings TO pglive_authenticator;

ALTER TABLE items FORCE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;
