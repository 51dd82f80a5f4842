/* common/src/forest_build.c — a forest from canonical tree arrays: validation and breadth-first
 * re-layout */

/*
 * forest_from_trees is the single entry point every deserializer (binary format, JSON interchange,
 * sklearn import) goes through: it validates each tree and re-lays it out breadth-first with
 * adjacent children, so the scoring code may rely on the canonical form's invariants.
 */
#include "forest_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* forest_alloc allocates a forest with canonical arrays for n_nodes nodes (tree_start zeroed); NULL
 * on ENOMEM. */
forest *forest_alloc(int n_features, int n_trees, size_t n_nodes)
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
        return forest_set_error(err, FOREST_ERR_MALFORMED, "n_features must be between 1 and %d",
                                FOREST_MAX_FEATURES);
    if (n_trees < 1 || n_trees > FOREST_MAX_TREES)
        return forest_set_error(err, FOREST_ERR_MALFORMED, "a model needs between 1 and %d trees",
                                FOREST_MAX_TREES);
    if (max_samples < 1 || max_samples > FOREST_MAX_SAMPLES)
        return forest_set_error(err, FOREST_ERR_MALFORMED, "max_samples must be between 1 and %d",
                                FOREST_MAX_SAMPLES);
    /* scores lie in (0, 1]: a threshold outside flags everything or nothing (-1e308 was accepted)
     */
    if (!isfinite(threshold) || threshold <= 0.0 || threshold > 1.0)
        return forest_set_error(err, FOREST_ERR_MALFORMED,
                                "threshold must be in (0, 1], the range of scores (got %.17g)",
                                threshold);
    if (transform != FOREST_TRANSFORM_IDENTITY && transform != FOREST_TRANSFORM_LOG1P)
        return forest_set_error(err, FOREST_ERR_MALFORMED, "unknown transform");
    for (int t = 0; t < n_trees; t++) {
        size_t n = trees[t].n_nodes;
        /* a tree grown from max_samples samples, each leaf holding one or more, has at most
         * 2 * max_samples - 1 nodes: more is not an Isolation Forest, and only costs memory in
         * every process that loads it (a one-tree model of 1M nodes was accepted) */
        if (n < 1 || n > (size_t) 2 * (size_t) max_samples - 1)
            return forest_set_error(
                err, FOREST_ERR_MALFORMED,
                "tree %d has %zu nodes; a tree of max_samples %d has at most %d", t, n, max_samples,
                2 * max_samples - 1);
        total += n;
        if (n > widest)
            widest = n;
    }
    if (total > FOREST_MAX_NODES)
        return forest_set_error(err, FOREST_ERR_MALFORMED,
                                "model has %zu nodes; at most %d are accepted", total,
                                FOREST_MAX_NODES);

    f = forest_alloc(n_features, n_trees, total);
    order = malloc(sizeof(int64_t) * widest);
    seen = malloc(widest);
    if (!f || !order || !seen) {
        forest_set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
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
                forest_set_error(err, FOREST_ERR_MALFORMED, "tree %d node %lld: invalid children",
                                 t, (long long) i);
                goto fail;
            }
            if (tr->n_node_samples[i] < 0 || tr->n_node_samples[i] > INT32_MAX) {
                forest_set_error(err, FOREST_ERR_MALFORMED,
                                 "tree %d node %lld: invalid n_node_samples", t, (long long) i);
                goto fail;
            }
            if (l == -1)
                continue;
            if (tr->feature[i] < 0 || tr->feature[i] >= n_features) {
                forest_set_error(err, FOREST_ERR_MALFORMED,
                                 "tree %d node %lld: feature %lld out of range [0, %d)", t,
                                 (long long) i, (long long) tr->feature[i], n_features);
                goto fail;
            }
            if (!isfinite(tr->threshold[i])) {
                forest_set_error(err, FOREST_ERR_MALFORMED,
                                 "tree %d node %lld: threshold not finite", t, (long long) i);
                goto fail;
            }
            if (seen[l]++ || seen[r]++) {
                forest_set_error(err, FOREST_ERR_MALFORMED, "tree %d: node with two parents", t);
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
                    forest_set_error(err, FOREST_ERR_MALFORMED, "tree %d: not a tree", t);
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
            forest_set_error(err, FOREST_ERR_MALFORMED, "tree %d: %lld of %lld nodes unreachable",
                             t, (long long) (n - tail), (long long) n);
            goto fail;
        }
        base += (size_t) n;
    }
    f->tree_start[n_trees] = (uint32_t) base;
    free(order);
    free(seen);
    order = NULL;
    seen = NULL;
    if (forest_layout_build(f, err) != 0)
        goto fail;
    return f;

fail:
    free(order);
    free(seen);
    forest_free(f);
    return NULL;
}
