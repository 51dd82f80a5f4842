/* apiserver/src/pgjson.h — JSON from binary-format libpq results (rows formatted in the API, not in
 * Postgres) */
#ifndef API_PGJSON_H
#define API_PGJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "strbuf.h"

/* microseconds between the Unix epoch and PostgreSQL's timestamp epoch (2000-01-01 UTC) */
#define PGJSON_EPOCH_OFFSET_US INT64_C(946684800000000)

/*
 * pgjson_put_numeric appends the decimal text of a numeric in PostgreSQL's binary (numeric_send)
 * layout, exactly as numeric_out would print it (sign, integer digits, dscale fraction digits; NaN
 * and ±Infinity by name). Appends nothing and returns false when bin is malformed.
 */
bool pgjson_put_numeric(cw_strbuf *b, const char *bin, size_t len);

/*
 * pgjson_put_timestamp appends a timestamptz (microseconds since 2000-01-01 UTC) as a quoted
 * RFC 3339 UTC string with microseconds ("2026-11-27T07:20:00.000000Z"); ±infinity as null (what
 * to_char returns for them).
 */
void pgjson_put_timestamp(cw_strbuf *b, int64_t us2000);

/* pgjson_put_float8 appends v with 17 significant digits (reads back as v); non-finite as null */
void pgjson_put_float8(cw_strbuf *b, double v);

/*
 * pgjson_append_objects appends rows [0, nrows) of a binary-format result, columns [from,
 * nfields), as comma-separated JSON objects keyed by column name: int2/int4/int8 and float8 as
 * numbers, bool as true/false, numeric as a string (exact decimal: amounts in wei exceed a
 * double), timestamptz as RFC 3339 UTC, json/jsonb as themselves, NULL as null, text and every
 * other type (enum labels are sent as text) as a string. Returns false when a value was
 * malformed (it reads null) or memory ran out.
 */
bool pgjson_append_objects(cw_strbuf *b, const PGresult *r, int nrows, int from);

/* pgjson_int reads an int2/int4/int8 column of a binary-format result (0 when NULL) */
int64_t pgjson_int(const PGresult *r, int row, int col);
/* pgjson_float8 reads a float8 column of a binary-format result (0 when NULL) */
double pgjson_float8(const PGresult *r, int row, int col);

#endif /* API_PGJSON_H */
