/* apiserver/src/pgjson.c — JSON from binary-format libpq results (rows formatted in the API, not in
 * Postgres)
 *
 * Why. A list page is 101 rows of 16 columns. Built by Postgres (row_to_json over to_char'd
 * timestamps and numeric text) it cost ~1 ms of backend CPU per page; the same rows sent in binary
 * cost a fraction of that, because the send functions copy what is on disk (int8, float8, the
 * microsecond count of a timestamptz, numeric's base-10000 digits) where the output functions
 * print. The API threads do the printing instead, in parallel and without catalog lookups.
 *
 * The formats produced are the ones the statements in sql.c produce when Postgres builds the JSON:
 * numeric exactly as numeric_out, timestamps as RFC 3339 UTC with six fraction digits, NULL as
 * null; float8 with 17 significant digits, which reads back as the same double that float8out's
 * shortest form does. The integration tests compare a list row with the same anomaly rendered by
 * Postgres.
 *
 * Binary layouts (PostgreSQL's *_send functions, network byte order): int2/int4/int8 and float8 as
 * fixed-width integers; timestamptz as int8 microseconds since 2000-01-01 UTC (INT64_MIN/MAX for
 * -infinity/infinity); numeric as int16 ndigits, int16 weight, uint16 sign, uint16 dscale, then
 * ndigits base-10000 digits, the first of which is worth 10000^weight.
 */
#include "pgjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* built-in type OIDs (pg_type.dat; stable across releases) */
#define BOOLOID        16
#define INT8OID        20
#define INT2OID        21
#define INT4OID        23
#define JSONOID        114
#define FLOAT8OID      701
#define TIMESTAMPTZOID 1184
#define NUMERICOID     1700
#define JSONBOID       3802

#define NUMERIC_POS  0x0000
#define NUMERIC_NEG  0x4000
#define NUMERIC_NAN  0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000

static uint16_t be16(const char *p)
{
    const unsigned char *u = (const unsigned char *) p;
    return (uint16_t) ((u[0] << 8) | u[1]);
}

static uint64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *) p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | u[i];
    return v;
}

/* put_group writes the first n of a base-10000 digit's four decimal digits at p (trim: without
 * leading zeros, keeping at least one); returns the end */
static char *put_group(char *p, unsigned v, bool trim, int n)
{
    char g[4] = {(char) ('0' + v / 1000), (char) ('0' + v / 100 % 10), (char) ('0' + v / 10 % 10),
                 (char) ('0' + v % 10)};
    int skip = 0;
    while (trim && skip < 3 && g[skip] == '0')
        skip++;
    memcpy(p, g + skip, (size_t) (n - skip));
    return p + n - skip;
}

bool pgjson_put_numeric(cw_strbuf *b, const char *bin, size_t len)
{
    if (len < 8)
        return false;
    int ndigits = (int16_t) be16(bin);
    int weight = (int16_t) be16(bin + 2);
    uint16_t sign = be16(bin + 4);
    int dscale = be16(bin + 6);
    if (ndigits < 0 || len != 8 + 2 * (size_t) ndigits || dscale > 0x3FFF)
        return false;
    switch (sign) {
    case NUMERIC_NAN:
        cw_strbuf_puts(b, "NaN");
        return true;
    case NUMERIC_PINF:
        cw_strbuf_puts(b, "Infinity");
        return true;
    case NUMERIC_NINF:
        cw_strbuf_puts(b, "-Infinity");
        return true;
    case NUMERIC_POS:
    case NUMERIC_NEG:
        break;
    default:
        return false;
    }
    for (int i = 0; i < ndigits; i++)
        if (be16(bin + 8 + 2 * i) > 9999)
            return false;

            /* digit i of the base-10000 number (0 outside the stored digits) */
#define DIGIT(i) ((i) >= 0 && (i) < ndigits ? be16(bin + 8 + 2 * (i)) : 0)
    char small[128];
    size_t need = 4 * (size_t) (weight > 0 ? weight + 1 : 1) + (size_t) dscale + 8;
    char *out = need <= sizeof(small) ? small : malloc(need), *p = out;
    if (!out) {
        b->oom = true;
        return false;
    }
    if (sign == NUMERIC_NEG)
        *p++ = '-';
    if (weight < 0)
        *p++ = '0';
    for (int d = 0; d <= weight; d++) /* the first group without leading zeros */
        p = put_group(p, DIGIT(d), d == 0, 4);
    if (dscale > 0) {
        *p++ = '.';
        for (int d = weight + 1, left = dscale; left > 0; d++, left -= 4)
            p = put_group(p, DIGIT(d), false, left < 4 ? left : 4);
    }
#undef DIGIT
    cw_strbuf_append(b, out, (size_t) (p - out));
    if (out != small)
        free(out);
    return true;
}

/* civil_from_days: the proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
 * algorithm, exact for every int64 day count a timestamp can hold) */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned) (z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

void pgjson_put_timestamp(cw_strbuf *b, int64_t us2000)
{
    if (us2000 == INT64_MIN || us2000 == INT64_MAX) {
        cw_strbuf_puts(b, "null");
        return;
    }
    /* floor division: times before 2000 have a negative count */
    int64_t days = us2000 / INT64_C(86400000000), rem = us2000 % INT64_C(86400000000);
    if (rem < 0) {
        rem += INT64_C(86400000000);
        days--;
    }
    int64_t y;
    unsigned mo, d;
    civil_from_days(days + 10957, &y, &mo, &d); /* 10957 days from 1970-01-01 to 2000-01-01 */
    unsigned sec = (unsigned) (rem / 1000000), us = (unsigned) (rem % 1000000);
    if (y < 0 || y > 9999) { /* beyond RFC 3339's four-digit years: let printf sign and widen */
        char buf[48];
        int n = snprintf(buf, sizeof(buf), "\"%04lld-%02u-%02uT%02u:%02u:%02u.%06uZ\"",
                         (long long) y, mo, d, sec / 3600, sec / 60 % 60, sec % 60, us);
        cw_strbuf_append(b, buf, (size_t) n);
        return;
    }
    /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" by hand: snprintf was a tenth of a list page's cost */
    char t[29] = "\"0000-00-00T00:00:00.000000Z\"";
    unsigned fields[][3] = {
        {(unsigned) y, 1, 4},   {mo, 6, 2},        {d, 9, 2},  {sec / 3600, 12, 2},
        {sec / 60 % 60, 15, 2}, {sec % 60, 18, 2}, {us, 21, 6}};
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
        for (unsigned v = fields[f][0], i = fields[f][1] + fields[f][2]; i > fields[f][1]; v /= 10)
            t[--i] = (char) ('0' + v % 10);
    cw_strbuf_append(b, t, sizeof(t));
}

void pgjson_put_float8(cw_strbuf *b, double v)
{
    if (!isfinite(v)) {
        cw_strbuf_puts(b, "null");
        return;
    }
    /* 17 significant digits always read back as v; searching for the shortest form costs a
     * strtod and a second printf per value */
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    cw_strbuf_append(b, buf, (size_t) n);
}

int64_t pgjson_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const char *p = PQgetvalue(r, row, col);
    switch (PQgetlength(r, row, col)) {
    case 2:
        return (int16_t) be16(p);
    case 4:
        return (int32_t) (((uint32_t) be16(p) << 16) | be16(p + 2));
    case 8:
        return (int64_t) be64(p);
    default:
        return 0;
    }
}

double pgjson_float8(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
        return 0;
    uint64_t u = be64(PQgetvalue(r, row, col));
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* fixed_length: the binary length of a fixed-width type put_value knows, 0 for the others */
static size_t fixed_length(Oid type)
{
    switch (type) {
    case BOOLOID:
        return 1;
    case INT2OID:
        return 2;
    case INT4OID:
        return 4;
    case INT8OID:
    case FLOAT8OID:
    case TIMESTAMPTZOID:
        return 8;
    default:
        return 0;
    }
}

/* put_value appends one non-NULL binary value as JSON; false when it is malformed */
static bool put_value(cw_strbuf *b, const PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    size_t len = (size_t) PQgetlength(r, row, col);
    Oid type = PQftype(r, col);
    if (fixed_length(type) && len != fixed_length(type))
        return false;
    switch (type) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
        cw_strbuf_put_int(b, pgjson_int(r, row, col));
        return true;
    case FLOAT8OID:
        pgjson_put_float8(b, pgjson_float8(r, row, col));
        return true;
    case BOOLOID:
        cw_strbuf_puts(b, v[0] ? "true" : "false");
        return true;
    case TIMESTAMPTZOID:
        pgjson_put_timestamp(b, pgjson_int(r, row, col));
        return true;
    case NUMERICOID:
        cw_strbuf_putc(b, '"');
        if (!pgjson_put_numeric(b, v, len))
            return false;
        cw_strbuf_putc(b, '"');
        return true;
    case JSONBOID: /* a version byte (1), then the JSON text */
        if (len < 1 || v[0] != 1)
            return false;
        cw_strbuf_append(b, v + 1, len - 1);
        return true;
    case JSONOID:
        cw_strbuf_append(b, v, len);
        return true;
    default: /* text, varchar, enum labels: the text itself */
        cw_strbuf_json_string(b, v, len);
        return true;
    }
}

bool pgjson_append_objects(cw_strbuf *b, const PGresult *r, int nrows, int from)
{
    int ncols = PQnfields(r) - from;
    bool ok = true;
    if (ncols < 0 || nrows > PQntuples(r))
        return false;

    /* each column's key with its punctuation ('{"id":' then ',"hash":' ...), built once */
    cw_strbuf keys = CW_STRBUF_INIT;
    size_t small_off[33], *off = ncols < 33 ? small_off : malloc(sizeof(size_t) * (ncols + 1));
    if (!off) {
        b->oom = true;
        return false;
    }
    for (int c = 0; c < ncols; c++) {
        const char *name = PQfname(r, from + c);
        off[c] = keys.len;
        cw_strbuf_putc(&keys, c ? ',' : '{');
        cw_strbuf_json_string(&keys, name, strlen(name));
        cw_strbuf_putc(&keys, ':');
    }
    off[ncols] = keys.len;
    if (keys.oom)
        b->oom = true;

    for (int row = 0; row < nrows && !keys.oom; row++) {
        if (row)
            cw_strbuf_putc(b, ',');
        for (int c = 0; c < ncols; c++) {
            cw_strbuf_append(b, keys.data + off[c], off[c + 1] - off[c]);
            size_t mark = b->len;
            if (PQgetisnull(r, row, from + c)) {
                cw_strbuf_append(b, "null", 4);
            } else if (!put_value(b, r, row, from + c)) {
                if (!b->oom) /* drop what was appended of the bad value */
                    b->len = mark;
                cw_strbuf_append(b, "null", 4);
                ok = false;
            }
        }
        cw_strbuf_puts(b, ncols ? "}" : "{}");
    }
    if (off != small_off)
        free(off);
    cw_strbuf_free(&keys);
    return ok && !b->oom;
}
