#!/usr/bin/env bash
# bench/ingest/run.sh — bench-ingest (Kafka -> Postgres end to end), bench-ingest-sql (the ingest transaction) or
# bench-connect (the same transactions through Kafka Connect and a JDBC sink, bench/connect/bench_connect.py)
#
# Usage: bench/ingest/run.sh e2e|sql|connect [--rows N]
# Starts a private stack (Apache Kafka, a 32-partition topic; CHAINWATCH_KAFKA=mock: the mock broker with 1024
# partitions, since it keeps only ~5 MiB per partition) in a temporary directory unless STACK_ENV names a running
# one; writes its section of docs/benchmarks.md.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
STACK_DIR=
mode=${1:?usage: run.sh e2e|sql|connect [--rows N]}
shift

# cleanup — stop the private stack if we started one
cleanup() {
    local rc=$?
    if [[ -n $STACK_DIR ]]; then
        bash "$TOP/tools/stack.sh" down --dir "$STACK_DIR" >/dev/null 2>&1 || true
        rm -rf "$STACK_DIR"
    fi
    exit $rc
}
trap cleanup EXIT

make -s -C "$TOP" build >&2
if [[ ${CHAINWATCH_KAFKA:-apache} == mock ]]; then PARTITIONS=${CHAINWATCH_PARTITIONS:-1024}; else PARTITIONS=${CHAINWATCH_PARTITIONS:-32}; fi
if [[ -n ${STACK_ENV:-} ]]; then
    # shellcheck source=/dev/null
    source "$STACK_ENV"
else
    STACK_DIR=$(mktemp -d -t cw-bench-ingest.XXXXXX)
    echo "bench-ingest: starting a private stack in $STACK_DIR" >&2
    CHAINWATCH_PARTITIONS=$PARTITIONS bash "$TOP/tools/stack.sh" up --dir "$STACK_DIR" >/dev/null
    # shellcheck source=/dev/null
    source "$STACK_DIR/stack.env"
fi
export CHAINWATCH_PARTITIONS=$PARTITIONS
export CHAINWATCH_KAFKA CHAINWATCH_KAFKA_VERSION CHAINWATCH_KAFKA_BROKERS
export PGHOST PGPORT PGUSER PGDATABASE DATABASE_URL KAFKA_BOOTSTRAP_SERVERS KAFKA_TOPIC
cd "$TOP"
if [[ $mode == connect ]]; then
    [[ ${CHAINWATCH_KAFKA:-apache} == apache ]] || { echo "bench-connect: needs Apache Kafka (not the mock)" >&2; exit 2; }
    "$PYTHON" bench/connect/bench_connect.py --bin "$TOP/build/bin" --doc "$TOP/docs/benchmarks.md" "$@"
else
    "$PYTHON" bench/ingest/bench_ingest.py "$mode" --bin "$TOP/build/bin" --doc "$TOP/docs/benchmarks.md" "$@"
fi
