# tests/suites/20-tools.sh — sourced by tests/run-all.sh: chainwatch-kafka-mock and chainwatch-txgen
#
# Black-box pytest runs, once against build/bin and once against the ASan/UBSan build in
# build/san/bin (the tests take their binaries from CHAINWATCH_BIN). About 20 s each.
pytest_suite tools tests/integration/test_kafka_mock.py tests/integration/test_txgen.py
CHAINWATCH_BIN=$TOP/build/san/bin pytest_suite tools-san \
    tests/integration/test_kafka_mock.py tests/integration/test_txgen.py
