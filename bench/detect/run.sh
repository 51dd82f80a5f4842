#!/usr/bin/env bash
# bench/detect/run.sh — `make bench-detect`: a labelled txgen stream through the pipeline as a fresh install runs it
#
# Usage: bench/detect/run.sh [--rows N] [--seed S] [--no-doc] ... (bench/detect/bench_detect.py --help)
#   STACK_ENV=DIR/stack.env  use a running stack (its chainwatch extension is dropped and created again);
#                            otherwise a private stack is started in a temporary directory and torn down on exit
# Needs the extension installed (make install-extension). Results: stdout, docs/bench-detect-pr.png and the
# section between <!-- bench-detect:start --> and <!-- bench-detect:end --> of docs/benchmarks.md.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
# shellcheck source=../stack.sh
source "$TOP/bench/stack.sh"
make -s -C "$TOP" build >&2
bench_stack bench-detect
cd "$TOP"
"$PYTHON" bench/detect/bench_detect.py --bin "$TOP/build/bin" --doc "$TOP/docs/benchmarks.md" \
    --plot "$TOP/docs/bench-detect-pr.png" "$@"
