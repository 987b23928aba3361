#!/usr/bin/env bash
# The load figures of docs/performance.md, measured side by side in one run on this machine.
#
# What is measured is CPU time per request, beside req/s and latency: throughput moves by 20 %
# and more from run to run on a shared 2-core VM, the CPU a request costs hardly does. Each
# process's CPU (the five release processes, and Postgres, RabbitMQ and Redis with every process
# they started: backends that exit count through their parent) is read from /proc from the start
# of the measured seconds until their requests' work is done (for POST /user, until the last
# created user's announcement arrived), and divided by the requests answered. The reference is
# one pgbench transaction of the user service's own statement (a user and its outbox row, one
# round trip) on the same Postgres in the same run, CPU of Postgres and of the pgbench client:
# every figure is also given as a multiple of it (×txn), which stays put when the machine is 2×
# faster.
#
#   1. the stack with full telemetry (100 % sampling, every span exported to the load driver's
#      Zipkin stand-in): POST /user, GET /user/{id}, GET /ping and GET /users/availability
#      (RPC) through the gateway, CONNECTIONS connections, SECONDS_PER_RUN s each after a
#      warm-up; every created user's Slack message must arrive, once;
#   2. the same stack with tracing off: POST /user and GET /ping;
#   3. pgbench, the reference.
# POST /user runs twice in 1 and 2: as fast as it is answered, and paced at half the first
# run's full speed (PACE=N sets it), where the delivery lag is that of a stack that keeps up.
# RUNS repeats 1 and 2. Peak RSS of each process; the event delivery lag (commit to handled) of
# each POST /user run's own events, from slack-queue's histogram before and after. Results go
# to target/load/ (report.md is the table).
#
#   benches/run-load.sh                      # 16 connections, 20 s per scenario
#   RUNS=2 CONNECTIONS=32 SECONDS_PER_RUN=30 benches/run-load.sh
#
# Needs the local Postgres, Redis and RabbitMQ (with the management plugin) of the project's
# set-up, and pgbench (Debian: postgresql-contrib, or the postgresql package itself).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-16}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-1}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
AMQP=${AMQP:-amqp://guest:guest@127.0.0.1:5672}
MANAGEMENT=${MANAGEMENT:-http://127.0.0.1:15672}
OUT=target/load
# BIN=DIR runs the binaries of another build (to compare two builds in turn).
BIN=${BIN:-target/release}
SLACK_LISTEN=127.0.0.1:19999
COLLECTOR_LISTEN=127.0.0.1:19411
mkdir -p "$OUT"

for tool in pgbench psql curl redis-cli python3 pgrep; do
    command -v "$tool" >/dev/null || { echo "run-load: $tool is missing" >&2; exit 2; }
done

curl -sf -u guest:guest "$MANAGEMENT/api/overview" >/dev/null || {
    echo "run-load: RabbitMQ's management API does not answer at $MANAGEMENT (it makes a vhost" \
        "per run); enable it with: rabbitmq-plugins enable rabbitmq_management" >&2
    exit 2
}

# The data stores' root processes: the postmaster (the oldest postgres), the Erlang VM, Redis.
POSTGRES_PID=$(pgrep -o -x postgres) || { echo "run-load: no postgres process" >&2; exit 2; }
RABBITMQ_PID=$(pgrep -o -f beam.smp) || { echo "run-load: no RabbitMQ (beam.smp) process" >&2; exit 2; }
REDIS_PID=$(pgrep -o -x redis-server) || { echo "run-load: no redis-server process" >&2; exit 2; }
STORES=(--cpu "postgres=$POSTGRES_PID" --cpu "rabbitmq=$RABBITMQ_PID" --cpu "redis=$REDIS_PID")

cargo build --release -p gateway -p user -p slack -p benchmarks --bins

SERVICES=(user slack user-queue slack-queue gateway)
PIDS=()
stop_stack() {
    if ((${#PIDS[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    PIDS=()
}
trap stop_stack EXIT

# A fresh database, vhost and Redis prefix for a stack.
# Each step says when it fails: `set -e` does not reach inside `... || failed=1`.
fresh_dependencies() {
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest WITH (FORCE)" || return 1
    curl -sf -u guest:guest -X DELETE "$MANAGEMENT/api/vhosts/loadtest" >/dev/null || true
    curl -sf -u guest:guest -X PUT "$MANAGEMENT/api/vhosts/loadtest" >/dev/null || return 1
    curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
        -d '{"configure":".*","write":".*","read":".*"}' \
        "$MANAGEMENT/api/permissions/loadtest/guest" >/dev/null || return 1
    redis-cli --scan --pattern 'loadtest:*' | xargs -r redis-cli del >/dev/null || return 1
}

# start_stack MODE: the five processes, telemetry MODE (on|off), each its own OS process.
start_stack() {
    local mode=$1
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
        FAULTS_KEY=loadtest:faults
        SLACK_WEBHOOK_URL="http://$SLACK_LISTEN/services/T000/B000/XXXX"
        RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 LOG_FORMAT=json
    )
    if [[ $mode == on ]]; then
        common+=(OTEL_TRACES_EXPORTER=zipkin OTEL_TRACES_SAMPLER=always_on
            OTEL_EXPORTER_ZIPKIN_ENDPOINT="http://$COLLECTOR_LISTEN/api/v2/spans")
    else
        common+=(OTEL_TRACES_EXPORTER=none OTEL_TRACES_SAMPLER=always_off)
    fi
    for service in "${SERVICES[@]}"; do
        env "${common[@]}" "$BIN/$service" >"$OUT/$mode-$service.log" 2>&1 &
        PIDS+=($!)
    done
    for port in 18101 18102 19101 19102 18100; do
        for _ in $(seq 600); do
            curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
            sleep 0.1
        done
        curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null \
            || { echo "run-load: port $port never got ready; see $OUT/$mode-*.log" >&2; return 1; }
    done
}

# load_scenario MODE NAME RUN SCENARIO [LOAD FLAGS...]: the load driver, watching every
# process's CPU and slack-queue's delivery lag; its figures go to $OUT/MODE-NAME-RUN.json.
load_scenario() {
    local mode=$1 name=$2 run=$3
    shift 3
    local -a watched=("${STORES[@]}")
    for i in "${!SERVICES[@]}"; do
        watched+=(--cpu "${SERVICES[$i]}=${PIDS[$i]}")
    done
    "$BIN/load" --url http://127.0.0.1:18100 --token "$("$BIN/mint-token" load)" \
        --scenario "$@" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN" \
        --warmup "$WARMUP" --slack-listen "$SLACK_LISTEN" --collector-listen "$COLLECTOR_LISTEN" \
        --lag-metrics http://127.0.0.1:19102/metrics \
        --label "$name, telemetry $mode ($run of $RUNS)" --json "$OUT/$mode-$name-$run.json" \
        "${watched[@]}"
}

# The pace of the paced runs: half what POST /user reached at full speed with telemetry on in
# the first run (PACE overrides it), the same for both modes.
pace() {
    if [[ -z ${PACE:-} ]]; then
        PACE=$(python3 -c 'import json, sys; print(max(1, int(json.load(open(sys.argv[1]))["summary"]["throughput"] / 2)))' \
            "$OUT/on-post-1.json")
    fi
    echo "$PACE"
}

# finish_stack MODE RUN: peak RSS, then stop.
finish_stack() {
    local mode=$1 run=$2
    : >"$OUT/$mode-$run-rss.txt"
    for i in "${!SERVICES[@]}"; do
        echo "${SERVICES[$i]} $(awk '/VmHWM/ {print $2}' "/proc/${PIDS[$i]}/status")" >>"$OUT/$mode-$run-rss.txt"
    done
    stop_stack
}

# The reference: pgbench running the user service's own statement (services/user/src/store.rs,
# with literals for its parameters) on a database with the same schema, its CPU and Postgres's.
run_pgbench() {
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest_pgbench WITH (FORCE)" \
        -c "CREATE DATABASE loadtest_pgbench"
    for migration in services/user/migrations/*.sql; do
        psql -q "$PG/loadtest_pgbench" -f "$migration" >/dev/null
    done
    cat >"$OUT/insert-user.sql" <<'SQL'
WITH created AS (
    INSERT INTO users (name, email)
    VALUES ('Load Test', 'pgbench-' || gen_random_uuid() || '@example.com')
    RETURNING id, name, email, created_at),
event AS (
    INSERT INTO outbox (id, user_id, trace_context)
    SELECT gen_random_uuid(), id, '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
    FROM created)
SELECT id, name, email, created_at FROM created;
SQL
    "$BIN/cpu-of" --json "$OUT/pgbench.json" --cpu "postgres=$POSTGRES_PID" -- \
        pgbench -n -M prepared -c "$CONNECTIONS" -j 2 -T "$SECONDS_PER_RUN" \
        -f "$OUT/insert-user.sql" "$PG/loadtest_pgbench" | tee "$OUT/pgbench.txt"
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest_pgbench WITH (FORCE)"
}

failed=0
rm -f "$OUT"/on-*.json "$OUT"/off-*.json
for run in $(seq "$RUNS"); do
    if start_stack on; then
        load_scenario on post "$run" post || failed=1
        load_scenario on paced "$run" post --pace "$(pace)" || failed=1
        for scenario in get ping availability; do
            load_scenario on "$scenario" "$run" "$scenario" || failed=1
        done
        finish_stack on "$run"
    else
        failed=1
    fi
    if start_stack off; then
        load_scenario off post "$run" post || failed=1
        load_scenario off paced "$run" post --pace "$(pace)" || failed=1
        load_scenario off ping "$run" ping || failed=1
        finish_stack off "$run"
    else
        failed=1
    fi
done
run_pgbench

python3 - "$OUT" "$CONNECTIONS" "$RUNS" <<'PY' | tee "$OUT/report.md"
import json, re, sys
out, connections, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
RUST = ["gateway", "user", "user-queue", "slack", "slack-queue"]
STORES = ["postgres", "rabbitmq", "redis"]

bench = open(f"{out}/pgbench.txt").read()
transactions = int(re.search(r"number of transactions actually processed: (\d+)", bench).group(1))
tps = float(re.search(r"tps = ([0-9.]+)", bench).group(1))
reference = json.load(open(f"{out}/pgbench.json"))["cpu_seconds"]
txn = {name: 1e6 * seconds / transactions for name, seconds in reference.items()}
txn_all = txn["postgres"] + txn["client"]
print(f"Reference: one pgbench transaction of the user service's statement costs {txn_all:.0f} µs of CPU "
      f"(Postgres {txn['postgres']:.0f} µs, the pgbench client {txn['client']:.0f} µs; {tps:.0f} tps at "
      f"{connections} connections). ×txn below is a multiple of it.\n")

def load(mode, scenario, run):
    try:
        return json.load(open(f"{out}/{mode}-{scenario}-{run}.json"))
    except FileNotFoundError:
        return None

def cpu(result, names):
    return sum(result["cpu_us_per_request"].get(name, 0.0) for name in names)

def name(result):
    return f"{result['scenario']} at {result['pace']}/s" if result.get("pace") else result["scenario"]

def lag(result):
    lag = result.get("lag") or {}
    if lag.get("p50_ms") is None:
        return ""
    return f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f}"

print(f"| scenario | telemetry | run | req/s | p50 ms | p99 ms | lag p50 / p99 ms | Rust µs (×txn) | Postgres µs (×txn) | RabbitMQ µs | Redis µs | all µs (×txn) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
rows = []
for run in range(1, runs + 1):
    for mode, scenario in [("on", "post"), ("off", "post"), ("on", "paced"), ("off", "paced"), ("on", "get"),
                           ("on", "ping"), ("off", "ping"), ("on", "availability")]:
        result = load(mode, scenario, run)
        if result is None:
            continue
        s = result["summary"]
        rust, pg = cpu(result, RUST), cpu(result, ["postgres"])
        everything = rust + cpu(result, STORES)
        rows.append((mode, scenario, run, rust, everything, result))
        print(f"| {name(result)} | {mode} | {run} | {s['throughput']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {lag(result)} | "
              f"{rust:.0f} ({rust / txn_all:.2f}) | {pg:.0f} ({pg / txn_all:.2f}) | {cpu(result, ['rabbitmq']):.0f} | "
              f"{cpu(result, ['redis']):.0f} | {everything:.0f} ({everything / txn_all:.2f}) |")

print("\nPer process, µs of CPU a request:\n")
header = RUST + STORES + ["client"]
print("| scenario | telemetry | run | " + " | ".join(header) + " |")
print("| --- | --- | ---: | " + " | ".join("---:" for _ in header) + " |")
for mode, scenario, run, _, _, result in rows:
    per = result["cpu_us_per_request"]
    print(f"| {name(result)} | {mode} | {run} | " + " | ".join(f"{per.get(name, 0):.0f}" for name in header) + " |")

print()
for run in range(1, runs + 1):
    for scenario in ("post", "paced"):
        on, off = load("on", scenario, run), load("off", scenario, run)
        if on and off:
            rust_on, rust_off = cpu(on, RUST), cpu(off, RUST)
            all_on, all_off = rust_on + cpu(on, STORES), rust_off + cpu(off, STORES)
            print(f"Run {run}, {name(on)}: tracing on costs {100 * (rust_on - rust_off) / rust_off:+.1f} % CPU per request in the Rust processes, "
                  f"{100 * (all_on - all_off) / all_off:+.1f} % in everything; "
                  f"{100 * (off['summary']['throughput'] - on['summary']['throughput']) / off['summary']['throughput']:+.1f} % of the throughput.")
        for result in (on, off):
            if result and result["slack"]:
                slack = result["slack"]
                print(f"Run {run}, {name(result)}, {result['label'].split(', ')[1].split(' (')[0]}: {slack['arrived']}/{slack['created']} users announced in Slack "
                      f"({slack['duplicated']} more than once, the last {slack['seconds_after_load']:.1f} s after the load); "
                      f"{result['spans'] or 0} spans exported.")

print("\n| process | peak RSS, telemetry on (MiB) | off (MiB) |")
print("| --- | ---: | ---: |")
def peaks(mode):
    peak = {}
    for run in range(1, runs + 1):
        try:
            for line in open(f"{out}/{mode}-{run}-rss.txt"):
                service, kib = line.split()
                peak[service] = max(peak.get(service, 0), int(kib))
        except FileNotFoundError:
            pass
    return peak
rss = {mode: peaks(mode) for mode in ("on", "off")}
for service in RUST:
    on, off = rss["on"].get(service), rss["off"].get(service)
    print(f"| {service} | {on / 1024 if on else 0:.1f} | {off / 1024 if off else 0:.1f} |")
PY
exit $failed
