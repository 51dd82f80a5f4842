/* extension/src/profiles.c — the profile trigger: a statement's transactions summed per address
 *
 * The statement trigger transactions_profiles (AFTER INSERT ... FOR EACH STATEMENT, with a
 * transition table) runs here once per batch: a COPY is one statement. It reads every new row of
 * the transition table once, sums each address's part of the batch in a hash table — the sender's
 * outgoing side, the recipient's incoming side — and hands the sums to one upsert
 * (_profile_fold_sql's statement, prepared once per session and kept), which reads them back as
 * rows, sorted by address in byte order, through the set-returning function
 * chainwatch._profile_batch(): no arrays to build and unnest (that cost ~3 us a profile). Sorted,
 * so every writer locks profile rows in the same order. The SQL aggregation this replaced cost ~25
 * us per row; here reading and summing cost under 0.5 us a row, and the upsert the rest.
 *
 * The numbers must be exactly those of _profile_merge_sql, the SQL computation
 * rebuild_address_profiles() and verify_address_profiles() run over the stored transactions
 * (tables/profiles.sql says why each summary is order-independent):
 *   - time: tx_time when finite and not after detected_at, else detected_at;
 *   - activity bucket: the Unix epoch in microseconds divided by 300,000,000, truncated (C's and
 * bigint division alike);
 *   - log values: rint(log(1 + x) * 1e6) with x the float8 a wei amount becomes as a feature
 *     (FeatureFromNumeric, as chainwatch._wei_float8 gives SQL), which is what
 *     round(ln(1 + x) * 1e6)::bigint computes: the same IEEE operations in the same order;
 *   - sums of those integers (int64; squares in int128, handed over as numeric);
 *   - counterparties: hashtextextended(address, 0), the 64 smallest distinct per side.
 * verify_address_profiles() after every test stream checks the two agree on every stored row.
 */
#include "chainwatch.h"

#include <math.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "funcapi.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#ifndef HAVE_INT128
#error "profiles.c sums squares in 128-bit integers"
#endif

/* the sketch size and the activity bucket are the features' (common/src/txfeatures.h) */
#define PROFILE_PEERS CW_PROFILE_PEERS
#define BUCKET_USECS  CW_BUCKET_USECS
/* microseconds from PostgreSQL's epoch (2000-01-01) back to the Unix epoch */
#define UNIX_EPOCH_OFFSET_US ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)
#define PROFILE_COLUMNS      22 /* 21 before 0.11.0 (no out_value_count) */

/* one direction of an address's part of the batch */
typedef struct ProfileSide {
    int64 count;
    int64 lv_sum;
    int128 lv_sumsq;
    int64 lg_sum;
    int64 valued; /* transactions with a value (lv > 0) */
    bool has_bucket;
    int64 bucket, bucket_count, prev_count;
    bool has_last;
    TimestampTz last_at;
    int64 *peers; /* counterparty hashes, unsorted with repeats until finished */
    int n_peers, cap_peers;
} ProfileSide;

typedef struct Profile {
    const char *address; /* NUL-terminated, owned by the fold's memory context */
    uint32 hash;
    bool has_block;
    int64 first_block, last_block;
    TimestampTz first_at, last_at, updated_at;
    ProfileSide out, in;
} Profile;

/* an open-addressing table of Profile pointers, grown at half load */
typedef struct ProfileTable {
    Profile **slots;
    int cap, n;
} ProfileTable;

/* the fold statement, prepared once per session for the trigger function it was made for */
static SPIPlanPtr fold_plan = NULL;
static Oid fold_plan_fn = InvalidOid;
static Oid fold_plan_rel = InvalidOid; /* the address_profiles it writes */
static bool fold_callback = false;

/*
 * fold_relcache_callback forgets the fold statement when address_profiles changes (a column added
 * by ALTER EXTENSION UPDATE): its text, made by _profile_fold_sql, names the columns it had, and a
 * plan made again from that text would no longer fit. The next batch prepares it anew.
 */
static void fold_relcache_callback(Datum arg, Oid relid)
{
    if (relid == InvalidOid || relid == fold_plan_rel)
        fold_plan_fn = InvalidOid;
}
static SPIPlanPtr count_plan = NULL; /* _count_profiles($1), kept beside it */

/* the batch being folded, which _profile_batch() returns: set only while the fold statement runs */
static ProfileTable *folding = NULL;

/* table_find returns the profile of address (len bytes), creating it when absent */
static Profile *table_find(ProfileTable *t, const char *address, int len)
{
    uint32 h = hash_bytes((const unsigned char *) address, len);
    int i;

    if (2 * (t->n + 1) > t->cap) {
        int cap = t->cap ? t->cap * 2 : 1024;
        Profile **slots = palloc0(sizeof(Profile *) * cap);
        for (int k = 0; k < t->cap; k++) {
            Profile *p = t->slots[k];
            if (p) {
                int j = p->hash & (cap - 1);
                while (slots[j])
                    j = (j + 1) & (cap - 1);
                slots[j] = p;
            }
        }
        if (t->slots)
            pfree(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    for (i = h & (t->cap - 1); t->slots[i]; i = (i + 1) & (t->cap - 1)) {
        Profile *p = t->slots[i];
        if (p->hash == h && strncmp(p->address, address, len) == 0 && p->address[len] == '\0')
            return p;
    }
    {
        Profile *p = palloc0(sizeof(Profile));
        char *copy = palloc(len + 1);
        memcpy(copy, address, len);
        copy[len] = '\0';
        p->address = copy;
        p->hash = h;
        t->slots[i] = p;
        t->n++;
        return p;
    }
}

/* side_add counts one transaction on one side of a profile (peer_hash only when has_peer) */
static void side_add(ProfileSide *s, TimestampTz at, int64 bucket, int64 lv, int64 lg,
                     bool has_peer, int64 peer_hash)
{
    s->count++;
    s->lv_sum += lv;
    s->lv_sumsq += (int128) lv * lv;
    s->lg_sum += lg;
    if (lv > 0)
        s->valued++;
    if (!s->has_last || at > s->last_at) {
        s->last_at = at;
        s->has_last = true;
    }
    /* the window of the latest bucket and the one before, as _bucket_count/_bucket_prev merge it
     * and the features' fold counts it */
    cw_bucket_add(&s->has_bucket, &s->bucket, &s->bucket_count, &s->prev_count, bucket);
    if (has_peer) {
        if (s->n_peers == s->cap_peers) {
            s->cap_peers = s->cap_peers ? s->cap_peers * 2 : 8;
            s->peers = s->peers ? repalloc(s->peers, sizeof(int64) * s->cap_peers)
                                : palloc(sizeof(int64) * s->cap_peers);
        }
        s->peers[s->n_peers++] = peer_hash;
    }
}

static int cmp_int64(const void *a, const void *b)
{
    int64 x = *(const int64 *) a, y = *(const int64 *) b;
    return x < y ? -1 : x > y;
}

/* side_finish sorts a side's counterparty hashes, drops repeats and keeps the PROFILE_PEERS
 * smallest */
static void side_finish(ProfileSide *s)
{
    int n = 0;

    if (s->n_peers == 0)
        return;
    qsort(s->peers, s->n_peers, sizeof(int64), cmp_int64);
    for (int i = 0; i < s->n_peers && n < PROFILE_PEERS; i++)
        if (n == 0 || s->peers[i] != s->peers[n - 1])
            s->peers[n++] = s->peers[i];
    s->n_peers = n;
}

/* int128_numeric converts a non-negative 128-bit integer to numeric (through its decimal digits) */
static Datum int128_numeric(int128 v)
{
    char buf[48];
    int i = sizeof(buf) - 1;

    buf[i] = '\0';
    do {
        buf[--i] = (char) ('0' + (int) (v % 10));
        v /= 10;
    } while (v > 0);
    return DirectFunctionCall3(numeric_in, CStringGetDatum(buf + i), ObjectIdGetDatum(InvalidOid),
                               Int32GetDatum(-1));
}

/* attnum_of returns a column's number in the transition table's row type, or raises */
static int attnum_of(TupleDesc desc, const char *name)
{
    int n = SPI_fnumber(desc, name);
    if (n <= 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("the profile trigger needs column \"%s\" of chainwatch.transactions",
                               name)));
    return n;
}

/* lv_of: cw_log_millionths of a wei amount, as round(ln(1 + _wei_float8(x)) * 1e6)::bigint */
static int64 lv_of(Datum amount, const char *what)
{
    return cw_log_millionths(FeatureFromNumeric(amount, what));
}

/* prepare_fold prepares the session's fold and count statements for the trigger function fn (its
 * schema) */
static void prepare_fold(Oid fn)
{
    char *schema = get_namespace_name(get_func_namespace(fn));
    const char *q = quote_identifier(schema);
    char *query;
    char *fold;
    SPIPlanPtr plan;
    bool isnull;
    int rc;

    query = psprintf("SELECT %s._profile_fold_sql('%s.address_profiles')", q, q);
    rc = SPI_execute(query, true, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "chainwatch: reading the profile fold statement failed: %s",
             SPI_result_code_string(rc));
    fold = TextDatumGetCString(
        SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    plan = SPI_prepare(fold, 0, NULL);
    if (plan == NULL)
        elog(ERROR, "chainwatch: preparing the profile fold failed: %s",
             SPI_result_code_string(SPI_result));
    if (SPI_keepplan(plan) != 0)
        elog(ERROR, "chainwatch: keeping the profile fold plan failed");
    if (fold_plan)
        SPI_freeplan(fold_plan);
    fold_plan = plan;
    {
        Oid int8 = INT8OID;
        SPIPlanPtr count = SPI_prepare(psprintf("SELECT %s._count_profiles($1)", q), 1, &int8);
        if (count == NULL || SPI_keepplan(count) != 0)
            elog(ERROR, "chainwatch: preparing the profile count failed: %s",
                 SPI_result_code_string(SPI_result));
        if (count_plan)
            SPI_freeplan(count_plan);
        count_plan = count;
    }
    if (!fold_callback) {
        CacheRegisterRelcacheCallback(fold_relcache_callback, (Datum) 0);
        fold_callback = true;
    }
    fold_plan_rel = get_relname_relid("address_profiles", get_func_namespace(fn));
    fold_plan_fn = fn; /* last: a failure above prepares both again on the next batch */
}

/* sketch_array is a finished side's counterparty sketch as int8[] */
static Datum sketch_array(const ProfileSide *s)
{
    Datum *d = palloc(sizeof(Datum) * Max(s->n_peers, 1));
    for (int k = 0; k < s->n_peers; k++)
        d[k] = Int64GetDatum(s->peers[k]);
    return PointerGetDatum(
        construct_array(d, s->n_peers, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

PG_FUNCTION_INFO_V1(chainwatch_profile_batch);
/*
 * chainwatch_profile_batch() RETURNS SETOF address_profiles: the summaries of the batch the profile
 * trigger is folding, one row per address, in the table's columns. Only the trigger's own fold
 * statement may call it; anywhere else it raises 55000.
 */
Datum chainwatch_profile_batch(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    Datum values[PROFILE_COLUMNS];
    bool nulls[PROFILE_COLUMNS];

    if (folding == NULL)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("_profile_batch() is only called by the profile trigger's fold")));
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    if (rsinfo->setDesc->natts != PROFILE_COLUMNS && rsinfo->setDesc->natts != PROFILE_COLUMNS - 1)
        elog(ERROR, "chainwatch: address_profiles has %d columns, the profile fold knows %d",
             rsinfo->setDesc->natts, PROFILE_COLUMNS);
    for (int i = 0; i < folding->cap; i++) {
        Profile *p = folding->slots[i];
        if (p == NULL)
            continue;
        side_finish(&p->out);
        side_finish(&p->in);
        memset(nulls, 0, sizeof(nulls));
        values[0] = CStringGetTextDatum(p->address);
        values[1] = Int64GetDatum(p->first_block);
        values[2] = Int64GetDatum(p->last_block);
        nulls[1] = nulls[2] = !p->has_block;
        values[3] = TimestampTzGetDatum(p->first_at);
        values[4] = TimestampTzGetDatum(p->last_at);
        values[5] = TimestampTzGetDatum(p->out.last_at);
        nulls[5] = !p->out.has_last;
        values[6] = TimestampTzGetDatum(p->updated_at);
        values[7] = Int64GetDatum(p->out.count);
        values[8] = Int64GetDatum(p->in.count);
        values[9] = Int64GetDatum(p->out.lv_sum);
        values[10] = int128_numeric(p->out.lv_sumsq);
        values[11] = Int64GetDatum(p->out.lg_sum);
        values[12] = Int64GetDatum(p->in.lv_sum);
        values[13] = Int64GetDatum(p->out.bucket);
        nulls[13] = !p->out.has_bucket;
        values[14] = Int64GetDatum(p->out.bucket_count);
        values[15] = Int64GetDatum(p->out.prev_count);
        values[16] = Int64GetDatum(p->in.bucket);
        nulls[16] = !p->in.has_bucket;
        values[17] = Int64GetDatum(p->in.bucket_count);
        values[18] = Int64GetDatum(p->in.prev_count);
        values[19] = sketch_array(&p->out);
        values[20] = sketch_array(&p->in);
        values[21] = Int64GetDatum(p->out.valued); /* left out under a 0.10.0 schema */
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}

PG_FUNCTION_INFO_V1(chainwatch_profiles_from_batch);
/*
 * chainwatch_profiles_from_batch: the trigger. Sums the transition table per address, runs the
 * fold (which reads the sums through _profile_batch()) and adds the number of new profiles to the
 * count. Errors (a negative or NaN amount, which the scorers refuse as well)
 * fail the statement.
 */
Datum chainwatch_profiles_from_batch(PG_FUNCTION_ARGS)
{
    TriggerData *td = (TriggerData *) fcinfo->context;
    MemoryContext fold_cxt, old;
    TupleDesc desc;
    TupleTableSlot *slot;
    ProfileTable table = {0};
    int a_from, a_to, a_value, a_gas_price, a_block, a_tx_time, a_detected;
    int64 inserted = 0;
    bool isnull;
    int rc;

    if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
        !TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("_profiles_from_batch must fire AFTER INSERT FOR EACH STATEMENT with a "
                        "transition table")));

    fold_cxt = AllocSetContextCreate(CurrentMemoryContext, "chainwatch profile fold",
                                     ALLOCSET_DEFAULT_SIZES);
    old = MemoryContextSwitchTo(fold_cxt);

    desc = RelationGetDescr(td->tg_relation);
    a_from = attnum_of(desc, "from_address");
    a_to = attnum_of(desc, "to_address");
    a_value = attnum_of(desc, "value");
    a_gas_price = attnum_of(desc, "gas_price");
    a_block = attnum_of(desc, "block_number");
    a_tx_time = attnum_of(desc, "tx_time");
    a_detected = attnum_of(desc, "detected_at");

    /* 1. every new row, once: both of its sides */
    slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
    tuplestore_rescan(td->tg_newtable);
    while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot)) {
        bool n_from, n_to, n_block, n_time, n_det, n_val, n_gp;
        Datum from = slot_getattr(slot, a_from, &n_from);
        Datum to = slot_getattr(slot, a_to, &n_to);
        Datum block = slot_getattr(slot, a_block, &n_block);
        Datum tx_time = slot_getattr(slot, a_tx_time, &n_time);
        Datum detected = slot_getattr(slot, a_detected, &n_det);
        Datum value = slot_getattr(slot, a_value, &n_val);
        Datum gas_price = slot_getattr(slot, a_gas_price, &n_gp);
        TimestampTz det, at;
        int64 bucket, lv, lg, from_hash = 0, to_hash = 0;
        text *from_t = NULL, *to_t = NULL;

        if (n_from && n_to)
            continue;
        if (n_det || n_val || n_gp) /* NOT NULL columns: cannot happen */
            elog(ERROR, "chainwatch: a transaction without detected_at, value or gas_price");
        det = DatumGetTimestampTz(detected);
        at = det;
        if (!n_time && !TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(tx_time)) &&
            DatumGetTimestampTz(tx_time) < det)
            at = DatumGetTimestampTz(tx_time);
        bucket = (at + UNIX_EPOCH_OFFSET_US) / BUCKET_USECS;
        lv = lv_of(value, "value");
        lg = lv_of(gas_price, "gas_price");
        if (!n_from) {
            from_t = DatumGetTextPP(from);
            from_hash =
                DatumGetInt64(DirectFunctionCall2Coll(hashtextextended, DEFAULT_COLLATION_OID,
                                                      PointerGetDatum(from_t), Int64GetDatum(0)));
        }
        if (!n_to) {
            to_t = DatumGetTextPP(to);
            to_hash = DatumGetInt64(DirectFunctionCall2Coll(
                hashtextextended, DEFAULT_COLLATION_OID, PointerGetDatum(to_t), Int64GetDatum(0)));
        }
        for (int side = 0; side < 2; side++) {
            text *self = side == 0 ? from_t : to_t;
            Profile *p;
            if (self == NULL)
                continue;
            p = table_find(&table, VARDATA_ANY(self), VARSIZE_ANY_EXHDR(self));
            if (!n_block) {
                int64 b = DatumGetInt64(block);
                if (!p->has_block || b < p->first_block)
                    p->first_block = b;
                if (!p->has_block || b > p->last_block)
                    p->last_block = b;
                p->has_block = true;
            }
            if (p->out.count + p->in.count == 0) {
                p->first_at = p->last_at = at;
                p->updated_at = det;
            } else {
                p->first_at = Min(p->first_at, at);
                p->last_at = Max(p->last_at, at);
                p->updated_at = Max(p->updated_at, det);
            }
            if (side == 0)
                side_add(&p->out, at, bucket, lv, lg, to_t != NULL, to_hash);
            else
                side_add(&p->in, at, bucket, lv, lg, from_t != NULL, from_hash);
        }
    }
    ExecDropSingleTupleTableSlot(slot);
    if (table.n == 0) {
        MemoryContextSwitchTo(old);
        MemoryContextDelete(fold_cxt);
        return PointerGetDatum(NULL);
    }

    /* 2. the upsert, then the count of new profiles */
    if ((rc = SPI_connect()) != SPI_OK_CONNECT)
        elog(ERROR, "chainwatch: SPI_connect failed: %s", SPI_result_code_string(rc));
    if (fold_plan == NULL || fold_plan_fn != fcinfo->flinfo->fn_oid)
        prepare_fold(fcinfo->flinfo->fn_oid);
    folding = &table;
    PG_TRY();
    {
        rc = SPI_execute_plan(fold_plan, NULL, NULL, false, 1);
    }
    PG_FINALLY();
    {
        folding = NULL;
    }
    PG_END_TRY();
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "chainwatch: the profile fold failed: %s", SPI_result_code_string(rc));
    inserted =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    if (inserted > 0) {
        Datum v = Int64GetDatum(inserted);
        rc = SPI_execute_plan(count_plan, &v, NULL, false, 0);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "chainwatch: counting new profiles failed: %s", SPI_result_code_string(rc));
    }
    if ((rc = SPI_finish()) != SPI_OK_FINISH)
        elog(ERROR, "chainwatch: SPI_finish failed: %s", SPI_result_code_string(rc));

    MemoryContextSwitchTo(old);
    MemoryContextDelete(fold_cxt);
    return PointerGetDatum(NULL);
}
