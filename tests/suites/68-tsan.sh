# tests/suites/68-tsan.sh — sourced by tests/run-all.sh: the threaded daemons under ThreadSanitizer
#
# `make tsan` builds chainwatch-ingestor and chainwatch-api with -fsanitize=thread into build/tsan/bin
# (the broker and txgen are the plain builds: only the daemons' threads are under test). The ingestor's
# poll and writer threads run the exactly-once, rebalance (two members), Postgres-restart, poison and
# SIGTERM tests at a fifth of the messages; the API's worker threads, pool, cache, rate limiter and
# listener run its whole suite including Redis and Postgres restarts. Every report is written to
# build/test-logs/tsan/ and the step `tsan-reports` fails if there is any (third-party suppressions:
# tests/tsan/suppressions.txt, which lists no code of ours).
step tsan-build make tsan
rm -rf "$LOGS/tsan"
mkdir -p "$LOGS/tsan"
export TSAN_OPTIONS="log_path=$LOGS/tsan/report suppressions=$TOP/tests/tsan/suppressions.txt second_deadlock_stack=1 history_size=4"
# the API listener's seqlock with two writers and two readers (tests/unit/test_api_listener.c)
cmocka_suite api-unit-listener-tsan build/tsan/tests/test_api_listener
CHAINWATCH_BIN=$TOP/build/tsan/bin CHAINWATCH_TEST_SCALE=0.2 pytest_suite ingestor-tsan \
    tests/integration/test_ingestor.py -k 'exactly_once or two_ingestors or postgres_restart or poison or sigterm_mid or metrics'
CHAINWATCH_BIN=$TOP/build/tsan/bin pytest_suite api-tsan \
    tests/integration/test_api.py tests/integration/test_api_resilience.py
unset TSAN_OPTIONS
# tsan_reports — fail when any TSan report was written; show the first one
tsan_reports() {
    local reports
    reports=$(find "$LOGS/tsan" -name 'report*' -size +0 2>/dev/null)
    if [[ -n $reports ]]; then
        note "ThreadSanitizer reports: $reports"
        head -n 60 $(printf '%s\n' "$reports" | head -n1) >&2
        return 1
    fi
}
step tsan-reports tsan_reports
