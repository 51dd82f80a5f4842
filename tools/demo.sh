#!/usr/bin/env bash
# tools/demo.sh — `make demo`: build, start the dev stack in .run/, stream generated transactions, show where to look
#
# Each step is one function and main() lists them in order, so later steps (start the ingestor, start the API,
# print curl commands) are one function and one line each. Long-running processes the demo starts go through
# start_daemon, which records them in .run/pids/<name>.pid so that `tools/stack.sh down` stops them with the
# stack. The demo leaves everything running; `tools/stack.sh down` is the one way to stop it.
#
# Environment: DEMO_SKIP_BUILD=1 skips the build (when iterating on a built tree), DEMO_COUNT and
# DEMO_ANOMALY_RATE change the generated stream, CHAINWATCH_BIN points at other binaries.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$TOP/.run
STACK=$TOP/tools/stack.sh
BIN=${CHAINWATCH_BIN:-$TOP/build/bin}
PG_CONFIG=${PG_CONFIG:-pg_config}
DEMO_COUNT=${DEMO_COUNT:-20000}        # transactions to generate
DEMO_ANOMALY_RATE=${DEMO_ANOMALY_RATE:-0.01}
STACK_REUSED=0
EXTENSION_CHANGED=0

# say MSG... — a headline for the person watching
say() { printf '\n==> %s\n' "$*"; }

# note MSG... — a detail line
note() { printf '    %s\n' "$*"; }

# die MSG... — stop the demo with an error (the stack, if up, keeps running: `tools/stack.sh down` stops it)
die() {
    printf 'demo: error: %s\n' "$*" >&2
    exit 1
}

# build_all — build the binaries (required) and, if extension/ builds, install the extension (optional: the stack
# and the stream work without it; it only adds scoring in the database)
build_all() {
    if [[ ${DEMO_SKIP_BUILD:-0} == 1 ]]; then
        say "skipping the build (DEMO_SKIP_BUILD=1)"
        return 0
    fi
    say "building (make build)"
    make -C "$TOP" --no-print-directory -j2 build || die "build failed"
    if [[ ! -f $TOP/extension/Makefile ]]; then
        note "extension/ has no Makefile yet: skipping the PostgreSQL extension"
        return 0
    fi
    say "building and installing the chainwatch extension (make extension install-extension)"
    local so before after
    so=$("$PG_CONFIG" --pkglibdir)/chainwatch.so
    before=$(stat -c %Y "$so" 2>/dev/null || echo none)
    local log=$RUN/logs/extension-build.log
    mkdir -p "$RUN/logs"
    # Its output goes to a log: a half-written extension is normal during development and not the demo's topic.
    if ! make -C "$TOP" --no-print-directory extension >"$log" 2>&1; then
        note "the extension does not build (full output: $log); continuing without it:"
        grep -m 3 -E ': (fatal )?error:' "$log" | sed 's/^/      /' || true
        return 0
    fi
    if ! make -C "$TOP" --no-print-directory install-extension >>"$log" 2>&1; then
        note "could not install the extension (needs root; see $log): continuing without it"
        return 0
    fi
    note "installed; build log: $log"
    after=$(stat -c %Y "$so" 2>/dev/null || echo none)
    [[ $before == "$after" ]] || EXTENSION_CHANGED=1
}

# ensure_stack — start the stack in .run/, or reuse it if it is already up; then load its stack.env
ensure_stack() {
    if bash "$STACK" status --dir "$RUN" >/dev/null 2>&1; then
        STACK_REUSED=1
        say "reusing the stack already running in $RUN"
        if [[ $EXTENSION_CHANGED -eq 1 ]]; then
            note "the extension was just (re)installed; Postgres loads it only at start:"
            note "run 'tools/stack.sh down' and 'make demo' again to use the new build"
        fi
    else
        say "starting the stack in $RUN (tools/stack.sh up)"
        bash "$STACK" up --dir "$RUN" >/dev/null || die "the stack did not come up (see the messages above)"
    fi
    # shellcheck source=/dev/null
    . "$RUN/stack.env"
}

# start_daemon NAME CMD... — start a long-running process detached from this shell, logging to
# .run/logs/NAME.log, and record it so `tools/stack.sh down` stops it (for the ingestor and API steps)
start_daemon() {
    local name=$1 pid
    shift
    mkdir -p "$RUN/logs"
    setsid "$@" </dev/null >>"$RUN/logs/$name.log" 2>&1 &
    pid=$!
    bash "$STACK" record "$name" "$pid" --dir "$RUN" 2>/dev/null ||
        die "could not record $name (pid $pid); see $RUN/logs/$name.log"
    note "$name started (pid $pid, log $RUN/logs/$name.log)"
}

# generate_transactions — stream DEMO_COUNT generated transactions (1% anomalies, seed 1) into the topic and
# write the ground-truth labels to .run/labels.csv
generate_transactions() {
    local txgen=$BIN/chainwatch-txgen
    [[ -x $txgen ]] || die "$txgen not found (it is built by 'make build')"
    say "streaming $DEMO_COUNT transactions into $KAFKA_TOPIC (chainwatch-txgen)"
    "$txgen" --brokers "$KAFKA_BOOTSTRAP_SERVERS" --topic "$KAFKA_TOPIC" --format etherscan \
        --count "$DEMO_COUNT" --anomaly-rate "$DEMO_ANOMALY_RATE" --labels "$RUN/labels.csv" --seed 1 ||
        die "chainwatch-txgen failed"
    note "labels (which transactions are anomalies): $RUN/labels.csv"
}

# free_port — print a free TCP port on 127.0.0.1
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# psql_value SQL — one value from the chainwatch database
psql_value() {
    psql "$DATABASE_URL" -X -A -t -c "$1" 2>/dev/null
}

# start_ingestor — run chainwatch-ingestor against the stack (recorded, so `tools/stack.sh down` stops it)
start_ingestor() {
    if [[ -s $RUN/pids/ingestor.pid ]] && kill -0 "$(head -n1 "$RUN/pids/ingestor.pid")" 2>/dev/null; then
        say "the ingestor is already running (pid $(head -n1 "$RUN/pids/ingestor.pid"))"
        INGESTOR_METRICS_PORT=$(cat "$RUN/ingestor.metrics_port" 2>/dev/null || echo "")
        return 0
    fi
    INGESTOR_METRICS_PORT=$(free_port)
    echo "$INGESTOR_METRICS_PORT" >"$RUN/ingestor.metrics_port"
    say "starting chainwatch-ingestor as role chainwatch_ingestor (group anomaly-detection-group, metrics on 127.0.0.1:$INGESTOR_METRICS_PORT)"
    start_daemon ingestor env DATABASE_URL="${INGESTOR_DATABASE_URL:-$DATABASE_URL}" \
        METRICS_PORT="$INGESTOR_METRICS_PORT" METRICS_BIND=127.0.0.1 \
        KAFKA_SESSION_TIMEOUT_MS=6000 "$BIN/chainwatch-ingestor"
}

# wait_for SECONDS DESCRIPTION SQL — poll until SQL returns t, or give up with a note
wait_for() {
    local limit=$1 what=$2 sql=$3 waited=0
    while [[ $(psql_value "$sql") != t ]]; do
        if ((waited >= limit)); then
            note "still waiting for $what after ${limit}s; carry on (see $RUN/logs/ingestor.log)"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    note "$what (after ${waited}s)"
}

# detect_anomalies — the cold start: the first transactions are stored unscored, the maintenance worker trains
# and activates a first model once enough are stored, and from then on new transactions are scored
detect_anomalies() {
    local total
    total=$(topic_message_count)
    say "waiting for the ingestor to store what is in the topic ($total messages)"
    wait_for 120 "all $total messages stored in chainwatch.transactions" \
        "SELECT (SELECT sum(next_offset) FROM chainwatch.kafka_offsets WHERE consumer_group = 'anomaly-detection-group') >= $total"
    if [[ -z $(psql_value "SELECT chainwatch.active_model_id()") ]]; then
        say "no model yet: the maintenance worker trains one from the stored transactions (cold start)"
        wait_for 90 "a model is active" "SELECT chainwatch.active_model_id() IS NOT NULL" ||
            psql "$DATABASE_URL" -X -q -c "SELECT chainwatch.activate_model(chainwatch.train_model('demo', 'SELECT value, gas, gas_price FROM chainwatch.transactions'))" >/dev/null
    fi
    note "active model: $(psql_value "SELECT id || ' (' || name || ', threshold ' || round(threshold::numeric, 4) || ')' FROM chainwatch.models WHERE is_active")"
    say "streaming $DEMO_COUNT more transactions, scored as they arrive"
    # legacy format, with timestamps like the first stream's: the behavioural features compare each transaction's
    # time with its addresses' history, and a format without timestamps (JSON-RPC) would count these at their
    # arrival, years after the generated chain's history (docs/detection.md, "Time")
    "$BIN/chainwatch-txgen" --brokers "$KAFKA_BOOTSTRAP_SERVERS" --topic "$KAFKA_TOPIC" --format legacy \
        --count "$DEMO_COUNT" --anomaly-rate "$DEMO_ANOMALY_RATE" --labels "$RUN/labels-scored.csv" --seed 2 ||
        die "chainwatch-txgen failed"
    total=$(topic_message_count)
    wait_for 120 "all $total messages stored" \
        "SELECT (SELECT sum(next_offset) FROM chainwatch.kafka_offsets WHERE consumer_group = 'anomaly-detection-group') >= $total"
    say "anomalies detected (psql: SELECT ... FROM chainwatch.recent_anomalies)"
    psql "$DATABASE_URL" -X -P pager=off -c "SELECT * FROM chainwatch.anomaly_stats('1 hour')"
    psql "$DATABASE_URL" -X -P pager=off -c "SELECT left(hash, 18) AS hash, round(value / 1e18, 4) AS eth, round(gas_price / 1e9, 1) AS gwei, gas, round(score::numeric, 3) AS score, severity, detected_at FROM chainwatch.recent_anomalies ORDER BY severity DESC, score DESC LIMIT 10"
    psql "$DATABASE_URL" -X -P pager=off -c "SELECT table_name, rows, max_rows, ttl, partitions, evicted_ttl, evicted_size FROM chainwatch.status()"
}

# start_api — run chainwatch-api on a free port, create a reader key, print working curl commands
start_api() {
    API_PORT=$(cat "$RUN/api.port" 2>/dev/null || echo "")
    if [[ -n $API_PORT && -s $RUN/pids/api.pid ]] && kill -0 "$(head -n1 "$RUN/pids/api.pid")" 2>/dev/null; then
        say "the API is already running on 127.0.0.1:$API_PORT"
    else
        API_PORT=$(free_port)
        echo "$API_PORT" >"$RUN/api.port"
        say "starting chainwatch-api as role chainwatch_api on 127.0.0.1:$API_PORT (Redis cache at $REDIS_HOST:$REDIS_PORT)"
        start_daemon api env DATABASE_URL="${API_DATABASE_URL:-$DATABASE_URL}" API_PORT="$API_PORT" "$BIN/chainwatch-api"
    fi
    local waited=0
    until curl -fs "http://127.0.0.1:$API_PORT/health/live" >/dev/null 2>&1; do
        ((waited++ < 50)) || die "the API did not answer (see $RUN/logs/api.log)"
        sleep 0.2
    done
    API_KEY=$(psql_value "SELECT chainwatch.create_api_key('demo-' || to_char(now(), 'HH24MISS'), 'reader')")
    [[ -n $API_KEY ]] || die "could not create an API key"
    note "reader key created with chainwatch.create_api_key() (shown once): $API_KEY"
    say "the REST API, with that key"
    local base="http://127.0.0.1:$API_PORT" hash
    hash=$(psql_value "SELECT hash FROM chainwatch.recent_anomalies ORDER BY score DESC LIMIT 1")
    note "curl -s -H 'X-API-Key: $API_KEY' '$base/api/v1/anomalies?severity=critical&limit=5'"
    note "curl -s -H 'X-API-Key: $API_KEY' '$base/api/v1/anomalies/$hash'"
    note "curl -s -H 'X-API-Key: $API_KEY' -X POST $base/api/v1/predict -d '{\"hash\":\"0x$(printf '%064d' 1)\",\"value\":\"5000000000000000000000\",\"gas\":21000,\"gasPrice\":2000000000000}'"
    note "curl -s -H 'X-API-Key: $API_KEY' $base/api/v1/stats"
    note "curl -s $base/health"
    note "curl -s $base/metrics"
    note "curl -s $base/api/v1/openapi.json"
    note "for example, the first command answers:"
    curl -s -H "X-API-Key: $API_KEY" "$base/api/v1/anomalies?severity=critical&limit=2" | head -c 600 | sed 's/^/      /'
    echo
}

# topic_message_count — print the number of messages in the topic: the sum of every partition's high watermark
# (one offsets request, no consuming); falls back to counting by consuming if the broker cannot answer that
topic_message_count() {
    local partitions p args=()
    partitions=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -L -t "$KAFKA_TOPIC" -m 10 2>/dev/null |
        sed -n 's/.* with \([0-9]*\) partitions.*/\1/p') || true
    if [[ -n $partitions ]]; then
        for ((p = 0; p < partitions; p++)); do args+=(-t "$KAFKA_TOPIC:$p:-1"); done
        if kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -Q "${args[@]}" 2>/dev/null |
            awk '$NF ~ /^[0-9]+$/ { n += $NF; seen = 1 } END { if (!seen) exit 1; print n }'; then
            return 0
        fi
    fi
    kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$KAFKA_TOPIC" -o beginning -e -q -f '\n' 2>/dev/null | wc -l
}

# show_summary — what is running, and the commands to look at it and to stop it
show_summary() {
    say "the stack$([[ $STACK_REUSED -eq 1 ]] && echo " (reused)") — source this to use it: . $RUN/stack.env"
    sed 's/^/    /' "$RUN/stack.env"
    say "topic $KAFKA_TOPIC now holds $(topic_message_count) messages"
    note "peek at five of them:"
    note "  kcat -b $KAFKA_BOOTSTRAP_SERVERS -C -t $KAFKA_TOPIC -c 5 -e"
    note "query Postgres:   psql '$DATABASE_URL'"
    note "  e.g. psql '$DATABASE_URL' -c 'SELECT * FROM chainwatch.recent_anomalies ORDER BY detected_at DESC LIMIT 20'"
    [[ -n ${INGESTOR_METRICS_PORT:-} ]] && note "ingestor metrics: curl -s http://127.0.0.1:$INGESTOR_METRICS_PORT/metrics"
    note "ingestor log:     $RUN/logs/ingestor.log"
    note "query Redis:      redis-cli -h $REDIS_HOST -p $REDIS_PORT"
    note "what is running:  tools/stack.sh status"
    say "everything keeps running; stop it with: tools/stack.sh down"
}

# main — the demo, step by step
main() {
    build_all
    ensure_stack
    generate_transactions
    start_ingestor
    detect_anomalies
    start_api
    show_summary
}

main "$@"
