# tests/suites/10-stack.sh — tools/stack.sh: the dev stack comes up, answers, refuses doubles, goes down cleanly
pytest_suite stack tests/integration/test_stack.py
