/* extension/src/behaviour.c — features(), feature_names(), replay_features(): the behavioural
 * feature vector in SQL
 *
 * Design
 * ------
 * The features are computed by common/src/txfeatures.c, the code the ingestor runs, from profiles
 * read in the same text form the ingestor reads (_batch_profiles() through cw_profile_from_text),
 * so SQL and the ingestor agree bit for bit.
 *
 * replay_features() recomputes the features of stored transactions from an empty history: it
 * reads the caller's query through a cursor, keeps every address's profile in a hash table in its
 * own memory context, and for each Kafka message (consecutive rows with one topic, partition and
 * offset; a row without a Kafka position is a message of its own) computes the features of its
 * rows against the profiles before it, then folds the rows in — exactly what the ingestor does,
 * batch after batch. Given the rows of one partition in offset order, it reproduces the features
 * the ingestor stored (tests/integration/test_features.py checks every row of a stream); with
 * several partitions written in parallel, which rows a batch saw depends on the order batches
 * committed, and the stored vector is the record of it.
 */
#include "chainwatch.h"

#include <math.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "txfeatures.h"

/* microseconds from the Unix epoch to PostgreSQL's (2000-01-01) */
#define PG_EPOCH_UNIX_US ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)
#define ADDRESS_KEY_MAX  80

typedef struct ReplayEntry {
    char address[ADDRESS_KEY_MAX]; /* hash key, NUL-padded */
    cw_profile profile;
} ReplayEntry;

/* features_array returns x[CW_FEATURES] as a float8[] */
static ArrayType *features_array(const double *x)
{
    Datum d[CW_FEATURES];
    for (int i = 0; i < CW_FEATURES; i++)
        d[i] = Float8GetDatum(x[i]);
    return construct_array(d, CW_FEATURES, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
                           TYPALIGN_DOUBLE);
}

/* address_hash: hashtextextended(address, 0), the profiles' counterparty hash */
static int64 address_hash(text *address)
{
    return DatumGetInt64(DirectFunctionCall2Coll(hashtextextended, C_COLLATION_OID,
                                                 PointerGetDatum(address), Int64GetDatum(0)));
}

/* amount_of converts a non-NULL amount argument as the ingestor's decoder does */
static double amount_of(Datum d, const char *what)
{
    return FeatureFromNumeric(d, what);
}

PG_FUNCTION_INFO_V1(chainwatch_feature_names);
/* chainwatch_feature_names() returns the names of the behaviour/1 features */
Datum chainwatch_feature_names(PG_FUNCTION_ARGS)
{
    Datum d[CW_FEATURES];
    for (int i = 0; i < CW_FEATURES; i++)
        d[i] = CStringGetTextDatum(cw_feature_names[i]);
    PG_RETURN_ARRAYTYPE_P(construct_array(d, CW_FEATURES, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * read_profiles runs _batch_profiles over the given addresses (n <= 2 of them, NULLs skipped) and
 * reads each row into profiles[i] (the row of addresses[i]), and now() into *detected_at. Needs
 * SPI.
 */
static void read_profiles(Oid fn, text **addresses, int n, cw_profile *profiles, int64 *hashes,
                          int64 *detected_at)
{
    char *schema = get_namespace_name(get_func_namespace(fn));
    Datum elems[2];
    char *names[2];
    int k = 0;
    Oid argtype = TEXTARRAYOID;
    Datum arg;
    int rc;

    Assert(n <= 2);
    for (int i = 0; i < n; i++) {
        names[i] = addresses[i] ? text_to_cstring(addresses[i]) : NULL;
        if (addresses[i])
            elems[k++] = PointerGetDatum(addresses[i]);
    }
    arg = PointerGetDatum(construct_array(elems, k, TEXTOID, -1, false, TYPALIGN_INT));
    rc = SPI_execute_with_args(
        psprintf("SELECT * FROM %s._batch_profiles($1)", quote_identifier(schema)), 1, &argtype,
        &arg, NULL, true, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "chainwatch: reading address profiles failed: %s", SPI_result_code_string(rc));
    /* now(), which _batch_profiles also returns: the detected_at of a row inserted now */
    *detected_at = GetCurrentTransactionStartTimestamp() + PG_EPOCH_UNIX_US;
    for (uint64 r = 0; r < SPI_processed; r++) {
        const char *col[CW_PROFILE_COLUMNS];
        cw_profile p;
        int64 hash, now_us;

        for (int c = 0; c < CW_PROFILE_COLUMNS; c++)
            col[c] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);
        if (cw_profile_from_text(col, &p, &hash, &now_us) != 0)
            ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                            errmsg("the address profile of \"%s\" is malformed", col[0])));
        for (int i = 0; i < n; i++)
            if (names[i] && strcmp(names[i], col[0]) == 0) {
                profiles[i] = p;
                hashes[i] = hash;
            }
    }
}

PG_FUNCTION_INFO_V1(chainwatch_features);
/*
 * chainwatch_features(from_address, to_address, value, gas, gas_price, tx_time) computes the
 * behaviour/1 features of one transaction against the profiles as they are now, the time being
 * chain time at now() (the detected_at a row inserted now gets). value, gas and gas_price must
 * not be NULL (22004); a NULL from_address is a sender without history, a NULL to_address a
 * contract creation.
 */
Datum chainwatch_features(PG_FUNCTION_ARGS)
{
    text *addresses[2] = {NULL, NULL};
    cw_profile profiles[2];
    int64 hashes[2] = {0, 0};
    int64 detected_at;
    cw_feature_tx tx;
    double x[CW_FEATURES];

    for (int i = 2; i <= 4; i++)
        if (PG_ARGISNULL(i))
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("value, gas and gas_price must not be NULL")));
    memset(profiles, 0, sizeof(profiles));
    if (!PG_ARGISNULL(0))
        addresses[0] = PG_GETARG_TEXT_PP(0);
    if (!PG_ARGISNULL(1))
        addresses[1] = PG_GETARG_TEXT_PP(1);
    tx.value = amount_of(PG_GETARG_DATUM(2), "value");
    tx.gas = amount_of(PG_GETARG_DATUM(3), "gas");
    tx.gas_price = amount_of(PG_GETARG_DATUM(4), "gas_price");
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    read_profiles(fcinfo->flinfo->fn_oid, addresses, 2, profiles, hashes, &detected_at);
    SPI_finish();
    if (!PG_ARGISNULL(5) && TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(5)))
        tx.at = cw_chain_time(false, 0, detected_at);
    else
        tx.at = cw_chain_time(!PG_ARGISNULL(5),
                              PG_ARGISNULL(5) ? 0 : PG_GETARG_TIMESTAMPTZ(5) + PG_EPOCH_UNIX_US,
                              detected_at);
    tx.has_to = addresses[1] != NULL;
    tx.to_hash = hashes[1];
    cw_features_compute(&profiles[0], tx.has_to ? &profiles[1] : NULL, &tx, x);
    PG_RETURN_ARRAYTYPE_P(features_array(x));
}

/* replay_lookup returns the profile of address (created empty) */
static cw_profile *replay_lookup(HTAB *h, const char *address)
{
    char key[ADDRESS_KEY_MAX];
    bool found;
    ReplayEntry *e;

    if (strlen(address) >= ADDRESS_KEY_MAX)
        ereport(ERROR, (errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
                        errmsg("address \"%.*s...\" is longer than %d bytes", 20, address,
                               ADDRESS_KEY_MAX - 1)));
    memset(key, 0, sizeof(key));
    strcpy(key, address);
    e = hash_search(h, key, HASH_ENTER, &found);
    if (!found)
        memset(&e->profile, 0, sizeof(e->profile));
    return &e->profile;
}

/* one row of a message being replayed */
typedef struct ReplayRow {
    char *hash, *from, *to;
    cw_feature_tx tx;
} ReplayRow;

/* replay_message computes the features of a message's rows, emits them, then folds them in */
static void replay_message(HTAB *h, ReplayRow *rows, int n, Tuplestorestate *ts, TupleDesc desc,
                           MemoryContext cxt)
{
    MemoryContext old = MemoryContextSwitchTo(cxt); /* the tuplestore copies what it keeps */

    for (int i = 0; i < n; i++) {
        cw_profile empty, *s, *r = NULL;
        double x[CW_FEATURES];
        Datum values[2];
        bool nulls[2] = {false, false};

        memset(&empty, 0, sizeof(empty));
        s = rows[i].from ? replay_lookup(h, rows[i].from) : &empty;
        if (rows[i].tx.has_to)
            r = replay_lookup(h, rows[i].to);
        cw_features_compute(s, r, &rows[i].tx, x);
        values[0] = CStringGetTextDatum(rows[i].hash);
        values[1] = PointerGetDatum(features_array(x));
        tuplestore_putvalues(ts, desc, values, nulls);
    }
    for (int i = 0; i < n; i++) {
        if (rows[i].from)
            cw_profile_fold_out(replay_lookup(h, rows[i].from), &rows[i].tx);
        if (rows[i].tx.has_to)
            cw_profile_fold_in(replay_lookup(h, rows[i].to), &rows[i].tx);
    }
    MemoryContextSwitchTo(old);
}

/* column_of returns the 1-based column number of name in the query's result, or raises */
static int column_of(TupleDesc desc, const char *name)
{
    int n = SPI_fnumber(desc, name);
    if (n <= 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("source_query has no column \"%s\"", name),
                        errhint("replay_features() reads hash, from_address, to_address, value, "
                                "gas, gas_price, tx_time, detected_at, kafka_topic, "
                                "kafka_partition and kafka_offset.")));
    return n;
}

PG_FUNCTION_INFO_V1(chainwatch_replay_features);
/*
 * chainwatch_replay_features(source_query) returns (hash, features) for every row of the query,
 * in its order, from an empty history (see the design note above)
 */
Datum chainwatch_replay_features(PG_FUNCTION_ARGS)
{
    char *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    MemoryContext replay_cxt, row_cxt, old;
    HASHCTL ctl;
    HTAB *h;
    Portal portal;
    static const char *const names[] = {
        "hash",    "from_address", "to_address",  "value",           "gas",         "gas_price",
        "tx_time", "detected_at",  "kafka_topic", "kafka_partition", "kafka_offset"};
    int cols[11];
    bool have_cols = false;
    ReplayRow *rows = NULL;
    int n_rows = 0, cap_rows = 0;
    char key[320] = ""; /* the current message: topic/partition/offset; "" none */

    InitMaterializedSRF(fcinfo, 0);
    replay_cxt =
        AllocSetContextCreate(CurrentMemoryContext, "chainwatch replay", ALLOCSET_DEFAULT_SIZES);
    row_cxt =
        AllocSetContextCreate(replay_cxt, "chainwatch replay message", ALLOCSET_DEFAULT_SIZES);
    memset(&ctl, 0, sizeof(ctl));
    ctl.keysize = ADDRESS_KEY_MAX;
    ctl.entrysize = sizeof(ReplayEntry);
    ctl.hcxt = replay_cxt;
    h = hash_create("chainwatch replay profiles", 4096, &ctl,
                    HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    portal = SourceQueryOpen(query);
    for (;;) {
        SPI_cursor_fetch(portal, true, 10000);
        if (SPI_processed == 0)
            break;
        TupleDesc desc = SPI_tuptable->tupdesc;
        if (!have_cols) {
            for (int c = 0; c < 11; c++)
                cols[c] = column_of(desc, names[c]);
            have_cols = true;
        }
        for (uint64 i = 0; i < SPI_processed; i++) {
            HeapTuple tup = SPI_tuptable->vals[i];
            bool isnull;
            char *topic, *part, *off, msgkey[sizeof(key)];
            ReplayRow *row;
            Datum d;

            old = MemoryContextSwitchTo(row_cxt);
            topic = SPI_getvalue(tup, desc, cols[8]);
            part = SPI_getvalue(tup, desc, cols[9]);
            off = SPI_getvalue(tup, desc, cols[10]);
            if (topic && part && off)
                snprintf(msgkey, sizeof(msgkey), "%s/%s/%s", topic, part, off);
            else
                msgkey[0] = '\0'; /* no Kafka position: a message of its own */
            MemoryContextSwitchTo(old);
            if (n_rows > 0 && (!msgkey[0] || strcmp(msgkey, key) != 0)) {
                replay_message(h, rows, n_rows, rsinfo->setResult, rsinfo->setDesc, row_cxt);
                n_rows = 0;
                MemoryContextReset(row_cxt);
                rows = NULL;
                cap_rows = 0;
            }
            strcpy(key, msgkey);
            old = MemoryContextSwitchTo(row_cxt);
            if (n_rows == cap_rows) {
                cap_rows = cap_rows ? cap_rows * 2 : 16;
                rows = rows ? repalloc(rows, sizeof(ReplayRow) * cap_rows)
                            : palloc(sizeof(ReplayRow) * cap_rows);
            }
            row = &rows[n_rows++];
            memset(row, 0, sizeof(*row));
            row->hash = SPI_getvalue(tup, desc, cols[0]);
            if (!row->hash)
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                errmsg("source_query returned a NULL hash")));
            row->from = SPI_getvalue(tup, desc, cols[1]);
            row->to = SPI_getvalue(tup, desc, cols[2]);
            for (int c = 3; c <= 5; c++) {
                d = SPI_getbinval(tup, desc, cols[c], &isnull);
                if (isnull)
                    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                    errmsg("source_query returned a NULL %s", names[c])));
                if (SPI_gettypeid(desc, cols[c]) != NUMERICOID)
                    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                                    errmsg("source_query column %s must be numeric", names[c])));
                if (c == 3)
                    row->tx.value = amount_of(d, names[c]);
                else if (c == 4)
                    row->tx.gas = amount_of(d, names[c]);
                else
                    row->tx.gas_price = amount_of(d, names[c]);
            }
            {
                int64 detected_at, tx_time = 0;
                bool has_time = false;
                d = SPI_getbinval(tup, desc, cols[7], &isnull);
                if (isnull || SPI_gettypeid(desc, cols[7]) != TIMESTAMPTZOID)
                    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                                    errmsg("source_query column detected_at must be a "
                                           "timestamptz that is not NULL")));
                detected_at = DatumGetTimestampTz(d) + PG_EPOCH_UNIX_US;
                d = SPI_getbinval(tup, desc, cols[6], &isnull);
                if (!isnull && SPI_gettypeid(desc, cols[6]) != TIMESTAMPTZOID)
                    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                                    errmsg("source_query column tx_time must be a timestamptz")));
                if (!isnull && !TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d))) {
                    has_time = true;
                    tx_time = DatumGetTimestampTz(d) + PG_EPOCH_UNIX_US;
                }
                row->tx.at = cw_chain_time(has_time, tx_time, detected_at);
            }
            row->tx.has_to = row->to != NULL;
            if (row->tx.has_to)
                row->tx.to_hash = address_hash(cstring_to_text(row->to));
            MemoryContextSwitchTo(old);
        }
        SPI_freetuptable(SPI_tuptable);
    }
    if (n_rows > 0)
        replay_message(h, rows, n_rows, rsinfo->setResult, rsinfo->setDesc, row_cxt);
    SPI_cursor_close(portal);
    SPI_finish();
    MemoryContextDelete(replay_cxt);
    return (Datum) 0;
}
