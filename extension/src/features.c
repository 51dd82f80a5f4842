/* extension/src/features.c — SQL values to validated feature vectors; forest errors to ereport */
#include "chainwatch.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

/*
 * wei_to_double_fast converts a non-negative integral numeric below 2^64 without going through
 * text: its base-10000 digits are summed exactly into a uint64, and the conversion of that to
 * double is correctly rounded, as strtod of the same decimal digits is — so the result is the
 * one float8(numeric) gives. Anything else (NaN, infinities, negatives, fractions, 2^64 and
 * above) returns false and takes the numeric_float8 path. The layout read here is numeric's
 * on-disk format (see numeric.c), which cannot change between major versions because
 * pg_upgrade keeps data files as they are. Most wei amounts (below ~18 ETH), every gas limit
 * and every gas price take this path; it saves a palloc'd numeric_out string and a strtod
 * per amount.
 */
static bool wei_to_double_fast(Datum num, double *out)
{
    struct varlena *v = PG_DETOAST_DATUM_PACKED(num);
    const char *p = VARDATA_ANY(v);
    size_t len = VARSIZE_ANY_EXHDR(v);
    const char *digits;
    uint16 header;
    int weight, ndigits;
    uint64 acc = 0;
    bool ok = false;

    if (len < sizeof(uint16))
        goto out;
    memcpy(&header, p, sizeof(header));
    switch (header & 0xC000) {
    case 0x8000: /* short format: sign, display scale and weight packed in the header */
        if (header & 0x2000)
            goto out; /* negative */
        weight = (header & 0x0040) ? (int) (~0x003F | (header & 0x003F)) : (int) (header & 0x003F);
        digits = p + sizeof(uint16);
        ndigits = (int) ((len - sizeof(uint16)) / sizeof(int16));
        break;
    case 0x0000: { /* long format, positive */
        int16 w;
        if (len < 2 * sizeof(uint16))
            goto out;
        memcpy(&w, p + sizeof(uint16), sizeof(w));
        weight = w;
        digits = p + 2 * sizeof(uint16);
        ndigits = (int) ((len - 2 * sizeof(uint16)) / sizeof(int16));
        break;
    }
    default: /* negative long format, NaN, +/-Infinity */
        goto out;
    }
    if (ndigits == 0) {
        *out = 0.0; /* zero has no digits */
        ok = true;
        goto out;
    }
    /* digits after the decimal point, or 10000^5 > 2^64 */
    if (weight < ndigits - 1 || weight > 4)
        goto out;
    for (int i = 0; i <= weight; i++) {
        int16 d = 0;
        if (i < ndigits)
            memcpy(&d, digits + i * sizeof(int16), sizeof(d));
        if (d < 0 || d > 9999 || acc > (PG_UINT64_MAX - (uint64) d) / 10000)
            goto out;
        acc = acc * 10000 + (uint64) d;
    }
    *out = (double) acc;
    ok = true;
out:
    if ((Pointer) v != DatumGetPointer(num))
        pfree(v);
    return ok;
}

/*
 * FeatureFromNumeric converts a wei amount to float8 exactly as float8(numeric) does (decimal
 * text through strtod, correctly rounded), so the ingestor's strtod of the same digits gives the
 * same double. NaN, infinities and negative amounts are errors.
 */
double FeatureFromNumeric(Datum num, const char *what)
{
    double d;

    if (wei_to_double_fast(num, &d))
        return d;
    d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, num));
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

/* FeatureFromNumericQuiet is FeatureFromNumeric that returns false where that one raises */
bool FeatureFromNumericQuiet(Datum num, double *out)
{
    Numeric n;

    if (wei_to_double_fast(num, out))
        return true;
    n = DatumGetNumeric(num);
    if (numeric_is_nan(n) || numeric_is_inf(n))
        return false;
    *out = DatumGetFloat8(DirectFunctionCall1(numeric_float8, num));
    return isfinite(*out) && *out >= 0;
}

PG_FUNCTION_INFO_V1(chainwatch_wei_float8);
/* chainwatch_wei_float8(amount numeric): the float8 a wei amount becomes as a feature (tests) */
Datum chainwatch_wei_float8(PG_FUNCTION_ARGS)
{
    PG_RETURN_FLOAT8(FeatureFromNumeric(PG_GETARG_DATUM(0), "amount"));
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
 * SourceQueryOpen prepares a caller's source_query (train_model, replay_features) and opens a
 * read-only cursor over it; 22023 unless it is one statement returning rows. Needs SPI.
 */
Portal SourceQueryOpen(const char *query)
{
    SPIPlanPtr plan = SPI_prepare(query, 0, NULL);

    if (plan == NULL)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("source_query could not be prepared: %s",
                               SPI_result_code_string(SPI_result))));
    if (!SPI_is_cursor_plan(plan))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("source_query must be a single SELECT returning rows")));
    return SPI_cursor_open(NULL, plan, NULL, NULL, true);
}

/*
 * FeaturesForModel returns x as model m takes it: a model over behaviour/1 features given the full
 * vector (transactions.features, CW_FEATURES wide) takes its own features of it, by name, into a
 * palloc'd array (*n becomes its width); any other vector is returned as it is, for FeatureCheck.
 */
double *FeaturesForModel(const CachedModel *m, double *x, int *n)
{
    double *out;

    if (m->n_select <= 0 || *n != CW_FEATURES)
        return x;
    out = palloc(sizeof(double) * m->n_select);
    for (int k = 0; k < m->n_select; k++)
        out[k] = x[m->select[k]];
    *n = m->n_select;
    return out;
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
    if (ARR_ELEMTYPE(arr) == FLOAT8OID && !ARR_HASNULL(arr)) {
        /* the common case: the elements are the doubles, contiguous and aligned */
        n = ARR_NDIM(arr) == 1 ? ARR_DIMS(arr)[0] : 0;
        x = palloc(sizeof(double) * (n > 0 ? n : 1));
        if (n > 0)
            memcpy(x, ARR_DATA_PTR(arr), sizeof(double) * n);
        *n_out = n;
        return x;
    }
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
