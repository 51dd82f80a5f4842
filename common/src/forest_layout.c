/* common/src/forest_layout.c — the scoring layouts derived from a forest's canonical form: dense
 * heap or sparse nodes (forest_packed.c adds the packed-rank one) */

/*
 * Each leaf's contribution to the path length, ((depth + 1) + c(n)) - 1, is precomputed here with
 * exactly sklearn's floating-point operations (decision_path node count plus _average_path_length
 * minus one). Trees at most DENSE_MAX_DEPTH deep are padded to complete binary trees (a leaf above
 * the bottom level is replicated into every bottom slot beneath it), deeper forests keep a compact
 * node array. forest.c's design note tells the whole story.
 */
#include "forest_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* forest_layout_build derives the dense or sparse layout (and the packed one, when the model fits
 * it) from the canonical form; 0, or -1 with err set (FOREST_ERR_NOMEM). */
int forest_layout_build(forest *f, forest_error *err)
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
    forest_set_error(err, FOREST_ERR_NOMEM, "out of memory building the scoring layout");
    return -1;
}
