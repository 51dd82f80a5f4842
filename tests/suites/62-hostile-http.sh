# tests/suites/62-hostile-http.sh — sourced by tests/run-all.sh: chainwatch-api under hostile HTTP, plain and ASan/UBSan
#
# Slow headers and bodies, oversized headers and bodies, ambiguous framing, invalid UTF-8, path traversal, SQL
# injection in every parameter, 2 x 10,000 dropped connections (fds and RSS), clean exit (LeakSanitizer under ASan);
# test_hostile_http.py, ~40 s per binary. The binaries are built by 60-api.sh.
pytest_suite hostile-http tests/integration/test_hostile_http.py
CHAINWATCH_BIN=$TOP/build/san/bin pytest_suite hostile-http-san tests/integration/test_hostile_http.py
