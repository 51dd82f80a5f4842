/* common/src/forest_train.c — growing a forest on rows, and the threshold from the training scores
 */

/*
 * Randomness comes from cw_prng (xoshiro256**); tree t uses the t-th splitmix64 output of the seed,
 * so a forest is a pure function of (rows, parameters, seed) on every platform. The threshold is
 * the (1 - contamination) quantile of the training rows' scores, computed as numpy's default
 * percentile.
 */
#include "forest_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prng.h"

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
        return forest_set_error(err, FOREST_ERR_INVALID_ARG, "n_features must be between 1 and %d",
                                FOREST_MAX_FEATURES);
    if (p->n_trees < 1 || p->n_trees > FOREST_MAX_TREES)
        return forest_set_error(err, FOREST_ERR_INVALID_ARG, "n_trees must be between 1 and %d",
                                FOREST_MAX_TREES);
    if (p->sample_size < 2 || p->sample_size > FOREST_MAX_SAMPLES)
        return forest_set_error(err, FOREST_ERR_INVALID_ARG, "sample_size must be between 2 and %d",
                                FOREST_MAX_SAMPLES);
    if (!(p->contamination > 0.0 && p->contamination <= 0.5))
        return forest_set_error(err, FOREST_ERR_INVALID_ARG, "contamination must be in (0, 0.5]");
    if (p->transform != FOREST_TRANSFORM_IDENTITY && p->transform != FOREST_TRANSFORM_LOG1P)
        return forest_set_error(err, FOREST_ERR_INVALID_ARG, "unknown transform");
    if (n_rows < 2 || n_rows > UINT32_MAX)
        return forest_set_error(err, FOREST_ERR_INVALID_ARG,
                                "training needs at least 2 rows (got %zu)", n_rows);

    psi = n_rows < (size_t) p->sample_size ? (uint32_t) n_rows : (uint32_t) p->sample_size;
    cap = (size_t) p->n_trees * (2 * (size_t) psi - 1);
    if (cap > FOREST_MAX_NODES) /* a model no process would load (forest_from_trees) */
        return forest_set_error(err, FOREST_ERR_INVALID_ARG,
                                "n_trees %d of %u samples each can make %zu nodes; at most %d are "
                                "accepted",
                                p->n_trees, psi, cap, FOREST_MAX_NODES);

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
        forest_set_error(err, FOREST_ERR_NOMEM, "out of memory training a forest");
        goto fail;
    }
    f->tree_start = calloc((size_t) p->n_trees + 1, sizeof(uint32_t));
    if (!f->tree_start) {
        forest_set_error(err, FOREST_ERR_NOMEM, "out of memory training a forest");
        goto fail;
    }
    f->n_features = p->n_features;
    f->n_trees = p->n_trees;
    f->max_samples = (int) psi;
    f->transform = p->transform;

    for (size_t i = 0; i < n_rows * p->n_features; i++) {
        double v = rows[i];
        if (!isfinite(v) || (p->transform == FOREST_TRANSFORM_LOG1P && v <= -1.0)) {
            forest_set_error(err, FOREST_ERR_INVALID_ARG, "row %zu has an invalid value %g",
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

    if (forest_layout_build(f, err) != 0)
        goto fail;

    scores = malloc(sizeof(double) * n_rows);
    if (!scores) {
        forest_set_error(err, FOREST_ERR_NOMEM, "out of memory scoring the training rows");
        goto fail;
    }
    forest_score_batch(f, rows, n_rows, scores);
    if (summary && forest_summarize_scores(scores, n_rows, summary) != 0) {
        forest_set_error(err, FOREST_ERR_NOMEM, "out of memory summarizing training scores");
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
