# tests/suites/85-fuzz.sh — replay every fuzz corpus and past crash through the libFuzzer targets (ASan+UBSan)
#
# `make fuzz` grows the corpora (fuzz/corpus/<target>/); here each input runs once, so a fixed crash stays fixed.
step fuzz-build make -C fuzz
for t in txdecode forest_json forest_bin config api; do
    if [[ -d fuzz/crashes/$t ]]; then
        step "fuzz-$t" build/fuzz/fuzz_$t -runs=0 "fuzz/corpus/$t" "fuzz/crashes/$t"
    else
        step "fuzz-$t" build/fuzz/fuzz_$t -runs=0 "fuzz/corpus/$t"
    fi
done
