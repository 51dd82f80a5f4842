/* tests/unit/test_txfeatures.c — cmocka tests of common/src/txfeatures.c: each feature, cold start,
 * folding order, out-of-order blocks, clock skew, the counterparty sketch, the profile text form
 *
 * Expected numbers are written from the definitions (docs/detection.md), computed here with libm
 * from the raw inputs or given as literals worked out by hand, never read back from the code under
 * test.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "txfeatures.h"

#define S       INT64_C(1000000) /* one second in microseconds */
#define T0      (INT64_C(1700000000) * S)
#define ETH     1e18
#define GWEI    1e9
#define F(name) feature_index(#name)

/* L: log1p at run time, as the code under test calls it (a constant argument would be folded by
 * the compiler, correctly rounded, where glibc's log1p may differ in the last bit) */
static double L(double v)
{
    volatile double x = v;
    return log1p(x);
}

static int feature_index(const char *name)
{
    for (int i = 0; i < CW_FEATURES; i++)
        if (strcmp(cw_feature_names[i], name) == 0)
            return i;
    fail_msg("no feature %s", name);
    return -1;
}

static cw_feature_tx tx(double value, double gas_price, int64_t at, int64_t to_hash)
{
    cw_feature_tx t = {value, 21000, gas_price, true, at, to_hash};
    return t;
}

static void cold_start_is_documented_and_neutral(void **state)
{
    (void) state;
    cw_profile none;
    double x[CW_FEATURES];
    memset(&none, 0, sizeof(none));
    cw_feature_tx t = tx(ETH, 20 * GWEI, T0, 42);
    cw_features_compute(&none, &none, &t, x);
    assert_true(x[F(log_value)] == L(ETH));
    assert_true(x[F(log_gas)] == L(21000));
    assert_true(x[F(log_gas_price)] == L(20 * GWEI));
    assert_true(x[F(contract_creation)] == 0);
    assert_true(x[F(sender_age)] == 0);
    assert_true(x[F(sender_gap)] ==
                11.366754528799243); /* ln(86401) to 50 digits, rounded: a day */
    assert_true(x[F(sender_value_up)] == 0);
    assert_true(x[F(sender_recent)] == 0);
    assert_true(x[F(recipient_new)] == 1);
    assert_true(x[F(recipient_fan_in)] == 0);
    assert_true(x[F(recipient_age)] == 0);
    assert_true(x[F(gas_price_up)] == 0);
    /* a creation: no recipient, so no recipient features */
    t.has_to = false;
    cw_features_compute(&none, NULL, &t, x);
    assert_true(x[F(contract_creation)] == 1 && x[F(recipient_new)] == 0 &&
                x[F(recipient_fan_in)] == 0 && x[F(recipient_age)] == 0);
}

static void sender_history_features(void **state)
{
    (void) state;
    cw_profile s, r;
    double x[CW_FEATURES];
    memset(&s, 0, sizeof(s));
    memset(&r, 0, sizeof(r));
    /* two transfers of 1 and 2 ETH at 20 gwei, 60 s apart, to hash 7 */
    cw_feature_tx a = tx(ETH, 20 * GWEI, T0, 7), b = tx(2 * ETH, 20 * GWEI, T0 + 60 * S, 7);
    cw_profile_fold_out(&s, &a);
    cw_profile_fold_in(&r, &a);
    cw_profile_fold_out(&s, &b);
    cw_profile_fold_in(&r, &b);
    /* then 100 ETH at 200 gwei, 30 s later, to the same recipient */
    cw_feature_tx c = tx(100 * ETH, 200 * GWEI, T0 + 90 * S, 7);
    cw_features_compute(&s, &r, &c, x);
    assert_true(x[F(sender_age)] == L(90.0));
    assert_true(x[F(sender_gap)] == L(30.0));
    assert_true(x[F(recipient_new)] == 0);
    assert_true(x[F(recipient_age)] == L(90.0));
    /* value z: mean and spread of the rounded ln values, the variance shrunk towards 1 with weight
     * 2 */
    double l1 = rint(log(1 + ETH) * 1e6) / 1e6, l2 = rint(log(1 + 2 * ETH) * 1e6) / 1e6;
    double l3 = rint(log(1 + 100 * ETH) * 1e6) / 1e6;
    double mean = (l1 + l2) / 2, var = ((l1 - mean) * (l1 - mean) + (l2 - mean) * (l2 - mean)) / 2;
    double z = (l3 - mean) / sqrt((2 * var + 2 * 1.0) / 4);
    assert_true(fabs(x[F(sender_value_up)] - z) < 1e-9);
    assert_true(x[F(sender_value_up)] > 3);
    /* zero-value calls are not values: one in the history changes nothing, one itself has none */
    cw_profile s0 = s;
    cw_feature_tx call = tx(0, 20 * GWEI, T0 + 80 * S, 9);
    cw_profile_fold_out(&s0, &call);
    double y[CW_FEATURES];
    cw_features_compute(&s0, &r, &c, y);
    assert_true(y[F(sender_value_up)] == x[F(sender_value_up)]);
    cw_features_compute(&s0, &r, &call, y);
    assert_true(y[F(sender_value_up)] == 0);
    /* a smaller value and a cheaper gas price than usual: not "up" */
    cw_feature_tx small = tx(0.01 * ETH, 2 * GWEI, T0 + 90 * S, 7);
    cw_features_compute(&s, &r, &small, y);
    assert_true(y[F(sender_value_up)] == 0 && y[F(gas_price_up)] == 0);
    double g = rint(log(1 + 20 * GWEI) * 1e6) / 1e6, g3 = rint(log(1 + 200 * GWEI) * 1e6) / 1e6;
    assert_true(fabs(x[F(gas_price_up)] - (g3 - g)) < 1e-9);
    /* all three in the same 300 s bucket or the one before: two recent from the sender, two in */
    assert_true(x[F(sender_recent)] == L(2) && x[F(recipient_fan_in)] == L(2));
}

static void recent_activity_follows_the_buckets(void **state)
{
    (void) state;
    cw_profile s;
    double x[CW_FEATURES];
    memset(&s, 0, sizeof(s));
    int64_t b0 = (T0 / CW_BUCKET_USECS) * CW_BUCKET_USECS; /* a bucket's start */
    for (int i = 0; i < 3; i++) {
        cw_feature_tx t = tx(ETH, GWEI, b0 + i * S, 1);
        cw_profile_fold_out(&s, &t);
    }
    cw_feature_tx next = tx(ETH, GWEI, b0 + CW_BUCKET_USECS + S, 1);
    cw_features_compute(&s, NULL, &next, x);
    assert_true(x[F(sender_recent)] == L(3)); /* the previous bucket counts */
    cw_feature_tx later = tx(ETH, GWEI, b0 + 2 * CW_BUCKET_USECS + S, 1);
    cw_features_compute(&s, NULL, &later, x);
    assert_true(x[F(sender_recent)] == 0); /* two buckets on: nothing recent */
    /* a transaction of the bucket before the latest (out of order) counts in "prev" */
    cw_profile_fold_out(&s, &next);
    cw_feature_tx late = tx(ETH, GWEI, b0 + 2 * S, 1);
    cw_profile_fold_out(&s, &late);
    assert_int_equal(s.out.bucket_count, 1);
    assert_int_equal(s.out.prev_count, 4);
}

/* fold_all folds txs in the given order into a fresh profile */
static cw_profile fold_all(const cw_feature_tx *txs, const int *order, int n)
{
    cw_profile p;
    memset(&p, 0, sizeof(p));
    for (int i = 0; i < n; i++) {
        cw_profile_fold_out(&p, &txs[order[i]]);
        cw_profile_fold_in(&p, &txs[order[i]]);
    }
    return p;
}

static void folding_is_order_independent(void **state)
{
    (void) state;
    cw_feature_tx txs[8];
    int fwd[8], rev[8], mix[8] = {3, 7, 0, 5, 1, 6, 2, 4};
    for (int i = 0; i < 8; i++) {
        /* out-of-order blocks: times jump back and forth across buckets */
        txs[i] = tx((i + 1) * 0.37 * ETH, (20 + i) * GWEI, T0 + ((i * 5) % 8) * 200 * S, 1000 - i);
        fwd[i] = i;
        rev[i] = 7 - i;
    }
    cw_profile a = fold_all(txs, fwd, 8), b = fold_all(txs, rev, 8), c = fold_all(txs, mix, 8);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_memory_equal(&a, &c, sizeof(a));
    assert_int_equal(a.out.count, 8);
    assert_true(a.first_at == T0);
}

static void skewed_clocks_and_old_blocks(void **state)
{
    (void) state;
    int64_t detected = T0 + 1000 * S;
    /* a producer clock ahead: the time is detected_at; behind or absent as given / detected_at */
    assert_true(cw_chain_time(true, detected + 3600 * S, detected) == detected);
    assert_true(cw_chain_time(true, T0, detected) == T0);
    assert_true(cw_chain_time(false, 0, detected) == detected);
    cw_profile s;
    double x[CW_FEATURES];
    memset(&s, 0, sizeof(s));
    cw_feature_tx seen = tx(ETH, GWEI, T0 + 500 * S, 1);
    cw_profile_fold_out(&s, &seen);
    cw_feature_tx older = tx(ETH, GWEI, T0 + 200 * S, 1); /* an older block, arriving later */
    cw_features_compute(&s, NULL, &older, x);
    assert_true(x[F(sender_age)] == 0);        /* never below 0 */
    assert_true(x[F(sender_gap)] == L(300.0)); /* the distance to its latest transaction */
}

static void counterparty_sketch_keeps_the_smallest_64(void **state)
{
    (void) state;
    cw_profile s;
    double x[CW_FEATURES];
    memset(&s, 0, sizeof(s));
    /* 100 distinct recipients, hashes 1000, 990, ..., 10 (and one repeat) */
    for (int i = 0; i <= 100; i++) {
        cw_feature_tx t = tx(ETH, GWEI, T0 + i * S, (int64_t) (1000 - 10 * (i % 100)));
        cw_profile_fold_out(&s, &t);
    }
    assert_int_equal(s.n_peers, 64);
    for (int k = 0; k < 64; k++)
        assert_int_equal(s.peers[k], 10 * (k + 1)); /* 10, 20, ..., 640 */
    cw_feature_tx known = tx(ETH, GWEI, T0, 330), absent_low = tx(ETH, GWEI, T0, 335),
                  above = tx(ETH, GWEI, T0, 5000);
    cw_features_compute(&s, NULL, &known, x);
    assert_true(x[F(recipient_new)] == 0);
    cw_features_compute(&s, NULL, &absent_low, x);
    assert_true(x[F(recipient_new)] == 1); /* below the largest kept: exactly new */
    cw_features_compute(&s, NULL, &above, x);
    assert_true(x[F(recipient_new)] == 0); /* beyond a full sketch: counted as known */
}

static void profile_text_form(void **state)
{
    (void) state;
    const char *row[CW_PROFILE_COLUMNS] = {"0xabc",
                                           "-42",
                                           "1700000001000000",
                                           "1699990000000000",
                                           "3",
                                           "124000000",
                                           "5125000000000000000000000000",
                                           "70000000",
                                           "1699999999000000",
                                           "5666666",
                                           "2",
                                           "1",
                                           "4",
                                           NULL,
                                           "0",
                                           "0",
                                           "{-9,3,17}",
                                           "2"};
    cw_profile p;
    int64_t hash, detected;
    assert_int_equal(cw_profile_from_text(row, &p, &hash, &detected), 0);
    assert_true(p.exists && hash == -42 && detected == INT64_C(1700000001000000));
    assert_true(p.out.count == 3 && p.in.count == 4 && p.out.lv_sum == 124000000);
    assert_true(p.out.lv_sumsq == (__int128) 5125000000 * 1000000000000000000);
    assert_true(p.out.has_last && p.out.has_bucket && !p.in.has_bucket);
    assert_true(p.n_peers == 3 && p.peers[0] == -9 && p.peers[2] == 17 && p.out.valued == 2);
    row[CW_PC_OUT_PEERS] = "{3,-9}"; /* not sorted */
    assert_int_equal(cw_profile_from_text(row, &p, &hash, &detected), -1);
    row[CW_PC_OUT_PEERS] = "{3,x}";
    assert_int_equal(cw_profile_from_text(row, &p, &hash, &detected), -1);
    row[CW_PC_OUT_PEERS] = "{}";
    row[CW_PC_OUT_COUNT] = "99999999999999999999"; /* beyond int64 */
    assert_int_equal(cw_profile_from_text(row, &p, &hash, &detected), -1);
    /* an address without a profile: only its hash and the reader's time */
    const char *none[CW_PROFILE_COLUMNS] = {"0xdef", "7", "1700000001000000"};
    assert_int_equal(cw_profile_from_text(none, &p, &hash, &detected), 0);
    assert_false(p.exists);
    assert_int_equal(hash, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cold_start_is_documented_and_neutral),
        cmocka_unit_test(sender_history_features),
        cmocka_unit_test(recent_activity_follows_the_buckets),
        cmocka_unit_test(folding_is_order_independent),
        cmocka_unit_test(skewed_clocks_and_old_blocks),
        cmocka_unit_test(counterparty_sketch_keeps_the_smallest_64),
        cmocka_unit_test(profile_text_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
