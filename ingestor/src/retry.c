/* ingestor/src/retry.c — classifying a failed batch attempt by its error fields, and the backoff */

/*
 * Classification uses the SQLSTATE and the error's fields, never its text: the text is translated
 * by the server (lc_messages) and changes between versions. The one case that needs more than the
 * SQLSTATE is a missing partition. PostgreSQL 15 reports it from ExecFindPartition as 23514
 * (check_violation) with errtable() of the partitioned table (schema and table name set) and no
 * constraint name, while a violated CHECK constraint also is 23514 but always names its constraint
 * (errtableconstraint), and a domain's CHECK names its constraint and data type. So 23514 naming
 * a table and no constraint is "no partition for this row", whatever the language.
 */
#include "retry.h"

#include <string.h>

/* has: a field that is set and not empty */
static bool has(const char *field)
{
    return field && *field;
}

attempt_result retry_classify(const pg_error_fields *f)
{
    const char *s = f->sqlstate;

    if (!f->connection_ok || !has(s) || strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0)
        return ATTEMPT_CONNECTION;
    if (strcmp(s, "CW001") == 0)
        return ATTEMPT_MODEL_CHANGED;
    if (strcmp(s, "CW002") == 0)
        return ATTEMPT_REPLAYED;
    if (strcmp(s, "23514") == 0 && has(f->table) && has(f->schema) && !has(f->constraint))
        return ATTEMPT_NO_PARTITION;
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0 ||
        strncmp(s, "53", 2) == 0)
        return ATTEMPT_TRANSIENT;
    if (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0)
        return ATTEMPT_DATA;
    return ATTEMPT_TRANSIENT;
}

const char *retry_result_name(attempt_result r)
{
    switch (r) {
    case ATTEMPT_OK:
        return "ok";
    case ATTEMPT_CONNECTION:
        return "connection";
    case ATTEMPT_MODEL_CHANGED:
        return "model changed";
    case ATTEMPT_REPLAYED:
        return "replayed";
    case ATTEMPT_NO_PARTITION:
        return "no partition";
    case ATTEMPT_TRANSIENT:
        return "transient";
    case ATTEMPT_DATA:
        return "data";
    }
    return "?";
}

void backoff_init(backoff *b, long min_ms, long max_ms)
{
    b->min_ms = min_ms > 0 ? min_ms : 1;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->step_ms = b->min_ms;
}

long backoff_next(backoff *b, cw_prng *rng)
{
    long half = b->step_ms / 2;
    long wait = b->step_ms - half + (half > 0 ? (long) cw_prng_below(rng, (uint64_t) half + 1) : 0);
    b->step_ms = b->step_ms > b->max_ms / 2 ? b->max_ms : b->step_ms * 2;
    return wait;
}
