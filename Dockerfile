# syntax=docker/dockerfile:1
# pglive: web app build, cargo build, slim runtime.
#   docker build -t pglive .        (or: docker compose up --build)

# ---- 1. web: the Vue app -> /web/dist --------------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /web
# The dev machines run npm 11; use the same so the lockfile is read the same way.
RUN npm install -g npm@11 --no-audit --no-fund --loglevel=error
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---- 2. build: the pglive binary -------------------------------------------
# bookworm, to match the runtime image's glibc.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pglive-server --bin pglive \
    && cp target/release/pglive /usr/local/bin/pglive

# ---- 3. runtime --------------------------------------------------------------
FROM debian:bookworm-slim
# curl is for the HEALTHCHECK; Debian's versions are pinned by the base image tag.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pglive \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pglive
COPY --from=build /usr/local/bin/pglive /usr/local/bin/pglive
COPY --from=web /web/dist /app/web
USER 10001:10001
ENV PGLIVE_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
CMD ["pglive", "--migrate", "--addr", "0.0.0.0:8080", "--web-dir", "/app/web"]
