/* extension/src/model_io.c — storing models (ModelInsert) and the JSON import/export functions */
#include "chainwatch.h"

#include "txfeatures.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

/* rel_owner is the owner of relation rel */
static Oid rel_owner(Oid rel)
{
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
    Oid owner;

    if (!HeapTupleIsValid(tup))
        elog(ERROR, "cache lookup failed for relation %u", rel);
    owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    return owner;
}

/*
 * ModelFeatureSet names what a forest scores, by its feature names: "transaction/1" for (value,
 * gas, gas_price), "behaviour/1" for distinct names of feature_names() (a model may take some of
 * them, in any order), NULL for anything else (vectors the caller gives). The ingestor and
 * explanations go by it (models.feature_set).
 */
static const char *ModelFeatureSet(const forest *f)
{
    static const char *const raw[3] = {"value", "gas", "gas_price"};
    int nf = forest_n_features(f);
    bool same = forest_feature_name(f, 0) != NULL;

    if (same && nf == 3) {
        bool raw_names = true;
        for (int i = 0; i < 3; i++)
            raw_names = raw_names && strcmp(forest_feature_name(f, i), raw[i]) == 0;
        if (raw_names)
            return "transaction/1";
    }
    {
        int map[CW_FEATURES];
        if (same && cw_feature_map_forest(f, map) == nf)
            return CW_FEATURE_SET;
    }
    return NULL;
}

/*
 * ModelInsert serializes f and inserts it into chainwatch.models with its parameters; returns
 * the new id. Parameters of f itself (features, trees, sample size, threshold, transform)
 * come from the forest so they can never disagree with the stored bytes.
 *
 * Models enter only this way (issue 24): no daemon role holds INSERT on chainwatch.models, so a
 * row cannot be forged (another created_by or source, a forest that does not load). The INSERT
 * runs as the table's owner, the way REFRESH MATERIALIZED VIEW runs as the view's, in a restricted
 * security context; everything before it (the training query, the JSON) ran as the caller, whose
 * name is recorded in created_by. An error inside restores the caller's identity at abort.
 */
int32 ModelInsert(const char *name, forest *f, const char *source, double contamination,
                  bool has_contamination, int64 seed, bool has_seed, int64 training_rows,
                  const forest_score_summary *summary, const double *feature_median)
{
    size_t size = forest_serialized_size(f);
    bytea *blob = palloc(VARHDRSZ + size);
    Oid rel = ModelCacheModelsRelid();
    StringInfoData sql;
    Datum values[15];
    char nulls[15];
    Oid types[15] = {TEXTOID, TEXTOID,  INT4OID,   TEXTARRAYOID, TEXTOID,
                     INT4OID, INT4OID,  FLOAT8OID, FLOAT8OID,    INT8OID,
                     INT8OID, JSONBOID, BYTEAOID,  TEXTOID,      TEXTOID};
    Oid caller;
    int sec_context;
    int nf = forest_n_features(f);
    bool isnull, has_set;
    int32 id;

    SET_VARSIZE(blob, VARHDRSZ + size);
    forest_serialize(f, (uint8_t *) VARDATA(blob));
    memset(nulls, ' ', sizeof(nulls));

    values[0] = CStringGetTextDatum(name);
    values[1] = CStringGetTextDatum(source);
    values[2] = Int32GetDatum(nf);
    if (forest_feature_name(f, 0)) {
        Datum *names = palloc(sizeof(Datum) * nf);
        for (int i = 0; i < nf; i++)
            names[i] = CStringGetTextDatum(forest_feature_name(f, i));
        values[3] = PointerGetDatum(construct_array(names, nf, TEXTOID, -1, false, TYPALIGN_INT));
    } else
        nulls[3] = 'n';
    values[4] = CStringGetTextDatum(forest_transform_name(forest_get_transform(f)));
    values[5] = Int32GetDatum(forest_n_trees(f));
    values[6] = Int32GetDatum(forest_max_samples(f));
    values[7] = Float8GetDatum(contamination);
    nulls[7] = has_contamination ? ' ' : 'n';
    values[8] = Float8GetDatum(forest_threshold(f));
    values[9] = Int64GetDatum(seed);
    nulls[9] = has_seed ? ' ' : 'n';
    values[10] = Int64GetDatum(training_rows);
    nulls[10] = training_rows >= 0 ? ' ' : 'n';
    if (summary) {
        StringInfoData json;
        initStringInfo(&json);
        appendStringInfo(&json,
                         "{\"n\": %zu, \"min\": %.17g, \"max\": %.17g, \"mean\": %.17g, "
                         "\"p50\": %.17g, \"p90\": %.17g, \"p99\": %.17g",
                         summary->n, summary->min, summary->max, summary->mean, summary->p50,
                         summary->p90, summary->p99);
        /* the typical value of each raw feature, which explanations print beside the row's */
        if (feature_median) {
            appendStringInfoString(&json, ", \"feature_median\": [");
            for (int i = 0; i < nf; i++)
                appendStringInfo(&json, "%s%.17g", i ? ", " : "", feature_median[i]);
            appendStringInfoChar(&json, ']');
        }
        appendStringInfoChar(&json, '}');
        values[11] = DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data));
    } else
        nulls[11] = 'n';
    values[12] = PointerGetDatum(blob);
    GetUserIdAndSecContext(&caller, &sec_context);
    values[13] = CStringGetTextDatum(GetUserNameFromId(caller, false));
    {
        const char *set = ModelFeatureSet(f);
        values[14] = set ? CStringGetTextDatum(set) : (Datum) 0;
        nulls[14] = set ? ' ' : 'n';
    }

    /* models has feature_set from 0.11.0 on; the library may run under an older schema until
     * ALTER EXTENSION UPDATE */
    has_set = get_attnum(rel, "feature_set") != InvalidAttrNumber;
    initStringInfo(&sql);
    appendStringInfo(
        &sql,
        "INSERT INTO %s (name, source, n_features, feature_names, transform, n_trees, "
        "sample_size, contamination, threshold, seed, training_rows, "
        "training_summary, format_version, checksum, forest, created_by%s) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, %d, "
        "%u::bigint, $13, $14%s) RETURNING id",
        quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)), get_rel_name(rel)),
        has_set ? ", feature_set" : "", FOREST_FORMAT_VERSION,
        (unsigned) forest_serialized_checksum((const uint8_t *) VARDATA(blob), size),
        has_set ? ", $15" : "");
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    SetUserIdAndSecContext(rel_owner(rel), sec_context | SECURITY_LOCAL_USERID_CHANGE |
                                               SECURITY_RESTRICTED_OPERATION);
    if (SPI_execute_with_args(sql.data, has_set ? 15 : 14, types, values, nulls, false, 1) !=
        SPI_OK_INSERT_RETURNING)
        elog(ERROR, "could not insert into chainwatch.models");
    SetUserIdAndSecContext(caller, sec_context);
    id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    SPI_finish();
    /* the models_invalidate statement trigger does not fire for this SPI INSERT ... RETURNING
     * (triggers.sql), so the model caches hear of the new row here: a cache that found this id
     * missing earlier (model_cache.c) must read it again */
    CacheInvalidateRelcacheByRelid(rel);
    return id;
}

PG_FUNCTION_INFO_V1(chainwatch_import_model);
/* chainwatch_import_model(name text, model jsonb) RETURNS int */
Datum chainwatch_import_model(PG_FUNCTION_ARGS)
{
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    Jsonb *jb = PG_GETARG_JSONB_P(1);
    char *json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
    forest_error err = {0};
    forest *f;
    int32 id = 0;

    if (strlen(name) == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("a model needs a non-empty name")));
    f = forest_import_json(json, strlen(json), &err);
    if (!f)
        ForestErrorReport(&err, "invalid model");
    PG_TRY();
    {
        id = ModelInsert(name, f, "imported", 0, false, 0, false, -1, NULL, NULL);
    }
    PG_FINALLY();
    {
        forest_free(f);
    }
    PG_END_TRY();
    PG_RETURN_INT32(id);
}

PG_FUNCTION_INFO_V1(chainwatch_export_model);
/* chainwatch_export_model(id int) RETURNS jsonb in format chainwatch-iforest/1 */
Datum chainwatch_export_model(PG_FUNCTION_ARGS)
{
    CachedModel *m = ModelCacheGet(PG_GETARG_INT32(0));
    char *json = forest_export_json(m->forest);
    Datum result;

    if (!json)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory exporting a model")));
    PG_TRY();
    {
        result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
    }
    PG_FINALLY();
    {
        free(json);
    }
    PG_END_TRY();
    PG_RETURN_DATUM(result);
}
