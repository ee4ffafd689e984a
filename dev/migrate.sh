#!/usr/bin/env bash
# Apply or revert the diesel migrations in migrations/ with plain psql, keeping
# diesel's bookkeeping (__diesel_schema_migrations, version = folder timestamp
# without dashes), so `pglive migrate` and this script agree on what is applied.
# The server's own `pglive migrate` / `--migrate` remains the normal path; this
# is for hacking on the SQL (down/redo) and for when the server doesn't build.
#
#   dev/migrate.sh URL up        apply every pending migration (each in a transaction)
#   dev/migrate.sh URL down [N]  revert the latest N applied migrations (default 1)
#   dev/migrate.sh URL redo      revert the latest, then apply it again
#   dev/migrate.sh URL status    list migrations and whether they are applied
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MIGRATIONS="$REPO/migrations"

die() { printf 'migrate.sh: error: %s\n' "$*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: dev/migrate.sh URL up|down [N]|redo|status"
URL="$1"; CMD="$2"; shift 2

PSQL=(psql "$URL" -X -q -v ON_ERROR_STOP=1)

setup() {
    "${PSQL[@]}" -c 'CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
        version VARCHAR(50) PRIMARY KEY NOT NULL,
        run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)' 2>&1 \
        | grep -v 'already exists, skipping' >&2 || true
}

version_of() { local n; n="$(basename "$1")"; n="${n%%_*}"; printf '%s' "${n//-/}"; }

applied() { "${PSQL[@]}" -At -c 'SELECT version FROM __diesel_schema_migrations ORDER BY version'; }

all_dirs() {
    find "$MIGRATIONS" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | sort
}

run_up() {  # run_up DIR
    local dir="$1" v; v="$(version_of "$dir")"
    printf 'migrate.sh: applying %s\n' "$(basename "$dir")" >&2
    {
        echo 'BEGIN;'
        printf '\\i %s\n' "$dir/up.sql"
        printf "INSERT INTO __diesel_schema_migrations (version) VALUES ('%s');\n" "$v"
        echo 'COMMIT;'
    } | "${PSQL[@]}" >/dev/null
}

run_down() {  # run_down DIR
    local dir="$1" v; v="$(version_of "$dir")"
    printf 'migrate.sh: reverting %s\n' "$(basename "$dir")" >&2
    {
        echo 'BEGIN;'
        printf '\\i %s\n' "$dir/down.sql"
        printf "DELETE FROM __diesel_schema_migrations WHERE version = '%s';\n" "$v"
        echo 'COMMIT;'
    } | "${PSQL[@]}" >/dev/null
}

dir_for_version() {
    local d
    for d in $(all_dirs); do
        if [ "$(version_of "$d")" = "$1" ]; then printf '%s\n' "$d"; return; fi
    done
    die "applied migration $1 has no folder in $MIGRATIONS"
}

setup
case "$CMD" in
    up)
        done_list="$(applied)"
        for d in $(all_dirs); do
            grep -qx "$(version_of "$d")" <<<"$done_list" || run_up "$d"
        done
        ;;
    down)
        n="${1:-1}"
        for v in $(applied | sort -r | head -n "$n"); do run_down "$(dir_for_version "$v")"; done
        ;;
    redo)
        v="$(applied | tail -n1)"
        [ -n "$v" ] || die "nothing applied"
        d="$(dir_for_version "$v")"
        run_down "$d"; run_up "$d"
        ;;
    status)
        done_list="$(applied)"
        for d in $(all_dirs); do
            if grep -qx "$(version_of "$d")" <<<"$done_list"; then s=applied; else s=pending; fi
            printf '%-8s %s\n' "$s" "$(basename "$d")"
        done
        ;;
    *) die "unknown command: $CMD" ;;
esac
