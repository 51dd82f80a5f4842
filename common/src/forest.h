/* common/src/forest.h — Isolation Forest core: train, score, (de)serialize; plain C, no Postgres */
#ifndef CW_FOREST_H
#define CW_FOREST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The forest core is shared by the PostgreSQL extension, the ingestor, the API server and the
 * unit tests, so it depends on nothing but libc, libm and (for the JSON interchange format)
 * cJSON. It never exits or longjmps: every fallible function reports through a forest_error.
 * Memory comes from malloc and belongs to the caller until handed to forest_free().
 */

#define FOREST_FORMAT_VERSION 1 /* binary (bytea) layout version */
#define FOREST_JSON_FORMAT    "chainwatch-iforest/1"
#define FOREST_MAX_FEATURES   1024
#define FOREST_MAX_TREES      10000
#define FOREST_MAX_SAMPLES    (1 << 24)
#define FOREST_MAX_NODES      (1 << 21) /* all trees together: 2,000 trees of 512 samples */

typedef enum forest_transform {
    FOREST_TRANSFORM_IDENTITY = 0,
    FOREST_TRANSFORM_LOG1P = 1,
} forest_transform;

typedef enum forest_errcode {
    FOREST_OK = 0,
    FOREST_ERR_INVALID_ARG, /* a parameter out of range */
    FOREST_ERR_NOMEM,       /* allocation failed */
    FOREST_ERR_MALFORMED,   /* serialized or JSON model is malformed or truncated */
    FOREST_ERR_CHECKSUM,    /* serialized model fails its checksum */
    FOREST_ERR_VERSION,     /* serialized/JSON model of an unsupported format version */
} forest_errcode;

typedef struct forest_error {
    forest_errcode code;
    char message[256];
} forest_error;

typedef struct forest forest;

typedef struct forest_params {
    int n_features;
    int n_trees;          /* > 0 */
    int sample_size;      /* rows per tree; capped at the number of training rows */
    double contamination; /* in (0, 0.5]: the threshold is the (1 - c) quantile */
    uint64_t seed;
    forest_transform transform;
} forest_params;

/* summary of the training scores, stored with a model */
typedef struct forest_score_summary {
    size_t n;
    double min, max, mean, p50, p90, p99;
} forest_score_summary;

/* forest_average_path_length is sklearn's c(n): 0 for n <= 1, 1 for n = 2, else
 * 2(ln(n-1) + gamma) - 2(n-1)/n. */
double forest_average_path_length(double n);

/* forest_train builds a forest from n_rows raw (untransformed) rows, row-major with
 * params->n_features columns, then sets the threshold from the scores of those same rows.
 * Returns NULL and fills err on failure. summary (optional) receives the training scores' summary.
 */
forest *forest_train(const double *rows, size_t n_rows, const forest_params *params,
                     forest_score_summary *summary, forest_error *err);

void forest_free(forest *f);

/* accessors */
int forest_n_features(const forest *f);
int forest_n_trees(const forest *f);
int forest_max_samples(const forest *f);
size_t forest_n_nodes(const forest *f);
forest_transform forest_get_transform(const forest *f);
bool forest_float32_inputs(const forest *f);
double forest_threshold(const forest *f);
const char *forest_transform_name(forest_transform t);
int forest_transform_parse(const char *name, forest_transform *out);

/* forest_set_feature_names copies n_features names (NULL clears them); -1 on ENOMEM */
int forest_set_feature_names(forest *f, const char *const *names);
const char *forest_feature_name(const forest *f, int i); /* NULL when unnamed */

/* forest_score returns the anomaly score in (0, 1] of one raw row of n_features values
 * (higher = more anomalous; equals -sklearn score_samples). Inputs must be finite and,
 * with the log1p transform, > -1. Thread-safe: the forest is read-only after construction. */
double forest_score(const forest *f, const double *row);

/* forest_score_batch scores n row-major raw rows into out[0..n); faster than a loop over
 * forest_score because several rows walk each tree together. */
void forest_score_batch(const forest *f, const double *rows, size_t n, double *out);

/* forest_explain fills credit[0..n_features) with the mean bits of isolation (log2 of the training
 * samples a split cut away) each feature gave the raw row over the forest's trees, and returns
 * their sum: the explanation of its score (forest_explain.c). NAN when a value is not finite or,
 * with the log1p transform, <= -1. Thread-safe. */
double forest_explain(const forest *f, const double *row, double *credit);

static inline bool forest_is_anomaly_score(const forest *f, double score)
{
    return score > forest_threshold(f);
}

/* forest_layout_name says which walk scores this model: "packed" (forest_packed.c), "dense" or
 * "sparse" (forest.c); for diagnostics and tests, the scores are the same. */
const char *forest_layout_name(const forest *f);

/* forest_summarize_scores fills a summary (sorts a copy; -1 on ENOMEM) */
int forest_summarize_scores(const double *scores, size_t n, forest_score_summary *out);

/* forest_quantile: numpy-compatible linear-interpolation quantile of n values, q in [0,1].
 * Sorts values in place. */
double forest_quantile(double *values, size_t n, double q);

/* Binary format (the models table's bytea): little-endian, versioned, CRC-32C protected. */
size_t forest_serialized_size(const forest *f);
/* forest_serialize writes exactly forest_serialized_size(f) bytes to buf */
void forest_serialize(const forest *f, uint8_t *buf);
/* forest_serialized_checksum: the CRC-32C stored in the last 4 bytes of a serialized model */
uint32_t forest_serialized_checksum(const uint8_t *buf, size_t len);
forest *forest_deserialize(const uint8_t *buf, size_t len, forest_error *err);

/* JSON interchange format chainwatch-iforest/1 (docs/model-format.md). export returns a
 * malloc'd NUL-terminated string (NULL on ENOMEM). */
char *forest_export_json(const forest *f);
forest *forest_import_json(const char *json, size_t len, forest_error *err);

/*
 * forest_from_trees builds a forest from canonical tree arrays (the interchange format's
 * fields); used by the JSON importer and the tests. Arrays of tree t are at
 * left[off[t]..off[t+1]), etc.; children indices are tree-local; -1 marks a leaf.
 */
typedef struct forest_tree_arrays {
    size_t n_nodes;
    const int64_t *children_left;
    const int64_t *children_right;
    const int64_t *feature;
    const double *threshold;
    const int64_t *n_node_samples;
} forest_tree_arrays;

/* forest_get_tree exposes tree t's canonical arrays (breadth-first, right child = left + 1,
 * left = -1 at leaves); valid while f lives. */
typedef struct forest_canonical_tree {
    uint32_t n_nodes;
    const int32_t *left;
    const int32_t *feature;
    const double *split;
    const int32_t *n_samples;
} forest_canonical_tree;

void forest_get_tree(const forest *f, int t, forest_canonical_tree *out);

forest *forest_from_trees(int n_features, int max_samples, forest_transform transform,
                          bool float32_inputs, double threshold, const forest_tree_arrays *trees,
                          int n_trees, forest_error *err);

#endif /* CW_FOREST_H */
