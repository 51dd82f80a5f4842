/* apiserver/src/pgbin.c — values of binary-format libpq results
 *
 * The list statements run in binary (sql.c): the keyset columns and the totals are read here
 * without parsing text. Layouts (PostgreSQL's *_send functions, network byte order): int2/int4/int8
 * and float8 as fixed-width integers; timestamptz as int8 microseconds since 2000-01-01 UTC.
 */
#include "pgbin.h"

#include <string.h>

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

int64_t pgbin_int(const PGresult *r, int row, int col)
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

double pgbin_float8(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
        return 0;
    uint64_t u = be64(PQgetvalue(r, row, col));
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}
