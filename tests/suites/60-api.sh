# tests/suites/60-api.sh — sourced by tests/run-all.sh: chainwatch-api unit tests and black-box runs, plain and ASan/UBSan
#
# cmocka: routing, parameter parsing, the token bucket, the pool's first-come-first-served free list,
# the OpenAPI document against the route table, the request counters (linked alone), the
# listener's state under concurrent writers and readers.
# pytest: every endpoint and status code against a private stack (test_api.py, ~20 s) and Redis killed /
# Postgres restarted mid-run (test_api_resilience.py, ~20 s); then the same against build/san/bin.
step api-build make -C apiserver
step api-build-sanitize make -C apiserver SANITIZE=1
for t in routes params ratelimit openapi pgbin slotq metrics listener; do
    cmocka_suite "api-unit-$t" "build/tests/test_api_$t"
    cmocka_suite "api-unit-$t-asan" "build/san/tests/test_api_$t"
done
pytest_suite api tests/integration/test_api.py tests/integration/test_api_resilience.py
CHAINWATCH_BIN=$TOP/build/san/bin pytest_suite api-san \
    tests/integration/test_api.py tests/integration/test_api_resilience.py
