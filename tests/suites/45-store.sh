# tests/suites/45-store.sh — the store with a live server: maintenance worker schedule, concurrent ingest/queries/maintenance
pytest_suite store tests/integration/test_store.py
