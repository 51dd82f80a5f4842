/* common/src/forest_impl.h — the forest's private layout and internal helpers, shared by the
 * forest_*.c files only */
#ifndef CW_FOREST_IMPL_H
#define CW_FOREST_IMPL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "forest.h"

#define DENSE_MAX_DEPTH     10 /* deepest tree kept in the dense heap layout (sample_size <= 1024) */
#define PACKED_MAX_FEATURES 8  /* widest model the packed-rank layout takes */
#define FOREST_MAX_NAME_LEN 256 /* longest feature name kept */

typedef struct sparse_node {
    double value;    /* split threshold, or the leaf's path-length contribution */
    int32_t left;    /* tree-local index of the left child; right is left + 1 */
    int32_t feature; /* -1 at a leaf */
} sparse_node;

struct forest {
    int n_features;
    int n_trees;
    int max_samples;
    forest_transform transform;
    bool float32_inputs;
    double threshold;
    char **feature_names; /* NULL or n_features strings */

    /* canonical form */
    size_t n_nodes;
    uint32_t *tree_start; /* n_trees + 1 offsets into the node arrays */
    int32_t *left;
    int32_t *feature;
    double *split;
    int32_t *n_samples;

    /* scoring layout */
    double denominator;  /* n_trees * c(max_samples) */
    int dense_depth;     /* > 0: dense layout of this depth; 0: sparse */
    uint16_t *d_feature; /* dense internal nodes (NULL once the packed layout replaces them) */
    double *d_split;
    double *d_leaf; /* dense bottom level; trees padded with zeros to a multiple of 8 */
    sparse_node *s_nodes;

    /* packed-rank layout (forest_packed.c); p_node is NULL when the model does not fit it */
    uint64_t *p_node; /* per dense internal node: the addend of the packed-rank test */
    double *p_thr;    /* per feature, its distinct split thresholds in ascending order */
    uint32_t
        p_off[PACKED_MAX_FEATURES + 1]; /* feature j's thresholds: p_thr[p_off[j] .. p_off[j+1]) */
    int p_width;                        /* bits per feature in a packed rank word */
    uint64_t *b_node;  /* NULL, or the cache-line-blocked copy for single rows (forest_packed.c) */
    uint32_t *p_first; /* bucket index of the thresholds: feature j's at p_first[p_boff[j] ..] */
    uint32_t p_boff[PACKED_MAX_FEATURES + 1];
    double p_lo[PACKED_MAX_FEATURES], p_scale[PACKED_MAX_FEATURES];
};

/* transform_value applies the model's input transform (and sklearn's float32 cast) to one value. */
static inline double transform_value(const forest *f, double v)
{
    if (f->transform == FOREST_TRANSFORM_LOG1P)
        v = log1p(v);
    if (f->float32_inputs)
        v = (double) (float) v;
    return v;
}

/* sum_to_score turns a row's summed path lengths into sklearn's score. */
static inline double sum_to_score(const forest *f, double sum)
{
    if (f->denominator == 0.0)
        return 0.5; /* sklearn: depths / 0 replaced by 1 */
    return pow(2.0, -(sum / f->denominator));
}

/* forest_cmp_double orders doubles ascending for qsort. */
static inline int forest_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* dense_padded_trees is the tree count the dense leaf and packed node arrays are padded to. */
static inline size_t dense_padded_trees(const forest *f)
{
    return ((size_t) f->n_trees + 7) & ~(size_t) 7;
}

/* forest_set_error fills err (if given) and returns NULL for convenient tail calls (forest.c). */
void *forest_set_error(forest_error *err, forest_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* forest_free_names frees n strings and the array holding them (NULL is fine) (forest.c). */
void forest_free_names(char **names, int n);

/* forest_alloc allocates a forest with canonical arrays for n_nodes nodes; NULL on ENOMEM
 * (forest_build.c). */
forest *forest_alloc(int n_features, int n_trees, size_t n_nodes);

/* forest_layout_build derives the scoring layouts from the canonical form; 0, or -1 with err set
 * (forest_layout.c). */
int forest_layout_build(forest *f, forest_error *err);

/* forest_packed_build derives the packed-rank layout from the dense one when the model fits it
 * (dense, at most PACKED_MAX_FEATURES features, few enough distinct thresholds per feature) and
 * frees the dense internal nodes it replaces. 0 on success or when the model does not fit (p_node
 * stays NULL), -1 on ENOMEM. */
int forest_packed_build(forest *f);

/* forest_packed_sum_row returns the summed path length of one transformed row. */
double forest_packed_sum_row(const forest *f, const double *xt);

/* forest_packed_score scores n raw rows into out (a forest with p_node set). */
void forest_packed_score(const forest *f, const double *rows, size_t n, double *out);

#endif /* CW_FOREST_IMPL_H */
