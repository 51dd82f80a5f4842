/* extension/src/document.c — anomalies.document: one anomaly as the REST API's JSON object
 *
 * Why a stored document. The API's anomaly list is its most requested uncached answer: 101 rows of
 * 16 columns. Sent column by column, Postgres runs 1,616 send functions per page and the API
 * formats each value again; most of a page's cost was that per-value work, repeated on every
 * request for rows that never change. chainwatch.anomalies therefore keeps each row's JSON in the
 * column document, computed once when the row is written; a page is then 101 short texts that the
 * API joins with commas. GET /anomalies/{hash} serves the same text, so both endpoints print an
 * anomaly identically.
 *
 * The format is the API's (docs/api.md): keys in column order; amounts in wei as JSON strings
 * (numeric_out: exact); times as RFC 3339 UTC with six fraction digits (common/src/rfc3339.c, the
 * API's own formatter), null for ±infinity; the score as the shortest text that reads back as the
 * same double (what float8out prints), null when not finite; text JSON-escaped as row_to_json
 * does; SQL NULL as null. No GUC is read (not TimeZone, not extra_float_digits, not DateStyle).
 *
 * How the column is kept correct. The severity is printed with enum_out, which reads the catalog,
 * so anomaly_document() is STABLE, and a generated column (which needs IMMUTABLE) cannot call it;
 * up to extension 0.8.0 it was declared IMMUTABLE anyway. Since 0.9.0 the trigger
 * anomalies_document (chainwatch_anomalies_document below, BEFORE INSERT OR UPDATE on every
 * partition) computes the column from the row being written and replaces whatever the writer put
 * there, so a document always describes its row as it was written: COPY and INSERT leave the
 * column out, an UPDATE recomputes it, and nobody can store another text. A document does not
 * follow later catalog changes (renaming a severity label would leave old documents with the old
 * label): the extension owns severity_level and never renames its labels.
 *
 * Explanations. The last member, explanation, is the anomalies.explanation column: why the row was
 * flagged (explain.c). A writer may give it (a model over features the row does not hold, whose
 * scorer knows them); when it gives none and the row names its model, the trigger computes it from
 * the row's value, gas and gas price under that model, if the model's features are those three,
 * or from the row's features column under a model of feature set behaviour/1.
 * The trigger never fails a row over its explanation: a model that is gone or does not load leaves
 * the column NULL.
 */
#include "chainwatch.h"

#include "txfeatures.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "rfc3339.h"

typedef enum doc_kind {
    DOC_INT8,
    DOC_INT4,
    DOC_TEXT,
    DOC_NUMERIC,
    DOC_TIME,
    DOC_FLOAT8,
    DOC_ENUM,
    DOC_JSONB
} doc_kind;

/* the arguments of anomaly_document(), in the order of the table's columns */
static const struct {
    const char *key;
    doc_kind kind;
} doc_fields[] = {
    {"id", DOC_INT8},           {"hash", DOC_TEXT},         {"from_address", DOC_TEXT},
    {"to_address", DOC_TEXT},   {"value", DOC_NUMERIC},     {"gas", DOC_NUMERIC},
    {"gas_price", DOC_NUMERIC}, {"block_number", DOC_INT8}, {"tx_time", DOC_TIME},
    {"detected_at", DOC_TIME},  {"score", DOC_FLOAT8},      {"severity", DOC_ENUM},
    {"model_id", DOC_INT4},     {"kafka_topic", DOC_TEXT},  {"kafka_partition", DOC_INT4},
    {"kafka_offset", DOC_INT8}, {"explanation", DOC_JSONB},
};
/* where the trigger finds the fields it explains a row from */
enum { DOC_VALUE = 4, DOC_GAS = 5, DOC_GAS_PRICE = 6, DOC_MODEL_ID = 12, DOC_EXPLANATION = 16 };
#define DOC_NFIELDS ((int) lengthof(doc_fields))

/* append_value appends d, the value of field i, as JSON */
static void append_value(StringInfo b, int i, Datum d)
{
    char num[MAXINT8LEN + 1], time[CW_RFC3339_MAX];
    size_t n;
    double v;

    switch (doc_fields[i].kind) {
    case DOC_INT8:
        n = pg_lltoa(DatumGetInt64(d), num);
        appendBinaryStringInfo(b, num, (int) n);
        break;
    case DOC_INT4:
        n = pg_ltoa(DatumGetInt32(d), num);
        appendBinaryStringInfo(b, num, (int) n);
        break;
    case DOC_TEXT:
        escape_json(b, text_to_cstring(DatumGetTextPP(d)));
        break;
    case DOC_NUMERIC:
        appendStringInfoChar(b, '"');
        appendStringInfoString(b, DatumGetCString(DirectFunctionCall1(numeric_out, d)));
        appendStringInfoChar(b, '"');
        break;
    case DOC_TIME:
        n = cw_rfc3339_us(time, DatumGetTimestampTz(d));
        if (n == 0) {
            appendStringInfoString(b, "null");
            break;
        }
        appendStringInfoChar(b, '"');
        appendBinaryStringInfo(b, time, (int) n);
        appendStringInfoChar(b, '"');
        break;
    case DOC_FLOAT8:
        v = DatumGetFloat8(d);
        if (!isfinite(v)) {
            appendStringInfoString(b, "null");
            break;
        }
        enlargeStringInfo(b, DOUBLE_SHORTEST_DECIMAL_LEN);
        b->len += double_to_shortest_decimal_buf(v, b->data + b->len);
        break;
    case DOC_ENUM:
        escape_json(b, DatumGetCString(DirectFunctionCall1(enum_out, d)));
        break;
    case DOC_JSONB: {
        Jsonb *jb = DatumGetJsonbP(d);
        (void) JsonbToCString(b, &jb->root, VARSIZE(jb));
        break;
    }
    }
}

/*
 * explain_row returns the explanation of an anomaly row under its model (explain.c), or NULL when
 * there is none to give: the model is gone or does not load, or its features are not the row's
 * (value, gas, gas_price) — a model of another width or of other named features, whose writer
 * passes the explanation itself. It never raises, so a batch never fails over an explanation.
 */
static Jsonb *explain_row(const Datum *values, const bool *nulls, Datum features,
                          bool features_null)
{
    static const char *const raw[3] = {"value", "gas", "gas_price"};
    CachedModel *m = ModelCacheTryGet(DatumGetInt32(values[DOC_MODEL_ID]));
    double x[3];

    if (!m)
        return NULL;
    if (m->n_select > 0) { /* a behaviour/1 model (model_cache.c maps its features once) */
        ArrayType *a;
        int n = CW_FEATURES;
        if (features_null)
            return NULL;
        a = DatumGetArrayTypeP(features);
        if (ARR_NDIM(a) != 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != FLOAT8OID ||
            ARR_DIMS(a)[0] != CW_FEATURES)
            return NULL;
        return ExplanationBuild(m, FeaturesForModel(m, (double *) ARR_DATA_PTR(a), &n));
    }
    if (forest_n_features(m->forest) != 3)
        return NULL;
    for (int i = 0; i < 3; i++) {
        const char *name = forest_feature_name(m->forest, i);
        if (name && strcmp(name, raw[i]) != 0)
            return NULL;
        if (nulls[DOC_VALUE + i] || !FeatureFromNumericQuiet(values[DOC_VALUE + i], &x[i]))
            return NULL;
    }
    return ExplanationBuild(m, x);
}

/* document_build returns the JSON object of one anomaly from its fields' values */
static text *document_build(const Datum *values, const bool *nulls, int nfields)
{
    StringInfoData b;

    initStringInfo(&b);
    appendStringInfoChar(&b, '{');
    for (int i = 0; i < nfields; i++) {
        appendStringInfo(&b, "%s\"%s\":", i > 0 ? "," : "", doc_fields[i].key);
        if (nulls[i])
            appendStringInfoString(&b, "null");
        else
            append_value(&b, i, values[i]);
    }
    appendStringInfoChar(&b, '}');
    return cstring_to_text_with_len(b.data, b.len);
}

PG_FUNCTION_INFO_V1(chainwatch_anomaly_document);
/*
 * chainwatch_anomaly_document(id, hash, from_address, to_address, value, gas, gas_price,
 * block_number, tx_time, detected_at, score, severity, model_id, kafka_topic, kafka_partition,
 * kafka_offset, explanation) RETURNS text: the anomaly's JSON object (see the top of this file), as
 * the trigger stores it. Not STRICT: a NULL argument is a null member.
 */
Datum chainwatch_anomaly_document(PG_FUNCTION_ARGS)
{
    Datum values[DOC_NFIELDS];
    bool nulls[DOC_NFIELDS];

    /* 16 arguments: the SQL definition of extension versions before 0.9.0 (a generated column
     * whose documents had no explanation member), which this library still serves */
    if (PG_NARGS() != DOC_NFIELDS && PG_NARGS() != DOC_NFIELDS - 1)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("anomaly_document() takes %d arguments, not %d", DOC_NFIELDS, PG_NARGS())));
    for (int i = 0; i < PG_NARGS(); i++) {
        nulls[i] = PG_ARGISNULL(i);
        values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
    }
    PG_RETURN_TEXT_P(document_build(values, nulls, PG_NARGS()));
}

PG_FUNCTION_INFO_V1(chainwatch_anomalies_document);
/*
 * chainwatch_anomalies_document() RETURNS trigger: BEFORE INSERT OR UPDATE FOR EACH ROW on
 * chainwatch.anomalies (cloned to every partition). Sets the row's document column from its other
 * columns, found by name in the partition's own tuple descriptor, whatever the writer gave it.
 */
Datum chainwatch_anomalies_document(PG_FUNCTION_ARGS)
{
    TriggerData *trig = (TriggerData *) fcinfo->context;
    HeapTuple tuple;
    TupleDesc desc;
    Datum values[DOC_NFIELDS];
    bool nulls[DOC_NFIELDS];
    int target;

    if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trig->tg_event) ||
        !TRIGGER_FIRED_FOR_ROW(trig->tg_event) || TRIGGER_FIRED_BY_DELETE(trig->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("chainwatch_anomalies_document must run BEFORE INSERT OR UPDATE "
                               "FOR EACH ROW")));
    tuple = TRIGGER_FIRED_BY_UPDATE(trig->tg_event) ? trig->tg_newtuple : trig->tg_trigtuple;
    desc = RelationGetDescr(trig->tg_relation);
    target = SPI_fnumber(desc, "document");
    if (target <= 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("table %s has no column \"document\"",
                               RelationGetRelationName(trig->tg_relation))));
    for (int i = 0; i < DOC_NFIELDS; i++) {
        int attnum = SPI_fnumber(desc, doc_fields[i].key);
        if (attnum <= 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("table %s has no column \"%s\"",
                                   RelationGetRelationName(trig->tg_relation), doc_fields[i].key)));
        values[i] = heap_getattr(tuple, attnum, desc, &nulls[i]);
    }
    /* the explanation first (when the writer gave none), since the document includes it */
    if (nulls[DOC_EXPLANATION] && !nulls[DOC_MODEL_ID]) {
        int fattr = SPI_fnumber(desc, "features");
        bool fnull = true;
        Datum fdatum = fattr > 0 ? heap_getattr(tuple, fattr, desc, &fnull) : (Datum) 0;
        Jsonb *why = explain_row(values, nulls, fdatum, fnull);
        if (why) {
            values[DOC_EXPLANATION] = JsonbPGetDatum(why);
            nulls[DOC_EXPLANATION] = false;
        }
    }
    {
        int cols[2] = {target, SPI_fnumber(desc, doc_fields[DOC_EXPLANATION].key)};
        Datum datums[2] = {PointerGetDatum(document_build(values, nulls, DOC_NFIELDS)),
                           values[DOC_EXPLANATION]};
        bool isnull[2] = {false, nulls[DOC_EXPLANATION]};

        return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 2, cols, datums, isnull));
    }
}
