/* apiserver/src/pgbin.h — values of binary-format libpq results (integers, float8, timestamps) */
#ifndef API_PGBIN_H
#define API_PGBIN_H

#include <stdint.h>

#include <libpq-fe.h>

/* microseconds between the Unix epoch and PostgreSQL's timestamp epoch (2000-01-01 UTC) */
#define PGBIN_EPOCH_OFFSET_US INT64_C(946684800000000)

/* pgbin_int reads an int2/int4/int8 column, or a timestamptz as microseconds since 2000-01-01
 * UTC, of a binary-format result (0 when NULL) */
int64_t pgbin_int(const PGresult *r, int row, int col);
/* pgbin_float8 reads a float8 column of a binary-format result (0 when NULL) */
double pgbin_float8(const PGresult *r, int row, int col);

#endif /* API_PGBIN_H */
