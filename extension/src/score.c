/* extension/src/score.c — SQL scoring functions: score, score_vector, is_anomaly, score_batch */
#include "chainwatch.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

/*
 * The scorers are STABLE (they read the models table, which can change between statements)
 * and PARALLEL SAFE (each worker has its own model cache). They are not STRICT, because a
 * NULL model_id means "the active model"; a NULL feature still gives NULL, as STRICT would.
 */

/* wei_features reads (value, gas, gas_price) numeric arguments 0..2 into x. */
static void wei_features(FunctionCallInfo fcinfo, double *x)
{
    x[0] = FeatureFromNumeric(PG_GETARG_DATUM(0), "value");
    x[1] = FeatureFromNumeric(PG_GETARG_DATUM(1), "gas");
    x[2] = FeatureFromNumeric(PG_GETARG_DATUM(2), "gas_price");
}

static bool any_feature_null(FunctionCallInfo fcinfo, int n)
{
    for (int i = 0; i < n; i++)
        if (PG_ARGISNULL(i))
            return true;
    return false;
}

/* score_wei scores (value, gas, gas_price) with the model argument at position 3. */
static double score_wei(FunctionCallInfo fcinfo)
{
    double x[3];
    CachedModel *m = ModelCacheResolve(fcinfo, 3);
    wei_features(fcinfo, x);
    FeatureCheck(m->forest, x, 3);
    return forest_score(m->forest, x);
}

static double score_vec(FunctionCallInfo fcinfo, CachedModel **model)
{
    int n;
    double *x = FeaturesFromArray(PG_GETARG_ARRAYTYPE_P(0), &n);
    CachedModel *m = ModelCacheResolve(fcinfo, 1);
    double s;

    x = FeaturesForModel(m, x, &n);
    FeatureCheck(m->forest, x, n);
    s = forest_score(m->forest, x);
    pfree(x);
    *model = m;
    return s;
}

PG_FUNCTION_INFO_V1(chainwatch_score);
Datum chainwatch_score(PG_FUNCTION_ARGS)
{
    if (any_feature_null(fcinfo, 3))
        PG_RETURN_NULL();
    PG_RETURN_FLOAT8(score_wei(fcinfo));
}

PG_FUNCTION_INFO_V1(chainwatch_is_anomaly);
Datum chainwatch_is_anomaly(PG_FUNCTION_ARGS)
{
    CachedModel *m;
    double x[3], s;

    if (any_feature_null(fcinfo, 3))
        PG_RETURN_NULL();
    m = ModelCacheResolve(fcinfo, 3);
    wei_features(fcinfo, x);
    FeatureCheck(m->forest, x, 3);
    s = forest_score(m->forest, x);
    PG_RETURN_BOOL(forest_is_anomaly_score(m->forest, s));
}

PG_FUNCTION_INFO_V1(chainwatch_score_vector);
Datum chainwatch_score_vector(PG_FUNCTION_ARGS)
{
    CachedModel *m;
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    PG_RETURN_FLOAT8(score_vec(fcinfo, &m));
}

PG_FUNCTION_INFO_V1(chainwatch_is_anomaly_vector);
Datum chainwatch_is_anomaly_vector(PG_FUNCTION_ARGS)
{
    CachedModel *m;
    double s;
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    s = score_vec(fcinfo, &m);
    PG_RETURN_BOOL(forest_is_anomaly_score(m->forest, s));
}

PG_FUNCTION_INFO_V1(chainwatch_model_threshold);
/* chainwatch_model_threshold(model_id int DEFAULT NULL): the threshold of a model */
Datum chainwatch_model_threshold(PG_FUNCTION_ARGS)
{
    CachedModel *m = ModelCacheResolve(fcinfo, 0);
    PG_RETURN_FLOAT8(forest_threshold(m->forest));
}

/* return_scores materializes n scores as the SRF result set. */
static Datum return_scores(FunctionCallInfo fcinfo, const double *scores, int n)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    for (int i = 0; i < n; i++) {
        Datum v = Float8GetDatum(scores[i]);
        bool isnull = false;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
    }
    return (Datum) 0;
}

PG_FUNCTION_INFO_V1(chainwatch_score_batch_matrix);
/*
 * chainwatch_score_batch_matrix(features float8[][], model_id int DEFAULT NULL): one score per
 * row of a two-dimensional array, scored as one batch.
 */
Datum chainwatch_score_batch_matrix(PG_FUNCTION_ARGS)
{
    ArrayType *arr;
    CachedModel *m;
    Datum *elems;
    bool *nulls;
    int n, rows, cols;
    double *x, *scores;

    if (PG_ARGISNULL(0))
        return return_scores(fcinfo, NULL, 0);
    arr = PG_GETARG_ARRAYTYPE_P(0);
    m = ModelCacheResolve(fcinfo, 1);
    if (ARR_NDIM(arr) == 0)
        return return_scores(fcinfo, NULL, 0);
    if (ARR_NDIM(arr) != 2)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("score_batch expects a two-dimensional float8[][] (one row per "
                               "transaction)")));
    rows = ARR_DIMS(arr)[0];
    cols = ARR_DIMS(arr)[1];
    deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
    x = palloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("row %d feature %d is NULL", i / cols + 1, i % cols + 1)));
        x[i] = DatumGetFloat8(elems[i]);
    }
    for (int r = 0; r < rows; r++)
        FeatureCheck(m->forest, x + (size_t) r * cols, cols);
    scores = palloc(sizeof(double) * (rows > 0 ? rows : 1));
    forest_score_batch(m->forest, x, rows, scores);
    return return_scores(fcinfo, scores, rows);
}

PG_FUNCTION_INFO_V1(chainwatch_score_batch_wei);
/*
 * chainwatch_score_batch_wei(value numeric[], gas numeric[], gas_price numeric[], model_id):
 * one score per index of three equally long arrays; a NULL element scores NULL.
 */
Datum chainwatch_score_batch_wei(PG_FUNCTION_ARGS)
{
    static const char *const names[3] = {"value", "gas", "gas_price"};
    Datum *elems[3];
    bool *nulls[3];
    int n[3];
    CachedModel *m;
    double *x, *scores;
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

    if (any_feature_null(fcinfo, 3))
        return return_scores(fcinfo, NULL, 0);
    m = ModelCacheResolve(fcinfo, 3);
    for (int k = 0; k < 3; k++) {
        ArrayType *arr = PG_GETARG_ARRAYTYPE_P(k);
        if (ARR_NDIM(arr) > 1)
            ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                            errmsg("%s must be a one-dimensional numeric[]", names[k])));
        deconstruct_array(arr, NUMERICOID, -1, false, TYPALIGN_INT, &elems[k], &nulls[k], &n[k]);
    }
    if (n[0] != n[1] || n[0] != n[2])
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("value, gas and gas_price arrays differ in length (%d, %d, %d)",
                               n[0], n[1], n[2])));
    x = palloc(sizeof(double) * 3 * (n[0] > 0 ? n[0] : 1));
    for (int i = 0; i < n[0]; i++)
        for (int k = 0; k < 3; k++)
            x[i * 3 + k] = nulls[k][i] ? 0.0 : FeatureFromNumeric(elems[k][i], names[k]);
    if (forest_n_features(m->forest) != 3)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the model expects %d features, not (value, gas, gas_price)",
                               forest_n_features(m->forest)),
                        errhint("Use the float8[][] form of score_batch.")));
    scores = palloc(sizeof(double) * (n[0] > 0 ? n[0] : 1));
    forest_score_batch(m->forest, x, n[0], scores);

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    for (int i = 0; i < n[0]; i++) {
        Datum v = Float8GetDatum(scores[i]);
        bool isnull = nulls[0][i] || nulls[1][i] || nulls[2][i];
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
    }
    return (Datum) 0;
}
