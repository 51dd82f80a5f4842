#!/usr/bin/env bash
# bench/run-all.sh — `make bench`: every benchmark in turn; each writes its own section of docs/benchmarks.md
#
# Each one starts its own stack and compares with a baseline measured in the same run (see docs/benchmarks.md).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
make -s all >&2
make -s install-extension >/dev/null
bash bench/score/run.sh
bash bench/ingest/run.sh sql
bash bench/ingest/run.sh e2e
bash bench/ingest/run.sh connect
bash bench/api/run.sh
bash bench/detect/run.sh
