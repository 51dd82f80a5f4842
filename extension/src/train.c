/* extension/src/train.c — chainwatch.train_model(): reservoir-sample a query through an SPI cursor
 * and fit a forest */

/*
 * Design
 * ------
 * train_model runs the caller's query through an SPI cursor, fetching TRAIN_FETCH rows at a
 * time, and keeps a uniform reservoir sample (Algorithm R, driven by cw_prng seeded from the
 * model seed) of max(CW_RESERVOIR_ROWS, sample_size) rows, so memory stays bounded whatever the
 * table size. The forest is trained on the reservoir (each tree samples sample_size rows of it
 * without replacement) and the threshold is the (1 - contamination) quantile of the reservoir's
 * scores. The query must return either three numeric-like columns (value, gas, gas_price in
 * wei / gas units) or one float8[] column of a fixed width. Rows with a NULL are skipped and
 * counted; negative, NaN or infinite amounts are errors. With feature_set 'behaviour/1' the
 * column is transactions.features (CW_FEATURES wide) and the reservoir keeps only the features
 * feature_names picks, in that order; the model is named by them (models.feature_set).
 *
 * Memory. Whatever a row needs while it is read (detoasted arrays and numerics: a value stored
 * with a short header is always copied) is allocated in a per-row context reset before the next
 * row, so a scan of any length holds one row's values, the reservoir and the fetched batch. Up to
 * extension 0.8.0 the float8[] form kept every row's detoasted array until the end of the scan.
 *
 * The fitted forest is serialized by the forest core and stored by ModelInsert (model_io.c).
 * The forest is malloc'd: it is freed on every path, including errors (PG_FINALLY).
 */
#include "chainwatch.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "txfeatures.h"
#include "prng.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#define TRAIN_FETCH 10000

/* datum_to_double converts a numeric-like column value to float8. */
static double datum_to_double(Datum d, Oid type, const char *what)
{
    double v;

    switch (type) {
    case NUMERICOID:
        return FeatureFromNumeric(d, what);
    case INT2OID:
        v = DatumGetInt16(d);
        break;
    case INT4OID:
        v = DatumGetInt32(d);
        break;
    case INT8OID:
        v = (double) DatumGetInt64(d);
        break;
    case FLOAT4OID:
        v = DatumGetFloat4(d);
        break;
    case FLOAT8OID:
        v = DatumGetFloat8(d);
        break;
    default:
        elog(ERROR, "unexpected column type %u", type);
    }
    if (!isfinite(v))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s must be a finite amount", what)));
    if (v < 0)
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("%s must not be negative", what)));
    return v;
}

static bool is_number_type(Oid t)
{
    return t == NUMERICOID || t == INT2OID || t == INT4OID || t == INT8OID || t == FLOAT4OID ||
           t == FLOAT8OID;
}

/*
 * feature_medians returns (palloc'd) each column's median over the reservoir's n rows of width
 * columns, the raw values as given: the typical value an explanation prints beside a row's.
 */
static double *feature_medians(const double *rows, size_t n, int width)
{
    double *median = palloc(sizeof(double) * width);
    double *column = palloc(sizeof(double) * n);

    for (int j = 0; j < width; j++) {
        for (size_t i = 0; i < n; i++)
            column[i] = rows[i * width + j];
        median[j] = forest_quantile(column, n, 0.5);
    }
    pfree(column);
    return median;
}

PG_FUNCTION_INFO_V1(chainwatch_train_model);
/*
 * chainwatch_train_model(name text, source_query text, n_trees int, sample_size int,
 * contamination float8, seed bigint, transform text, feature_set text) RETURNS int: the new
 * model's id. feature_set '' takes the query's columns as they are; 'behaviour/1' names the
 * features of a float8[] column of transactions.features (models.feature_set).
 */
Datum chainwatch_train_model(PG_FUNCTION_ARGS)
{
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
    int32 n_trees = PG_GETARG_INT32(2);
    int32 sample_size = PG_GETARG_INT32(3);
    double contamination = PG_GETARG_FLOAT8(4);
    int64 seed = PG_GETARG_INT64(5);
    char *transform_name = text_to_cstring(PG_GETARG_TEXT_PP(6));
    /* the SQL declaration of a release before 0.11.0 has seven arguments */
    char *feature_set = PG_NARGS() > 7 ? text_to_cstring(PG_GETARG_TEXT_PP(7)) : "";
    bool behaviour = strcmp(feature_set, CW_FEATURE_SET) == 0;
    /* behaviour/1: the features the model takes, by position in transactions.features */
    int sel[CW_FEATURES], sel_n = CW_FEATURES;
    const char *sel_names[CW_FEATURES];
    forest_params params;
    forest_transform transform;
    MemoryContext trainctx, oldctx, spictx, rowctx;
    double *reservoir;
    int64 capacity, seen = 0, kept = 0, skipped = 0;
    int width = -1;  /* of the query's rows */
    int rwidth = -1; /* of the reservoir's: the model's features (behaviour/1: those it takes) */
    bool vector_form = false;
    char *colnames[3] = {NULL, NULL, NULL};
    Oid coltypes[3];
    cw_prng rng;
    Portal portal;
    forest *volatile f = NULL; /* assigned in PG_TRY, freed in PG_FINALLY after a longjmp */
    forest_error err = {0};
    forest_score_summary summary;
    double *median;
    int32 model_id = 0;

    if (strlen(name) == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("a model needs a non-empty name")));
    if (n_trees < 1 || n_trees > FOREST_MAX_TREES)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("n_trees must be between 1 and %d", FOREST_MAX_TREES)));
    if (sample_size < 2 || sample_size > FOREST_MAX_SAMPLES)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("sample_size must be between 2 and %d", FOREST_MAX_SAMPLES)));
    if (!(contamination > 0.0 && contamination <= 0.5))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("contamination must be in (0, 0.5]"),
                        errhint("It is the expected share of anomalies, e.g. 0.01.")));
    if (forest_transform_parse(transform_name, &transform) != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("unknown transform \"%s\"", transform_name),
                        errhint("Use 'log1p' (heavy-tailed amounts) or 'identity'.")));

    if (!behaviour && feature_set[0] != '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("unknown feature set \"%s\"", feature_set),
                        errhint("Use '%s' (source_query returns transactions.features) or '' "
                                "(the query's own columns).",
                                CW_FEATURE_SET)));
    for (int k = 0; k < CW_FEATURES; k++)
        sel[k] = k;
    if (PG_NARGS() > 8) {
        ArrayType *names = PG_GETARG_ARRAYTYPE_P(8);
        Datum *elems;
        bool *enulls;
        int n;

        deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
        if (n > 0 && !behaviour)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("feature_names needs feature_set '%s'", CW_FEATURE_SET)));
        if (n > 0) {
            for (int k = 0; k < n && k < CW_FEATURES; k++)
                sel_names[k] = enulls[k] ? NULL : TextDatumGetCString(elems[k]);
            if (n > CW_FEATURES || cw_feature_map(sel_names, n, sel) != n)
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("feature_names must name distinct features of %s", CW_FEATURE_SET),
                         errhint("chainwatch.feature_names() lists them.")));
            sel_n = n;
        }
    }
    for (int k = 0; k < sel_n; k++)
        sel_names[k] = cw_feature_names[sel[k]];
    if (behaviour && transform != FOREST_TRANSFORM_IDENTITY)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("feature set %s needs transform 'identity'", CW_FEATURE_SET),
                        errhint("Its features are already on log scales and some are signed.")));

    capacity = Max(CW_RESERVOIR_ROWS, sample_size);
    trainctx =
        AllocSetContextCreate(CurrentMemoryContext, "chainwatch train", ALLOCSET_DEFAULT_SIZES);
    cw_prng_seed(&rng, (uint64) seed ^ UINT64_C(0x5EED5EED5EED5EED));

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    portal = SourceQueryOpen(query);

    reservoir = NULL;
    spictx = CurrentMemoryContext;
    rowctx = AllocSetContextCreate(trainctx, "chainwatch train row", ALLOCSET_SMALL_SIZES);

    for (;;) {
        SPI_cursor_fetch(portal, true, TRAIN_FETCH);
        if (SPI_processed == 0)
            break;
        TupleDesc desc = SPI_tuptable->tupdesc;
        if (width < 0) {
            /* decide the shape from the first batch */
            if (desc->natts == 3) {
                for (int k = 0; k < 3; k++) {
                    coltypes[k] = SPI_gettypeid(desc, k + 1);
                    if (!is_number_type(coltypes[k]))
                        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                                        errmsg("source_query column %d has type %s; expected "
                                               "numeric amounts",
                                               k + 1, format_type_be(coltypes[k]))));
                    oldctx = MemoryContextSwitchTo(trainctx);
                    colnames[k] = pstrdup(SPI_fname(desc, k + 1));
                    MemoryContextSwitchTo(oldctx);
                }
                width = 3;
            } else if (desc->natts == 1 && SPI_gettypeid(desc, 1) == FLOAT8ARRAYOID) {
                vector_form = true;
                width = 0; /* from the first non-NULL array */
            } else {
                ereport(
                    ERROR,
                    (errcode(ERRCODE_DATATYPE_MISMATCH),
                     errmsg("source_query must return (value, gas, gas_price) numeric "
                            "columns or one float8[] column"),
                     errhint("e.g. SELECT value, gas, gas_price FROM chainwatch.transactions")));
            }
        }
        for (uint64 i = 0; i < SPI_processed; i++) {
            HeapTuple tup = SPI_tuptable->vals[i];
            double row[FOREST_MAX_FEATURES];
            bool isnull, skip = false;
            int n = width;

            /* this row's allocations live until the next row (see "Memory" above) */
            MemoryContextReset(rowctx);
            MemoryContextSwitchTo(rowctx);
            if (vector_form) {
                Datum d = SPI_getbinval(tup, desc, 1, &isnull);
                if (isnull) {
                    skipped++;
                    continue;
                }
                double *x = FeaturesFromArray(DatumGetArrayTypeP(d), &n);
                if (width == 0) {
                    if (n < 1 || n > FOREST_MAX_FEATURES)
                        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                        errmsg("feature vectors must have 1 to %d elements",
                                               FOREST_MAX_FEATURES)));
                    width = n;
                }
                if (n != width)
                    ereport(ERROR,
                            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                             errmsg("feature vectors differ in width (%d and %d)", width, n)));
                if (behaviour && n != CW_FEATURES)
                    ereport(ERROR,
                            (errcode(ERRCODE_DATATYPE_MISMATCH),
                             errmsg("feature set %s needs one float8[] column of %d features",
                                    CW_FEATURE_SET, CW_FEATURES),
                             errhint("e.g. SELECT features FROM chainwatch.transactions")));
                for (int k = 0; k < n; k++) {
                    if (!isfinite(x[k]))
                        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                        errmsg("feature %d is not a finite number", k + 1)));
                    if (transform == FOREST_TRANSFORM_LOG1P && x[k] < 0)
                        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                                        errmsg("feature %d is negative, but transform log1p "
                                               "needs non-negative values",
                                               k + 1),
                                        errhint("Use transform => 'identity'.")));
                    row[k] = x[k];
                }
                if (behaviour) /* the model's features, in its order */
                    for (int k = 0; k < sel_n; k++)
                        row[k] = x[sel[k]];
            } else {
                for (int k = 0; k < 3 && !skip; k++) {
                    Datum d = SPI_getbinval(tup, desc, k + 1, &isnull);
                    if (isnull)
                        skip = true;
                    else
                        row[k] = datum_to_double(d, coltypes[k], colnames[k]);
                }
                if (skip) {
                    skipped++;
                    continue;
                }
            }
            if (!reservoir) {
                oldctx = MemoryContextSwitchTo(trainctx);
                rwidth = behaviour ? sel_n : width;
                reservoir = MemoryContextAllocHuge(trainctx, sizeof(double) * rwidth * capacity);
                MemoryContextSwitchTo(oldctx);
            }
            /* Algorithm R: row number `seen` replaces a random slot with probability k/seen */
            int64 slot = -1;
            if (kept < capacity)
                slot = kept++;
            else {
                uint64 j = cw_prng_below(&rng, (uint64) seen + 1);
                if (j < (uint64) capacity)
                    slot = (int64) j;
            }
            if (slot >= 0)
                memcpy(reservoir + slot * rwidth, row, sizeof(double) * rwidth);
            seen++;
        }
        MemoryContextSwitchTo(spictx);
        SPI_freetuptable(SPI_tuptable);
        CHECK_FOR_INTERRUPTS();
    }
    SPI_cursor_close(portal);

    if (kept < 2)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("source_query returned %lld usable rows; training needs at least 2",
                               (long long) kept)));

    if (behaviour && !vector_form)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("feature set %s needs one float8[] column of %d features",
                               CW_FEATURE_SET, CW_FEATURES),
                        errhint("e.g. SELECT features FROM chainwatch.transactions")));
    params.n_features = rwidth;
    params.n_trees = n_trees;
    params.sample_size = sample_size;
    params.contamination = contamination;
    params.seed = (uint64) seed;
    params.transform = transform;

    PG_TRY();
    {
        f = forest_train(reservoir, (size_t) kept, &params, &summary, &err);
        if (!f)
            ForestErrorReport(&err, "training failed");
        if (!vector_form) {
            const char *names[3] = {colnames[0], colnames[1], colnames[2]};
            if (forest_set_feature_names(f, names) != 0)
                ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
        } else if (behaviour && forest_set_feature_names(f, sel_names) != 0)
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
        median = feature_medians(reservoir, (size_t) kept, rwidth);
        model_id = ModelInsert(name, f, "trained", contamination, true, seed, true, seen, &summary,
                               median);
    }
    PG_FINALLY();
    {
        forest_free(f);
    }
    PG_END_TRY();

    if (skipped > 0)
        ereport(NOTICE, (errmsg("skipped %lld rows with NULL features", (long long) skipped)));
    SPI_finish();
    MemoryContextDelete(trainctx);
    PG_RETURN_INT32(model_id);
}
