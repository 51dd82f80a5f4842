/* ingestor/src/model.c — loading the active forest and severity rules; severity evaluated in C */

/*
 * chainwatch.severity() compares exact numerics: value >= min_value_eth * 1e18. Amounts are
 * integers of wei, so value >= x holds exactly when value >= ceil(x); the rules are therefore
 * loaded as integer wei strings (ceil done by Postgres) and compared as decimal strings, which
 * gives the same answer as the SQL function for every input. Scores compare as float8 both ways.
 */
#include "model.h"

#include "txfeatures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const severity_names[N_SEVERITIES] = {"low", "medium", "high", "critical"};

/* dec_ge: a >= b for canonical non-negative decimal strings */
static bool dec_ge(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la > lb;
    return strcmp(a, b) >= 0;
}

int severity_of(const loaded_model *m, double score, const char *value_wei,
                const char *gas_price_wei)
{
    int level = 0;
    for (int i = 0; i < m->n_rules; i++) {
        const severity_rule *r = &m->rules[i];
        if (r->level <= level)
            continue;
        if (r->has_score && !(score >= r->min_score))
            continue;
        if (r->min_value_wei[0] && !dec_ge(value_wei, r->min_value_wei))
            continue;
        if (r->min_gas_price_wei[0] && !dec_ge(gas_price_wei, r->min_gas_price_wei))
            continue;
        level = r->level;
    }
    return level;
}

void model_free(loaded_model *m)
{
    forest_free(m->forest);
    m->forest = NULL;
    m->loaded = false;
    m->model_id = 0;
    m->unusable[0] = '\0';
    m->n_rules = 0;
}

bool model_usable(const loaded_model *m)
{
    return m->forest != NULL;
}

/*
 * model_load reads the active model and the rules in two statements. A forest the ingestor
 * cannot use is not an error of the load: failing here made every writer retry the same batch
 * for ever (issue 24), while storing the rows unscored keeps the stream flowing (see loaded_model).
 */
int model_load(PGconn *conn, loaded_model *m, char *err, size_t errlen)
{
    PGresult *res;
    forest *f = NULL;
    int id = 0;
    char unusable[sizeof(m->unusable)] = "";
    bool behaviour = false;
    int n_select = 0, select[CW_FEATURES];

    res = PQexecParams(conn,
                       "SELECT id, forest, feature_set = 'behaviour/1' FROM chainwatch.models "
                       "WHERE is_active",
                       0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading the active model: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 1) {
        forest_error ferr;
        const char *idbin = PQgetvalue(res, 0, 0);
        id = (int) ((uint32_t) (unsigned char) idbin[0] << 24 |
                    (uint32_t) (unsigned char) idbin[1] << 16 |
                    (uint32_t) (unsigned char) idbin[2] << 8 | (uint32_t) (unsigned char) idbin[3]);
        f = forest_deserialize((const uint8_t *) PQgetvalue(res, 0, 1),
                               (size_t) PQgetlength(res, 0, 1), &ferr);
        /* binary bool: one byte; NULL for a model of no named feature set */
        behaviour = !PQgetisnull(res, 0, 2) && PQgetvalue(res, 0, 2)[0] != 0;
        if (!f) {
            snprintf(unusable, sizeof(unusable), "its forest cannot be read: %s", ferr.message);
        } else if (behaviour) {
            n_select = cw_feature_map_forest(f, select);
            if (n_select < 0) {
                snprintf(unusable, sizeof(unusable),
                         "its %d features are not distinct features of %s", forest_n_features(f),
                         CW_FEATURE_SET);
                forest_free(f);
                f = NULL;
            }
        } else if (forest_n_features(f) != MODEL_FEATURES) {
            snprintf(unusable, sizeof(unusable),
                     "it has %d features; the ingestor scores %d (value, gas, gas price)",
                     forest_n_features(f), MODEL_FEATURES);
            forest_free(f);
            f = NULL;
        }
    }
    PQclear(res);

    /* the enum's position gives the level: low 0 .. critical 3 */
    res = PQexec(conn, "SELECT array_position(enum_range(NULL::chainwatch.severity_level), "
                       "severity) - 1, min_score, "
                       "ceil(min_value_eth * 1000000000000000000)::numeric(78,0)::text, "
                       "ceil(min_gas_price_gwei * 1000000000)::numeric(78,0)::text "
                       "FROM chainwatch.severity_rules WHERE enabled");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading severity rules: %s", PQresultErrorMessage(res));
        PQclear(res);
        forest_free(f);
        return -1;
    }
    int n = PQntuples(res);
    if (n > MAX_SEVERITY_RULES)
        n = MAX_SEVERITY_RULES;
    for (int i = 0; i < n; i++) {
        severity_rule *r = &m->rules[i];
        r->level = atoi(PQgetvalue(res, i, 0));
        r->has_score = !PQgetisnull(res, i, 1);
        r->min_score = r->has_score ? strtod(PQgetvalue(res, i, 1), NULL) : 0;
        snprintf(r->min_value_wei, sizeof(r->min_value_wei), "%s",
                 PQgetisnull(res, i, 2) ? "" : PQgetvalue(res, i, 2));
        snprintf(r->min_gas_price_wei, sizeof(r->min_gas_price_wei), "%s",
                 PQgetisnull(res, i, 3) ? "" : PQgetvalue(res, i, 3));
    }
    PQclear(res);

    forest_free(m->forest);
    m->forest = f;
    m->model_id = id;
    m->behaviour = behaviour;
    m->n_select = n_select > 0 ? n_select : 0;
    if (m->n_select > 0)
        memcpy(m->select, select, sizeof(int) * (size_t) m->n_select);
    snprintf(m->unusable, sizeof(m->unusable), "%s", unusable);
    m->n_rules = n;
    m->loaded = true;
    return 0;
}
