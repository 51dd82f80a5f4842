/* tests/unit/test_forest.c — cmocka tests of the forest core: c(n), scoring by hand, training,
 * formats */

/*
 * Expected values here never come from the code under test: c(n) and scores are recomputed from
 * the Isolation Forest definitions (score = 2^(-mean_h / c(max_samples)), h = depth + c(n_leaf)),
 * quantiles were computed with numpy.percentile (linear) and are written down as literals.
 * Every buffer handed to a deserializer is a malloc'd copy of exactly the length under test, so
 * the ASan build (SANITIZE=1) catches any read past the end.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "forest.h"
#include "prng.h"

#define GAMMA 0.5772156649015329

/* expected_c is c(n) written from the paper's definition, independently of forest.c. */
static double expected_c(double n)
{
    if (n <= 1.0)
        return 0.0;
    if (n == 2.0)
        return 1.0;
    double harmonic = log(n - 1.0) + GAMMA; /* H(n-1) ~ ln(n-1) + gamma */
    return 2.0 * harmonic - 2.0 * (n - 1.0) / n;
}

/* check_close fails the test, printing both values, when |got - want| > tol. */
#define check_close(got, want, tol) check_close_at((got), (want), (tol), __FILE__, __LINE__)
static void check_close_at(double got, double want, double tol, const char *file, int line)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("%s:%d: got %.17g, want %.17g (|diff| %.3g > %.3g)\n", file, line, got, want,
                    fabs(got - want), tol);
        fail();
    }
}

/* check_same fails unless two doubles are bit-for-bit identical. */
#define check_same(got, want) check_same_at((got), (want), __FILE__, __LINE__)
static void check_same_at(double got, double want, const char *file, int line)
{
    if (memcmp(&got, &want, sizeof(double)) != 0) {
        print_error("%s:%d: got %.17g, want %.17g (not bit-identical)\n", file, line, got, want);
        fail();
    }
}

/* make_rows returns n rows of nf columns: mostly N(0,1)-ish values, every 50th row far out. */
static double *make_rows(size_t n, int nf, uint64_t seed)
{
    cw_prng rng;
    double *rows = malloc(sizeof(double) * n * (size_t) nf);
    assert_non_null(rows);
    cw_prng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < nf; j++) {
            /* sum of 4 uniforms: a cheap bell curve with mean 0 */
            double v = 0.0;
            for (int k = 0; k < 4; k++)
                v += cw_prng_double(&rng) - 0.5;
            rows[i * nf + j] = (i % 50 == 49) ? 10.0 + 5.0 * v : v;
        }
    }
    return rows;
}

/* train_or_fail trains with the given parameters and fails the test on error. */
static forest *train_or_fail(const double *rows, size_t n, int nf, int n_trees, int sample_size,
                             double contamination, uint64_t seed)
{
    forest_params p = {.n_features = nf,
                       .n_trees = n_trees,
                       .sample_size = sample_size,
                       .contamination = contamination,
                       .seed = seed,
                       .transform = FOREST_TRANSFORM_IDENTITY};
    forest_error err = {0};
    forest *f = forest_train(rows, n, &p, NULL, &err);
    if (!f) {
        print_error("forest_train failed: %d %s\n", err.code, err.message);
        fail();
    }
    return f;
}

/* serialize returns a malloc'd serialization of f and its size. */
static uint8_t *serialize(const forest *f, size_t *len)
{
    *len = forest_serialized_size(f);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    forest_serialize(f, buf);
    return buf;
}

/* tree_depth returns the depth of tree t from its canonical arrays (children after parents). */
static int tree_depth(const forest *f, int t)
{
    forest_canonical_tree ct;
    forest_get_tree(f, t, &ct);
    int *depth = calloc(ct.n_nodes, sizeof(int)), max = 0;
    assert_non_null(depth);
    for (uint32_t i = 0; i < ct.n_nodes; i++) {
        if (ct.left[i] >= 0) {
            depth[ct.left[i]] = depth[ct.left[i] + 1] = depth[i] + 1;
            if (depth[i] + 1 > max)
                max = depth[i] + 1;
        }
    }
    free(depth);
    return max;
}

/* ---- c(n) ------------------------------------------------------------------------------------ */

static void test_average_path_length(void **state)
{
    (void) state;
    check_same(forest_average_path_length(0.0), 0.0);
    check_same(forest_average_path_length(1.0), 0.0);
    check_same(forest_average_path_length(2.0), 1.0);
    /* 2(ln 255 + gamma) - 2*255/256, worked by hand: 2*6.118479210059959 - 1.9921875 */
    check_close(forest_average_path_length(256.0), 10.244770920119917, 1e-12);
    check_close(forest_average_path_length(3.0), 1.207392357589623, 1e-14);
    check_close(forest_average_path_length(8.0), 3.2962516279136924, 1e-14);
    check_close(forest_average_path_length(4096.0), 15.789963603627406, 1e-12);
    for (int n = 3; n < 5000; n += 7)
        check_close(forest_average_path_length(n), expected_c(n), 1e-12);
    /* c grows like 2 ln n: monotone */
    for (int n = 2; n < 1000; n++)
        assert_true(forest_average_path_length(n + 1) > forest_average_path_length(n));
}

/* ---- hand-built trees --------------------------------------------------------------------------
 */

/*
 * Tree A, given in a scrambled (non-breadth-first) order to exercise the re-layout:
 *   node 0: x0 <= 0.5 ? node 3 : node 1
 *   node 3: leaf, 3 samples                      depth 1
 *   node 1: x1 <= 2.0 ? node 4 : node 2
 *   node 4: leaf, 1 sample                       depth 2
 *   node 2: leaf, 4 samples                      depth 2
 * Tree B: a single split x1 <= -1 ? leaf(2) : leaf(6), both at depth 1.
 * Leaves carry feature -2 / threshold -2 the way sklearn writes them.
 */
static const int64_t A_left[] = {3, 4, -1, -1, -1}, A_right[] = {1, 2, -1, -1, -1};
static const int64_t A_feat[] = {0, 1, -2, -2, -2}, A_ns[] = {8, 5, 4, 3, 1};
static const double A_thr[] = {0.5, 2.0, -2.0, -2.0, -2.0};
static const int64_t B_left[] = {1, -1, -1}, B_right[] = {2, -1, -1};
static const int64_t B_feat[] = {1, -2, -2}, B_ns[] = {8, 2, 6};
static const double B_thr[] = {-1.0, -2.0, -2.0};

static forest *hand_forest(bool float32_inputs, forest_error *err)
{
    forest_tree_arrays trees[2] = {
        {5, A_left, A_right, A_feat, A_thr, A_ns},
        {3, B_left, B_right, B_feat, B_thr, B_ns},
    };
    return forest_from_trees(2, 8, FOREST_TRANSFORM_IDENTITY, float32_inputs, 0.6, trees, 2, err);
}

/* expected_score averages the path lengths h over the trees and applies the definition. */
static double expected_score(const double *h, int n_trees, int max_samples)
{
    double mean = 0.0;
    for (int t = 0; t < n_trees; t++)
        mean += h[t];
    mean /= n_trees;
    return pow(2.0, -mean / expected_c(max_samples));
}

static void test_hand_built_tree(void **state)
{
    (void) state;
    forest_error err = {0};
    forest *f = hand_forest(false, &err);
    assert_non_null(f);
    assert_int_equal(forest_n_trees(f), 2);
    assert_int_equal(forest_n_features(f), 2);
    assert_int_equal(forest_max_samples(f), 8);
    assert_int_equal(forest_n_nodes(f), 8);
    check_same(forest_threshold(f), 0.6);

    /* canonical form: breadth-first, right = left + 1 */
    forest_canonical_tree ct;
    forest_get_tree(f, 0, &ct);
    assert_int_equal(ct.n_nodes, 5);
    assert_int_equal(ct.left[0], 1);
    assert_int_equal(ct.left[1], -1); /* the 3-sample leaf */
    assert_int_equal(ct.n_samples[1], 3);
    assert_int_equal(ct.left[2], 3); /* the x1 split */
    assert_int_equal(ct.feature[2], 1);
    check_same(ct.split[2], 2.0);
    assert_int_equal(ct.n_samples[3], 1);
    assert_int_equal(ct.n_samples[4], 4);

    struct {
        double x[2];
        double hA, hB;
    } cases[] = {
        {{0.2, 0.0}, 1 + expected_c(3), 1 + expected_c(6)},
        {{0.5, -1.0}, 1 + expected_c(3), 1 + expected_c(2)}, /* equal to a threshold goes left */
        {{0.7, 1.0}, 2 + expected_c(1), 1 + expected_c(6)},
        {{0.7, 2.0}, 2 + expected_c(1), 1 + expected_c(6)},
        {{0.7, 2.5}, 2 + expected_c(4), 1 + expected_c(6)},
        {{1e300, -1e300}, 2 + expected_c(1), 1 + expected_c(2)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double h[2] = {cases[i].hA, cases[i].hB};
        double want = expected_score(h, 2, 8);
        check_close(forest_score(f, cases[i].x), want, 1e-15);
        double got;
        forest_score_batch(f, cases[i].x, 1, &got);
        check_close(got, want, 1e-15);
    }
    /* a path of 2 + c(1) = 2 and 1 + c(2) = 2: mean 2, score 2^(-2/c(8)) */
    check_close(forest_score(f, (double[]){0.7, -3.0}), pow(2.0, -2.0 / expected_c(8)), 1e-15);
    forest_free(f);
}

static void test_single_leaf_trees(void **state)
{
    (void) state;
    /* root-only trees (depth 0): h = c(n_root); max_samples 1 means c = 0, score 0.5 */
    static const int64_t l[] = {-1}, r[] = {-1}, ft[] = {-2}, ns[] = {5};
    static const double th[] = {-2.0};
    forest_tree_arrays tr = {1, l, r, ft, th, ns};
    forest_error err = {0};
    forest *f = forest_from_trees(1, 5, FOREST_TRANSFORM_IDENTITY, false, 0.5, &tr, 1, &err);
    assert_non_null(f);
    check_close(forest_score(f, (double[]){42.0}), pow(2.0, -expected_c(5) / expected_c(5)), 1e-15);
    forest_free(f);

    f = forest_from_trees(1, 1, FOREST_TRANSFORM_IDENTITY, false, 0.5, &tr, 1, &err);
    assert_non_null(f);
    check_same(forest_score(f, (double[]){42.0}), 0.5);
    forest_free(f);
}

static void test_log1p_transform(void **state)
{
    (void) state;
    /* x0 <= log1p(9) (=ln 10) goes left: 9 goes left, 9.0001 right */
    static const int64_t l[] = {1, -1, -1}, r[] = {2, -1, -1}, ft[] = {0, -2, -2}, ns[] = {4, 1, 3};
    double th[] = {log1p(9.0), -2, -2};
    forest_tree_arrays tr = {3, l, r, ft, th, ns};
    forest_error err = {0};
    forest *f = forest_from_trees(1, 4, FOREST_TRANSFORM_LOG1P, false, 0.5, &tr, 1, &err);
    assert_non_null(f);
    double left = forest_score(f, (double[]){9.0}), right = forest_score(f, (double[]){9.0001});
    check_close(left, pow(2.0, -1.0 / expected_c(4)), 1e-15);
    check_close(right, pow(2.0, -(1.0 + expected_c(3)) / expected_c(4)), 1e-15);
    forest_free(f);
}

/*
 * float32_inputs: x = 0.1 rounds up to 0.100000001490116... as a float, so a threshold of
 * 0.1 + 1e-10 lies between the double and its float rounding: the row goes left with float64
 * inputs and right with float32 inputs (what sklearn does).
 */
static void test_float32_inputs(void **state)
{
    (void) state;
    const double x = 0.1, thr = 0.1 + 1e-10;
    assert_true(x <= thr);
    assert_true((double) (float) x > thr);

    static const int64_t l[] = {1, -1, -1}, r[] = {2, -1, -1}, ft[] = {0, -2, -2}, ns[] = {8, 1, 7};
    double th[] = {thr, -2, -2};
    forest_tree_arrays tr = {3, l, r, ft, th, ns};
    forest_error err = {0};
    double want_left = pow(2.0, -1.0 / expected_c(8));
    double want_right = pow(2.0, -(1.0 + expected_c(7)) / expected_c(8));

    forest *f64 = forest_from_trees(1, 8, FOREST_TRANSFORM_IDENTITY, false, 0.5, &tr, 1, &err);
    forest *f32 = forest_from_trees(1, 8, FOREST_TRANSFORM_IDENTITY, true, 0.5, &tr, 1, &err);
    assert_non_null(f64);
    assert_non_null(f32);
    assert_false(forest_float32_inputs(f64));
    assert_true(forest_float32_inputs(f32));
    check_close(forest_score(f64, &x), want_left, 1e-15);
    check_close(forest_score(f32, &x), want_right, 1e-15);
    double b64, b32;
    forest_score_batch(f64, &x, 1, &b64);
    forest_score_batch(f32, &x, 1, &b32);
    check_same(b64, forest_score(f64, &x));
    check_same(b32, forest_score(f32, &x));

    /* the flag survives both formats */
    size_t len;
    uint8_t *buf = serialize(f32, &len);
    forest *back = forest_deserialize(buf, len, &err);
    assert_non_null(back);
    assert_true(forest_float32_inputs(back));
    check_same(forest_score(back, &x), forest_score(f32, &x));
    forest_free(back);
    free(buf);
    char *json = forest_export_json(f32);
    assert_non_null(json);
    back = forest_import_json(json, strlen(json), &err);
    assert_non_null(back);
    assert_true(forest_float32_inputs(back));
    check_same(forest_score(back, &x), forest_score(f32, &x));
    forest_free(back);
    free(json);
    forest_free(f64);
    forest_free(f32);
}

/* ---- training -----------------------------------------------------------------------------------
 */

static void test_training_deterministic(void **state)
{
    (void) state;
    double *rows = make_rows(3000, 3, 11);
    forest *a = train_or_fail(rows, 3000, 3, 50, 256, 0.05, 7);
    forest *b = train_or_fail(rows, 3000, 3, 50, 256, 0.05, 7);
    forest *c = train_or_fail(rows, 3000, 3, 50, 256, 0.05, 8);
    size_t la, lb, lc;
    uint8_t *ba = serialize(a, &la), *bb = serialize(b, &lb), *bc = serialize(c, &lc);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    assert_true(la != lc || memcmp(ba, bc, la) != 0);
    assert_int_equal(forest_n_trees(a), 50);
    assert_int_equal(forest_max_samples(a), 256);
    /* every tree was built from sample_size rows */
    for (int t = 0; t < forest_n_trees(a); t++) {
        forest_canonical_tree ct;
        forest_get_tree(a, t, &ct);
        assert_int_equal(ct.n_samples[0], 256);
    }
    free(ba);
    free(bb);
    free(bc);
    forest_free(a);
    forest_free(b);
    forest_free(c);
    free(rows);
}

static void test_training_rejects_bad_params(void **state)
{
    (void) state;
    double *rows = make_rows(100, 2, 3);
    forest_params good = {.n_features = 2,
                          .n_trees = 10,
                          .sample_size = 64,
                          .contamination = 0.1,
                          .seed = 1,
                          .transform = FOREST_TRANSFORM_IDENTITY};
    forest_error err;
    forest_params p;
    forest *f;

#define EXPECT_INVALID(rows_, n_)                                                                  \
    do {                                                                                           \
        err.code = FOREST_OK;                                                                      \
        f = forest_train((rows_), (n_), &p, NULL, &err);                                           \
        assert_null(f);                                                                            \
        assert_int_equal(err.code, FOREST_ERR_INVALID_ARG);                                        \
        assert_true(err.message[0] != '\0');                                                       \
    } while (0)

    p = good;
    p.n_trees = 0;
    EXPECT_INVALID(rows, 100);
    p = good;
    p.sample_size = 1;
    EXPECT_INVALID(rows, 100);
    p = good;
    p.contamination = 0.0;
    EXPECT_INVALID(rows, 100);
    p = good;
    p.contamination = 0.6;
    EXPECT_INVALID(rows, 100);
    p = good;
    p.contamination = NAN;
    EXPECT_INVALID(rows, 100);
    p = good;
    p.n_features = 0;
    EXPECT_INVALID(rows, 100);
    p = good;
    EXPECT_INVALID(rows, 1); /* fewer than 2 rows */
    EXPECT_INVALID(rows, 0);

    double saved = rows[77];
    rows[77] = NAN;
    EXPECT_INVALID(rows, 100);
    rows[77] = INFINITY;
    EXPECT_INVALID(rows, 100);
    rows[77] = saved;

    p = good;
    p.transform = FOREST_TRANSFORM_LOG1P;
    rows[5] = -1.0; /* outside log1p's domain */
    EXPECT_INVALID(rows, 100);
#undef EXPECT_INVALID

    /* contamination 0.5 is allowed; 2 rows suffice; sample_size is capped at n_rows */
    p = good;
    p.contamination = 0.5;
    f = forest_train(rows + 10, 2, &p, NULL, &err);
    assert_non_null(f);
    assert_int_equal(forest_max_samples(f), 2);
    forest_free(f);
    free(rows);
}

static void test_threshold_is_training_quantile(void **state)
{
    (void) state;
    const size_t n = 20000;
    double *rows = make_rows(n, 3, 99);
    double *scores = malloc(sizeof(double) * n);
    assert_non_null(scores);
    const double cont[] = {0.01, 0.05, 0.2};
    for (int k = 0; k < 3; k++) {
        forest_params p = {.n_features = 3,
                           .n_trees = 100,
                           .sample_size = 256,
                           .contamination = cont[k],
                           .seed = 5,
                           .transform = FOREST_TRANSFORM_IDENTITY};
        forest_error err;
        forest_score_summary sum;
        forest *f = forest_train(rows, n, &p, &sum, &err);
        assert_non_null(f);
        forest_score_batch(f, rows, n, scores);
        size_t above = 0;
        for (size_t i = 0; i < n; i++)
            above += scores[i] > forest_threshold(f);
        double share = (double) above / (double) n;
        if (fabs(share - cont[k]) > 0.002) {
            print_error("contamination %g: %.4f of the training rows score above the threshold\n",
                        cont[k], share);
            fail();
        }
        assert_int_equal(sum.n, n);
        assert_true(sum.min <= sum.p50 && sum.p50 <= sum.p90 && sum.p90 <= sum.p99 &&
                    sum.p99 <= sum.max);
        /* exactly the quantile of the training scores */
        check_same(forest_threshold(f), forest_quantile(scores, n, 1.0 - cont[k]));
        forest_free(f);
    }
    free(scores);
    free(rows);
}

/* ---- binary format -----------------------------------------------------------------------------
 */

static void test_serialize_round_trip(void **state)
{
    (void) state;
    double *rows = make_rows(2000, 4, 21);
    forest *f = train_or_fail(rows, 2000, 4, 30, 128, 0.02, 3);
    const char *names[] = {"value", "gas", "gas_price", "nonce"};
    assert_int_equal(forest_set_feature_names(f, names), 0);
    size_t len;
    uint8_t *buf = serialize(f, &len);
    forest_error err = {0};
    forest *g = forest_deserialize(buf, len, &err);
    if (!g) {
        print_error("deserialize: %s\n", err.message);
        fail();
    }
    assert_int_equal(forest_n_nodes(g), forest_n_nodes(f));
    check_same(forest_threshold(g), forest_threshold(f));
    assert_string_equal(forest_feature_name(g, 2), "gas_price");
    for (size_t i = 0; i < 2000; i++)
        check_same(forest_score(g, rows + 4 * i), forest_score(f, rows + 4 * i));
    size_t len2;
    uint8_t *buf2 = serialize(g, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    assert_int_equal(forest_serialized_checksum(buf, len), cw_crc32c(buf, len - 4));
    free(buf);
    free(buf2);
    forest_free(f);
    forest_free(g);
    free(rows);
}

/* deserialize_copy deserializes an exact-length malloc'd copy of buf[0..len). */
static forest *deserialize_copy(const uint8_t *buf, size_t len, forest_error *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    forest *f = forest_deserialize(copy, len, err);
    free(copy);
    return f;
}

/* small_model_bytes: a small trained model with feature names, serialized */
static uint8_t *small_model_bytes(size_t *len)
{
    double *rows = make_rows(200, 2, 4);
    forest *f = train_or_fail(rows, 200, 2, 3, 16, 0.1, 9);
    const char *names[] = {"a", "bc"};
    assert_int_equal(forest_set_feature_names(f, names), 0);
    uint8_t *buf = serialize(f, len);
    forest_free(f);
    free(rows);
    return buf;
}

static void test_flipped_byte_fails_checksum(void **state)
{
    (void) state;
    size_t len;
    uint8_t *buf = small_model_bytes(&len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            forest_error err = {0};
            buf[i] ^= (uint8_t) (1u << bit);
            forest *f = deserialize_copy(buf, len, &err);
            buf[i] ^= (uint8_t) (1u << bit);
            if (f) {
                print_error("byte %zu bit %d flipped: model accepted\n", i, bit);
                fail();
            }
            /* the magic is checked before the checksum */
            int want = i < 4 ? FOREST_ERR_MALFORMED : FOREST_ERR_CHECKSUM;
            if ((int) err.code != want) {
                print_error("byte %zu bit %d flipped: error %d (%s), want %d\n", i, bit, err.code,
                            err.message, want);
                fail();
            }
        }
    }
    free(buf);
}

static void test_truncated_buffers(void **state)
{
    (void) state;
    size_t len;
    uint8_t *buf = small_model_bytes(&len);
    uint8_t *fixed = malloc(len);
    assert_non_null(fixed);
    for (size_t cut = 0; cut < len; cut++) {
        /* plain truncation: checksum or magic/length error */
        forest_error err = {0};
        forest *f = deserialize_copy(buf, cut, &err);
        assert_null(f);
        assert_true(err.code != FOREST_OK);

        /* truncation with a valid checksum over what is left: the structural checks must
         * catch it (bytes [0, cut-4) kept, their CRC appended) */
        if (cut >= 8) {
            memcpy(fixed, buf, cut - 4);
            uint32_t crc = cw_crc32c(fixed, cut - 4);
            for (int k = 0; k < 4; k++)
                fixed[cut - 4 + k] = (uint8_t) (crc >> (8 * k));
            err.code = FOREST_OK;
            f = deserialize_copy(fixed, cut, &err);
            if (f) {
                print_error("truncated to %zu bytes with a recomputed CRC: accepted\n", cut);
                fail();
            }
            assert_true(err.code == FOREST_ERR_MALFORMED);
        }
    }
    /* a buffer one byte too long, checksummed, is rejected as well */
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len - 4);
    longer[len - 4] = 0;
    uint32_t crc = cw_crc32c(longer, len - 3);
    for (int k = 0; k < 4; k++)
        longer[len - 3 + k] = (uint8_t) (crc >> (8 * k));
    forest_error err = {0};
    assert_null(deserialize_copy(longer, len + 1, &err));
    assert_int_equal(err.code, FOREST_ERR_MALFORMED);
    free(longer);
    free(fixed);
    free(buf);
}

/* patch_and_recrc writes a u16/u32 little-endian value at off and recomputes the trailing CRC. */
static void patch_and_recrc(uint8_t *buf, size_t len, size_t off, uint32_t v, int width)
{
    for (int k = 0; k < width; k++)
        buf[off + k] = (uint8_t) (v >> (8 * k));
    uint32_t crc = cw_crc32c(buf, len - 4);
    for (int k = 0; k < 4; k++)
        buf[len - 4 + k] = (uint8_t) (crc >> (8 * k));
}

static void test_wrong_version(void **state)
{
    (void) state;
    size_t len;
    uint8_t *buf = small_model_bytes(&len);
    const uint32_t versions[] = {0, 2, 0xffff};
    for (int i = 0; i < 3; i++) {
        uint8_t *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        patch_and_recrc(copy, len, 4, versions[i], 2);
        forest_error err = {0};
        assert_null(forest_deserialize(copy, len, &err));
        assert_int_equal(err.code, FOREST_ERR_VERSION);
        free(copy);
    }
    /* header fields out of range, checksummed: malformed, not a crash */
    const struct {
        size_t off;
        uint32_t v;
        int w;
    } bad[] = {{6, 4, 2},        {8, 0, 4},  {8, 5000, 4}, {12, 0, 4},
               {12, 1000000, 4}, {16, 0, 4}, {20, 7, 4},   {32, 1u << 30, 4}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        patch_and_recrc(copy, len, bad[i].off, bad[i].v, bad[i].w);
        forest_error err = {0};
        forest *f = forest_deserialize(copy, len, &err);
        if (f) {
            print_error("header offset %zu = %u accepted\n", bad[i].off, bad[i].v);
            fail();
        }
        assert_int_equal(err.code, FOREST_ERR_MALFORMED);
        free(copy);
    }
    free(buf);
}

/* ---- JSON interchange
 * ---------------------------------------------------------------------------- */

static void test_json_round_trip(void **state)
{
    (void) state;
    double *rows = make_rows(3000, 3, 31);
    forest *f = train_or_fail(rows, 3000, 3, 40, 256, 0.03, 12);
    const char *names[] = {"value", "gas", "gas_price"};
    assert_int_equal(forest_set_feature_names(f, names), 0);
    char *json = forest_export_json(f);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"format\":\"chainwatch-iforest/1\""));
    forest_error err = {0};
    forest *g = forest_import_json(json, strlen(json), &err);
    if (!g) {
        print_error("import: %s\n", err.message);
        fail();
    }
    check_same(forest_threshold(g), forest_threshold(f));
    assert_string_equal(forest_feature_name(g, 0), "value");
    for (size_t i = 0; i < 3000; i++)
        check_same(forest_score(g, rows + 3 * i), forest_score(f, rows + 3 * i));
    /* and the binary forms agree byte for byte */
    size_t la, lb;
    uint8_t *ba = serialize(f, &la), *bb = serialize(g, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    char *again = forest_export_json(g);
    assert_string_equal(json, again);
    free(again);
    free(ba);
    free(bb);
    free(json);
    forest_free(f);
    forest_free(g);
    free(rows);
}

/* The tiny valid document that the malformed variants below are derived from (tree A above,
 * in sklearn's depth-first order). */
#define TREE_A                                                                                     \
    "{\"children_left\":[1,-1,3,-1,-1],\"children_right\":[2,-1,4,-1,-1],"                         \
    "\"feature\":[0,-2,1,-2,-2],\"threshold\":[0.5,-2,2.0,-2,-2],"                                 \
    "\"n_node_samples\":[8,3,5,1,4]}"
#define DOC_HEAD                                                                                   \
    "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"transform\":\"identity\","            \
    "\"max_samples\":8,\"threshold\":0.6,\"float32_inputs\":false,"
#define DOC(trees) DOC_HEAD "\"trees\":[" trees "]}"
#define TREE(l, r, f, t, n)                                                                        \
    "{\"children_left\":" l ",\"children_right\":" r ",\"feature\":" f ",\"threshold\":" t         \
    ",\"n_node_samples\":" n "}"

static void test_json_valid_tiny(void **state)
{
    (void) state;
    const char *doc = DOC(TREE_A);
    forest_error err = {0};
    forest *f = forest_import_json(doc, strlen(doc), &err);
    if (!f) {
        print_error("tiny document rejected: %s\n", err.message);
        fail();
    }
    double h = 2 + expected_c(4);
    check_close(forest_score(f, (double[]){0.7, 3.0}), pow(2.0, -h / expected_c(8)), 1e-15);
    forest_free(f);

    /* optional fields may be omitted; feature_names may be null; trailing whitespace is fine */
    const char *minimal = "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,"
                          "\"max_samples\":8,\"threshold\":0.6,\"feature_names\":null,"
                          "\"trees\":[" TREE_A "]}  \n";
    f = forest_import_json(minimal, strlen(minimal), &err);
    assert_non_null(f);
    assert_int_equal(forest_get_transform(f), FOREST_TRANSFORM_IDENTITY);
    assert_false(forest_float32_inputs(f));
    forest_free(f);
}

static void test_json_malformed(void **state)
{
    (void) state;
    static const struct {
        const char *what;
        const char *doc;
        forest_errcode want;
    } cases[] = {
        {"not JSON", "{\"format\":", FOREST_ERR_MALFORMED},
        {"empty", "", FOREST_ERR_MALFORMED},
        {"an array", "[1,2]", FOREST_ERR_MALFORMED},
        {"trailing garbage", DOC(TREE_A) " x", FOREST_ERR_MALFORMED},
        {"two documents", DOC(TREE_A) DOC(TREE_A), FOREST_ERR_MALFORMED},
        {"format missing",
         "{\"n_features\":2,\"max_samples\":8,\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"format of another tool",
         "{\"format\":\"sklearn-iforest/1\",\"n_features\":2,\"max_samples\":8,"
         "\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"future format version",
         "{\"format\":\"chainwatch-iforest/2\",\"n_features\":2,\"max_samples\":8,"
         "\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_VERSION},
        {"format not a string",
         "{\"format\":1,\"n_features\":2,\"max_samples\":8,\"threshold\":0.6,\"trees\":[" TREE_A
         "]}",
         FOREST_ERR_MALFORMED},
        {"n_features missing",
         "{\"format\":\"chainwatch-iforest/1\",\"max_samples\":8,\"threshold\":0.6,"
         "\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"n_features a string",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":\"2\",\"max_samples\":8,"
         "\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"n_features fractional",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2.5,\"max_samples\":8,"
         "\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"n_features 0",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":0,\"max_samples\":8,"
         "\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"max_samples missing",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"threshold\":0.6,"
         "\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"max_samples 0",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"max_samples\":0,"
         "\"threshold\":0.6,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"threshold missing",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"max_samples\":8,"
         "\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"threshold a string",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"max_samples\":8,"
         "\"threshold\":\"0.6\",\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"transform unknown",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"max_samples\":8,"
         "\"threshold\":0.6,\"transform\":\"log\",\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"float32_inputs a number",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,\"max_samples\":8,"
         "\"threshold\":0.6,\"float32_inputs\":1,\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"feature_names too short", DOC_HEAD "\"feature_names\":[\"a\"],\"trees\":[" TREE_A "]}",
         FOREST_ERR_MALFORMED},
        {"feature_names not strings",
         DOC_HEAD "\"feature_names\":[\"a\",2],\"trees\":[" TREE_A "]}", FOREST_ERR_MALFORMED},
        {"trees missing",
         "{\"format\":\"chainwatch-iforest/1\",\"n_features\":2,"
         "\"max_samples\":8,\"threshold\":0.6}",
         FOREST_ERR_MALFORMED},
        {"trees empty", DOC(""), FOREST_ERR_MALFORMED},
        {"trees an object", DOC_HEAD "\"trees\":{}}", FOREST_ERR_MALFORMED},
        {"tree not an object", DOC("[1]"), FOREST_ERR_MALFORMED},
        {"children_left missing",
         DOC("{\"children_right\":[-1],\"feature\":[-2],\"threshold\":[-2],"
             "\"n_node_samples\":[1]}"),
         FOREST_ERR_MALFORMED},
        {"children_left empty", DOC(TREE("[]", "[]", "[]", "[]", "[]")), FOREST_ERR_MALFORMED},
        {"threshold missing in a tree",
         DOC("{\"children_left\":[-1],\"children_right\":[-1],\"feature\":[-2],"
             "\"n_node_samples\":[1]}"),
         FOREST_ERR_MALFORMED},
        {"arrays of different lengths",
         DOC(TREE("[1,-1,-1]", "[2,-1,-1]", "[0,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"child index a string",
         DOC(TREE("[\"1\",-1,-1]", "[2,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"threshold element a string",
         DOC(TREE("[1,-1,-1]", "[2,-1,-1]", "[0,-2,-2]", "[\"0.5\",-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"child out of range",
         DOC(TREE("[1,-1,-1]", "[3,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"child -5", DOC(TREE("[1,-1,-1]", "[-5,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"one child only",
         DOC(TREE("[1,-1,-1]", "[-1,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"both children the same",
         DOC(TREE("[1,-1,-1]", "[1,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"child is the root",
         DOC(TREE("[1,0,-1]", "[2,2,-1]", "[0,0,-2]", "[0.5,0.5,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"a node with two parents",
         DOC(TREE("[1,3,3,-1,-1]", "[2,4,4,-1,-1]", "[0,1,0,-2,-2]", "[0.5,1,2,-2,-2]",
                  "[5,3,2,1,2]")),
         FOREST_ERR_MALFORMED},
        {"a cycle away from the root (unreachable)",
         DOC(TREE("[-1,2,1,-1,-1]", "[-1,3,4,-1,-1]", "[-2,0,0,-2,-2]", "[-2,1,2,-2,-2]",
                  "[5,3,2,1,1]")),
         FOREST_ERR_MALFORMED},
        {"a cycle 1->2->1 under the root",
         DOC(TREE("[1,3,1,-1,-1]", "[2,2,4,-1,-1]", "[0,0,0,-2,-2]", "[0.5,1,2,-2,-2]",
                  "[5,3,2,1,1]")),
         FOREST_ERR_MALFORMED},
        {"unreachable nodes",
         DOC(TREE("[1,-1,-1,-1,-1]", "[2,-1,-1,-1,-1]", "[0,-2,-2,-2,-2]", "[0.5,-2,-2,-2,-2]",
                  "[3,1,2,1,1]")),
         FOREST_ERR_MALFORMED},
        {"feature out of range",
         DOC(TREE("[1,-1,-1]", "[2,-1,-1]", "[2,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"negative feature at a split",
         DOC(TREE("[1,-1,-1]", "[2,-1,-1]", "[-2,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
        {"negative n_node_samples",
         DOC(TREE("[1,-1,-1]", "[2,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,-1,2]")),
         FOREST_ERR_MALFORMED},
        {"second tree broken",
         DOC(TREE_A "," TREE("[1,-1,-1]", "[7,-1,-1]", "[0,-2,-2]", "[0.5,-2,-2]", "[3,1,2]")),
         FOREST_ERR_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        forest_error err = {0};
        size_t len = strlen(cases[i].doc);
        char *copy = malloc(len + 1); /* exact length for ASan, NUL not counted */
        assert_non_null(copy);
        memcpy(copy, cases[i].doc, len + 1);
        forest *f = forest_import_json(copy, len, &err);
        free(copy);
        if (f || err.code != cases[i].want) {
            print_error("%s: got %s, error %d (%s); want error %d\n", cases[i].what,
                        f ? "a model" : "no model", err.code, err.message, cases[i].want);
            forest_free(f);
            fail();
        }
        assert_true(err.message[0] != '\0');
    }
}

/* ---- batch scoring ------------------------------------------------------------------------------
 */

/*
 * reference_score scores one raw row the plainest way, from the canonical trees: walk each tree
 * from its root with "x <= split goes left" (NaN goes right), add sklearn's leaf contribution
 * ((depth + 1) + c(n)) - 1 in tree order, apply 2^(-sum / (n_trees c(max_samples))). Every
 * scoring layout must agree with it bit for bit.
 */
static double reference_score(const forest *f, const double *row)
{
    int nf = forest_n_features(f), n_trees = forest_n_trees(f);
    double x[128], sum = 0.0;

    assert_true(nf <= 128);
    for (int j = 0; j < nf; j++) {
        x[j] = row[j];
        if (forest_get_transform(f) == FOREST_TRANSFORM_LOG1P)
            x[j] = log1p(x[j]);
        if (forest_float32_inputs(f))
            x[j] = (double) (float) x[j];
    }
    for (int t = 0; t < n_trees; t++) {
        forest_canonical_tree ct;
        int32_t i = 0, depth = 0;
        forest_get_tree(f, t, &ct);
        while (ct.left[i] >= 0) {
            i = x[ct.feature[i]] <= ct.split[i] ? ct.left[i] : ct.left[i] + 1;
            depth++;
        }
        sum += ((double) (depth + 1) + forest_average_path_length(ct.n_samples[i])) - 1.0;
    }
    double denominator = n_trees * forest_average_path_length(forest_max_samples(f));
    return denominator == 0.0 ? 0.5 : pow(2.0, -(sum / denominator));
}

/* check_batch_matches scores rows with forest_score_batch, row by row and with reference_score;
 * all three must agree bit for bit. */
static void check_batch_matches(const forest *f, const double *rows, size_t n)
{
    int nf = forest_n_features(f);
    double *batch = malloc(sizeof(double) * (n ? n : 1));
    assert_non_null(batch);
    forest_score_batch(f, rows, n, batch);
    for (size_t i = 0; i < n; i++) {
        double one = forest_score(f, rows + i * (size_t) nf);
        double want = reference_score(f, rows + i * (size_t) nf);
        if (memcmp(&one, &batch[i], sizeof(double)) != 0 ||
            memcmp(&one, &want, sizeof(double)) != 0) {
            print_error("%s layout, row %zu of %zu: batch %.17g, single %.17g, reference %.17g\n",
                        forest_layout_name(f), i, n, batch[i], one, want);
            fail();
        }
    }
    free(batch);
}

/* edge_rows returns n rows of nf values that sit on the model's split thresholds: each row takes
 * a node's threshold, or its neighbour one ulp below or above, for that node's feature (others
 * from base), and every 97th row has a NaN. */
static double *edge_rows(const forest *f, const double *base, size_t n)
{
    int nf = forest_n_features(f);
    double *rows = malloc(sizeof(double) * n * (size_t) nf);
    assert_non_null(rows);
    memcpy(rows, base, sizeof(double) * n * (size_t) nf);
    size_t r = 0;
    for (int t = 0; t < forest_n_trees(f) && r < n; t++) {
        forest_canonical_tree ct;
        forest_get_tree(f, t, &ct);
        for (uint32_t i = 0; i < ct.n_nodes && r < n; i++) {
            if (ct.left[i] < 0)
                continue;
            double v = ct.split[i];
            if (r % 3 == 1)
                v = nextafter(v, -INFINITY);
            else if (r % 3 == 2)
                v = nextafter(v, INFINITY);
            rows[r * nf + ct.feature[i]] = v;
            if (r % 97 == 5)
                rows[r * nf + (r / 97) % nf] = NAN;
            r++;
        }
    }
    return rows;
}

/* rebuild_float32 rebuilds f from its canonical trees with float32_inputs set. */
static forest *rebuild_float32(const forest *f)
{
    int n_trees = forest_n_trees(f);
    forest_tree_arrays *arrays = calloc((size_t) n_trees, sizeof(forest_tree_arrays));
    assert_non_null(arrays);
    for (int t = 0; t < n_trees; t++) {
        forest_canonical_tree ct;
        forest_get_tree(f, t, &ct);
        int64_t *l = malloc(sizeof(int64_t) * ct.n_nodes),
                *r = malloc(sizeof(int64_t) * ct.n_nodes);
        int64_t *ft = malloc(sizeof(int64_t) * ct.n_nodes),
                *ns = malloc(sizeof(int64_t) * ct.n_nodes);
        assert_true(l && r && ft && ns);
        for (uint32_t i = 0; i < ct.n_nodes; i++) {
            l[i] = ct.left[i];
            r[i] = ct.left[i] >= 0 ? ct.left[i] + 1 : -1;
            ft[i] = ct.left[i] >= 0 ? ct.feature[i] : -2;
            ns[i] = ct.n_samples[i];
        }
        arrays[t] = (forest_tree_arrays){ct.n_nodes, l, r, ft, ct.split, ns};
    }
    forest_error err = {0};
    forest *g =
        forest_from_trees(forest_n_features(f), forest_max_samples(f), forest_get_transform(f),
                          true, forest_threshold(f), arrays, n_trees, &err);
    assert_non_null(g);
    for (int t = 0; t < n_trees; t++) {
        free((void *) arrays[t].children_left);
        free((void *) arrays[t].children_right);
        free((void *) arrays[t].feature);
        free((void *) arrays[t].n_node_samples);
    }
    free(arrays);
    return g;
}

/*
 * test_packed_extreme_thresholds: sixteen one-split trees whose thresholds span the whole double
 * range (the bucket width overflows), are sixteen adjacent subnormals (it underflows) or crowd
 * into a few ulps around 1 next to one far outlier (one bucket holds nearly all), scored at, one
 * ulp around and between every threshold and at the extremes.
 */
static void test_packed_extreme_thresholds(void **state)
{
    (void) state;
    enum { N = 16 };
    static const int64_t l[] = {1, -1, -1}, r[] = {2, -1, -1}, ft[] = {0, -2, -2}, ns[] = {9, 4, 5};
    double thr[3][N];
    for (int i = 0; i < N; i++) {
        thr[0][i] = (i % 2 ? 1.0 : -1.0) * pow(10.0, 19.0 * i + 2.0); /* -1e2 .. 1e287 */
        thr[1][i] = 5e-324 * (i + 1);
        thr[2][i] = i == N - 1 ? 1e6 : 1.0 + i * 2.220446049250313e-16;
    }
    thr[0][0] = -1e308;
    thr[0][N - 1] = 1e308;
    for (int c = 0; c < 3; c++) {
        double th[N][3], rows[6 * N + 4];
        forest_tree_arrays trees[N];
        size_t n = 0;
        for (int i = 0; i < N; i++) {
            th[i][0] = thr[c][i];
            th[i][1] = th[i][2] = -2.0;
            trees[i] = (forest_tree_arrays){3, l, r, ft, th[i], ns};
            rows[n++] = thr[c][i];
            rows[n++] = nextafter(thr[c][i], -INFINITY);
            rows[n++] = nextafter(thr[c][i], INFINITY);
            rows[n++] = thr[c][i] / 2;
            rows[n++] = -thr[c][i];
            rows[n++] = thr[c][i] * 3;
        }
        rows[n++] = -INFINITY;
        rows[n++] = INFINITY;
        rows[n++] = NAN;
        rows[n++] = 0.0;
        forest_error err = {0};
        forest *f = forest_from_trees(1, 16, FOREST_TRANSFORM_IDENTITY, false, 0.5, trees, N, &err);
        assert_non_null(f);
        assert_string_equal(forest_layout_name(f), "packed");
        check_batch_matches(f, rows, n);
        forest_free(f);
    }
}

/*
 * test_layouts_match_reference trains models of 1 to 12 features, sized so that each scoring
 * layout is used (asserted by name), and scores fresh rows, rows on and one ulp either side of
 * the split thresholds, and NaNs with all three scorers against the reference walk; the same for
 * the float32-input rebuild of each model. Tree depths 3 to 10 cover every single-row walk of
 * forest_packed.c.
 */
static void test_layouts_match_reference(void **state)
{
    (void) state;
    static const struct {
        int nf, n_trees, sample_size;
        const char *layout;
    } cases[] = {
        {1, 100, 256, "packed"},
        {2, 100, 256, "packed"},
        {3, 100, 256, "packed"},
        {4, 100, 256, "packed"},
        {5, 5, 128, "packed"},
        {8, 3, 32, "packed"},
        {8, 100, 256, "dense"},
        {12, 30, 256, "dense"},
        {3, 9, 2048, "sparse"},
        /* depths 3, 6, 9 and 10: the single-row walk without cache-line blocks */
        {2, 30, 8, "packed"},
        {3, 20, 64, "packed"},
        {3, 10, 512, "packed"},
        {3, 10, 1024, "packed"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        int nf = cases[c].nf;
        double *rows = make_rows(4000, nf, 100 + c);
        forest *f =
            train_or_fail(rows, 4000, nf, cases[c].n_trees, cases[c].sample_size, 0.02, 200 + c);
        if (strcmp(forest_layout_name(f), cases[c].layout) != 0) {
            print_error("case %zu (%d features, %d trees of %d): layout %s, want %s\n", c, nf,
                        cases[c].n_trees, cases[c].sample_size, forest_layout_name(f),
                        cases[c].layout);
            fail();
        }
        double *fresh = make_rows(1237, nf, 300 + c);
        double *edges = edge_rows(f, fresh, 1237);
        check_batch_matches(f, fresh, 1237);
        check_batch_matches(f, edges, 1237);
        check_batch_matches(f, edges, 13);
        forest *g = rebuild_float32(f);
        assert_string_equal(forest_layout_name(g), cases[c].layout);
        check_batch_matches(g, edges, 1237);
        forest_free(g);
        free(edges);
        free(fresh);
        forest_free(f);
        free(rows);
    }
}

/*
 * test_packed_signed_zero_and_duplicates: thresholds 0.0 and -0.0 (equal, one rank), the same
 * threshold in several trees and features, and the inputs -0.0, 0.0, the smallest subnormals,
 * +-1e300 and NaN, through a three-tree hand-built model.
 */
static void test_packed_signed_zero_and_duplicates(void **state)
{
    (void) state;
    static const int64_t l[] = {1, 3, -1, -1, -1}, r[] = {2, 4, -1, -1, -1};
    static const int64_t f0[] = {0, 1, -2, -2, -2}, f1[] = {1, 0, -2, -2, -2};
    static const int64_t ns[] = {16, 9, 7, 4, 5};
    static const double t0[] = {0.0, 1.0, -2, -2, -2}, t1[] = {-0.0, 0.0, -2, -2, -2};
    static const double t2[] = {1.0, -0.0, -2, -2, -2};
    forest_tree_arrays trees[3] = {
        {5, l, r, f0, t0, ns}, {5, l, r, f1, t1, ns}, {5, l, r, f0, t2, ns}};
    forest_error err = {0};
    forest *f = forest_from_trees(2, 16, FOREST_TRANSFORM_IDENTITY, false, 0.5, trees, 3, &err);
    assert_non_null(f);
    assert_string_equal(forest_layout_name(f), "packed");
    const double v[] = {-0.0,   0.0,   4.9e-324, -4.9e-324, 1.0, nextafter(1.0, 2.0),
                        -1e300, 1e300, NAN};
    const size_t nv = sizeof(v) / sizeof(v[0]);
    double rows[2 * 81];
    size_t n = 0;
    for (size_t a = 0; a < nv; a++)
        for (size_t b = 0; b < nv; b++, n++) {
            rows[2 * n] = v[a];
            rows[2 * n + 1] = v[b];
        }
    check_batch_matches(f, rows, n);
    /* x0 = -0.0 and 0.0 both go left at 0.0 and at -0.0 */
    check_same(forest_score(f, (const double[]){-0.0, 5.0}),
               forest_score(f, (const double[]){0.0, 5.0}));
    forest_free(f);
}

static void test_batch_equals_single_dense(void **state)
{
    (void) state;
    double *rows = make_rows(5000, 3, 41);
    forest *f = train_or_fail(rows, 5000, 3, 100, 256, 0.01, 1);
    for (int t = 0; t < forest_n_trees(f); t++)
        assert_true(tree_depth(f, t) <= 10);
    double *fresh = make_rows(1237, 3, 42); /* not a multiple of 8 or 64 */
    check_batch_matches(f, fresh, 1237);
    check_batch_matches(f, fresh, 1);
    check_batch_matches(f, fresh, 7);
    check_batch_matches(f, fresh, 65);
    check_batch_matches(f, fresh, 0);
    forest_free(f);
    free(fresh);
    free(rows);
}

static void test_batch_equals_single_sparse(void **state)
{
    (void) state;
    const size_t n = 20000;
    double *rows = make_rows(n, 3, 43);
    forest *f = train_or_fail(rows, n, 3, 20, 4096, 0.01, 2);
    int deepest = 0;
    for (int t = 0; t < forest_n_trees(f); t++)
        if (tree_depth(f, t) > deepest)
            deepest = tree_depth(f, t);
    if (deepest <= 10) {
        print_error("sample_size 4096 grew trees only %d deep; the sparse layout is untested\n",
                    deepest);
        fail();
    }
    double *fresh = make_rows(3001, 3, 44);
    check_batch_matches(f, fresh, 3001);
    check_batch_matches(f, rows, 777);
    forest_free(f);
    free(fresh);
    free(rows);
}

static void test_batch_equals_single_wide(void **state)
{
    (void) state;
    /* more than 64 features: the batch falls back to one row at a time */
    const int nf = 70;
    double *rows = make_rows(600, nf, 45);
    forest *f = train_or_fail(rows, 600, nf, 20, 128, 0.05, 3);
    check_batch_matches(f, rows, 600);
    forest_free(f);
    free(rows);
}

/* models are bounded: a threshold outside the scores' (0, 1], a tree larger than its sample allows,
 * and training that would make more nodes than any process loads are all refused */
static void test_model_bounds(void **state)
{
    (void) state;
    forest_tree_arrays trees[2] = {
        {5, A_left, A_right, A_feat, A_thr, A_ns},
        {3, B_left, B_right, B_feat, B_thr, B_ns},
    };
    forest_error err = {0};
    const double bad[] = {-1e308, 0.0, 1.5, NAN};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_null(
            forest_from_trees(2, 8, FOREST_TRANSFORM_IDENTITY, false, bad[i], trees, 2, &err));
        assert_int_equal(err.code, FOREST_ERR_MALFORMED);
        assert_non_null(strstr(err.message, "threshold"));
    }
    /* tree A has 5 nodes: with max_samples 2 a tree has at most 3 */
    memset(&err, 0, sizeof(err));
    assert_null(forest_from_trees(2, 2, FOREST_TRANSFORM_IDENTITY, false, 0.6, trees, 2, &err));
    assert_int_equal(err.code, FOREST_ERR_MALFORMED);
    assert_non_null(strstr(err.message, "at most 3"));
    forest *ok = forest_from_trees(2, 3, FOREST_TRANSFORM_IDENTITY, false, 1.0, trees, 2, &err);
    assert_non_null(ok); /* 2 * 3 - 1 = 5 nodes: allowed, and a threshold of 1 too */
    forest_free(ok);

    double *rows = make_rows(300, 2, 4);
    forest_params p = {.n_features = 2,
                       .n_trees = 5000,
                       .sample_size = 256,
                       .contamination = 0.1,
                       .seed = 1,
                       .transform = FOREST_TRANSFORM_IDENTITY};
    memset(&err, 0, sizeof(err));
    assert_null(forest_train(rows, 300, &p, NULL, &err));
    assert_int_equal(err.code, FOREST_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "nodes"));
    free(rows);
}

/* ---- explanations ------------------------------------------------------------------------------
 */

/* on the hand-built trees every credit is known: each cut gives its feature log2(n_node / n_child)
 */
static void test_explain_hand_built(void **state)
{
    (void) state;
    forest_error err = {0};
    forest *f = hand_forest(false, &err);
    assert_non_null(f);
    double credit[2];

    /* A: x0 cuts 8 -> 5, x1 cuts 5 -> 1; B: x1 cuts 8 -> 6 */
    double total = forest_explain(f, (double[]){0.7, 1.0}, credit);
    check_close(credit[0], log2(8.0 / 5.0) / 2, 1e-15);
    check_close(credit[1], (log2(5.0) + log2(8.0 / 6.0)) / 2, 1e-15);
    check_close(total, (log2(8.0) + log2(8.0 / 6.0)) / 2,
                1e-15); /* log2(n_root / n_leaf), averaged */
    /* A: x0 cuts 8 -> 3 (a leaf); B: x1 cuts 8 -> 6 */
    forest_explain(f, (double[]){0.2, 0.0}, credit);
    check_close(credit[0], log2(8.0 / 3.0) / 2, 1e-15);
    check_close(credit[1], log2(8.0 / 6.0) / 2, 1e-15);
    /* a value the model cannot take explains nothing */
    assert_true(isnan(forest_explain(f, (double[]){NAN, 0.0}, credit)));
    assert_true(isnan(forest_explain(f, (double[]){0.0, INFINITY}, credit)));
    forest_free(f);
}

/* a row that stands out on one feature only gets most of its credit there, and more bits in all
 * than an ordinary row */
static void test_explain_isolating_feature(void **state)
{
    (void) state;
    const int nf = 3;
    double *rows = make_rows(4000, nf, 11);
    forest *f = train_or_fail(rows, 4000, nf, 100, 256, 0.01, 5);
    double credit[3], normal[3];
    for (int odd = 0; odd < nf; odd++) {
        double x[3] = {0.1, -0.2, 0.05};
        x[odd] = 4.0; /* ordinary rows lie within +-2, every 50th near 10 */
        double total = forest_explain(f, x, credit);
        double sum = 0.0;
        for (int j = 0; j < nf; j++) {
            sum += credit[j];
            if (j != odd)
                assert_true(credit[odd] > 2.0 * credit[j]);
        }
        check_close(total, sum, 1e-12);
        assert_true(credit[odd] > 0.5 * total);
        assert_true(total > forest_explain(f, (double[]){0.1, -0.2, 0.05}, normal));
    }
    free(rows);
    forest_free(f);
}

/* ---- quantiles
 * ----------------------------------------------------------------------------------- */

static void test_quantile_matches_numpy(void **state)
{
    (void) state;
    /* expected values from numpy.percentile(v, 100 q) (method 'linear') */
    static const struct {
        double v[6];
        size_t n;
        double q, want;
    } cases[] = {
        {{1, 2, 3, 4}, 4, 0.5, 2.5},
        {{4, 3, 2, 1}, 4, 0.9, 3.7},
        {{3, 1, 2}, 3, 0.25, 1.5},
        {{10, 20, 30, 40, 50}, 5, 0.95, 48.0},
        {{0.1, 0.7, 0.3, 0.2, 0.9, 0.5}, 6, 0.33, 0.265}, /* t = 0.65: numpy's b - d(1-t) */
        {{0.5, 0.25, 0.75, 1.0}, 4, 0.75, 0.8125},
        {{5.0}, 1, 0.3, 5.0},
        {{1, 2}, 2, 1.0, 2.0},
        {{1, 2}, 2, 0.0, 1.0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double v[6];
        memcpy(v, cases[i].v, sizeof(v));
        double got = forest_quantile(v, cases[i].n, cases[i].q);
        if (got != cases[i].want) {
            print_error("case %zu: quantile %.17g, numpy %.17g\n", i, got, cases[i].want);
            fail();
        }
        for (size_t k = 1; k < cases[i].n; k++)
            assert_true(v[k - 1] <= v[k]); /* sorted in place */
    }
    assert_true(isnan(forest_quantile(NULL, 0, 0.5)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_average_path_length),
        cmocka_unit_test(test_hand_built_tree),
        cmocka_unit_test(test_single_leaf_trees),
        cmocka_unit_test(test_log1p_transform),
        cmocka_unit_test(test_float32_inputs),
        cmocka_unit_test(test_training_deterministic),
        cmocka_unit_test(test_training_rejects_bad_params),
        cmocka_unit_test(test_threshold_is_training_quantile),
        cmocka_unit_test(test_serialize_round_trip),
        cmocka_unit_test(test_flipped_byte_fails_checksum),
        cmocka_unit_test(test_truncated_buffers),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_valid_tiny),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_batch_equals_single_dense),
        cmocka_unit_test(test_batch_equals_single_sparse),
        cmocka_unit_test(test_batch_equals_single_wide),
        cmocka_unit_test(test_layouts_match_reference),
        cmocka_unit_test(test_packed_signed_zero_and_duplicates),
        cmocka_unit_test(test_packed_extreme_thresholds),
        cmocka_unit_test(test_quantile_matches_numpy),
        cmocka_unit_test(test_model_bounds),
        cmocka_unit_test(test_explain_hand_built),
        cmocka_unit_test(test_explain_isolating_feature),
    };
    return cmocka_run_group_tests_name("forest", tests, NULL, NULL);
}
