# pglive — run `just` to list the recipes.
# With no DATABASE_URL, recipes use a project-local PostgreSQL cluster
# (dev/pg.sh: data in .pglive/pg, 127.0.0.1:54329), never the system's.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes
default:
    @just --list --unsorted

# [continue]: Ctrl-C is how a developer stops `just dev`, so when the recipe
# stopped cleanly just exits 0 instead of "interrupted by SIGINT" (just 1.54+).
# SIGTERM sent to the recipe's shell also exits 0; SIGTERM sent to just itself
# is forwarded, and just then reports "interrupted by SIGTERM" whatever the
# recipe did ([continue] cannot name SIGTERM).

# Full stack with HMR: local PostgreSQL (unless DATABASE_URL), migrate, seed, server :8080 + Vite :5173
[continue]
dev:
    #!/usr/bin/env bash
    set -euo pipefail
    # Ctrl-C (SIGINT) and SIGTERM stop everything this recipe started and
    # exit 0: stopping it is not a failure. Set first, so that a Ctrl-C
    # during the build or the migrations exits quietly too.
    pids=()
    stop() {
        trap - INT TERM EXIT
        for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
    }
    trap 'stop; exit 0' INT TERM
    trap stop EXIT
    # Least privilege, as a deployment should run: migrations and the seed
    # run as the tables' owner (MIGRATE_DATABASE_URL), the server logs in as
    # pglive_authenticator (NOINHERIT, granted only pglive_user and
    # pglive_anon; the migrations create it), which may only become the
    # roles tokens name. With your own DATABASE_URL, it is both unless
    # MIGRATE_DATABASE_URL is set too.
    if [ -z "${DATABASE_URL:-}" ]; then
        MIGRATE_DATABASE_URL="${MIGRATE_DATABASE_URL:-$(dev/pg.sh database pglive)}"
        DATABASE_URL="$(dev/pg.sh as pglive_authenticator "$MIGRATE_DATABASE_URL")"
    fi
    MIGRATE_DATABASE_URL="${MIGRATE_DATABASE_URL:-$DATABASE_URL}"
    export DATABASE_URL MIGRATE_DATABASE_URL
    cargo build -p pglive-server --bin pglive
    cargo run -q -p pglive-server --bin pglive -- migrate
    psql "$MIGRATE_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f dev/seed.sql
    if [ ! -d web/node_modules ]; then (cd web && npm install --no-audit --no-fund); fi
    # Each child gets its own process group (set -m) so that stopping it
    # also stops what it spawned (npx -> node vite); stdin is /dev/null so a
    # background group never reads the terminal (SIGTTIN would freeze it).
    set -m
    # The page comes from Vite (:5173), which forwards /api and /ws: allow its origin.
    # Multi-user demo: tokens signed with a development secret, minted by
    # POST /api/dev/token for the dashboard's user switcher (anonymous,
    # alice@acme, bob@globex); the demo's RLS policies read the `tenant`
    # claim; without a token, the anonymous role reads the public tenant.
    PGLIVE_JWT_SECRET="${PGLIVE_JWT_SECRET:-pglive-development-secret-not-for-production}" \
        cargo run -q -p pglive-server --bin pglive -- --addr 127.0.0.1:8080 --web-dir web/dist \
        --allowed-origins http://127.0.0.1:5173,http://localhost:5173 \
        --dev-tokens --jwt-context-claims tenant --anon-role pglive_anon </dev/null &
    pids+=("$!")
    (cd web && exec npx vite --host 127.0.0.1 --port 5173 --strictPort </dev/null) &
    pids+=("$!")
    # The one URL to open is Vite's: the server's own (:8080) serves only a
    # built web/dist. Printed once both answer, so it is the last line seen.
    for _ in $(seq 1 120); do
        if curl -fsS -o /dev/null http://127.0.0.1:5173/ 2>/dev/null && curl -fsS -o /dev/null http://127.0.0.1:8080/healthz 2>/dev/null; then break; fi
        sleep 0.5
    done
    echo "pglive: open http://127.0.0.1:5173 (Vite with HMR; it forwards /api and /ws to the server)"
    # When either one exits, stop the other (the EXIT trap).
    wait -n

# Production-like: build the web app, run only the server serving web/dist at 127.0.0.1:8080
serve:
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="${DATABASE_URL:-$(dev/pg.sh database pglive)}"
    export DATABASE_URL
    (cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
    cargo build --release -p pglive-server --bin pglive
    cargo run -q --release -p pglive-server --bin pglive -- migrate
    psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f dev/seed.sql
    echo "pglive: open http://127.0.0.1:8080"
    exec cargo run -q --release -p pglive-server --bin pglive -- --addr 127.0.0.1:8080 --web-dir web/dist

# Run every test: Rust against a real PostgreSQL, web type-check/unit/browser tests, compose check, bench smoke
test:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${PGLIVE_TEST_DATABASE_URL:-}" ]; then
        if [ -n "${DATABASE_URL:-}" ]; then
            PGLIVE_TEST_DATABASE_URL="$DATABASE_URL"
        else
            PGLIVE_TEST_DATABASE_URL="$(dev/pg.sh start)"
        fi
    fi
    export PGLIVE_TEST_DATABASE_URL
    echo "pglive: tests use PostgreSQL at $PGLIVE_TEST_DATABASE_URL" >&2
    cargo test --workspace
    if [ -f web/package.json ]; then
        (
            cd web
            [ -d node_modules ] || npm ci --no-audit --no-fund
            # The dashboard and the client package (vue-tsc), the React example
            # against the package's built dist/ (tsc).
            npm run typecheck
            # Unit tests of the dashboard and of @pglive/client (Vue and React adapters).
            npx vitest run
            # Browser tests: the dashboard, and the React example built from the package.
            if [ -f e2e/run.mjs ]; then node e2e/run.mjs; fi
        )
    else
        echo "pglive: no web/package.json yet; skipping web tests" >&2
    fi
    dev/compose-check.sh
    if [ -d crates/bench ]; then
        # A debug build: the smoke run checks that the bench works, not how fast.
        cargo run -p pglive-bench -- smoke
    fi

# Fast unit tests that need no PostgreSQL and no browser: Rust lib/bin tests, the schema crate's tests, Vitest (dashboard and @pglive/client)
check:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo test --workspace --lib --bins
    cargo test -p pglive-schema
    cd web
    [ -d node_modules ] || npm ci --no-audit --no-fund
    npx vitest run

# Check formatting and lints, warnings are errors: rustfmt and clippy; web type-check, ESLint and Prettier (dashboard, package, example)
lint:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd web
    [ -d node_modules ] || npm ci --no-audit --no-fund
    # vue-tsc on the dashboard and the package's sources, the package's
    # build (its declarations are type-checked too), tsc on the React example.
    npm run typecheck
    npm run lint
    npm run format:check

# Run the load generator (crates/bench) against the local cluster, e.g. `just bench smoke`, `just bench S2`, `just bench RLS`, `just bench RECONNECT`, `just bench REL` (S2, REL, REL-MOVE), `PGLIVE_PG_DURABLE=1 just bench W`
bench *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -d crates/bench ]; then echo "pglive: crates/bench does not exist yet" >&2; exit 1; fi
    PGLIVE_TEST_DATABASE_URL="${PGLIVE_TEST_DATABASE_URL:-${DATABASE_URL:-$(dev/pg.sh start)}}"
    export PGLIVE_TEST_DATABASE_URL
    cargo run -p pglive-bench --release -- {{ARGS}}

# Validate docker-compose.yml (compose-spec schema) and lint the Dockerfile (hadolint), no Docker engine needed
compose-check:
    dev/compose-check.sh

# Apply pending migrations to DATABASE_URL (default: the local cluster's pglive database)
migrate:
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="${DATABASE_URL:-$(dev/pg.sh database pglive)}"
    export DATABASE_URL
    cargo run -q -p pglive-server --bin pglive -- migrate

# Migrations via plain psql with diesel's bookkeeping: up | down [N] | redo | status
migrate-sql *ARGS="status":
    #!/usr/bin/env bash
    set -euo pipefail
    url="${DATABASE_URL:-$(dev/pg.sh database pglive)}"
    dev/migrate.sh "$url" {{ARGS}}

# Load the demo data into DATABASE_URL (or the local pglive database) if its tables are empty
seed:
    #!/usr/bin/env bash
    set -euo pipefail
    url="${DATABASE_URL:-$(dev/pg.sh database pglive)}"
    psql "$url" -X -q -v ON_ERROR_STOP=1 -f dev/seed.sql

# Open psql on DATABASE_URL (or the local pglive database)
psql:
    #!/usr/bin/env bash
    set -euo pipefail
    url="${DATABASE_URL:-$(dev/pg.sh database pglive)}"
    exec psql "$url"

# Stop the project-local PostgreSQL cluster
pg-stop:
    dev/pg.sh stop
