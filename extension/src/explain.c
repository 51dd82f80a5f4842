/* extension/src/explain.c — explanations: which features made a transaction's score, as jsonb
 *
 * An explanation is a JSON array with one object per feature of the model, the feature that
 * isolated the row most first:
 *
 *     [{"feature": "gas_price", "bits": 5.62, "share": 0.71, "value": 2.1e+12, "typical": 3.2e+10},
 * ...]
 *
 * bits is the feature's mean isolation credit over the trees (common/src/forest_explain.c: log2 of
 * the training samples each of its cuts separated the row from), share its fraction of the row's
 * total, value the row's raw value of the feature, and typical the median of that feature in the
 * model's training sample (models.training_summary.feature_median; left out for a model that has
 * none, as an imported one). bits and share are rounded to three decimals; values print as the
 * shortest decimal that reads back as the same double, as everywhere in chainwatch's JSON.
 *
 * The same builder serves chainwatch.explain() and explain_vector() for any row and model, and the
 * anomalies trigger (document.c), which stores the explanation of every anomaly it is given with
 * its model: so an alert and a later explain() of the same transaction and model agree.
 */
#include "chainwatch.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

/* append_double prints v as the shortest decimal that reads back as v (null when not finite) */
static void append_double(StringInfo b, double v)
{
    if (!isfinite(v)) {
        appendStringInfoString(b, "null");
        return;
    }
    enlargeStringInfo(b, DOUBLE_SHORTEST_DECIMAL_LEN);
    b->len += double_to_shortest_decimal_buf(v, b->data + b->len);
}

/*
 * ExplanationBuild returns the explanation (see the top of this file) of raw row x, of the model's
 * width, under model m; NULL when the row holds a value the model cannot take.
 */
Jsonb *ExplanationBuild(const CachedModel *m, const double *x)
{
    int nf = forest_n_features(m->forest);
    double *credit = palloc(sizeof(double) * nf);
    int *order = palloc(sizeof(int) * nf);
    double total = forest_explain(m->forest, x, credit);
    StringInfoData b;

    if (isnan(total))
        return NULL;
    /* by credit, largest first; ties keep the model's feature order (insertion sort: nf is small)
     */
    for (int i = 0; i < nf; i++) {
        int j = i;
        while (j > 0 && credit[order[j - 1]] < credit[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    initStringInfo(&b);
    appendStringInfoChar(&b, '[');
    for (int k = 0; k < nf; k++) {
        int i = order[k];
        const char *name = forest_feature_name(m->forest, i);

        appendStringInfoString(&b, k ? ", {\"feature\": " : "{\"feature\": ");
        if (name)
            escape_json(&b, name);
        else
            appendStringInfo(&b, "\"f%d\"", i);
        appendStringInfoString(&b, ", \"bits\": ");
        append_double(&b, round(credit[i] * 1000.0) / 1000.0);
        appendStringInfoString(&b, ", \"share\": ");
        append_double(&b, total > 0 ? round(credit[i] / total * 1000.0) / 1000.0 : 0.0);
        appendStringInfoString(&b, ", \"value\": ");
        append_double(&b, x[i]);
        if (m->feature_median) {
            appendStringInfoString(&b, ", \"typical\": ");
            append_double(&b, m->feature_median[i]);
        }
        appendStringInfoChar(&b, '}');
    }
    appendStringInfoChar(&b, ']');
    pfree(credit);
    pfree(order);
    return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}

PG_FUNCTION_INFO_V1(chainwatch_explain);
/*
 * chainwatch_explain(value numeric, gas numeric, gas_price numeric, model_id int) RETURNS jsonb:
 * the explanation of a transaction's score under a three-feature model (NULL model_id: the active
 * one); NULL when a feature is NULL. Not STRICT, for the NULL model_id.
 */
Datum chainwatch_explain(PG_FUNCTION_ARGS)
{
    CachedModel *m;
    double x[3];
    Jsonb *j;

    for (int i = 0; i < 3; i++)
        if (PG_ARGISNULL(i))
            PG_RETURN_NULL();
    m = ModelCacheResolve(fcinfo, 3);
    x[0] = FeatureFromNumeric(PG_GETARG_DATUM(0), "value");
    x[1] = FeatureFromNumeric(PG_GETARG_DATUM(1), "gas");
    x[2] = FeatureFromNumeric(PG_GETARG_DATUM(2), "gas_price");
    FeatureCheck(m->forest, x, 3);
    j = ExplanationBuild(m, x);
    if (!j)
        PG_RETURN_NULL();
    PG_RETURN_JSONB_P(j);
}

PG_FUNCTION_INFO_V1(chainwatch_explain_vector);
/* chainwatch_explain_vector(features float8[], model_id int) RETURNS jsonb: the same for a feature
 * vector of the model's width */
Datum chainwatch_explain_vector(PG_FUNCTION_ARGS)
{
    CachedModel *m;
    double *x;
    int n;
    Jsonb *j;

    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    x = FeaturesFromArray(PG_GETARG_ARRAYTYPE_P(0), &n);
    m = ModelCacheResolve(fcinfo, 1);
    x = FeaturesForModel(m, x, &n);
    FeatureCheck(m->forest, x, n);
    j = ExplanationBuild(m, x);
    pfree(x);
    if (!j)
        PG_RETURN_NULL();
    PG_RETURN_JSONB_P(j);
}
