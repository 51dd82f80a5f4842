# tests/suites/52-docs.sh — sourced by tests/run-all.sh: the reference documents against the code
#
# docs/configuration.md's generated tables against the daemons' --help-markdown and the server's
# chainwatch.* settings; docs/errors.md against the SQLSTATEs the extension raises (a few seconds).
pytest_suite docs tests/integration/test_docs.py
