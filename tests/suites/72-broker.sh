# tests/suites/72-broker.sh — sourced by tests/run-all.sh: the ingestor against the real broker's own behaviour (~3 min)
#
# tests/integration/test_broker.py: one of three Apache Kafka nodes killed mid-stream, the single broker killed
# and restarted, partitions added under two ingestors, the group's committed offsets in kafka-consumer-groups,
# SASL/SCRAM through KAFKA_CONFIG_* only, every compression codec; each ends by the exactly-once check. Skipped
# with CHAINWATCH_KAFKA=mock.
pytest_suite broker tests/integration/test_broker.py
