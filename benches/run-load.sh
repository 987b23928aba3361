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
#   3. both again for the stack as the README starts it natively: the one-process launcher
#      (`stack`), POST /user and GET /ping (KINDS=separate or KINDS=launcher measures one);
#   4. pgbench, the reference, before the stacks and again after them, each on a quiet
#      Postgres (the scenarios' database dropped, autovacuum idle, VACUUM and CHECKPOINT first):
#      both are printed, ×txn is of their mean, and the run fails when they differ by more
#      than 25 % (the machine changed under the run, and no multiple of it means anything).
# POST /user runs twice in 1 to 3: as fast as it is answered, and paced at half that kind's own
# first full speed (PACE=N sets it), where the delivery lag is that of a stack that keeps up.
# RUNS repeats 1 to 3. Peak RSS of each process; the event delivery lag (commit to handled) of
# each POST /user run's own events, from slack-queue's histogram before and after. Results go
# to target/load/ (report.md is the table).
#
#   benches/run-load.sh                      # 16 connections, 20 s per scenario
#   RUNS=2 CONNECTIONS=32 SECONDS_PER_RUN=30 benches/run-load.sh
#   KINDS=launcher benches/run-load.sh       # only the one-process launcher
#   SCENARIOS="post paced" benches/run-load.sh   # only POST /user, at full speed and paced
#
# Needs the local Postgres, Redis and RabbitMQ (with the management plugin) of the project's
# set-up, and pgbench (Debian: postgresql-contrib, or the postgresql package itself).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-16}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-1}
KINDS=${KINDS:-separate launcher}
SCENARIOS=${SCENARIOS:-post paced get ping availability}
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

# Another build's binaries (BIN=) are taken as they are.
if [[ $BIN == target/release ]]; then
    cargo build --release -p gateway -p user -p slack -p stack -p benchmarks --bins
fi

SERVICES=(user slack user-queue slack-queue gateway)
# The processes of the stack running now, and their names.
PIDS=()
NAMES=()
stop_stack() {
    if ((${#PIDS[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    PIDS=()
    NAMES=()
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

# start_stack KIND MODE: the stack with telemetry MODE (on|off): its five processes, each its
# own OS process (KIND=separate), or all five in the one-process launcher (KIND=launcher).
start_stack() {
    local kind=$1 mode=$2
    if pgrep -f "$BIN/(gateway|user|slack|stack)( |$)" >/dev/null; then
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
        AVAILABILITY_RATE_LIMIT_PER_SECOND=1000000 AVAILABILITY_RATE_LIMIT_BURST=1000000
    )
    if [[ $mode == on ]]; then
        common+=(OTEL_TRACES_EXPORTER=zipkin OTEL_TRACES_SAMPLER=always_on
            OTEL_EXPORTER_ZIPKIN_ENDPOINT="http://$COLLECTOR_LISTEN/api/v2/spans")
    else
        common+=(OTEL_TRACES_EXPORTER=none OTEL_TRACES_SAMPLER=always_off)
    fi
    if [[ $kind == launcher ]]; then
        env "${common[@]}" "$BIN/stack" >"$OUT/$kind-$mode-stack.log" 2>&1 &
        PIDS+=($!)
        NAMES+=(stack)
    else
        for service in "${SERVICES[@]}"; do
            env "${common[@]}" "$BIN/$service" >"$OUT/$kind-$mode-$service.log" 2>&1 &
            PIDS+=($!)
            NAMES+=("$service")
        done
    fi
    for port in 18101 18102 19101 19102 18100; do
        for _ in $(seq 600); do
            curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
            sleep 0.1
        done
        curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null \
            || { echo "run-load: port $port never got ready; see $OUT/$kind-$mode-*.log" >&2; return 1; }
    done
}

# load_scenario KIND MODE NAME RUN SCENARIO [LOAD FLAGS...]: the load driver, watching every
# process's CPU and slack-queue's delivery lag; its figures go to $OUT/KIND-MODE-NAME-RUN.json.
load_scenario() {
    local kind=$1 mode=$2 name=$3 run=$4
    shift 4
    local -a watched=("${STORES[@]}")
    for i in "${!NAMES[@]}"; do
        watched+=(--cpu "${NAMES[$i]}=${PIDS[$i]}")
    done
    "$BIN/load" --url http://127.0.0.1:18100 --token "$("$BIN/mint-token" load)" \
        --scenario "$@" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN" \
        --warmup "$WARMUP" --slack-listen "$SLACK_LISTEN" --collector-listen "$COLLECTOR_LISTEN" \
        --lag-metrics http://127.0.0.1:19102/metrics \
        --label "$name, telemetry $mode, $kind ($run of $RUNS)" \
        --json "$OUT/$kind-$mode-$name-$run.json" "${watched[@]}"
}

# The pace of KIND's paced runs: half what its POST /user reached at full speed with telemetry
# on in the first run (PACE overrides it), the same for both modes.
pace() {
    local kind=$1
    if [[ -n ${PACE:-} ]]; then
        echo "$PACE"
        return
    fi
    python3 -c 'import json, sys; print(max(1, int(json.load(open(sys.argv[1]))["summary"]["throughput"] / 2)))' \
        "$OUT/$kind-on-post-1.json"
}

# finish_stack KIND MODE RUN: peak RSS, then stop.
finish_stack() {
    local kind=$1 mode=$2 run=$3
    : >"$OUT/$kind-$mode-$run-rss.txt"
    for i in "${!NAMES[@]}"; do
        echo "${NAMES[$i]} $(awk '/VmHWM/ {print $2}' "/proc/${PIDS[$i]}/status")" >>"$OUT/$kind-$mode-$run-rss.txt"
    done
    stop_stack
}

# quiet_postgres: no scenario's database left, no autovacuum at work, nothing dirty in the
# buffers: what pgbench measures is its own work only.
quiet_postgres() {
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest WITH (FORCE)"
    for _ in $(seq 60); do
        local busy
        busy=$(psql -tAq "$PG/postgres" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
        [[ $busy == 0 ]] && break
        sleep 1
    done
    psql -q "$PG/postgres" -c "CHECKPOINT"
}

# The reference: pgbench running the user service's own statement (services/user/src/store.rs,
# with literals for its parameters) on a database with the same schema, its CPU and Postgres's.
run_pgbench() {
    local name=$1
    quiet_postgres
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest_pgbench WITH (FORCE)" \
        -c "CREATE DATABASE loadtest_pgbench"
    for migration in services/user/migrations/*.sql; do
        psql -q "$PG/loadtest_pgbench" -f "$migration" >/dev/null
    done
    cat >"$OUT/insert-user.sql" <<'SQL'
WITH created AS (
    INSERT INTO users (name, email, event_id)
    SELECT 'Load Test', 'pgbench-' || event_id || '@example.com', event_id
    FROM (SELECT gen_random_uuid() AS event_id) fresh
    RETURNING id, name, email, created_at, event_id),
event AS (
    INSERT INTO outbox (id, user_id, trace_context)
    SELECT event_id, id, '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
    FROM created)
SELECT id, name, email, created_at FROM created;
SQL
    psql -q "$PG/loadtest_pgbench" -c "VACUUM ANALYZE" -c "CHECKPOINT"
    "$BIN/cpu-of" --json "$OUT/pgbench-$name.json" --cpu "postgres=$POSTGRES_PID" -- \
        pgbench -n -M prepared -c "$CONNECTIONS" -j 2 -T "$SECONDS_PER_RUN" \
        -f "$OUT/insert-user.sql" "$PG/loadtest_pgbench" | tee "$OUT/pgbench-$name.txt"
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS loadtest_pgbench WITH (FORCE)"
}

# wanted SCENARIO: whether SCENARIOS asks for it.
wanted() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# measure KIND RUN: the scenarios of one kind of stack, telemetry on and off.
measure() {
    local kind=$1 run=$2
    if start_stack "$kind" on; then
        wanted post && { load_scenario "$kind" on post "$run" post || failed=1; }
        wanted paced && { load_scenario "$kind" on paced "$run" post --pace "$(pace "$kind")" || failed=1; }
        for scenario in get ping availability; do
            [[ $kind == launcher && $scenario != ping ]] && continue
            wanted "$scenario" && { load_scenario "$kind" on "$scenario" "$run" "$scenario" || failed=1; }
        done
        finish_stack "$kind" on "$run"
    else
        failed=1
    fi
    if start_stack "$kind" off; then
        wanted post && { load_scenario "$kind" off post "$run" post || failed=1; }
        wanted paced && { load_scenario "$kind" off paced "$run" post --pace "$(pace "$kind")" || failed=1; }
        wanted ping && { load_scenario "$kind" off ping "$run" ping || failed=1; }
        finish_stack "$kind" off "$run"
    else
        failed=1
    fi
}

failed=0
rm -f "$OUT"/*-on-*.json "$OUT"/*-off-*.json "$OUT"/pgbench-*
run_pgbench before
for run in $(seq "$RUNS"); do
    for kind in $KINDS; do
        measure "$kind" "$run"
    done
done
run_pgbench after

python3 - "$OUT" "$CONNECTIONS" "$RUNS" "$KINDS" <<'PY' | tee "$OUT/report.md"
import json, re, sys
out, connections, runs, kinds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
RUST = ["gateway", "user", "user-queue", "slack", "slack-queue", "stack"]
STORES = ["postgres", "rabbitmq", "redis"]

def reference(name):
    bench = open(f"{out}/pgbench-{name}.txt").read()
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", bench).group(1))
    tps = float(re.search(r"tps = ([0-9.]+)", bench).group(1))
    seconds = json.load(open(f"{out}/pgbench-{name}.json"))["cpu_seconds"]
    per = {process: 1e6 * spent / transactions for process, spent in seconds.items()}
    return per["postgres"] + per["client"], per, tps

references = {name: reference(name) for name in ("before", "after")}
for name, (total, per, tps) in references.items():
    print(f"Reference {name} the stacks: one pgbench transaction of the user service's statement costs {total:.0f} µs of CPU "
          f"(Postgres {per['postgres']:.0f} µs, the pgbench client {per['client']:.0f} µs; {tps:.0f} tps at {connections} connections).")
low, high = sorted(total for total, _, _ in references.values())
txn_all = (low + high) / 2
steady = high <= 1.25 * low
print(f"\n×txn below is a multiple of their mean, {txn_all:.0f} µs. They differ by {100 * (high / low - 1):.0f} %"
      + ("." if steady else ": more than 25 %, so the machine changed under the run and this run does not count.") + "\n")

def load(kind, mode, scenario, run):
    try:
        return json.load(open(f"{out}/{kind}-{mode}-{scenario}-{run}.json"))
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

SCENARIOS = [("on", "post"), ("off", "post"), ("on", "paced"), ("off", "paced"), ("on", "get"),
             ("on", "ping"), ("off", "ping"), ("on", "availability")]
print("| stack | scenario | telemetry | run | req/s | p50 ms | p99 ms | lag p50 / p99 ms | Rust µs (×txn) | Postgres µs (×txn) | RabbitMQ µs (×txn) | Redis µs | all µs (×txn) |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
rows = []
for kind in kinds:
    for run in range(1, runs + 1):
        for mode, scenario in SCENARIOS:
            result = load(kind, mode, scenario, run)
            if result is None:
                continue
            s = result["summary"]
            rust, pg, mq = cpu(result, RUST), cpu(result, ["postgres"]), cpu(result, ["rabbitmq"])
            everything = rust + cpu(result, STORES)
            rows.append((kind, mode, scenario, run, result))
            print(f"| {kind} | {name(result)} | {mode} | {run} | {s['throughput']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {lag(result)} | "
                  f"{rust:.0f} ({rust / txn_all:.2f}) | {pg:.0f} ({pg / txn_all:.2f}) | {mq:.0f} ({mq / txn_all:.2f}) | "
                  f"{cpu(result, ['redis']):.0f} | {everything:.0f} ({everything / txn_all:.2f}) |")

print("\nPer process, µs of CPU a request:\n")
header = RUST + STORES + ["client"]
print("| stack | scenario | telemetry | run | " + " | ".join(header) + " |")
print("| --- | --- | --- | ---: | " + " | ".join("---:" for _ in header) + " |")
for kind, mode, scenario, run, result in rows:
    per = result["cpu_us_per_request"]
    print(f"| {kind} | {name(result)} | {mode} | {run} | " + " | ".join(f"{per.get(process, 0):.0f}" for process in header) + " |")

print()
for kind in kinds:
    for run in range(1, runs + 1):
        full, paced = load(kind, "on", "post", run), load(kind, "on", "paced", run)
        if full and paced:
            print(f"{kind}, run {run}: paced at half speed, a POST /user costs {cpu(paced, RUST + STORES) / cpu(full, RUST + STORES):.2f}× "
                  f"the CPU it costs at full speed, everything counted (Rust processes: {cpu(paced, RUST) / cpu(full, RUST):.2f}×).")
        for scenario in ("post", "paced"):
            on, off = load(kind, "on", scenario, run), load(kind, "off", scenario, run)
            if on and off:
                rust_on, rust_off = cpu(on, RUST), cpu(off, RUST)
                all_on, all_off = rust_on + cpu(on, STORES), rust_off + cpu(off, STORES)
                print(f"{kind}, run {run}, {name(on)}: tracing on costs {100 * (rust_on - rust_off) / rust_off:+.1f} % CPU per request in the Rust processes, "
                      f"{100 * (all_on - all_off) / all_off:+.1f} % in everything; "
                      f"{100 * (off['summary']['throughput'] - on['summary']['throughput']) / off['summary']['throughput']:+.1f} % of the throughput.")
            for result in (on, off):
                if result and result["slack"]:
                    slack = result["slack"]
                    print(f"{kind}, run {run}, {name(result)}, telemetry {'on' if result is on else 'off'}: {slack['arrived']}/{slack['created']} users announced in Slack "
                          f"({slack['duplicated']} more than once, the last {slack['seconds_after_load']:.1f} s after the load); "
                          f"{result['spans'] or 0} spans exported.")

print("\n| stack | process | peak RSS, telemetry on (MiB) | off (MiB) |")
print("| --- | --- | ---: | ---: |")
def peaks(kind, mode):
    peak = {}
    for run in range(1, runs + 1):
        try:
            for line in open(f"{out}/{kind}-{mode}-{run}-rss.txt"):
                process, kib = line.split()
                peak[process] = max(peak.get(process, 0), int(kib))
        except FileNotFoundError:
            pass
    return peak
for kind in kinds:
    on, off = peaks(kind, "on"), peaks(kind, "off")
    for process in RUST:
        if process in on or process in off:
            print(f"| {kind} | {process} | {on.get(process, 0) / 1024:.1f} | {off.get(process, 0) / 1024:.1f} |")
if not steady:
    sys.exit(3)
PY
[[ ${PIPESTATUS[0]} == 0 ]] || failed=1
exit $failed
