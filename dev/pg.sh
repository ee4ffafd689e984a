#!/usr/bin/env bash
# Project-local PostgreSQL cluster for development and tests.
#
#   dev/pg.sh start [DIR] [PORT]   initdb DIR if needed, start it (idempotent);
#                                  prints only the admin URL on stdout:
#                                  postgres://postgres@127.0.0.1:PORT/postgres
#   dev/pg.sh stop [DIR]           stop it (no-op when not running)
#   dev/pg.sh status [DIR]         running: print its URL, exit 0; else exit 3
#   dev/pg.sh ensure-db URL NAME   create database NAME on URL's server if
#                                  missing; prints URL with the database NAME
#   dev/pg.sh database [NAME]      start the default cluster and ensure NAME
#                                  (default pglive); prints its URL
#   dev/pg.sh psql [ARGS...]       psql on the default cluster
#   dev/pg.sh as ROLE URL          URL with its user replaced by ROLE (e.g.
#                                  pglive_authenticator, the least-privileged
#                                  role the server logs in as; trust auth, so
#                                  no password)
#
# Defaults: DIR = $PGLIVE_PG_DIR or <repo>/.pglive/pg, PORT = $PGLIVE_PG_PORT
# or 54329 (when another socket holds PORT, the next free one: callers use
# the printed URL). Listens on 127.0.0.1 only, trust auth, unix socket inside DIR,
# log in DIR/pglive-server.log. Never touches the system's own clusters.
#
# Settings pg.sh owns live in DIR/pglive.conf, rewritten at every `start`;
# a running cluster is reloaded, or restarted when a setting that needs it
# (wal_level, max_replication_slots, max_wal_senders) differs, so a cluster
# made by an older pg.sh picks them up on its next `start`. The cluster runs
# with wal_level = logical (for `pglive --capture wal`). Durability (fsync,
# synchronous_commit, full_page_writes) is off for speed unless
# PGLIVE_PG_DURABLE=1 at `start`, which writer benchmarks need.
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the OS
# user `postgres` (created when missing) and is driven through runuser. If
# that user cannot reach DIR (e.g. the repo is under /root), the data lives in
# /tmp/pglive-<hash of DIR> instead (a note goes to stderr).
# Everything but the URL goes to stderr.
set -euo pipefail

# runuser and useradd live in sbin, which a minimal PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DEFAULT_DIR="${PGLIVE_PG_DIR:-$REPO/.pglive/pg}"
DEFAULT_PORT="${PGLIVE_PG_PORT:-54329}"
PG_OS_USER=postgres

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { printf 'pg.sh: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
if is_root && ! command -v runuser >/dev/null 2>&1; then
    die "running as root needs runuser (util-linux) to run PostgreSQL as the $PG_OS_USER user"
fi

# --- binaries ----------------------------------------------------------------

BIN=""
# find_bin [MAJOR]: directory with initdb + pg_ctl (+ postgres). With MAJOR
# (an existing cluster's PG_VERSION), prefer that version's binaries.
find_bin() {
    local want="${1:-}" d
    if [ -n "$want" ] && [ -x "/usr/lib/postgresql/$want/bin/pg_ctl" ]; then
        BIN="/usr/lib/postgresql/$want/bin"; return 0
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        BIN="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
        if [ -x "$BIN/initdb" ]; then return 0; fi
    fi
    d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        BIN="$d"; return 0
    fi
    return 1
}

ensure_bin() {
    local want="${1:-}"
    if find_bin "$want"; then return 0; fi
    if is_root && command -v apt-get >/dev/null 2>&1; then
        log "no PostgreSQL server binaries (initdb, pg_ctl) found; installing Debian's postgresql"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        find_bin "$want" && return 0
    fi
    die "PostgreSQL server binaries not found: need initdb and pg_ctl in PATH or in /usr/lib/postgresql/<version>/bin (Debian: apt-get install postgresql)"
}

psql_bin() {
    if command -v psql >/dev/null 2>&1; then command -v psql
    elif find_bin && [ -x "$BIN/psql" ]; then echo "$BIN/psql"
    else die "psql not found (Debian: apt-get install postgresql-client)"
    fi
}

# --- running as the cluster's owner -----------------------------------------

ensure_os_user() {
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        log "creating system user $PG_OS_USER"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
}

# as_owner CMD...: run as the cluster owner (postgres when we are root), from /
# so that an unreadable current directory does not bother it. fd 9 (our lock)
# is closed so that the postmaster does not inherit and hold it.
as_owner() {
    if is_root; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@" 9>&-)
    else
        (cd / && "$@" 9>&-)
    fi
}

# --- data directory resolution ----------------------------------------------

abs_path() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
    esac
}

# resolve_dir DIR: the directory actually used for DIR (see the header).
resolve_dir() {
    local dir parent hash
    dir="$(abs_path "$1")"
    dir="${dir%/}"
    if ! is_root; then printf '%s\n' "$dir"; return; fi
    parent="$(dirname "$dir")"
    # Walk up to the nearest existing ancestor: that is what postgres must traverse.
    while [ ! -d "$parent" ]; do parent="$(dirname "$parent")"; done
    if id -u "$PG_OS_USER" >/dev/null 2>&1 \
        && ! runuser -u "$PG_OS_USER" -- test -x "$parent" 2>/dev/null; then
        hash="$(printf '%s' "$dir" | sha256sum | cut -c1-12)"
        printf '/tmp/pglive-%s\n' "$hash"
        return
    fi
    printf '%s\n' "$dir"
}

note_fallback() {
    local requested="$1" actual="$2"
    if [ "$requested" != "$actual" ]; then
        log "note: user $PG_OS_USER cannot reach $requested; using $actual instead"
    fi
}

# --- cluster helpers ---------------------------------------------------------

url_for_port() { printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$1"; }

running_port() {  # port of the running postmaster of $1 (from postmaster.pid)
    sed -n '4p' "$1/postmaster.pid" 2>/dev/null || true
}

is_running() {  # is_running DIR
    [ -f "$1/PG_VERSION" ] || return 1
    [ -f "$1/postmaster.pid" ] || return 1
    local v; v="$(cat "$1/PG_VERSION")"
    find_bin "$v" || return 1
    as_owner "$BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

sql_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }

with_lock() {  # serialize start/stop on one DIR
    local lockfile
    lockfile="/tmp/pglive-pg-$(printf '%s' "$1" | sha256sum | cut -c1-12).lock"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$lockfile"
        flock -w 120 9 || die "timed out waiting for $lockfile"
    fi
}

# The settings of DIR/pglive.conf for PORT, on stdout.
conf_text() {
    local dir="$1" port="$2" sockdir="$1" durable=off
    # Socket paths are limited to 107 bytes; skip the socket if DIR is too deep.
    if [ "$(( ${#dir} + 20 ))" -gt 107 ]; then
        log "note: $dir is too long for a unix socket path; TCP only"
        sockdir=""
    fi
    [ "${PGLIVE_PG_DURABLE:-0}" = 1 ] && durable=on
    echo "# Written by dev/pg.sh at every start (see its header)."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = $(sql_quote "$sockdir")"
    echo "max_connections = 200"
    echo "# Durability: off for a fast dev/test cluster; PGLIVE_PG_DURABLE=1 turns it on."
    echo "fsync = $durable"
    echo "synchronous_commit = $durable"
    echo "full_page_writes = $durable"
    echo "# Logical replication, so that pglive's WAL capture can be run and tested."
    echo "wal_level = $WANT_WAL_LEVEL"
    echo "max_replication_slots = $WANT_REPLICATION_SLOTS"
    echo "max_wal_senders = $WANT_WAL_SENDERS"
    # Some PostgreSQL builds (the one on our development machine among
    # them) only let logical slots use the output plugins listed in this
    # setting. Its default there already names pgoutput; it is named here
    # anyway so that pglive's WAL capture does not depend on a build's
    # default. A build without the setting would refuse to start with it in
    # the file, hence the check.
    if has_guc output_plugin_libraries; then
        echo "output_plugin_libraries = 'pgoutput, test_decoding'"
    fi
    echo "log_min_messages = warning"
    echo "log_statement = 'none'"
}

WANT_WAL_LEVEL=logical
WANT_REPLICATION_SLOTS=10
WANT_WAL_SENDERS=10

has_guc() {  # has_guc NAME: does this server build know the setting?
    # Not grep -q: exiting early would SIGPIPE postgres and fail the pipeline.
    "$BIN/postgres" --describe-config 2>/dev/null | cut -f1 | grep -x "$1" >/dev/null
}

# write_conf DIR PORT: (re)writes DIR/pglive.conf; prints "changed" when its
# content changed.
write_conf() {
    local dir="$1" port="$2" new
    new="$(conf_text "$dir" "$port")"
    if [ -f "$dir/pglive.conf" ] && [ "$(cat "$dir/pglive.conf")" = "$new" ]; then
        return 0
    fi
    printf '%s\n' "$new" | as_owner tee "$dir/pglive.conf" >/dev/null
    echo changed
}

# apply_settings_running DIR PORT: brings a running cluster in line with
# pglive.conf: reload when the file changed, restart when a setting that
# only takes effect at server start is not what we want (e.g. a cluster
# initialised and started before pg.sh asked for wal_level = logical).
apply_settings_running() {
    local dir="$1" port="$2" psql current
    if [ -n "$(write_conf "$dir" "$port")" ]; then
        log "settings changed; reloading the cluster in $dir"
        as_owner "$BIN/pg_ctl" reload -D "$dir" -s >&2
    fi
    if ! psql="$(psql_bin 2>/dev/null)"; then
        log "warning: no psql to read the running cluster's settings; not restarting it"
        return 0
    fi
    current="$("$psql" "$(url_for_port "$port")" -X -A -t -q -c \
        "SELECT current_setting('wal_level') || ' ' || current_setting('max_replication_slots') || ' ' || current_setting('max_wal_senders')" \
        2>/dev/null || true)"
    if [ -z "$current" ]; then
        log "warning: could not read the running cluster's settings on port $port; not restarting it"
        return 0
    fi
    local level slots senders
    read -r level slots senders <<<"$current"
    if [ "$level" = "$WANT_WAL_LEVEL" ] \
        && [ "$slots" -ge "$WANT_REPLICATION_SLOTS" ] \
        && [ "$senders" -ge "$WANT_WAL_SENDERS" ]; then
        return 0
    fi
    log "restarting the cluster in $dir to apply wal_level = $WANT_WAL_LEVEL, max_replication_slots = $WANT_REPLICATION_SLOTS, max_wal_senders = $WANT_WAL_SENDERS (it runs with $level, $slots, $senders)"
    if ! as_owner "$BIN/pg_ctl" restart -D "$dir" -l "$dir/pglive-server.log" -m fast -w -t 60 -s >&2; then
        log "pg_ctl restart failed; last lines of $dir/pglive-server.log:"
        tail -n 30 "$dir/pglive-server.log" >&2 || true
        exit 1
    fi
}

cmd_start() {
    local requested="${1:-$DEFAULT_DIR}" port="${2:-$DEFAULT_PORT}" dir
    case "$port" in ''|*[!0-9]*) die "bad port: $port" ;; esac
    is_root && ensure_os_user
    dir="$(resolve_dir "$requested")"
    note_fallback "$(abs_path "$requested")" "$dir"
    with_lock "$dir"

    local existing=""
    [ -f "$dir/PG_VERSION" ] && existing="$(cat "$dir/PG_VERSION")"
    ensure_bin "$existing"

    if is_running "$dir"; then
        local rp; rp="$(running_port "$dir")"
        if [ -n "$rp" ] && [ "$rp" != "$port" ]; then
            log "note: cluster in $dir is already running on port $rp (not $port)"
            port="$rp"
        fi
        apply_settings_running "$dir" "$port"
        url_for_port "$port"
        return 0
    fi

    if port_in_use "$port"; then
        die "port $port on 127.0.0.1 is already in use by another server; pass another PORT (dev/pg.sh start DIR PORT) or set PGLIVE_PG_PORT"
    fi

    if [ ! -f "$dir/PG_VERSION" ]; then
        if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
            die "$dir exists, is not empty and holds no PostgreSQL cluster"
        fi
        # Parents we create must stay traversable whatever the umask.
        (umask 022 && mkdir -p "$dir")
        chmod 0700 "$dir"
        is_root && chown "$PG_OS_USER:" "$dir"
        log "initdb $dir ($("$BIN/initdb" --version))"
        as_owner "$BIN/initdb" -D "$dir" --auth=trust --username=postgres \
            --encoding=UTF8 --locale=C --no-instructions >/dev/null
        # Settings we own live in an included file, rewritten at every start.
        printf "\n# pglive dev cluster (dev/pg.sh)\ninclude_if_exists = 'pglive.conf'\n" \
            | as_owner tee -a "$dir/postgresql.conf" >/dev/null
    fi
    if is_root && [ "$(stat -c %U "$dir")" != "$PG_OS_USER" ]; then
        chown -R "$PG_OS_USER:" "$dir"
    fi

    # The probe above sees only listening servers. A port can also be held
    # by a client connection's local end (ports here are inside Linux's
    # ephemeral range, so a busy machine's outgoing connections land on
    # them now and then); PostgreSQL then cannot bind it. When that is why
    # it did not start, try the next ports: every caller takes the URL
    # printed below, never the port it asked for.
    local log_file="$dir/pglive-server.log" tries=0 seen
    while :; do
        write_conf "$dir" "$port" >/dev/null
        seen=0
        if [ -f "$log_file" ]; then seen="$(wc -l <"$log_file")"; fi
        log "starting PostgreSQL in $dir on 127.0.0.1:$port"
        if as_owner "$BIN/pg_ctl" start -D "$dir" -l "$log_file" -w -t 60 -s >&2; then
            break
        fi
        if [ "$tries" -lt 10 ] \
            && tail -n "+$((seen + 1))" "$log_file" 2>/dev/null | grep -q 'could not bind.*Address already in use'; then
            tries=$((tries + 1))
            log "note: 127.0.0.1:$port is held by another socket; trying $((port + 1))"
            port=$((port + 1))
            while port_in_use "$port"; do port=$((port + 1)); done
            continue
        fi
        log "pg_ctl start failed; last lines of $log_file:"
        tail -n 30 "$log_file" >&2 || true
        exit 1
    done
    url_for_port "$port"
}

cmd_stop() {
    local requested="${1:-$DEFAULT_DIR}" dir
    dir="$(resolve_dir "$requested")"
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "no cluster in $dir"
        return 0
    fi
    with_lock "$dir"
    if ! is_running "$dir"; then
        log "not running ($dir)"
        return 0
    fi
    as_owner "$BIN/pg_ctl" stop -D "$dir" -m fast -w -t 60 -s >&2
    log "stopped ($dir)"
}

cmd_status() {
    local requested="${1:-$DEFAULT_DIR}" dir
    dir="$(resolve_dir "$requested")"
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "no cluster in $dir"
        exit 3
    fi
    if is_running "$dir"; then
        log "running ($dir, pid $(head -n1 "$dir/postmaster.pid"))"
        url_for_port "$(running_port "$dir")"
    else
        log "stopped ($dir)"
        exit 3
    fi
}

urlencode() {  # percent-encode everything but unreserved characters
    local s="$1" out="" c i
    for (( i = 0; i < ${#s}; i++ )); do
        c="${s:i:1}"
        case "$c" in
            [A-Za-z0-9._~-]) out+="$c" ;;
            *) out+="$(printf '%s' "$c" | od -An -tx1 | tr -d ' \n' | sed 's/\(..\)/%\1/g')" ;;
        esac
    done
    printf '%s' "$out"
}

# with_db URL NAME: URL with its database path replaced by NAME.
with_db() {
    local url="$1" db="$2" base rest query=""
    case "$url" in *\?*) query="?${url#*\?}"; url="${url%%\?*}" ;; esac
    rest="${url#*://}"
    base="${url%%://*}://${rest%%/*}"
    printf '%s/%s%s\n' "$base" "$(urlencode "$db")" "$query"
}

# with_user URL ROLE: URL with its user (and any password) replaced by ROLE.
with_user() {
    local url="$1" role="$2" scheme rest
    scheme="${url%%://*}"
    rest="${url#*://}"
    case "${rest%%/*}" in *@*) rest="${rest#*@}" ;; esac
    printf '%s://%s@%s\n' "$scheme" "$(urlencode "$role")" "$rest"
}

cmd_as() {
    [ $# -eq 2 ] || die "usage: dev/pg.sh as ROLE URL"
    with_user "$2" "$1"
}

cmd_ensure_db() {
    [ $# -eq 2 ] || die "usage: dev/pg.sh ensure-db URL DBNAME"
    local url="$1" db="$2" psql
    psql="$(psql_bin)"
    "$psql" "$url" -X -q -v ON_ERROR_STOP=1 -v db="$db" >&2 <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
SQL
    with_db "$url" "$db"
}

cmd_database() {
    local db="${1:-pglive}" url
    url="$(cmd_start)"
    cmd_ensure_db "$url" "$db"
}

cmd_psql() {
    local url
    url="$(cmd_start)"
    exec "$(psql_bin)" "$(with_db "$url" "${PGLIVE_PG_DB:-pglive}")" "$@"
}

usage() {
    sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        ensure-db) cmd_ensure_db "$@" ;;
        database) cmd_database "$@" ;;
        psql) cmd_psql "$@" ;;
        as) cmd_as "$@" ;;
        -h|--help|help|"") usage ;;
        *) log "unknown command: $cmd"; usage ;;
    esac
}

main "$@"
