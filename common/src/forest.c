/* common/src/forest.c — the Isolation Forest object: its two representations, accessors, names,
 * errors */

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
 *
 * Files: forest.c (this: the object, accessors, names, errors), forest_build.c (a forest from
 * canonical arrays, validated), forest_train.c (training and the threshold), forest_layout.c (the
 * dense and sparse scoring layouts), forest_packed.c (the packed-rank layout and its walks),
 * forest_score.c (the dense and sparse walks), forest_format.c (the binary format),
 * forest_json.c (the chainwatch-iforest/1 JSON interchange). forest_impl.h is their private
 * header; forest.h is the public one.
 */
#include "forest_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EULER_GAMMA 0.5772156649015329

/* forest_set_error fills err (if given) and returns NULL for convenient tail calls. */
void *forest_set_error(forest_error *err, forest_errcode code, const char *fmt, ...)
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

/* forest_free_names frees n strings and the array holding them (NULL is fine). */
void forest_free_names(char **names, int n)
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
            copy[i] = strndup(names[i] ? names[i] : "", FOREST_MAX_NAME_LEN);
            if (!copy[i]) {
                forest_free_names(copy, f->n_features);
                return -1;
            }
        }
    }
    forest_free_names(f->feature_names, f->n_features);
    f->feature_names = copy;
    return 0;
}

void forest_free(forest *f)
{
    if (!f)
        return;
    forest_free_names(f->feature_names, f->n_features);
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
