#!/usr/bin/env bash
# The load figures of docs/performance.md, measured side by side on this machine:
#   1. the stack (five release processes) under `load`: POST /user through the gateway at a fixed
#      number of connections, with full telemetry (100 % sampling, spans exported to the load
#      driver's Zipkin stand-in), then again with tracing off, RUNS times in turn (runs move
#      by up to 10 %, as much as tracing costs); every created user's Slack message must
#      arrive (the stack's webhook points at the driver's Slack stand-in);
#   2. pgbench running the user service's own statement (insert a user and its outbox row, one
#      round trip) on the same Postgres, for the ratio.
# Peak RSS of each process is read from /proc. Results go to target/load/.
#
#   benches/run-load.sh                      # 16 connections, 20 s per run, one pair of runs
#   RUNS=3 benches/run-load.sh               # on, off, on, off, on, off
#   CONNECTIONS=32 SECONDS_PER_RUN=30 benches/run-load.sh
#
# Needs the local Postgres, Redis and RabbitMQ (with the management plugin) of the project's
# set-up, and pgbench (Debian: postgresql-contrib, or the postgresql package itself).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-16}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
RUNS=${RUNS:-1}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
AMQP=${AMQP:-amqp://guest:guest@127.0.0.1:5672}
MANAGEMENT=${MANAGEMENT:-http://127.0.0.1:15672}
OUT=target/load
BIN=target/release
SLACK_LISTEN=127.0.0.1:19999
COLLECTOR_LISTEN=127.0.0.1:19411
mkdir -p "$OUT"

for tool in pgbench psql curl redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "run-load: $tool is missing" >&2; exit 2; }
done

curl -sf -u guest:guest "$MANAGEMENT/api/overview" >/dev/null || {
    echo "run-load: RabbitMQ's management API does not answer at $MANAGEMENT (it makes a vhost" \
        "per run); enable it with: rabbitmq-plugins enable rabbitmq_management" >&2
    exit 2
}

cargo build --release -p gateway -p user -p slack -p benchmarks --bins

PIDS=()
stop_stack() {
    if ((${#PIDS[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    PIDS=()
}
trap stop_stack EXIT

# A fresh database, vhost and Redis prefix for a run.
# Each step says when it fails: `set -e` does not reach inside `run_stack ... || failed=1`.
fresh_dependencies() {
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest WITH (FORCE)" || return 1
    curl -sf -u guest:guest -X DELETE "$MANAGEMENT/api/vhosts/loadtest" >/dev/null || true
    curl -sf -u guest:guest -X PUT "$MANAGEMENT/api/vhosts/loadtest" >/dev/null || return 1
    curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
        -d '{"configure":".*","write":".*","read":".*"}' \
        "$MANAGEMENT/api/permissions/loadtest/guest" >/dev/null || return 1
    redis-cli --scan --pattern 'loadtest:*' | xargs -r redis-cli del >/dev/null || return 1
}

# run_stack MODE RUN: starts the stack with telemetry MODE (on|off), loads it, records RSS in
# files named MODE-RUN.
run_stack() {
    local mode=$1 name=$1-$2
    if pgrep -f "$BIN/(gateway|user|slack)" >/dev/null; then
        echo "run-load: stack processes from $BIN are running already (another run?); stop them first" >&2
        return 1
    fi
    fresh_dependencies || {
        echo "run-load: cannot reset the loadtest database, vhost or Redis keys" >&2
        return 1
    }
    local -a common=(
        LISTEN_HOST=127.0.0.1 GATEWAY_PORT=18100 USER_PORT=18101 SLACK_PORT=18102
        USER_QUEUE_PORT=19101 SLACK_QUEUE_PORT=19102
        USER_URL=http://127.0.0.1:18101 SLACK_URL=http://127.0.0.1:18102
        USER_QUEUE_URL=http://127.0.0.1:19101 SLACK_QUEUE_URL=http://127.0.0.1:19102
        DATABASE_URL="$PG/loadtest" AMQP_URL="$AMQP/loadtest" REDIS_KEY_PREFIX=loadtest:
        SLACK_WEBHOOK_URL="http://$SLACK_LISTEN/services/T000/B000/XXXX"
        RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 LOG_FORMAT=json
    )
    if [[ $mode == on ]]; then
        common+=(OTEL_TRACES_EXPORTER=zipkin OTEL_TRACES_SAMPLER=always_on
            OTEL_EXPORTER_ZIPKIN_ENDPOINT="http://$COLLECTOR_LISTEN/api/v2/spans")
    else
        common+=(OTEL_TRACES_EXPORTER=none OTEL_TRACES_SAMPLER=always_off)
    fi
    local -a services=(user slack user-queue slack-queue gateway)
    for service in "${services[@]}"; do
        env "${common[@]}" "$BIN/$service" >"$OUT/$name-$service.log" 2>&1 &
        PIDS+=($!)
    done
    for port in 18101 18102 19101 19102 18100; do
        for _ in $(seq 600); do
            curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
            sleep 0.1
        done
        curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null \
            || { echo "run-load: port $port never got ready; see $OUT/$name-*.log" >&2; exit 1; }
    done

    local status=0
    "$BIN/load" --url http://127.0.0.1:18100 --token "$("$BIN/mint-token" load)" \
        --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN" \
        --slack-listen "$SLACK_LISTEN" --collector-listen "$COLLECTOR_LISTEN" \
        --label "telemetry $mode ($2 of $RUNS)" --json "$OUT/$name.json" || status=$?

    : >"$OUT/$name-rss.txt"
    for i in "${!services[@]}"; do
        echo "${services[$i]} $(awk '/VmHWM/ {print $2}' "/proc/${PIDS[$i]}/status")" >>"$OUT/$name-rss.txt"
    done
    stop_stack
    return $status
}

# pgbench: the same statement as POST /user, on a database with the same schema.
run_pgbench() {
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest_pgbench WITH (FORCE)" \
        -c "CREATE DATABASE loadtest_pgbench"
    for migration in services/user/migrations/*.sql; do
        psql -q "$PG/loadtest_pgbench" -f "$migration" >/dev/null
    done
    # The user service's own statement (services/user/src/store.rs), with literals for its
    # parameters: one round trip that stores the user and its event.
    cat >"$OUT/insert-user.sql" <<'SQL'
WITH created AS (
    INSERT INTO users (name, email, created_at)
    VALUES ('Load Test', 'pgbench-' || gen_random_uuid() || '@example.com', now())
    RETURNING id, name, email, created_at),
event AS (
    INSERT INTO outbox (id, exchange, routing_key, payload, trace_context)
    SELECT gen_random_uuid(), 'users', 'user.created',
        jsonb_set('{"id": "00000000-0000-0000-0000-000000000000", "type": "user.created", "user": {"id": 0, "name": "Load Test", "email": "pgbench@example.com", "created_at": "2026-11-28T00:00:00Z"}, "occurred_at": "2026-11-28T00:00:00Z"}'::jsonb, '{user,id}', to_jsonb(id))::text,
        '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
    FROM created)
SELECT id, name, email, created_at FROM created;
SQL
    pgbench -n -M prepared -c "$CONNECTIONS" -j 2 -T "$SECONDS_PER_RUN" \
        -f "$OUT/insert-user.sql" "$PG/loadtest_pgbench" | tee "$OUT/pgbench.txt"
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest_pgbench WITH (FORCE)"
}

failed=0
rm -f "$OUT"/on-*.json "$OUT"/off-*.json
for run in $(seq "$RUNS"); do
    run_stack on "$run" || failed=1
    run_stack off "$run" || failed=1
done
run_pgbench

python3 - "$OUT" "$CONNECTIONS" "$RUNS" <<'PY'
import json, re, sys
out, connections, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
tps = float(re.search(r"tps = ([0-9.]+)", open(f"{out}/pgbench.txt").read()).group(1))
pairs = [{mode: json.load(open(f"{out}/{mode}-{n}.json")) for mode in ("on", "off")}
         for n in range(1, count + 1)]
print(f"\nPOST /user through the gateway, {connections} connections; pgbench {tps:.0f} tps\n")
print("| run | telemetry | req/s | % of pgbench | p50 ms | p95 ms | p99 ms | Slack messages | spans exported |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, pair in enumerate(pairs, 1):
    for mode, run in pair.items():
        s, slack = run["summary"], run["slack"]
        print(f"| {n} | {mode} | {s['throughput']:.0f} | {100 * s['throughput'] / tps:.0f} % | "
              f"{s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['p99_ms']:.2f} | "
              f"{slack['arrived']}/{slack['created']} | {run['spans'] or 0} |")
def throughput(pair, mode):
    return pair[mode]["summary"]["throughput"]
costs = [100 * (throughput(p, "off") - throughput(p, "on")) / throughput(p, "off") for p in pairs]
on, off = (sum(throughput(p, mode) for p in pairs) for mode in ("on", "off"))
print(f"\ntracing on costs {', '.join(f'{c:.1f} %' for c in costs)} of the throughput with it off"
      + (f"; {100 * (off - on) / off:.1f} % on the sums of the runs" if count > 1 else "") + "\n")
print("| process | peak RSS, telemetry on (MiB) | off (MiB) |")
print("| --- | ---: | ---: |")
def peaks(mode):
    peak = {}
    for n in range(1, count + 1):
        for line in open(f"{out}/{mode}-{n}-rss.txt"):
            service, kib = line.split()
            peak[service] = max(peak.get(service, 0), int(kib))
    return peak
rss = {mode: peaks(mode) for mode in ("on", "off")}
for service in rss["on"]:
    print(f"| {service} | {rss['on'][service] / 1024:.1f} | {rss['off'][service] / 1024:.1f} |")
PY
exit $failed
