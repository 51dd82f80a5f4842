#!/usr/bin/env bash
# tests/chaos.sh — `make chaos`: the fault-injection suite (tests/integration/test_chaos.py) on a private stack
#
# One pipeline (two ingestors, the API, a paced txgen stream, a load client) takes six faults in turn; the
# design and the checks are described atop the test file. A junit report goes to build/test-logs/chaos.xml and
# the measured timings and counts to build/chaos/observations.json. Exits with pytest's status.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p build/test-logs
export CHAINWATCH_TOP=$TOP
rc=0
"$PYTHON" -m pytest -p no:cacheprovider -v --junitxml=build/test-logs/chaos.xml \
    tests/integration/test_chaos.py || rc=$?
if [[ -s build/chaos/observations.json ]]; then
    echo "observations (build/chaos/observations.json):"
    cat build/chaos/observations.json
fi
exit "$rc"
