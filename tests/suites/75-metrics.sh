# tests/suites/75-metrics.sh — every metric monitoring/ names is exported by the running ingestor and API
pytest_suite metrics tests/integration/test_metrics_exported.py
