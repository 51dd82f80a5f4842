# tests/suites/40-sklearn.sh — sourced by tests/run-all.sh: sklearn IsolationForest models scored in SQL agree exactly
#
# Needs the installed extension (make install-extension) and python3-sklearn; starts its own stack (conftest).
pytest_suite sklearn tests/integration/test_sklearn_agreement.py
