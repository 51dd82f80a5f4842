/* ingestor/src/retry.h — what a failed batch attempt means and how long to wait before the next;
 * pure */
#ifndef INGESTOR_RETRY_H
#define INGESTOR_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "prng.h"

/* the outcome of one batch transaction */
typedef enum attempt_result {
    ATTEMPT_OK,
    ATTEMPT_CONNECTION,    /* connection lost or refused (08xxx, 57Pxx, no SQLSTATE) */
    ATTEMPT_MODEL_CHANGED, /* CW001: the batch was scored with a model no longer active */
    ATTEMPT_REPLAYED,      /* CW002: the batch starts before the stored offsets */
    ATTEMPT_NO_PARTITION,  /* 23514 from partition routing: no partition for the rows' time */
    ATTEMPT_TRANSIENT,     /* serialization, deadlock, lock timeout, resources, anything else */
    ATTEMPT_DATA,          /* 22xxx, 23xxx: the database refuses something in the batch */
} attempt_result;

/* the error fields of a failed statement that decide what to do (PQresultErrorField's) */
typedef struct pg_error_fields {
    bool connection_ok;     /* PQstatus(conn) == CONNECTION_OK after the failure */
    const char *sqlstate;   /* PG_DIAG_SQLSTATE, NULL when libpq made the error itself */
    const char *schema;     /* PG_DIAG_SCHEMA_NAME */
    const char *table;      /* PG_DIAG_TABLE_NAME */
    const char *constraint; /* PG_DIAG_CONSTRAINT_NAME */
} pg_error_fields;

/* a failed attempt as the retry loop sees it */
typedef struct pg_failure {
    attempt_result kind;
    char sqlstate[6];   /* "" when libpq made the error */
    char message[1024]; /* Postgres's or libpq's text, whole */
} pg_failure;

/* retry_classify maps a failed statement's fields to what the retry loop does about it */
attempt_result retry_classify(const pg_error_fields *f);
/* retry_result_name: a short name for logs ("connection", "no partition", ...) */
const char *retry_result_name(attempt_result r);

/*
 * Backoff between attempts: capped exponential with jitter. The step starts at min_ms and doubles
 * after every wait up to max_ms; each wait is half the step plus a random part of the other half,
 * so writers that failed together (Postgres restarted) do not retry in lockstep, and a wait is
 * never shorter than half its step.
 */
typedef struct backoff {
    long step_ms, min_ms, max_ms;
} backoff;

void backoff_init(backoff *b, long min_ms, long max_ms);
/* backoff_next returns the next wait in ms and doubles the step (capped) */
long backoff_next(backoff *b, cw_prng *rng);

#endif /* INGESTOR_RETRY_H */
