/* extension/src/features.c — SQL values to validated feature vectors; forest errors to ereport */
#include "chainwatch.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

/*
 * FeatureFromNumeric converts a wei amount to float8 exactly as float8(numeric) does (decimal
 * text through strtod, correctly rounded), so the ingestor's strtod of the same digits gives the
 * same double. NaN, infinities and negative amounts are errors.
 */
double FeatureFromNumeric(Datum num, const char *what)
{
    double d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, num));

    if (isnan(d) || isinf(d))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s must be a finite amount", what),
                        errhint("NaN and Infinity cannot be scored.")));
    if (d < 0)
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("%s must not be negative", what),
                        errhint("Amounts are in wei (value, gas price) or gas units.")));
    return d;
}

/* FeatureCheck validates a feature vector against a model: width, finiteness, log1p domain. */
void FeatureCheck(const forest *f, const double *x, int n)
{
    if (n != forest_n_features(f))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the model expects %d features, got %d", forest_n_features(f), n),
                        errhint("Pass a float8[] of the width the model was trained on.")));
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("feature %d is not a finite number", i + 1),
                            errhint("NaN and Infinity cannot be scored.")));
        if (forest_get_transform(f) == FOREST_TRANSFORM_LOG1P && x[i] < 0)
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("feature %d is negative, but the model's log1p transform "
                                   "needs non-negative amounts",
                                   i + 1)));
    }
}

/*
 * FeaturesFromArray returns the elements of a one-dimensional float8[] without NULLs as a
 * palloc'd array (the caller pfrees or lets the memory context go).
 */
double *FeaturesFromArray(ArrayType *arr, int *n_out)
{
    Datum *elems;
    bool *nulls;
    int n;
    double *x;

    if (ARR_NDIM(arr) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("a feature vector must be a one-dimensional float8[]")));
    deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
    x = palloc(sizeof(double) * (n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("feature %d is NULL", i + 1)));
        x[i] = DatumGetFloat8(elems[i]);
    }
    pfree(elems);
    pfree(nulls);
    *n_out = n;
    return x;
}

/* ForestErrorReport raises the forest core's error with a matching SQLSTATE. */
void ForestErrorReport(const forest_error *err, const char *context)
{
    int code;
    const char *hint = NULL;

    switch (err->code) {
    case FOREST_ERR_NOMEM:
        code = ERRCODE_OUT_OF_MEMORY;
        break;
    case FOREST_ERR_CHECKSUM:
        code = ERRCODE_DATA_CORRUPTED;
        hint = "The stored model bytes were altered; re-import or retrain the model.";
        break;
    case FOREST_ERR_VERSION:
        code = ERRCODE_FEATURE_NOT_SUPPORTED;
        hint = "Export the model in format chainwatch-iforest/1.";
        break;
    case FOREST_ERR_MALFORMED:
        code = ERRCODE_INVALID_PARAMETER_VALUE;
        hint = "See docs/model-format.md for the chainwatch-iforest/1 format.";
        break;
    default:
        code = ERRCODE_INVALID_PARAMETER_VALUE;
        break;
    }
    ereport(ERROR, (errcode(code), errmsg("%s: %s", context, err->message),
                    hint ? errhint("%s", hint) : 0));
}
