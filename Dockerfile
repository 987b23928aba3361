# One image for every process of the stack; the compose file picks the process by its command
# (gateway, user, user-queue, slack, slack-queue, or stack for all of them in one).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependencies first: built against placeholder sources, this layer is reused until a manifest
# or the lock file changes.
COPY Cargo.toml Cargo.lock ./
COPY telemetry/Cargo.toml telemetry/
COPY test-support/Cargo.toml test-support/
COPY libs/kit/Cargo.toml libs/kit/
COPY libs/messaging/Cargo.toml libs/messaging/
COPY services/user/Cargo.toml services/user/
COPY services/slack/Cargo.toml services/slack/
COPY services/gateway/Cargo.toml services/gateway/
COPY services/stack/Cargo.toml services/stack/
COPY benches/Cargo.toml benches/
COPY bdd/Cargo.toml bdd/
RUN for crate in telemetry test-support libs/kit libs/messaging services/user \
        services/slack services/gateway services/stack benches; do \
        mkdir -p "$crate/src/bin" && echo "" > "$crate/src/lib.rs" && echo "fn main() {}" > "$crate/src/main.rs"; \
    done \
    && mkdir -p bdd/tests benches/benches \
    && touch bdd/tests/features.rs benches/benches/telemetry.rs benches/benches/stack.rs \
    && for bin in libs/kit/src/bin/probe services/user/src/bin/user-queue \
        services/slack/src/bin/slack-queue services/gateway/src/bin/mint-token \
        libs/messaging/src/bin/replay-dead-letters benches/src/bin/load; do \
        echo "fn main() {}" > "$bin.rs"; \
    done \
    && cargo build --release --locked --bins \
    && rm -rf telemetry test-support services benches bdd

# The real sources.
COPY . .
RUN touch -c telemetry/src/lib.rs test-support/src/lib.rs services/*/src/lib.rs services/*/src/main.rs \
        benches/src/lib.rs \
    && cargo build --release --locked --bins

FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 stack \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin stack
COPY --from=build /src/target/release/gateway /src/target/release/user /src/target/release/user-queue \
     /src/target/release/slack /src/target/release/slack-queue /src/target/release/stack \
     /src/target/release/mint-token /src/target/release/probe \
     /src/target/release/replay-dead-letters /usr/local/bin/
USER 10001:10001
ENV LISTEN_HOST=0.0.0.0 LOG_FORMAT=json
EXPOSE 8100 8101 8102 9101 9102
# The gateway's readiness by default; compose gives each process its own URL.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 CMD ["probe", "http://127.0.0.1:8100/health/ready"]
CMD ["gateway"]
