/* extension/src/document.c — chainwatch.anomaly_document(): one anomaly as the REST API's JSON
 * object
 *
 * Why a stored document. The API's anomaly list is its most requested uncached answer: 101 rows of
 * 16 columns. Sent column by column, Postgres runs 1,616 send functions per page and the API
 * formats each value again; most of a page's cost was that per-value work, repeated on every
 * request for rows that never change. chainwatch.anomalies therefore keeps each row's JSON in a
 * generated column, document, computed once when the row is written; a page is then 101 short
 * texts that the API joins with commas. GET /anomalies/{hash} serves the same text, so both
 * endpoints print an anomaly identically.
 *
 * The format is the API's (docs/api.md): keys in column order; amounts in wei as JSON strings
 * (numeric_out: exact); times as RFC 3339 UTC with six fraction digits (common/src/rfc3339.c, the
 * API's own formatter), null for ±infinity; the score as the shortest text that reads back as the
 * same double (what float8out prints), null when not finite; text JSON-escaped as row_to_json
 * does; SQL NULL as null.
 *
 * Why IMMUTABLE, which a generated column requires: the text depends only on the arguments. No GUC
 * is read (not TimeZone, not extra_float_digits, not DateStyle). The one catalog read is the label
 * of the severity_level value; the extension owns that type and never renames a label (renaming
 * one would be an upgrade that recomputes the column, ALTER TABLE ... SET EXPRESSION).
 */
#include "chainwatch.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "rfc3339.h"

typedef enum doc_kind {
    DOC_INT8,
    DOC_INT4,
    DOC_TEXT,
    DOC_NUMERIC,
    DOC_TIME,
    DOC_FLOAT8,
    DOC_ENUM
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
    {"kafka_offset", DOC_INT8},
};
#define DOC_NFIELDS ((int) lengthof(doc_fields))

/* append_value appends argument i of fcinfo as the JSON value of its field */
static void append_value(StringInfo b, FunctionCallInfo fcinfo, int i)
{
    char num[MAXINT8LEN + 1], time[CW_RFC3339_MAX];
    size_t n;
    double v;

    switch (doc_fields[i].kind) {
    case DOC_INT8:
        n = pg_lltoa(PG_GETARG_INT64(i), num);
        appendBinaryStringInfo(b, num, (int) n);
        break;
    case DOC_INT4:
        n = pg_ltoa(PG_GETARG_INT32(i), num);
        appendBinaryStringInfo(b, num, (int) n);
        break;
    case DOC_TEXT:
        escape_json(b, text_to_cstring(PG_GETARG_TEXT_PP(i)));
        break;
    case DOC_NUMERIC:
        appendStringInfoChar(b, '"');
        appendStringInfoString(
            b, DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(i))));
        appendStringInfoChar(b, '"');
        break;
    case DOC_TIME:
        n = cw_rfc3339_us(time, PG_GETARG_TIMESTAMPTZ(i));
        if (n == 0) {
            appendStringInfoString(b, "null");
            break;
        }
        appendStringInfoChar(b, '"');
        appendBinaryStringInfo(b, time, (int) n);
        appendStringInfoChar(b, '"');
        break;
    case DOC_FLOAT8:
        v = PG_GETARG_FLOAT8(i);
        if (!isfinite(v)) {
            appendStringInfoString(b, "null");
            break;
        }
        enlargeStringInfo(b, DOUBLE_SHORTEST_DECIMAL_LEN);
        b->len += double_to_shortest_decimal_buf(v, b->data + b->len);
        break;
    case DOC_ENUM:
        escape_json(b, DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(i))));
        break;
    }
}

PG_FUNCTION_INFO_V1(chainwatch_anomaly_document);
/*
 * chainwatch_anomaly_document(id, hash, from_address, to_address, value, gas, gas_price,
 * block_number, tx_time, detected_at, score, severity, model_id, kafka_topic, kafka_partition,
 * kafka_offset) RETURNS text: the anomaly's JSON object (see the top of this file). Not STRICT:
 * a NULL argument is a null member.
 */
Datum chainwatch_anomaly_document(PG_FUNCTION_ARGS)
{
    StringInfoData b;

    if (PG_NARGS() != DOC_NFIELDS)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("anomaly_document() takes %d arguments, not %d", DOC_NFIELDS, PG_NARGS())));
    initStringInfo(&b);
    appendStringInfoChar(&b, '{');
    for (int i = 0; i < DOC_NFIELDS; i++) {
        appendStringInfo(&b, "%s\"%s\":", i > 0 ? "," : "", doc_fields[i].key);
        if (PG_ARGISNULL(i))
            appendStringInfoString(&b, "null");
        else
            append_value(&b, fcinfo, i);
    }
    appendStringInfoChar(&b, '}');
    PG_RETURN_TEXT_P(cstring_to_text_with_len(b.data, b.len));
}
