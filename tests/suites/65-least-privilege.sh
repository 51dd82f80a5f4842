# tests/suites/65-least-privilege.sh — sourced by tests/run-all.sh: the daemons' roles may do their job and no more
#
# pytest: every forbidden statement fails with 42501 for chainwatch_ingestor, chainwatch_api and
# chainwatch_monitor (nothing changes), each role's own job succeeds, and no secret (role passwords, the Redis
# password, API keys) appears in any log line, /metrics or /health page (~25 s).
pytest_suite least-privilege tests/integration/test_least_privilege.py
