/* common/src/rfc3339.h — RFC 3339 UTC text of a PostgreSQL timestamp (microseconds since 2000) */
#ifndef CW_RFC3339_H
#define CW_RFC3339_H

#include <stddef.h>
#include <stdint.h>

#define CW_RFC3339_MAX 48 /* room for any int64 timestamp, with the terminating NUL */

/*
 * cw_rfc3339_us writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, six fraction digits, proleptic
 * Gregorian; years beyond 0000..9999 are signed and widened) for us2000 microseconds since
 * 2000-01-01 00:00:00 UTC, the way PostgreSQL stores a timestamptz, into out (at least
 * CW_RFC3339_MAX bytes). Returns the length, or 0 for -infinity/infinity (INT64_MIN/INT64_MAX),
 * which have no RFC 3339 form.
 */
size_t cw_rfc3339_us(char *out, int64_t us2000);

#endif /* CW_RFC3339_H */
