# syntax=docker/dockerfile:1
# One image for every process of the stack; the compose file picks the process by its command
# (gateway, user, user-queue, slack, slack-queue, or stack for all of them in one; load for the
# steady load of the compose profile `load`).

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The build context is the workspace without what .dockerignore leaves out (the monitoring
# files, docs, target): editing a dashboard does not rebuild the image.
COPY . .
# Only the shipped binaries, without debug info (the workspace's release profile keeps line
# tables for local builds; symbol names stay for backtraces). Cargo's registry and the target
# directory are BuildKit cache mounts: dependencies are compiled once and an edit recompiles
# only the crates it touches. The target directory is not part of the layer, so the binaries
# are copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --locked \
        -p gateway -p user -p slack -p stack -p service-kit -p messaging -p benchmarks --bins \
    && mkdir -p /out \
    && cp target/release/gateway target/release/mint-token target/release/user \
        target/release/user-queue target/release/slack target/release/slack-queue \
        target/release/stack target/release/probe target/release/replay-dead-letters \
        target/release/load /out/

FROM debian:12.8-slim AS runtime
# The system's CA roots, for HTTPS (the Slack webhook, an HTTPS collector): the build image has
# them, so the runtime needs no apt-get.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN groupadd --system --gid 10001 stack \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin stack
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
ENV LISTEN_HOST=0.0.0.0 LOG_FORMAT=json
EXPOSE 8100 8101 8102 9101 9102
# The gateway's readiness by default; compose gives each process its own URL.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --start-interval=2s --retries=4 \
    CMD ["probe", "http://127.0.0.1:8100/health/ready"]
CMD ["gateway"]
