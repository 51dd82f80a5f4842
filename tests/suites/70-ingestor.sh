# tests/suites/70-ingestor.sh — sourced by tests/run-all.sh: chainwatch-ingestor unit tests (plain, ASan/UBSan) and black-box runs
#
# cmocka: the decoder (common/src/txdecode.c, wei.c), the features (common/src/txfeatures.c) and the ingestor's queue, batch and severity code, the
# consumer's rebalance decisions and the writer's retry loop and error classification, built by
# tests/unit/Makefile.ingestor. pytest: tests/integration/test_ingestor.py against private stacks, first with
# build/bin (full size, ~5 min), then a shorter pass with the ASan/UBSan binaries of build/san/bin (a fifth of
# the messages; the kill -9, two-member, second-signal, 300-partition and bad-setting tests are left out for
# time: they exercise no code path the other tests miss). Needs `make ingestor SANITIZE=1` (build-sanitize).
step ingestor-unit-build make -C tests/unit -f Makefile.ingestor
step ingestor-unit-build-sanitize make -C tests/unit -f Makefile.ingestor SANITIZE=1
cmocka_suite txdecode build/tests/test_txdecode
cmocka_suite txdecode-asan build/san/tests/test_txdecode
cmocka_suite txfeatures build/tests/test_txfeatures
cmocka_suite txfeatures-asan build/san/tests/test_txfeatures
cmocka_suite ingestor-units build/tests/test_ingestor_units
cmocka_suite ingestor-units-asan build/san/tests/test_ingestor_units
cmocka_suite ingestor-consumer build/tests/test_ingestor_consumer
cmocka_suite ingestor-consumer-asan build/san/tests/test_ingestor_consumer
cmocka_suite ingestor-writer build/tests/test_ingestor_writer
cmocka_suite ingestor-writer-asan build/san/tests/test_ingestor_writer
pytest_suite ingestor tests/integration/test_ingestor.py
# the behavioural features: stored vectors equal replay_features() after kill -9; a behaviour model scores as SQL
pytest_suite features tests/integration/test_features.py
CHAINWATCH_BIN=$TOP/build/san/bin CHAINWATCH_TEST_SCALE=0.2 pytest_suite features-san tests/integration/test_features.py
CHAINWATCH_BIN=$TOP/build/san/bin CHAINWATCH_TEST_SCALE=0.2 pytest_suite ingestor-san \
    tests/integration/test_ingestor.py -k 'not kill_9 and not two_ingestors and not invalid and not 256 and not second_sigterm'
# the failures issue 23 found (~4 min); under ASan/UBSan the shutdown-time /metrics scrape (a use after free
# before the fix), the refusal paths and the unusable model
pytest_suite ingestor-resilience tests/integration/test_ingestor_resilience.py
CHAINWATCH_BIN=$TOP/build/san/bin CHAINWATCH_TEST_SCALE=0.2 pytest_suite ingestor-resilience-san \
    tests/integration/test_ingestor_resilience.py -k 'metrics_scraped or refus or cannot_use'
