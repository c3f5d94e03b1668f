# syntax=docker/dockerfile:1.7
#
# ChatX image: the three release binaries `gateway`, `worker` and `migration` on a small
# Debian runtime. The default command is the gateway; run the others by naming them:
#
#   docker build -t chatx .
#   docker run --rm -p 8080:8080 chatx                      # gateway (embedded mode)
#   docker run --rm -e DATABASE_URL=postgres://... chatx migration up
#   docker run --rm -e REDIS_URL=... -e NATS_URL=... ... chatx worker
#
# No secret is baked in: JWT_SECRET, DATABASE_URL, REDIS_URL and NATS_URL come from the
# environment at run time (docker-compose.yml, or Secrets Manager on ECS).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# The cargo registry, git checkouts and target/ live in BuildKit cache mounts, so a
# rebuild after a source change recompiles only the workspace crates. The binaries are
# copied out of the cached target/ in the same step (a cache mount is not in the image).
RUN --mount=type=cache,id=chatx-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=chatx-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=chatx-target,target=/src/target \
    cargo build --release --locked -p gateway -p worker -p migration \
    && mkdir -p /out \
    && install -m 0755 target/release/gateway target/release/worker target/release/migration /out/

# ---------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# ca-certificates: TLS to ElastiCache (rediss://), NATS and PostgreSQL.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# (DL3008 is ignored on purpose: ca-certificates must follow Debian's security updates
# of the release; an exact pin would fail the build after every Debian point release.)

# Non-root user with a fixed uid/gid. /app is its writable working directory (embedded
# mode keeps chatx.db there; distributed mode writes nothing to disk).
RUN groupadd --system --gid 10001 chatx \
    && useradd --system --uid 10001 --gid chatx --home-dir /app --create-home \
        --shell /usr/sbin/nologin chatx
WORKDIR /app

COPY --from=builder /out/gateway /out/worker /out/migration /usr/local/bin/

USER 10001:10001
EXPOSE 8080
# SIGTERM starts the gateway's drain (CHATX_DRAIN_SECS, default 10 s): give the container
# a stop timeout above that (compose: stop_grace_period; ECS: stopTimeout).
STOPSIGNAL SIGTERM

# Liveness of the gateway: GET /healthz on the port of BIND_ADDR (default 8080), with
# bash's /dev/tcp, so the image needs no HTTP client. Only meaningful for `gateway`;
# compose disables it for `worker` and `migration`, and ECS ignores image health checks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "port=\"${BIND_ADDR##*:}\"; exec 3<>\"/dev/tcp/127.0.0.1/${port:-8080}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && timeout 2 head -n 1 <&3 | grep -q ' 200 '"]

CMD ["gateway"]
