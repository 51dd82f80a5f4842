/* common/src/txfeatures.h — the behavioural feature vector of a transaction, defined once; plain C
 */
#ifndef CW_TXFEATURES_H
#define CW_TXFEATURES_H

#include <stdbool.h>
#include <stdint.h>

#include "forest.h"

/*
 * The feature set "behaviour/1": what one transaction looks like next to the history of its
 * sender and its recipient. The ingestor (before scoring a batch), the extension's
 * chainwatch.features() and chainwatch.replay_features() all call cw_features_compute() and
 * cw_profile_fold_*() below, so the three compute the same numbers bit for bit. docs/detection.md
 * says why each feature helps and what a cold start gives.
 *
 * History is the address profile as chainwatch.address_profiles keeps it (tables/profiles.sql):
 * commutative summaries (counts, exact integer sums of log values in millionths, the top two
 * 300-second activity buckets, the 64 smallest counterparty hashes), so folding transactions in
 * any order gives the same profile.
 */

#define CW_FEATURE_SET      "behaviour/1"
#define CW_FEATURES         12
#define CW_PROFILE_PEERS    64
#define CW_BUCKET_USECS     INT64_C(300000000) /* activity bucket: 300 s of chain time */
#define CW_COLD_GAP_SECONDS 86400 /* sender_gap of a first outgoing transaction: a day, */
#define CW_COLD_GAP                                                                                \
    11.366754528799243              /* ln(1 + 86400) correctly rounded, a literal: a               \
                                       compiler folding log1p() of a constant and                  \
                                       libm computing it may differ in the last bit */
#define CW_VALUE_PRIOR_WEIGHT   2.0 /* pseudo-transactions of the value spread prior */
#define CW_VALUE_PRIOR_VARIANCE 1.0 /* ln units squared: a factor of e either way */

extern const char *const cw_feature_names[CW_FEATURES];

/* one direction (sent or received) of an address's history */
typedef struct cw_profile_side {
    int64_t count;
    int64_t valued;    /* transactions with a value above 0 wei (sent side only) */
    int64_t lv_sum;    /* sum of cw_log_millionths(value) */
    __int128 lv_sumsq; /* sum of their squares */
    int64_t lg_sum;    /* sum of cw_log_millionths(gas price) (sent side only) */
    bool has_last;
    int64_t last_at; /* latest chain time, Unix microseconds (sent side only) */
    bool has_bucket;
    int64_t bucket, bucket_count, prev_count;
} cw_profile_side;

/* what the features need of an address: its profile, or exists = false */
typedef struct cw_profile {
    bool exists;
    int64_t first_at; /* earliest chain time, Unix microseconds */
    cw_profile_side out, in;
    int n_peers;                     /* distinct recipients kept, sorted ascending */
    int64_t peers[CW_PROFILE_PEERS]; /* the smallest hashtextextended(recipient, 0) */
} cw_profile;

/* one transaction as the features see it */
typedef struct cw_feature_tx {
    double value, gas, gas_price; /* the amounts as doubles (the raw features) */
    bool has_to;                  /* false: a contract creation */
    int64_t at;                   /* chain time, Unix microseconds (cw_chain_time) */
    int64_t to_hash;              /* hashtextextended(to_address, 0) when has_to */
} cw_feature_tx;

/* cw_log_millionths: rint(log(1 + x) * 1e6), the unit of the profiles' log sums */
int64_t cw_log_millionths(double x);

/* cw_chain_time: a transaction's time for its features and profiles: tx_time when known and not
 * after detected_at (a producer's clock running ahead cannot move history forward), else
 * detected_at; both Unix microseconds */
int64_t cw_chain_time(bool has_tx_time, int64_t tx_time, int64_t detected_at);

/* cw_features_compute fills out[CW_FEATURES] for tx from its sender's profile and its recipient's
 * (NULL for a contract creation); profiles are as they were before tx */
void cw_features_compute(const cw_profile *sender, const cw_profile *recipient,
                         const cw_feature_tx *tx, double *out);

/* cw_profile_fold_out / cw_profile_fold_in count tx on the sender's / recipient's side */
void cw_profile_fold_out(cw_profile *p, const cw_feature_tx *tx);
void cw_profile_fold_in(cw_profile *p, const cw_feature_tx *tx);

/*
 * The columns of chainwatch._batch_profiles(addresses), one row per address, as text (NULL: a
 * NULL pointer), which the ingestor and the extension both read with cw_profile_from_text.
 */
enum {
    CW_PC_ADDRESS,
    CW_PC_HASH,        /* hashtextextended(address, 0) */
    CW_PC_DETECTED_AT, /* now() of the reading transaction: detected_at of what it inserts */
    CW_PC_FIRST_AT,    /* the rest NULL when the address has no profile */
    CW_PC_OUT_COUNT,
    CW_PC_OUT_LV_SUM,
    CW_PC_OUT_LV_SUMSQ,
    CW_PC_OUT_LG_SUM,
    CW_PC_LAST_OUT_AT,
    CW_PC_OUT_BUCKET,
    CW_PC_OUT_BUCKET_COUNT,
    CW_PC_OUT_PREV_COUNT,
    CW_PC_IN_COUNT,
    CW_PC_IN_BUCKET,
    CW_PC_IN_BUCKET_COUNT,
    CW_PC_IN_PREV_COUNT,
    CW_PC_OUT_PEERS, /* an int8[] literal: {h1,h2,...} */
    CW_PC_OUT_VALUE_COUNT,
    CW_PROFILE_COLUMNS
};

/* cw_profile_from_text reads one row of _batch_profiles into p, its address's hash and the
 * reader's detected_at; -1 when a column is malformed */
int cw_profile_from_text(const char *const col[CW_PROFILE_COLUMNS], cw_profile *p, int64_t *hash,
                         int64_t *detected_at);

/* cw_feature_index: the position of a feature by name, -1 for none */
int cw_feature_index(const char *name);

/* cw_feature_map fills map[k] with the position of names[k] (n distinct behaviour/1 feature names:
 * the features a model over some of them takes, in its order); n, or -1 when a name is not one or
 * repeats */
int cw_feature_map(const char *const *names, int n, int *map);

/* cw_feature_map_forest: cw_feature_map of a forest's feature names (the features a behaviour/1
 * model takes, models.feature_set); -1 when it has none or they are not behaviour/1 features */
int cw_feature_map_forest(const forest *f, int *map);

/* cw_bucket_add counts one transaction of activity bucket b into a window of the latest bucket
 * (count transactions in it) and the one before (prev), as the profile trigger and the features'
 * fold both keep it; *has_bucket false is an empty window */
void cw_bucket_add(bool *has_bucket, int64_t *bucket, int64_t *count, int64_t *prev, int64_t b);

/* cw_parse_int128 parses a non-negative decimal integer (a numeric's text); false when it is not
 * one or overflows */
bool cw_parse_int128(const char *s, __int128 *out);

#endif /* CW_TXFEATURES_H */
