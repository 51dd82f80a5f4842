/* common/src/rfc3339.c — RFC 3339 UTC text of a PostgreSQL timestamp, shared by chainwatch-api
 * (binary result rows) and the extension (anomaly documents), so both print a time identically */
#include "rfc3339.h"

#include <stdio.h>

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

size_t cw_rfc3339_us(char *out, int64_t us2000)
{
    if (us2000 == INT64_MIN || us2000 == INT64_MAX)
        return 0;
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
    if (y < 0 || y > 9999) /* beyond RFC 3339's four-digit years: let printf sign and widen */
        return (size_t) snprintf(out, CW_RFC3339_MAX, "%04lld-%02u-%02uT%02u:%02u:%02u.%06uZ",
                                 (long long) y, mo, d, sec / 3600, sec / 60 % 60, sec % 60, us);
    /* by hand: snprintf was a tenth of the cost of a list page in the API */
    static const char pattern[] = "0000-00-00T00:00:00.000000Z";
    unsigned fields[][3] = {
        {(unsigned) y, 0, 4},   {mo, 5, 2},        {d, 8, 2},  {sec / 3600, 11, 2},
        {sec / 60 % 60, 14, 2}, {sec % 60, 17, 2}, {us, 20, 6}};
    for (size_t i = 0; i < sizeof(pattern); i++)
        out[i] = pattern[i];
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
        for (unsigned v = fields[f][0], i = fields[f][1] + fields[f][2]; i > fields[f][1]; v /= 10)
            out[--i] = (char) ('0' + v % 10);
    return sizeof(pattern) - 1;
}
