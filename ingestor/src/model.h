/* ingestor/src/model.h — the active model and severity rules as loaded from Postgres by one writer
 */
#ifndef INGESTOR_MODEL_H
#define INGESTOR_MODEL_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "forest.h"
#include "txfeatures.h"
#include "wei.h"

#define MAX_SEVERITY_RULES 256
#define N_SEVERITIES       4 /* low, medium, high, critical */
#define MODEL_FEATURES     3 /* a row's features: value, gas, gas price */

typedef struct severity_rule {
    int level; /* 1 medium, 2 high, 3 critical */
    bool has_score;
    double min_score;
    char min_value_wei[CW_WEI_DEC_MAX]; /* "" = no condition; integer wei (ceil of ETH * 1e18) */
    char min_gas_price_wei[CW_WEI_DEC_MAX];
} severity_rule;

/*
 * One writer's copy: the forest (owned, NULL when no model is active) and the rules. An active
 * model the ingestor cannot score with (a forest that does not deserialize, or one over features
 * it does not compute: neither feature set behaviour/1 nor MODEL_FEATURES raw amounts) is loaded
 * as unusable: model_id is the active model's,
 * forest is NULL and unusable says why. Rows are then stored unscored and the batch is committed
 * with that model id, so commit_batch's check of the active model (CW001) still holds.
 */
typedef struct loaded_model {
    bool loaded;  /* false: load before the next batch */
    int model_id; /* 0 when none is active */
    forest *forest;
    bool behaviour; /* feature set behaviour/1: scores batch.history (history.c), else value, gas,
                       gas price */
    int n_select;   /* behaviour/1: the forest's features, by position in the history vector */
    int select[CW_FEATURES];
    char unusable[320]; /* "" when the forest is usable or no model is active */
    severity_rule rules[MAX_SEVERITY_RULES];
    int n_rules;
} loaded_model;

/* model_load (re)reads the active model and the severity rules; -1 with err when Postgres could
 * not be read (an unusable model is loaded, see above) */
int model_load(PGconn *conn, loaded_model *m, char *err, size_t errlen);
/* model_usable: a model is active and its forest can score rows */
bool model_usable(const loaded_model *m);
void model_free(loaded_model *m);
/* severity_of: 0 low .. 3 critical, evaluated exactly like chainwatch.severity() */
int severity_of(const loaded_model *m, double score, const char *value_wei,
                const char *gas_price_wei);
extern const char *const severity_names[N_SEVERITIES];

#endif /* INGESTOR_MODEL_H */
