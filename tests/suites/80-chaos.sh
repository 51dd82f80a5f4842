# tests/suites/80-chaos.sh — sourced by tests/run-all.sh: fault injection on one live pipeline (make chaos, ~3 min)
#
# kill -9 an ingestor and the postmaster, Redis and the broker stopped 30 s, 10k hostile messages, an ingestor
# paused past its session timeout; exactly once, bounds and API statuses checked after each (test_chaos.py).
pytest_suite chaos tests/integration/test_chaos.py
