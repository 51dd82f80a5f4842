/* common/src/forest_explain.c — why a row scored as it did: each feature's share of its isolation
 */

/*
 * An Isolation Forest scores a row by how quickly random splits isolate it: the shorter its mean
 * path, the higher the score. Each split on the path separates the row from part of the training
 * sample that reached that node, so the path can be read as a sequence of cuts, each made by one
 * feature. forest_explain credits every cut to its feature with the information it removed,
 * log2(n_node / n_child) bits, where n_node is the number of training samples that reached the node
 * and n_child the number that reached the child the row goes on to (the forest keeps both counts,
 * as sklearn's n_node_samples). Summed over a path, the credits add up to log2(n_root / n_leaf):
 * how far the tree isolated the row. Averaged over the trees, a feature's credit is the number of
 * bits of isolation it contributed; a row that one feature isolates at the first cut (a gas price a
 * hundred times the usual one) gets nearly all its credit on that feature, while a row no feature
 * stands out on spreads small credits evenly and reaches deep leaves.
 *
 * This is the path-based attribution of DIFFI (Carletti et al., "Interpretable Anomaly Detection
 * with DIFFI", 2020) with the information gain of each cut as its weight instead of 1/depth: a cut
 * that splits off one sample of 256 isolates less than one that halves the node, and the credits
 * then sum to a quantity the score itself is made of. It is exact (no sampling, no background
 * data), costs one walk of each tree, and is deterministic, so the ingestor, the extension and the
 * API explain a row identically. Inputs go through the model's transform first, as for scoring.
 */
#include "forest_impl.h"

#include <math.h>

/* forest_explain fills credit[0..n_features) with the mean bits of isolation each feature gave the
 * raw row (see above); returns their sum, or NAN when the row holds a value the model cannot take
 */
double forest_explain(const forest *f, const double *row, double *credit)
{
    int nf = f->n_features;
    double total = 0.0;

    for (int j = 0; j < nf; j++) {
        credit[j] = 0.0;
        if (!isfinite(row[j]) || (f->transform == FOREST_TRANSFORM_LOG1P && row[j] <= -1.0))
            return NAN;
    }
    for (int t = 0; t < f->n_trees; t++) {
        forest_canonical_tree tree;
        uint32_t i = 0;

        forest_get_tree(f, t, &tree);
        while (tree.left[i] >= 0) {
            int feat = tree.feature[i];
            uint32_t next =
                (uint32_t) tree.left[i] + !(transform_value(f, row[feat]) <= tree.split[i]);
            /* an imported tree may carry counts that do not shrink (validated only as >= 0):
             * such a cut isolates nothing */
            if (tree.n_samples[next] > 0 && tree.n_samples[i] > tree.n_samples[next])
                credit[feat] += log2((double) tree.n_samples[i] / (double) tree.n_samples[next]);
            i = next;
        }
    }
    for (int j = 0; j < nf; j++) {
        credit[j] /= f->n_trees;
        total += credit[j];
    }
    return total;
}
