/* common/src/forest_score.c — scoring rows with the dense or sparse layout: one row, or blocks of
 * rows */

/*
 * Per-row sums are accumulated tree by tree in tree order, so scores agree with sklearn's
 * score_samples to the last bit or nearly so. Batches walk each tree for a block of BLOCK_ROWS rows
 * at a time, which keeps the tree hot in cache and lets the CPU overlap the independent walks.
 * Models that fit the packed-rank layout are handed to forest_packed.c.
 */
#include "forest_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_ROWS         64
#define BLOCK_MAX_FEATURES 64

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
