#!/usr/bin/env bash
# Runs once, when the postgres container initializes an empty data
# directory (/docker-entrypoint-initdb.d): creates the role pglive logs in
# as, with a password, before `pglive --migrate` (running as the owner)
# grants it the demo's roles. The migration would create it without a
# password; a networked PostgreSQL needs one.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$PGLIVE_AUTHENTICATOR_PASSWORD" <<'SQL'
CREATE ROLE pglive_authenticator LOGIN NOINHERIT PASSWORD :'password';
SQL
