/* extension/src/model_cache.c — per-backend cache of deserialized models, kept fresh by relcache
 * invalidation */

/*
 * Design
 * ------
 * Scoring must not look anything up per row, yet must never use a stale model. Models are
 * immutable once inserted (only is_active changes), so a backend keeps each deserialized
 * forest in a hash table keyed by model id, plus the id of the active model.
 *
 * Freshness comes from PostgreSQL's own cache invalidation: a statement-level trigger on
 * chainwatch.models (chainwatch_models_invalidate) calls CacheInvalidateRelcacheByRelid on
 * every INSERT/UPDATE/DELETE/TRUNCATE. The invalidation is delivered to every backend when
 * the changing transaction commits (and locally at the next command), and our relcache
 * callback then forgets the active id and every cached forest. A backend processes pending
 * invalidations whenever it locks a relation, i.e. at the start of its next statement, so
 * activation or a new model is seen by the next call; a rolled-back activation is never seen.
 *
 * The forests are malloc'd by the forest core and freed here; the hash table lives in
 * CacheMemoryContext.
 */
#include "chainwatch.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

static HTAB *model_hash = NULL;
static bool active_known = false;
static int32 active_id = 0; /* 0: no active model (ids start at 1) */
static Oid models_relid = InvalidOid;
static bool callback_registered = false;
static uint64 inval_count = 0; /* bumped by every relevant invalidation */
/* the model the last call used: a scan scoring every row with one model skips the hash lookup;
 * valid while inval_count has not moved (a reset frees the forest it points to) */
static CachedModel *last_model = NULL;
static int32 last_model_id = 0;
static uint64 last_model_inval = 0;
/* the last model ModelCacheTryGet found missing or unreadable, valid while inval_count has not
 * moved: the anomalies trigger asks once per row, and re-reading a corrupt forest for every row of
 * a COPY cost a catalog read and a full deserialisation each */
static int32 miss_model_id = 0;
static uint64 miss_model_inval = 0;

/* ModelCacheReset frees every cached forest and forgets the active model. */
static void ModelCacheReset(void)
{
    if (model_hash) {
        HASH_SEQ_STATUS seq;
        CachedModel *m;
        hash_seq_init(&seq, model_hash);
        while ((m = hash_seq_search(&seq)) != NULL) {
            forest_free(m->forest);
            free(m->feature_median);
        }
        hash_destroy(model_hash);
        model_hash = NULL;
    }
    active_known = false;
    active_id = 0;
    last_model = NULL;
}

/* ModelCacheRelcacheCallback runs on relcache invalidation; relid 0 means "everything". */
static void ModelCacheRelcacheCallback(Datum arg, Oid relid)
{
    if (relid == InvalidOid || relid == models_relid) {
        inval_count++;
        ModelCacheReset();
        models_relid = InvalidOid;
    }
}

void ModelCacheInit(void)
{
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(ModelCacheRelcacheCallback, (Datum) 0);
        callback_registered = true;
    }
}

/* ModelCacheModelsRelid returns the oid of chainwatch.models (cached until invalidated). */
Oid ModelCacheModelsRelid(void)
{
    if (!OidIsValid(models_relid)) {
        /* the extension is not relocatable: its schema is always chainwatch */
        Oid nsp = get_namespace_oid("chainwatch", true);
        Oid rel = OidIsValid(nsp) ? get_relname_relid("models", nsp) : InvalidOid;
        if (!OidIsValid(rel))
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("chainwatch.models does not exist"),
                     errhint("Run CREATE EXTENSION chainwatch.")));
        models_relid = rel;
    }
    return models_relid;
}

static const char *ModelsTableName(void)
{
    Oid rel = ModelCacheModelsRelid();
    return quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
                                      get_rel_name(rel));
}

static HTAB *ModelHash(void)
{
    if (!model_hash) {
        HASHCTL ctl;
        memset(&ctl, 0, sizeof(ctl));
        ctl.keysize = sizeof(int32);
        ctl.entrysize = sizeof(CachedModel);
        ctl.hcxt = CacheMemoryContext;
        model_hash =
            hash_create("chainwatch models", 8, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    return model_hash;
}

/* ModelCacheRemember makes m the model the next lookup of model_id returns without hashing. */
static CachedModel *ModelCacheRemember(CachedModel *m, int32 model_id)
{
    last_model = m;
    last_model_id = model_id;
    last_model_inval = inval_count;
    return m;
}

/*
 * model_load returns the cached model, loading and deserializing it on a miss, with the medians
 * of its training summary. An unknown id raises undefined_object, and a stored model that fails
 * its checksum or validation raises data_corrupted; with quiet, both return NULL instead (for the
 * anomalies trigger, which must never fail a batch over its explanation).
 */
/* model_miss remembers that model_id cannot be loaded until the next invalidation (unless one
 * arrived while it was read: the answer may predate it); returns NULL */
static CachedModel *model_miss(int32 model_id, uint64 before)
{
    if (before == inval_count) {
        miss_model_id = model_id;
        miss_model_inval = inval_count;
    }
    return NULL;
}

static CachedModel *model_load(int32 model_id, bool quiet)
{
    CachedModel *m;
    bool found;
    forest *f;
    forest_error err = {0};
    StringInfoData sql;
    Datum arg = Int32GetDatum(model_id);
    Oid argtype = INT4OID;
    double *median = NULL;
    uint64 before;

    if (last_model && model_id == last_model_id && last_model_inval == inval_count)
        return last_model;
    if (quiet && model_id == miss_model_id && miss_model_inval == inval_count)
        return NULL;
    ModelCacheInit();
    (void) ModelCacheModelsRelid();
    m = hash_search(ModelHash(), &model_id, HASH_FIND, NULL);
    if (m)
        return ModelCacheRemember(m, model_id);

    before = inval_count;
    initStringInfo(&sql);
    appendStringInfo(&sql,
                     "SELECT forest, ARRAY(SELECT pg_catalog.jsonb_array_elements_text("
                     "CASE pg_catalog.jsonb_typeof(training_summary->'feature_median') "
                     "WHEN 'array' THEN training_summary->'feature_median' END)::float8) "
                     "FROM %s WHERE id = $1",
                     ModelsTableName());
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    if (SPI_execute_with_args(sql.data, 1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
        elog(ERROR, "could not read chainwatch.models");
    if (SPI_processed == 0) {
        SPI_finish();
        if (quiet)
            return model_miss(model_id, before);
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("model %d does not exist", model_id),
                 errhint("SELECT id, name FROM chainwatch.models lists the models.")));
    }
    {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        bytea *b = isnull ? NULL : DatumGetByteaPP(d);
        if (!b) {
            SPI_finish();
            if (quiet)
                return model_miss(model_id, before);
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED), errmsg("model %d has no forest", model_id)));
        }
        f = forest_deserialize((const uint8_t *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), &err);
        d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        if (f && !isnull) {
            ArrayType *arr = DatumGetArrayTypeP(d);
            int n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
            if (n == forest_n_features(f) && !ARR_HASNULL(arr)) {
                median = malloc(sizeof(double) * n);
                if (!median) {
                    forest_free(f);
                    SPI_finish();
                    ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
                }
                memcpy(median, ARR_DATA_PTR(arr), sizeof(double) * n);
            }
        }
    }
    SPI_finish();
    if (!f) {
        if (quiet)
            return err.code == FOREST_ERR_NOMEM ? NULL : model_miss(model_id, before);
        if (err.code == FOREST_ERR_NOMEM || err.code == FOREST_ERR_VERSION)
            ForestErrorReport(&err, psprintf("loading model %d", model_id));
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("model %d is corrupted: %s", model_id, err.message),
                        errhint("Drop the model and retrain or re-import it.")));
    }

    m = hash_search(ModelHash(), &model_id, HASH_ENTER, &found);
    m->forest = f;
    m->feature_median = median;
    /* a behaviour/1 model: its features' positions in the full vector, looked up once here */
    m->n_select = Max(cw_feature_map_forest(f, m->select), 0);
    return ModelCacheRemember(m, model_id);
}

/*
 * ModelCacheGet returns the cached model, loading and deserializing it on a miss. Unknown ids
 * raise undefined_object; a stored model that fails its checksum or validation raises
 * data_corrupted.
 */
CachedModel *ModelCacheGet(int32 model_id)
{
    return model_load(model_id, false);
}

/* ModelCacheTryGet is ModelCacheGet, but NULL for a model that does not exist or does not load */
CachedModel *ModelCacheTryGet(int32 model_id)
{
    return model_load(model_id, true);
}

/* ModelCacheGetActive returns the active model, or raises object_not_in_prerequisite_state. */
CachedModel *ModelCacheGetActive(void)
{
    ModelCacheInit();
    (void) ModelCacheModelsRelid();
    if (!active_known) {
        StringInfoData sql;
        int32 id = 0;
        uint64 before = inval_count;

        initStringInfo(&sql);
        appendStringInfo(&sql, "SELECT id FROM %s WHERE is_active", ModelsTableName());
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "SPI_connect failed");
        if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT)
            elog(ERROR, "could not read chainwatch.models");
        if (SPI_processed > 0) {
            bool isnull;
            id = DatumGetInt32(
                SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        }
        SPI_finish();
        active_id = id;
        /* an invalidation that arrived while we read may postdate our snapshot: use the id
         * for this call but read it again next time */
        active_known = (before == inval_count);
    }
    if (active_id == 0)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("no active chainwatch model"),
                 errhint("Train one with chainwatch.train_model() or import one with "
                         "chainwatch.import_model(), then call chainwatch.activate_model().")));
    return ModelCacheGet(active_id);
}

/* ModelCacheResolve picks the model named by argument model_arg, or the active one when that
 * argument is absent or NULL. */
CachedModel *ModelCacheResolve(FunctionCallInfo fcinfo, int model_arg)
{
    if (PG_NARGS() > model_arg && !PG_ARGISNULL(model_arg))
        return ModelCacheGet(PG_GETARG_INT32(model_arg));
    return ModelCacheGetActive();
}

PG_FUNCTION_INFO_V1(chainwatch_models_invalidate);

/* chainwatch_models_invalidate: statement trigger on chainwatch.models that broadcasts a relcache
 * invalidation so every backend drops its cached models at the next statement. */
Datum chainwatch_models_invalidate(PG_FUNCTION_ARGS)
{
    TriggerData *trigdata = (TriggerData *) fcinfo->context;

    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("chainwatch_models_invalidate must be called as a trigger")));
    CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
    return PointerGetDatum(NULL);
}
