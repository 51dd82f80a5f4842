/* common/src/forest.c — Isolation Forest core: training, sklearn-exact scoring, binary format */

/*
 * Design
 * ------
 * A forest is kept twice: once in canonical form and once in a scoring layout.
 *
 * Canonical form: every tree's nodes in breadth-first order, the right child always directly
 * after the left one (right = left + 1), with per-node feature, split threshold and the number
 * of training samples that reached the node. Native training produces this order directly; an
 * imported tree (sklearn stores depth-first) is validated and re-laid out into it by
 * forest_from_trees(), which is the single entry point that every deserializer goes through.
 * The binary format and the JSON interchange format are both dumps of the canonical form.
 *
 * Scoring layout: the per-leaf contribution to the path length, ((depth + 1) + c(n)) - 1, is
 * precomputed with exactly sklearn's floating-point operations (decision_path node count plus
 * _average_path_length minus one), and per-row sums are accumulated tree by tree in tree order,
 * so scores agree with IsolationForest.score_samples to the last bit or nearly so. Shallow
 * forests (every tree at most DENSE_MAX_DEPTH deep, which covers sample_size <= 1024) use a
 * dense heap layout: each tree is padded to a complete binary tree whose internal nodes hold
 * (feature, threshold) and whose bottom level holds leaf values; a leaf above the bottom level
 * is replicated into every bottom slot beneath it, so the walk is a fixed number of branch-free
 * steps i = 2i + 1 + !(x[f] <= t). Deeper forests use a compact node array walked until a leaf.
 * Batches walk each tree for a block of rows at a time, which keeps the tree hot in cache and
 * lets the CPU overlap the independent walks. A dense model of at most PACKED_MAX_FEATURES
 * features is converted once more, into the packed-rank layout of forest_packed.c: the same
 * comparisons made on integer ranks of the inputs, one load and four instructions per level,
 * identical scores. The dense walks here serve the models that do not fit it.
 *
 * "x <= t goes left" with NaN going right matches sklearn's tree.apply; callers reject NaN and
 * infinities anyway. With float32_inputs (models imported from sklearn) each transformed input
 * is rounded to float before comparing with the float64 thresholds, as sklearn does.
 *
 * Randomness comes from cw_prng (xoshiro256**); tree t uses the t-th splitmix64 output of the
 * seed, so a forest is a pure function of (rows, parameters, seed) on every platform.
 */
#include "forest_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "prng.h"

#define EULER_GAMMA        0.5772156649015329
#define BLOCK_ROWS         64
#define BLOCK_MAX_FEATURES 64
#define MAX_NAME_LEN       256

/* set_error fills err (if given) and returns NULL for convenient tail calls. */
static void *set_error(forest_error *err, forest_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static void *set_error(forest_error *err, forest_errcode code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return NULL;
}

double forest_average_path_length(double n)
{
    if (n <= 1.0)
        return 0.0;
    if (n == 2.0)
        return 1.0;
    return 2.0 * (log(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n;
}

const char *forest_transform_name(forest_transform t)
{
    return t == FOREST_TRANSFORM_LOG1P ? "log1p" : "identity";
}

int forest_transform_parse(const char *name, forest_transform *out)
{
    if (strcmp(name, "identity") == 0)
        *out = FOREST_TRANSFORM_IDENTITY;
    else if (strcmp(name, "log1p") == 0)
        *out = FOREST_TRANSFORM_LOG1P;
    else
        return -1;
    return 0;
}

int forest_n_features(const forest *f)
{
    return f->n_features;
}
int forest_n_trees(const forest *f)
{
    return f->n_trees;
}
int forest_max_samples(const forest *f)
{
    return f->max_samples;
}
size_t forest_n_nodes(const forest *f)
{
    return f->n_nodes;
}
forest_transform forest_get_transform(const forest *f)
{
    return f->transform;
}
bool forest_float32_inputs(const forest *f)
{
    return f->float32_inputs;
}
double forest_threshold(const forest *f)
{
    return f->threshold;
}

const char *forest_layout_name(const forest *f)
{
    return f->p_node ? "packed" : f->dense_depth > 0 ? "dense" : "sparse";
}

void forest_get_tree(const forest *f, int t, forest_canonical_tree *out)
{
    uint32_t start = f->tree_start[t];
    out->n_nodes = f->tree_start[t + 1] - start;
    out->left = f->left + start;
    out->feature = f->feature + start;
    out->split = f->split + start;
    out->n_samples = f->n_samples + start;
}

const char *forest_feature_name(const forest *f, int i)
{
    if (!f->feature_names || i < 0 || i >= f->n_features)
        return NULL;
    return f->feature_names[i];
}

static void free_names(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* forest_set_feature_names replaces the names with copies of names[0..n_features). */
int forest_set_feature_names(forest *f, const char *const *names)
{
    char **copy = NULL;

    if (names) {
        copy = calloc((size_t) f->n_features, sizeof(char *));
        if (!copy)
            return -1;
        for (int i = 0; i < f->n_features; i++) {
            copy[i] = strndup(names[i] ? names[i] : "", MAX_NAME_LEN);
            if (!copy[i]) {
                free_names(copy, f->n_features);
                return -1;
            }
        }
    }
    free_names(f->feature_names, f->n_features);
    f->feature_names = copy;
    return 0;
}

void forest_free(forest *f)
{
    if (!f)
        return;
    free_names(f->feature_names, f->n_features);
    free(f->tree_start);
    free(f->left);
    free(f->feature);
    free(f->split);
    free(f->n_samples);
    free(f->d_feature);
    free(f->d_split);
    free(f->d_leaf);
    free(f->s_nodes);
    free(f->p_node);
    free(f->p_thr);
    free(f->b_node);
    free(f->p_first);
    free(f);
}

/* ------------------------------------------------------------------------------------------ */
/* scoring layout                                                                               */

static inline double leaf_value(int depth, int32_t n_samples)
{
    /* sklearn: decision_path node count (depth + 1) + c(n) - 1.0, in that order */
    return ((double) (depth + 1) + forest_average_path_length((double) n_samples)) - 1.0;
}

/* tree_depths fills depth[] for the canonical nodes of tree t and returns the tree's depth. */
static int tree_depths(const forest *f, int t, int *depth)
{
    uint32_t start = f->tree_start[t], end = f->tree_start[t + 1];
    int max_depth = 0;

    depth[0] = 0;
    for (uint32_t i = 0; i < end - start; i++) {
        int32_t l = f->left[start + i];
        if (l >= 0) {
            depth[l] = depth[l + 1] = depth[i] + 1;
            if (depth[i] + 1 > max_depth)
                max_depth = depth[i] + 1;
        }
    }
    return max_depth;
}

/* fill_dense writes canonical node i (at dense heap index k, level d) of tree t into the
 * dense arrays of depth D, recursing into children; a leaf fills every bottom slot below k. */
static void fill_dense(forest *f, int t, uint32_t i, uint32_t k, int d, int D, const int *depth)
{
    uint32_t n_internal = (1u << D) - 1;
    uint16_t *ft = f->d_feature + (size_t) t * n_internal;
    double *th = f->d_split + (size_t) t * n_internal;
    double *lv = f->d_leaf + (size_t) t * (n_internal + 1);
    uint32_t start = f->tree_start[t];
    int32_t l = f->left[start + i];

    if (l >= 0) {
        ft[k] = (uint16_t) f->feature[start + i];
        th[k] = f->split[start + i];
        fill_dense(f, t, (uint32_t) l, 2 * k + 1, d + 1, D, depth);
        fill_dense(f, t, (uint32_t) l + 1, 2 * k + 2, d + 1, D, depth);
        return;
    }

    /* leaf above or at the bottom: every internal node below it is a don't-care (same value
     * in all of its bottom slots), every bottom slot below it gets the leaf's value */
    double v = leaf_value(depth[i], f->n_samples[start + i]);
    uint32_t first = k, count = 1;
    for (int level = d; level < D; level++) {
        for (uint32_t j = first; j < first + count; j++) {
            ft[j] = 0;
            th[j] = 0.0;
        }
        first = 2 * first + 1;
        count *= 2;
    }
    for (uint32_t j = first; j < first + count; j++)
        lv[j - n_internal] = v;
}

/* build_scoring_layout derives the dense or sparse layout from the canonical form. */
static int build_scoring_layout(forest *f, forest_error *err)
{
    int max_depth = 0;
    uint32_t widest = 0;
    int *depth;

    for (int t = 0; t < f->n_trees; t++) {
        uint32_t n = f->tree_start[t + 1] - f->tree_start[t];
        if (n > widest)
            widest = n;
    }
    depth = malloc(sizeof(int) * widest);
    if (!depth)
        goto nomem;
    for (int t = 0; t < f->n_trees; t++) {
        int d = tree_depths(f, t, depth);
        if (d > max_depth)
            max_depth = d;
    }

    f->denominator = (double) f->n_trees * forest_average_path_length((double) f->max_samples);
    if (max_depth <= DENSE_MAX_DEPTH && f->n_features <= 65535) {
        int D = max_depth;
        size_t n_internal = ((size_t) 1 << D) - 1;
        f->dense_depth = D > 0 ? D : 0;
        if (D == 0) {
            /* single-leaf trees: keep the sparse layout, it handles depth 0 */
            goto sparse;
        }
        f->d_feature = malloc(sizeof(uint16_t) * n_internal * f->n_trees);
        f->d_split = malloc(sizeof(double) * n_internal * f->n_trees);
        /* padded with all-zero trees for forest_packed.c's eight-tree walks */
        f->d_leaf = calloc((n_internal + 1) * dense_padded_trees(f), sizeof(double));
        if (!f->d_feature || !f->d_split || !f->d_leaf)
            goto nomem;
        for (int t = 0; t < f->n_trees; t++) {
            tree_depths(f, t, depth);
            fill_dense(f, t, 0, 0, 0, D, depth);
        }
        free(depth);
        depth = NULL;
        if (forest_packed_build(f) != 0)
            goto nomem;
        return 0;
    }
sparse:
    f->dense_depth = 0;
    f->s_nodes = malloc(sizeof(sparse_node) * f->n_nodes);
    if (!f->s_nodes)
        goto nomem;
    for (int t = 0; t < f->n_trees; t++) {
        uint32_t start = f->tree_start[t];
        tree_depths(f, t, depth);
        for (uint32_t i = 0; i < f->tree_start[t + 1] - start; i++) {
            sparse_node *sn = &f->s_nodes[start + i];
            sn->left = f->left[start + i];
            sn->feature = f->left[start + i] >= 0 ? f->feature[start + i] : -1;
            sn->value = sn->feature >= 0 ? f->split[start + i]
                                         : leaf_value(depth[i], f->n_samples[start + i]);
        }
    }
    free(depth);
    return 0;

nomem:
    free(depth);
    set_error(err, FOREST_ERR_NOMEM, "out of memory building the scoring layout");
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* scoring                                                                                      */

/* walk_block adds tree t's leaf values for nrows transformed rows (stride n_features). */
static inline void walk_block(const forest *f, int t, const double *xt, int nrows, double *sum)
{
    int nf = f->n_features;

    if (f->dense_depth > 0) {
        int D = f->dense_depth;
        uint32_t n_internal = (1u << D) - 1;
        const uint16_t *ft = f->d_feature + (size_t) t * n_internal;
        const double *th = f->d_split + (size_t) t * n_internal;
        const double *lv = f->d_leaf + (size_t) t * (n_internal + 1) - n_internal;
        /* eight walks in lockstep, their indices in registers: eight independent load
         * chains in flight, so the walk is bound by throughput rather than load latency
         * (batches pad nrows to a multiple of 8; a single row walks alone) */
        if (nrows & 7) {
            for (int r = 0; r < nrows; r++) {
                const double *x = xt + (size_t) r * nf;
                uint32_t i = 0;
                for (int k = 0; k < D; k++)
                    i = 2 * i + 1 + !(x[ft[i]] <= th[i]);
                sum[r] += lv[i];
            }
            return;
        }
        for (int r = 0; r < nrows; r += 8) {
            const double *x0 = xt + (size_t) r * nf, *x1 = x0 + nf, *x2 = x1 + nf, *x3 = x2 + nf,
                         *x4 = x3 + nf, *x5 = x4 + nf, *x6 = x5 + nf, *x7 = x6 + nf;
            uint32_t i0 = 0, i1 = 0, i2 = 0, i3 = 0, i4 = 0, i5 = 0, i6 = 0, i7 = 0;
            for (int k = 0; k < D; k++) {
#define STEP(i, x) i = 2 * i + 1 + !(x[ft[i]] <= th[i])
                STEP(i0, x0);
                STEP(i1, x1);
                STEP(i2, x2);
                STEP(i3, x3);
                STEP(i4, x4);
                STEP(i5, x5);
                STEP(i6, x6);
                STEP(i7, x7);
#undef STEP
            }
            sum[r] += lv[i0];
            sum[r + 1] += lv[i1];
            sum[r + 2] += lv[i2];
            sum[r + 3] += lv[i3];
            sum[r + 4] += lv[i4];
            sum[r + 5] += lv[i5];
            sum[r + 6] += lv[i6];
            sum[r + 7] += lv[i7];
        }
    } else {
        const sparse_node *root = f->s_nodes + f->tree_start[t];
        for (int r = 0; r < nrows; r++) {
            const double *x = xt + (size_t) r * nf;
            const sparse_node *nd = root;
            while (nd->feature >= 0)
                nd = root + nd->left + !(x[nd->feature] <= nd->value);
            sum[r] += nd->value;
        }
    }
}

/*
 * walk_trees_dense adds the leaf values of trees [t0, t0 + lanes) for one transformed row,
 * walking the trees in lockstep (lanes independent load chains: a single row touches each tree
 * once, so its nodes mostly come from L2 and the walk is bound by load latency unless many
 * chains are in flight) and adding in tree order. lanes is a constant at every call (16 or 8).
 */
static inline double walk_trees_dense(const forest *f, int t0, const double *x, double sum,
                                      const int lanes)
{
    int D = f->dense_depth;
    size_t n_internal = ((size_t) 1 << D) - 1;
    const uint16_t *ft = f->d_feature + (size_t) t0 * n_internal;
    const double *th = f->d_split + (size_t) t0 * n_internal;
    const double *lv = f->d_leaf + (size_t) t0 * (n_internal + 1) - n_internal;
    size_t i[16] = {0};

    for (int k = 0; k < D; k++) {
#pragma GCC unroll 16
        for (int j = 0; j < lanes; j++) {
            size_t o = j * n_internal;
            i[j] = 2 * i[j] + 1 + !(x[ft[o + i[j]]] <= th[o + i[j]]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < lanes; j++)
        sum += lv[j * (n_internal + 1) + i[j]];
    return sum;
}

double forest_score(const forest *f, const double *row)
{
    double stackbuf[BLOCK_MAX_FEATURES];
    double *xt = stackbuf;
    double sum = 0.0;

    if (f->p_node) {
        double x[PACKED_MAX_FEATURES];
        for (int j = 0; j < f->n_features; j++)
            x[j] = transform_value(f, row[j]);
        return sum_to_score(f, forest_packed_sum_row(f, x));
    }
    if (f->n_features > BLOCK_MAX_FEATURES) {
        xt = malloc(sizeof(double) * f->n_features);
        if (!xt)
            return NAN;
    }
    for (int j = 0; j < f->n_features; j++)
        xt[j] = transform_value(f, row[j]);
    int t = 0;
    if (f->dense_depth > 0) {
        for (; t + 16 <= f->n_trees; t += 16)
            sum = walk_trees_dense(f, t, xt, sum, 16);
        for (; t + 8 <= f->n_trees; t += 8)
            sum = walk_trees_dense(f, t, xt, sum, 8);
    }
    for (; t < f->n_trees; t++)
        walk_block(f, t, xt, 1, &sum);
    if (xt != stackbuf)
        free(xt);
    return sum_to_score(f, sum);
}

void forest_score_batch(const forest *f, const double *rows, size_t n, double *out)
{
    int nf = f->n_features;
    double xt[BLOCK_ROWS * BLOCK_MAX_FEATURES];
    double sum[BLOCK_ROWS];

    if (f->p_node) {
        forest_packed_score(f, rows, n, out);
        return;
    }
    if (nf > BLOCK_MAX_FEATURES) {
        /* wide rows: one at a time through a heap buffer (dense models pad to 8 rows) */
        double *one = malloc(sizeof(double) * nf * 8), s8[8];
        for (size_t i = 0; i < n; i++) {
            if (!one) {
                out[i] = NAN;
                continue;
            }
            for (int r = 0; r < 8; r++) {
                s8[r] = 0.0;
                for (int j = 0; j < nf; j++)
                    one[r * nf + j] = transform_value(f, rows[i * nf + j]);
            }
            for (int t = 0; t < f->n_trees; t++)
                walk_block(f, t, one, f->dense_depth > 0 ? 8 : 1, s8);
            out[i] = sum_to_score(f, s8[0]);
        }
        free(one);
        return;
    }
    for (size_t base = 0; base < n; base += BLOCK_ROWS) {
        int nrows = n - base < BLOCK_ROWS ? (int) (n - base) : BLOCK_ROWS;
        int padded = f->dense_depth > 0 ? (nrows + 7) & ~7 : nrows;
        for (int r = 0; r < padded; r++) {
            /* rows past the end repeat the last row; their sums are discarded */
            size_t src = base + (r < nrows ? r : nrows - 1);
            sum[r] = 0.0;
            for (int j = 0; j < nf; j++)
                xt[r * nf + j] = transform_value(f, rows[src * nf + j]);
        }
        for (int t = 0; t < f->n_trees; t++)
            walk_block(f, t, xt, padded, sum);
        for (int r = 0; r < nrows; r++)
            out[base + r] = sum_to_score(f, sum[r]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* quantiles and summaries                                                                      */

/*
 * forest_quantile follows numpy's default ('linear') percentile: h = (n-1) q, and the lerp
 * a + (b-a) t, computed as b - (b-a)(1-t) when t >= 0.5, as numpy does for symmetry.
 */
double forest_quantile(double *values, size_t n, double q)
{
    if (n == 0)
        return NAN;
    qsort(values, n, sizeof(double), forest_cmp_double);
    double h = (double) (n - 1) * q;
    size_t lo = (size_t) floor(h);
    if (lo >= n - 1)
        return values[n - 1];
    double t = h - (double) lo, a = values[lo], b = values[lo + 1], diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

int forest_summarize_scores(const double *scores, size_t n, forest_score_summary *out)
{
    double *copy;
    double total = 0.0;

    memset(out, 0, sizeof(*out));
    out->n = n;
    if (n == 0)
        return 0;
    copy = malloc(sizeof(double) * n);
    if (!copy)
        return -1;
    memcpy(copy, scores, sizeof(double) * n);
    for (size_t i = 0; i < n; i++)
        total += copy[i];
    out->p50 = forest_quantile(copy, n, 0.50); /* sorts */
    out->p90 = forest_quantile(copy, n, 0.90);
    out->p99 = forest_quantile(copy, n, 0.99);
    out->min = copy[0];
    out->max = copy[n - 1];
    out->mean = total / (double) n;
    free(copy);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* construction from canonical arrays                                                           */

static forest *forest_alloc(int n_features, int n_trees, size_t n_nodes)
{
    forest *f = calloc(1, sizeof(forest));
    if (!f)
        return NULL;
    f->n_features = n_features;
    f->n_trees = n_trees;
    f->n_nodes = n_nodes;
    f->tree_start = calloc((size_t) n_trees + 1, sizeof(uint32_t));
    f->left = malloc(sizeof(int32_t) * (n_nodes ? n_nodes : 1));
    f->feature = malloc(sizeof(int32_t) * (n_nodes ? n_nodes : 1));
    f->split = malloc(sizeof(double) * (n_nodes ? n_nodes : 1));
    f->n_samples = malloc(sizeof(int32_t) * (n_nodes ? n_nodes : 1));
    if (!f->tree_start || !f->left || !f->feature || !f->split || !f->n_samples) {
        forest_free(f);
        return NULL;
    }
    return f;
}

/*
 * forest_from_trees validates each tree (children in range, both or neither child, every
 * node but the root with exactly one parent, all nodes reachable from the root, features in
 * range, finite thresholds, non-negative sample counts) and re-lays it out breadth-first with
 * adjacent children. Any violation is FOREST_ERR_MALFORMED naming the tree and node.
 */
forest *forest_from_trees(int n_features, int max_samples, forest_transform transform,
                          bool float32_inputs, double threshold, const forest_tree_arrays *trees,
                          int n_trees, forest_error *err)
{
    size_t total = 0, widest = 0;
    forest *f = NULL;
    int64_t *order = NULL;
    uint8_t *seen = NULL;

    if (n_features < 1 || n_features > FOREST_MAX_FEATURES)
        return set_error(err, FOREST_ERR_MALFORMED, "n_features must be between 1 and %d",
                         FOREST_MAX_FEATURES);
    if (n_trees < 1 || n_trees > FOREST_MAX_TREES)
        return set_error(err, FOREST_ERR_MALFORMED, "a model needs between 1 and %d trees",
                         FOREST_MAX_TREES);
    if (max_samples < 1 || max_samples > FOREST_MAX_SAMPLES)
        return set_error(err, FOREST_ERR_MALFORMED, "max_samples must be between 1 and %d",
                         FOREST_MAX_SAMPLES);
    if (!isfinite(threshold))
        return set_error(err, FOREST_ERR_MALFORMED, "threshold must be a finite number");
    if (transform != FOREST_TRANSFORM_IDENTITY && transform != FOREST_TRANSFORM_LOG1P)
        return set_error(err, FOREST_ERR_MALFORMED, "unknown transform");
    for (int t = 0; t < n_trees; t++) {
        size_t n = trees[t].n_nodes;
        if (n < 1 || n > (size_t) 2 * FOREST_MAX_SAMPLES)
            return set_error(err, FOREST_ERR_MALFORMED, "tree %d has %zu nodes", t, n);
        total += n;
        if (n > widest)
            widest = n;
    }
    if (total > (size_t) INT32_MAX)
        return set_error(err, FOREST_ERR_MALFORMED, "model too large");

    f = forest_alloc(n_features, n_trees, total);
    order = malloc(sizeof(int64_t) * widest);
    seen = malloc(widest);
    if (!f || !order || !seen) {
        set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
        goto fail;
    }
    f->max_samples = max_samples;
    f->transform = transform;
    f->float32_inputs = float32_inputs;
    f->threshold = threshold;

    size_t base = 0;
    for (int t = 0; t < n_trees; t++) {
        const forest_tree_arrays *tr = &trees[t];
        int64_t n = (int64_t) tr->n_nodes;

        memset(seen, 0, (size_t) n);
        for (int64_t i = 0; i < n; i++) {
            int64_t l = tr->children_left[i], r = tr->children_right[i];
            if ((l == -1) != (r == -1) ||
                (l != -1 && (l < 1 || l >= n || r < 1 || r >= n || l == r))) {
                set_error(err, FOREST_ERR_MALFORMED, "tree %d node %lld: invalid children", t,
                          (long long) i);
                goto fail;
            }
            if (tr->n_node_samples[i] < 0 || tr->n_node_samples[i] > INT32_MAX) {
                set_error(err, FOREST_ERR_MALFORMED, "tree %d node %lld: invalid n_node_samples", t,
                          (long long) i);
                goto fail;
            }
            if (l == -1)
                continue;
            if (tr->feature[i] < 0 || tr->feature[i] >= n_features) {
                set_error(err, FOREST_ERR_MALFORMED,
                          "tree %d node %lld: feature %lld out of range [0, %d)", t, (long long) i,
                          (long long) tr->feature[i], n_features);
                goto fail;
            }
            if (!isfinite(tr->threshold[i])) {
                set_error(err, FOREST_ERR_MALFORMED, "tree %d node %lld: threshold not finite", t,
                          (long long) i);
                goto fail;
            }
            if (seen[l]++ || seen[r]++) {
                set_error(err, FOREST_ERR_MALFORMED, "tree %d: node with two parents", t);
                goto fail;
            }
        }

        /* breadth-first walk from the root: order[] is old index by new index */
        int64_t head = 0, tail = 1;
        order[0] = 0;
        f->tree_start[t] = (uint32_t) base;
        while (head < tail) {
            int64_t old = order[head];
            size_t at = base + (size_t) head;
            int64_t l = tr->children_left[old];
            f->n_samples[at] = (int32_t) tr->n_node_samples[old];
            if (l == -1) {
                f->left[at] = -1;
                f->feature[at] = -1;
                f->split[at] = 0.0;
            } else {
                if (tail + 2 > n) {
                    set_error(err, FOREST_ERR_MALFORMED, "tree %d: not a tree", t);
                    goto fail;
                }
                f->left[at] = (int32_t) tail;
                f->feature[at] = (int32_t) tr->feature[old];
                f->split[at] = tr->threshold[old];
                order[tail++] = l;
                order[tail++] = tr->children_right[old];
            }
            head++;
        }
        if (tail != n) {
            set_error(err, FOREST_ERR_MALFORMED, "tree %d: %lld of %lld nodes unreachable", t,
                      (long long) (n - tail), (long long) n);
            goto fail;
        }
        base += (size_t) n;
    }
    f->tree_start[n_trees] = (uint32_t) base;
    free(order);
    free(seen);
    order = NULL;
    seen = NULL;
    if (build_scoring_layout(f, err) != 0)
        goto fail;
    return f;

fail:
    free(order);
    free(seen);
    forest_free(f);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* training                                                                                     */

typedef struct build_state {
    const double *xt; /* transformed rows */
    int nf;
    int max_depth;
    uint32_t *rows; /* sampled row indices, partitioned in place per node */
    /* growing canonical arrays of the tree under construction */
    int32_t *left, *feature, *n_samples;
    double *split;
    uint32_t *lo, *hi; /* row range [lo, hi) of each node */
    int *depth;
    int *perm;
} build_state;

/*
 * build_tree grows one isolation tree breadth-first over rows[0..psi): each node either
 * becomes a leaf (depth limit, one sample, or every feature constant) or splits on a random
 * non-constant feature at a uniform point in [min, max). Returns the node count.
 */
static uint32_t build_tree(build_state *bs, uint32_t psi, cw_prng *rng)
{
    uint32_t n_nodes = 1;
    const int nf = bs->nf;

    bs->lo[0] = 0;
    bs->hi[0] = psi;
    bs->depth[0] = 0;
    for (uint32_t i = 0; i < n_nodes; i++) {
        uint32_t lo = bs->lo[i], hi = bs->hi[i];
        int chosen = -1;
        double mn = 0, mx = 0;

        bs->n_samples[i] = (int32_t) (hi - lo);
        bs->left[i] = -1;
        bs->feature[i] = -1;
        bs->split[i] = 0.0;
        if (bs->depth[i] >= bs->max_depth || hi - lo <= 1)
            continue;

        /* draw features without replacement until one is not constant in this node */
        for (int j = 0; j < nf; j++)
            bs->perm[j] = j;
        for (int j = 0; j < nf && chosen < 0; j++) {
            int k = j + (int) cw_prng_below(rng, (uint64_t) (nf - j));
            int tmp = bs->perm[j];
            bs->perm[j] = bs->perm[k];
            bs->perm[k] = tmp;
            int feat = bs->perm[j];
            mn = mx = bs->xt[(size_t) bs->rows[lo] * nf + feat];
            for (uint32_t r = lo + 1; r < hi; r++) {
                double v = bs->xt[(size_t) bs->rows[r] * nf + feat];
                if (v < mn)
                    mn = v;
                if (v > mx)
                    mx = v;
            }
            if (mx > mn)
                chosen = feat;
        }
        if (chosen < 0)
            continue;

        double thr = mn + cw_prng_double(rng) * (mx - mn);
        if (!(thr < mx))
            thr = mn;

        /* partition [lo, hi) into <= thr and > thr */
        uint32_t a = lo, b = hi;
        while (a < b) {
            if (bs->xt[(size_t) bs->rows[a] * nf + chosen] <= thr) {
                a++;
            } else {
                uint32_t tmp = bs->rows[a];
                bs->rows[a] = bs->rows[--b];
                bs->rows[b] = tmp;
            }
        }
        bs->left[i] = (int32_t) n_nodes;
        bs->feature[i] = chosen;
        bs->split[i] = thr;
        bs->lo[n_nodes] = lo;
        bs->hi[n_nodes] = a;
        bs->lo[n_nodes + 1] = a;
        bs->hi[n_nodes + 1] = hi;
        bs->depth[n_nodes] = bs->depth[n_nodes + 1] = bs->depth[i] + 1;
        n_nodes += 2;
    }
    return n_nodes;
}

forest *forest_train(const double *rows, size_t n_rows, const forest_params *p,
                     forest_score_summary *summary, forest_error *err)
{
    forest *f = NULL;
    double *xt = NULL, *scores = NULL;
    uint32_t *idx = NULL;
    int32_t *t_left = NULL, *t_feature = NULL, *t_nsamples = NULL;
    double *t_split = NULL;
    build_state bs = {0};
    uint32_t psi;
    size_t cap, used = 0;

    if (p->n_features < 1 || p->n_features > FOREST_MAX_FEATURES)
        return set_error(err, FOREST_ERR_INVALID_ARG, "n_features must be between 1 and %d",
                         FOREST_MAX_FEATURES);
    if (p->n_trees < 1 || p->n_trees > FOREST_MAX_TREES)
        return set_error(err, FOREST_ERR_INVALID_ARG, "n_trees must be between 1 and %d",
                         FOREST_MAX_TREES);
    if (p->sample_size < 2 || p->sample_size > FOREST_MAX_SAMPLES)
        return set_error(err, FOREST_ERR_INVALID_ARG, "sample_size must be between 2 and %d",
                         FOREST_MAX_SAMPLES);
    if (!(p->contamination > 0.0 && p->contamination <= 0.5))
        return set_error(err, FOREST_ERR_INVALID_ARG, "contamination must be in (0, 0.5]");
    if (p->transform != FOREST_TRANSFORM_IDENTITY && p->transform != FOREST_TRANSFORM_LOG1P)
        return set_error(err, FOREST_ERR_INVALID_ARG, "unknown transform");
    if (n_rows < 2 || n_rows > UINT32_MAX)
        return set_error(err, FOREST_ERR_INVALID_ARG, "training needs at least 2 rows (got %zu)",
                         n_rows);

    psi = n_rows < (size_t) p->sample_size ? (uint32_t) n_rows : (uint32_t) p->sample_size;
    cap = (size_t) p->n_trees * (2 * (size_t) psi - 1);

    xt = malloc(sizeof(double) * n_rows * p->n_features);
    idx = malloc(sizeof(uint32_t) * n_rows);
    bs.rows = malloc(sizeof(uint32_t) * psi);
    bs.left = malloc(sizeof(int32_t) * 2 * psi);
    bs.feature = malloc(sizeof(int32_t) * 2 * psi);
    bs.n_samples = malloc(sizeof(int32_t) * 2 * psi);
    bs.split = malloc(sizeof(double) * 2 * psi);
    bs.lo = malloc(sizeof(uint32_t) * 2 * psi);
    bs.hi = malloc(sizeof(uint32_t) * 2 * psi);
    bs.depth = malloc(sizeof(int) * 2 * psi);
    bs.perm = malloc(sizeof(int) * p->n_features);
    t_left = malloc(sizeof(int32_t) * cap);
    t_feature = malloc(sizeof(int32_t) * cap);
    t_nsamples = malloc(sizeof(int32_t) * cap);
    t_split = malloc(sizeof(double) * cap);
    f = calloc(1, sizeof(forest));
    if (!xt || !idx || !bs.rows || !bs.left || !bs.feature || !bs.n_samples || !bs.split ||
        !bs.lo || !bs.hi || !bs.depth || !bs.perm || !t_left || !t_feature || !t_nsamples ||
        !t_split || !f) {
        set_error(err, FOREST_ERR_NOMEM, "out of memory training a forest");
        goto fail;
    }
    f->tree_start = calloc((size_t) p->n_trees + 1, sizeof(uint32_t));
    if (!f->tree_start) {
        set_error(err, FOREST_ERR_NOMEM, "out of memory training a forest");
        goto fail;
    }
    f->n_features = p->n_features;
    f->n_trees = p->n_trees;
    f->max_samples = (int) psi;
    f->transform = p->transform;

    for (size_t i = 0; i < n_rows * p->n_features; i++) {
        double v = rows[i];
        if (!isfinite(v) || (p->transform == FOREST_TRANSFORM_LOG1P && v <= -1.0)) {
            set_error(err, FOREST_ERR_INVALID_ARG, "row %zu has an invalid value %g",
                      i / p->n_features, v);
            goto fail;
        }
        xt[i] = transform_value(f, v);
    }
    for (size_t i = 0; i < n_rows; i++)
        idx[i] = (uint32_t) i;

    bs.xt = xt;
    bs.nf = p->n_features;
    bs.max_depth = (int) ceil(log2((double) (psi > 2 ? psi : 2)));

    uint64_t seeder = p->seed;
    for (int t = 0; t < p->n_trees; t++) {
        cw_prng rng;
        cw_prng_seed(&rng, cw_splitmix64(&seeder));

        /* psi rows without replacement: partial Fisher-Yates over idx, undone afterwards */
        uint32_t *swaps = bs.lo; /* reuse as scratch: positions swapped with */
        for (uint32_t j = 0; j < psi; j++) {
            uint32_t k = j + (uint32_t) cw_prng_below(&rng, n_rows - j);
            uint32_t tmp = idx[j];
            idx[j] = idx[k];
            idx[k] = tmp;
            swaps[j] = k;
        }
        memcpy(bs.rows, idx, sizeof(uint32_t) * psi);
        for (uint32_t j = psi; j-- > 0;) {
            uint32_t k = swaps[j], tmp = idx[j];
            idx[j] = idx[k];
            idx[k] = tmp;
        }

        uint32_t n = build_tree(&bs, psi, &rng);
        f->tree_start[t] = (uint32_t) used;
        memcpy(t_left + used, bs.left, sizeof(int32_t) * n);
        memcpy(t_feature + used, bs.feature, sizeof(int32_t) * n);
        memcpy(t_nsamples + used, bs.n_samples, sizeof(int32_t) * n);
        memcpy(t_split + used, bs.split, sizeof(double) * n);
        used += n;
    }
    f->tree_start[p->n_trees] = (uint32_t) used;
    f->n_nodes = used;
    f->left = t_left;
    f->feature = t_feature;
    f->n_samples = t_nsamples;
    f->split = t_split;
    t_left = t_feature = t_nsamples = NULL;
    t_split = NULL;

    if (build_scoring_layout(f, err) != 0)
        goto fail;

    scores = malloc(sizeof(double) * n_rows);
    if (!scores) {
        set_error(err, FOREST_ERR_NOMEM, "out of memory scoring the training rows");
        goto fail;
    }
    forest_score_batch(f, rows, n_rows, scores);
    if (summary && forest_summarize_scores(scores, n_rows, summary) != 0) {
        set_error(err, FOREST_ERR_NOMEM, "out of memory summarizing training scores");
        goto fail;
    }
    f->threshold = forest_quantile(scores, n_rows, 1.0 - p->contamination);

    free(scores);
    free(xt);
    free(idx);
    free(bs.rows);
    free(bs.left);
    free(bs.feature);
    free(bs.n_samples);
    free(bs.split);
    free(bs.lo);
    free(bs.hi);
    free(bs.depth);
    free(bs.perm);
    return f;

fail:
    free(scores);
    free(xt);
    free(idx);
    free(bs.rows);
    free(bs.left);
    free(bs.feature);
    free(bs.n_samples);
    free(bs.split);
    free(bs.lo);
    free(bs.hi);
    free(bs.depth);
    free(bs.perm);
    free(t_left);
    free(t_feature);
    free(t_nsamples);
    free(t_split);
    forest_free(f);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* binary format                                                                                */

/*
 * Layout (little-endian):
 *   "CWIF" u16 version u16 flags u32 n_features u32 n_trees u32 max_samples u32 transform
 *   f64 threshold u64 n_nodes, u32 nodes-per-tree[n_trees],
 *   if flags & 2: n_features × (u16 length, bytes) feature names,
 *   n_nodes × (i32 left, i32 feature, f64 split, i32 n_samples), u32 CRC-32C of all before.
 * flags: 1 = float32_inputs, 2 = feature names present.
 */
#define HEADER_SIZE 40
#define NODE_SIZE   20

static void put_u16(uint8_t **p, uint16_t v)
{
    (*p)[0] = (uint8_t) v;
    (*p)[1] = (uint8_t) (v >> 8);
    *p += 2;
}
static void put_u32(uint8_t **p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        (*p)[i] = (uint8_t) (v >> (8 * i));
    *p += 4;
}
static void put_u64(uint8_t **p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        (*p)[i] = (uint8_t) (v >> (8 * i));
    *p += 8;
}
static void put_f64(uint8_t **p, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(p, v);
}
static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t) p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t) p[i] << (8 * i);
    return v;
}
static double get_f64(const uint8_t *p)
{
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

size_t forest_serialized_size(const forest *f)
{
    size_t size = HEADER_SIZE + 4 * (size_t) f->n_trees + NODE_SIZE * f->n_nodes + 4;
    if (f->feature_names)
        for (int i = 0; i < f->n_features; i++)
            size += 2 + strlen(f->feature_names[i]);
    return size;
}

void forest_serialize(const forest *f, uint8_t *buf)
{
    uint8_t *p = buf;

    memcpy(p, "CWIF", 4);
    p += 4;
    put_u16(&p, FOREST_FORMAT_VERSION);
    put_u16(&p, (uint16_t) ((f->float32_inputs ? 1 : 0) | (f->feature_names ? 2 : 0)));
    put_u32(&p, (uint32_t) f->n_features);
    put_u32(&p, (uint32_t) f->n_trees);
    put_u32(&p, (uint32_t) f->max_samples);
    put_u32(&p, (uint32_t) f->transform);
    put_f64(&p, f->threshold);
    put_u64(&p, (uint64_t) f->n_nodes);
    for (int t = 0; t < f->n_trees; t++)
        put_u32(&p, f->tree_start[t + 1] - f->tree_start[t]);
    if (f->feature_names) {
        for (int i = 0; i < f->n_features; i++) {
            size_t len = strlen(f->feature_names[i]);
            put_u16(&p, (uint16_t) len);
            memcpy(p, f->feature_names[i], len);
            p += len;
        }
    }
    for (size_t i = 0; i < f->n_nodes; i++) {
        put_u32(&p, (uint32_t) f->left[i]);
        put_u32(&p, (uint32_t) f->feature[i]);
        put_f64(&p, f->split[i]);
        put_u32(&p, (uint32_t) f->n_samples[i]);
    }
    put_u32(&p, cw_crc32c(buf, (size_t) (p - buf)));
}

uint32_t forest_serialized_checksum(const uint8_t *buf, size_t len)
{
    return len >= 4 ? get_u32(buf + len - 4) : 0;
}

/*
 * forest_deserialize checks the magic, the length, the checksum and the version, in that order,
 * then rebuilds the forest through forest_from_trees so a corrupted-but-checksummed model is
 * still fully validated.
 */
forest *forest_deserialize(const uint8_t *buf, size_t len, forest_error *err)
{
    forest_tree_arrays *trees = NULL;
    int64_t *ints = NULL;
    double *splits = NULL;
    char **names = NULL;
    forest *f = NULL;

    if (len < HEADER_SIZE + 4 || memcmp(buf, "CWIF", 4) != 0)
        return set_error(err, FOREST_ERR_MALFORMED,
                         "not a chainwatch model (bad magic or too short)");
    if (get_u32(buf + len - 4) != cw_crc32c(buf, len - 4))
        return set_error(err, FOREST_ERR_CHECKSUM, "model checksum mismatch");
    uint16_t version = get_u16(buf + 4), flags = get_u16(buf + 6);
    if (version != FOREST_FORMAT_VERSION)
        return set_error(err, FOREST_ERR_VERSION,
                         "model format version %u is not supported (expected %d)", version,
                         FOREST_FORMAT_VERSION);
    uint32_t n_features = get_u32(buf + 8), n_trees = get_u32(buf + 12);
    uint32_t max_samples = get_u32(buf + 16), transform = get_u32(buf + 20);
    double threshold = get_f64(buf + 24);
    uint64_t n_nodes = get_u64(buf + 32);
    const uint8_t *p = buf + HEADER_SIZE, *end = buf + len - 4;

    if (n_features < 1 || n_features > FOREST_MAX_FEATURES || n_trees < 1 ||
        n_trees > FOREST_MAX_TREES || (flags & ~3u) != 0)
        return set_error(err, FOREST_ERR_MALFORMED, "model header out of range");
    if ((size_t) (end - p) < 4 * (size_t) n_trees || n_nodes > (size_t) (end - p) / NODE_SIZE)
        return set_error(err, FOREST_ERR_MALFORMED, "model truncated");

    trees = calloc(n_trees, sizeof(forest_tree_arrays));
    ints = malloc(sizeof(int64_t) * 4 * (n_nodes ? n_nodes : 1));
    splits = malloc(sizeof(double) * (n_nodes ? n_nodes : 1));
    if (!trees || !ints || !splits) {
        set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
        goto done;
    }
    uint64_t sum = 0;
    for (uint32_t t = 0; t < n_trees; t++) {
        uint32_t n = get_u32(p);
        p += 4;
        trees[t].n_nodes = n;
        sum += n;
    }
    if (sum != n_nodes) {
        set_error(err, FOREST_ERR_MALFORMED, "model node counts disagree");
        goto done;
    }
    if (flags & 2) {
        names = calloc(n_features, sizeof(char *));
        if (!names) {
            set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
            goto done;
        }
        for (uint32_t i = 0; i < n_features; i++) {
            if (end - p < 2 || (size_t) (end - p - 2) < get_u16(p)) {
                set_error(err, FOREST_ERR_MALFORMED, "model truncated in feature names");
                goto done;
            }
            uint16_t l = get_u16(p);
            names[i] = strndup((const char *) p + 2, l);
            if (!names[i]) {
                set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
                goto done;
            }
            p += 2 + l;
        }
    }
    if ((size_t) (end - p) != n_nodes * NODE_SIZE) {
        set_error(err, FOREST_ERR_MALFORMED, "model length does not match its node count");
        goto done;
    }

    /* tree-local children: canonical form stores left only, right = left + 1 */
    int64_t *cl = ints, *cr = ints + n_nodes, *feat = ints + 2 * n_nodes, *ns = ints + 3 * n_nodes;
    size_t at = 0;
    for (uint32_t t = 0; t < n_trees; t++) {
        trees[t].children_left = cl + at;
        trees[t].children_right = cr + at;
        trees[t].feature = feat + at;
        trees[t].threshold = splits + at;
        trees[t].n_node_samples = ns + at;
        for (size_t i = 0; i < trees[t].n_nodes; i++, at++) {
            int32_t l = (int32_t) get_u32(p);
            cl[at] = l;
            cr[at] = l >= 0 ? (int64_t) l + 1 : -1;
            feat[at] = (int32_t) get_u32(p + 4);
            splits[at] = get_f64(p + 8);
            ns[at] = (int32_t) get_u32(p + 16);
            p += NODE_SIZE;
        }
    }
    f = forest_from_trees((int) n_features, (int) max_samples, (forest_transform) transform,
                          (flags & 1) != 0, threshold, trees, (int) n_trees, err);
    if (f && names) {
        f->feature_names = names;
        names = NULL;
    }

done:
    free_names(names, (int) n_features);
    free(trees);
    free(ints);
    free(splits);
    return f;
}
