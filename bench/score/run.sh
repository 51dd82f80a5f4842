#!/usr/bin/env bash
# bench/score/run.sh — bench-score: C core vs SQL vs sklearn scoring speed on the same 1M rows; updates docs/benchmarks.md
#
# Usage: bench/score/run.sh [--rows N] [--repeat K]
#   STACK_ENV=DIR/stack.env  use a running stack (tools/stack.sh up); otherwise a private stack is started in a
#                            temporary directory and torn down on exit
#   PYTHON                   interpreter with numpy, scikit-learn and psycopg2 (default /usr/bin/python3)
# Needs the extension installed (make install-extension). Results: stdout and the section between
# <!-- bench-score:start --> and <!-- bench-score:end --> of docs/benchmarks.md.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
WORK=$(mktemp -d -t cw-bench-score.XXXXXX)
STACK_DIR=

# cleanup — stop the private stack (if we started one) and remove the scratch directory
cleanup() {
    local rc=$?
    if [[ -n $STACK_DIR ]]; then
        bash "$TOP/tools/stack.sh" down --dir "$STACK_DIR" >/dev/null 2>&1 || true
        rm -rf "$STACK_DIR"
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT

make -s -C "$TOP/bench/score" TOP="$TOP" >&2

if [[ -n ${STACK_ENV:-} ]]; then
    # shellcheck source=/dev/null
    source "$STACK_ENV"
else
    STACK_DIR=$(mktemp -d -t cw-bench-stack.XXXXXX)
    echo "bench-score: starting a private stack in $STACK_DIR" >&2
    bash "$TOP/tools/stack.sh" up --dir "$STACK_DIR" >/dev/null
    # shellcheck source=/dev/null
    source "$STACK_DIR/stack.env"
fi
export PGHOST PGPORT PGUSER PGDATABASE

"$PYTHON" "$TOP/bench/score/bench.py" --bench-bin "$TOP/build/bench/bench_score" --workdir "$WORK" "$@"
