#!/usr/bin/env bash
# bench/soak/run.sh — `make soak DURATION=...`: a private stack, then bench/soak/soak.py (design: its docstring)
#
# Usage: bench/soak/run.sh [DURATION]     DURATION: 30m (default), 45s, 1h, 1h30m, or plain seconds (90)
#
# Starts PostgreSQL, Redis and Apache Kafka (a 32-partition topic; CHAINWATCH_KAFKA=mock: the mock broker with 256
# partitions, since it keeps only ~5 MiB per partition) with tools/stack.sh in a temporary directory, runs the
# soak, and stops everything on any exit
# (the daemons soak.py starts are recorded with the stack, so `down` stops them too). Output: build/soak/
# (soak.csv, soak.png, report.md, logs/ with the daemons' and the stack's logs); runs of 30 minutes or more
# also write docs/soak.png and the soak block of docs/reliability.md (SOAK_DOC=1 forces it for shorter runs).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BIN=${CHAINWATCH_BIN:-$TOP/build/bin}
OUT=$TOP/build/soak
STACK_DIR=

# parse_duration TEXT — print TEXT (30m, 45s, 1h, 1h30m, 90) in seconds; fails on anything else
parse_duration() {
    local rest=$1 total=0 n unit
    [[ -n $rest ]] || return 1
    if [[ $rest =~ ^[0-9]+$ ]]; then
        echo "$rest"
        return 0
    fi
    while [[ -n $rest ]]; do
        [[ $rest =~ ^([0-9]+)([hms])(.*)$ ]] || return 1
        n=$((10#${BASH_REMATCH[1]}))
        unit=${BASH_REMATCH[2]}
        rest=${BASH_REMATCH[3]}
        case $unit in
        h) total=$((total + n * 3600)) ;;
        m) total=$((total + n * 60)) ;;
        s) total=$((total + n)) ;;
        esac
    done
    echo "$total"
}

# cleanup — keep the stack's logs next to the daemons', stop the stack, remove its directory
cleanup() {
    local rc=$?
    if [[ -n $STACK_DIR ]]; then
        mkdir -p "$OUT/logs"
        cp -f "$STACK_DIR/pg/log/postgresql.log" "$OUT/logs/postgresql.log" 2>/dev/null || true
        cp -f "$STACK_DIR/kafka/kafka.log" "$OUT/logs/kafka-mock.log" 2>/dev/null || true
        cp -f "$STACK_DIR/kafka/1/kafka.log" "$OUT/logs/kafka.log" 2>/dev/null || true
        cp -f "$STACK_DIR/redis/redis.log" "$OUT/logs/redis.log" 2>/dev/null || true
        bash "$TOP/tools/stack.sh" down --dir "$STACK_DIR" >/dev/null 2>&1 || true
        rm -rf "$STACK_DIR"
    fi
    exit "$rc"
}

text=${1:-30m}
if ! seconds=$(parse_duration "$text") || ((seconds < 60)); then
    echo "soak: DURATION '$text': expected at least a minute, as 30m, 45m, 1h, 1h30m or seconds (90)" >&2
    exit 2
fi
for b in chainwatch-ingestor chainwatch-api chainwatch-txgen; do
    [[ -x $BIN/$b ]] || {
        echo "soak: $BIN/$b not found; run 'make all install-extension' (or 'make soak')" >&2
        exit 2
    }
done

trap cleanup EXIT
trap 'exit 130' INT TERM
STACK_DIR=$(mktemp -d -t cw-soak.XXXXXX)
echo "soak: $text ($seconds s); private stack in $STACK_DIR" >&2
if [[ ${CHAINWATCH_KAFKA:-apache} == mock ]]; then partitions=${CHAINWATCH_PARTITIONS:-256}; else partitions=${CHAINWATCH_PARTITIONS:-32}; fi
CHAINWATCH_PARTITIONS=$partitions CHAINWATCH_BIN=$BIN \
    bash "$TOP/tools/stack.sh" up --dir "$STACK_DIR" >/dev/null
mkdir -p "$OUT"
cd "$TOP"
"$PYTHON" "$TOP/bench/soak/soak.py" --duration "$seconds" --duration-text "$text" --stack-dir "$STACK_DIR" \
    --bin "$BIN" --out "$OUT"
