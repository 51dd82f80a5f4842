/* apiserver/src/generation.h — the anomaly generation read from Postgres at request time,
 * single-flight */
#ifndef API_GENERATION_H
#define API_GENERATION_H

#include <stdint.h>

typedef struct generation generation;

/* generation_create: the dedicated connection (opened at the first query) runs with
 * statement_timeout_ms; NULL when out of memory. The caller owns it (generation_destroy). */
generation *generation_create(const char *conninfo, long statement_timeout_ms);
void generation_destroy(generation *g);

/*
 * generation_fresh returns in *gen the value of chainwatch.ingest_state.anomaly_generation as read
 * by a query that started after this call began, so every anomaly batch committed before the
 * request arrived is counted. Concurrent callers share one query (single flight): a caller waits
 * for the next query to start and finish, never for more than one. 0, or -1 when Postgres could
 * not answer within wait_ms or the statement timeout (the caller bypasses the cache).
 */
int generation_fresh(generation *g, long wait_ms, int64_t *gen);

#endif /* API_GENERATION_H */
