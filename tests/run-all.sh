#!/usr/bin/env bash
# tests/run-all.sh — `make check`: build, then run every suite and print "N passed, N failed"
#
# Each suite is run by one function below; its log goes to build/test-logs/<suite>.log and its
# per-test counts are added to the totals. A suite that cannot run at all counts as one failure.
# Nothing here depends on a stack left running: suites that need one start their own.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
PYTHON=${PYTHON:-/usr/bin/python3}
LOGS=$TOP/build/test-logs
mkdir -p "$LOGS"
PASSED=0
FAILED=0
export CHAINWATCH_TOP=$TOP

note() { printf '%s\n' "$*" >&2; }

# add NAME PASSED FAILED — record a suite's counts
add() {
    PASSED=$((PASSED + $2))
    FAILED=$((FAILED + $3))
    note "== $1: $2 passed, $3 failed"
}

# step NAME CMD... — a single check that counts as one test
step() {
    local name=$1
    shift
    if "$@" >"$LOGS/$name.log" 2>&1; then
        add "$name" 1 0
    else
        add "$name" 0 1
        tail -n 40 "$LOGS/$name.log" >&2
    fi
}

# pytest_suite NAME FILES... — pytest with a junit report; counts its test cases
pytest_suite() {
    local name=$1
    shift
    local xml=$LOGS/$name.xml
    rm -f "$xml"
    "$PYTHON" -m pytest -p no:cacheprovider -q --junitxml="$xml" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    if [[ -s $xml ]]; then
        read -r p f < <("$PYTHON" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f)
PY
)
        [[ $rc -ne 0 && $f -eq 0 ]] && f=1
        add "$name" "$p" "$f"
    else
        add "$name" 0 1
    fi
    [[ $rc -ne 0 ]] && tail -n 60 "$LOGS/$name.log" >&2
}

# cmocka_suite NAME BINARY — a cmocka test binary; counts its test cases
cmocka_suite() {
    local name=$1 bin=$2
    "$bin" >"$LOGS/$name.log" 2>&1
    local rc=$?
    local p f
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$LOGS/$name.log" | tail -n1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$LOGS/$name.log" | tail -n1)
    p=${p:-0}
    f=${f:-0}
    [[ $rc -ne 0 && $f -eq 0 ]] && f=1
    add "$name" "$p" "$f"
    [[ $rc -ne 0 ]] && tail -n 40 "$LOGS/$name.log" >&2
}

# ---- build ------------------------------------------------------------------------------------
step build make -j2 all
step build-sanitize make -j2 build SANITIZE=1
step install-extension make install-extension
step format-check make format-check

# ---- suites -----------------------------------------------------------------------------------
for s in tests/suites/*.sh; do
    [[ -e $s ]] || continue
    # shellcheck source=/dev/null
    source "$s"
done

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
