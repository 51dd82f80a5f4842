# tests/suites/30-unit.sh — sourced by tests/run-all.sh: cmocka tests of the forest core, plain and ASan/UBSan
step unit-build make -C tests/unit
step unit-build-sanitize make -C tests/unit SANITIZE=1
cmocka_suite forest build/tests/test_forest
cmocka_suite forest-asan build/san/tests/test_forest
cmocka_suite forest-portable build/tests/test_forest_portable
