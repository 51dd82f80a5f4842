/* apiserver/src/generation.c — request-time anomaly generation: one dedicated connection, one
 * query at a time shared by every request waiting for it (single flight)
 *
 * Why not only LISTEN. chainwatch.commit_batch() bumps anomaly_generation and NOTIFYs at commit,
 * and listener.c follows those notifications, but a notification reaches this process a little
 * after the committing client sees its COMMIT succeed. A client that commits an anomaly and at once
 * lists anomalies could still be served the list cached under the previous generation. To make
 * "never staler than the newest committed anomaly" hold without exception, list requests key the
 * cache by a generation read *after the request arrived*.
 *
 * Cost control: requests do not each run a query. Queries are numbered as they start and run one
 * at a time. A request arriving when n queries have started needs query n+1 or later (query n, if
 * running, may have read the generation before the request arrived). If no query is running, it
 * starts one itself and reads it; otherwise it waits on the condition variable for a query numbered
 * at least n+1 to finish, starting one itself if the running one finishes first without covering
 * it. So at any load at most one tiny indexed read is in flight and each request waits for at most
 * two of them. Everything is under one mutex, except the query itself: the thread that set
 * `running` owns the connection until it clears it.
 *
 * Bounded: the connection has a statement timeout (the caller's wait), so a locked or slow
 * ingest_state costs the requests their wait, after which they bypass the cache; it never leaves a
 * request thread stuck behind the query.
 *
 * Why any later value is good enough: queries run one at a time, so the value of the last finished
 * query, numbered at least n+1, comes from a query that started after the request arrived.
 */
#include "generation.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "log.h"
#include "monoclock.h"
#include "pgconn.h"

#define RETRY_MS                     500
#define GENERATION_CONNECT_TIMEOUT_S 3
#define FAILED                       (-1) /* a failed query's value (generations are never negative) */

struct generation {
    char *conninfo;
    char options[64]; /* -c statement_timeout=... */

    pthread_mutex_t mu;
    pthread_cond_t done; /* broadcast when a query finishes (CLOCK_MONOTONIC) */
    bool running;        /* a query is in flight; its thread owns pg and retry_at_ns */
    uint64_t started;    /* queries started so far (the running one included) */
    uint64_t finished;   /* the number of the last finished query (0: none yet) */
    int64_t value;       /* its generation, or FAILED */

    PGconn *pg;
    long long retry_at_ns;
};

generation *generation_create(const char *conninfo, long statement_timeout_ms)
{
    generation *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    if (!(g->conninfo = strdup(conninfo))) {
        free(g);
        return NULL;
    }
    snprintf(g->options, sizeof(g->options), "-c statement_timeout=%ld", statement_timeout_ms);
    pthread_condattr_t ca;
    bool cond_ok = false;
    if (pthread_condattr_init(&ca) == 0) {
        cond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&g->done, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cond_ok) {
        free(g->conninfo);
        free(g);
        return NULL;
    }
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        pthread_cond_destroy(&g->done);
        free(g->conninfo);
        free(g);
        return NULL;
    }
    return g;
}

void generation_destroy(generation *g)
{
    if (!g)
        return;
    if (g->pg)
        PQfinish(g->pg);
    pthread_cond_destroy(&g->done);
    pthread_mutex_destroy(&g->mu);
    free(g->conninfo);
    free(g);
}

/* lock and unlock: a default mutex fails only when misused */
static void lock(generation *g)
{
    if (pthread_mutex_lock(&g->mu) != 0)
        abort();
}

static void unlock(generation *g)
{
    if (pthread_mutex_unlock(&g->mu) != 0)
        abort();
}

/* ensure_connected opens the dedicated connection and prepares the query (with back-off after a
 * failure); 0 when it is usable. Called by the running thread only. */
static int ensure_connected(generation *g)
{
    if (g->pg && PQstatus(g->pg) == CONNECTION_OK)
        return 0;
    if (cw_mono_ns() < g->retry_at_ns)
        return -1;
    if (g->pg)
        PQfinish(g->pg);
    const cw_pg_params params = {.url = g->conninfo,
                                 .application_name = "chainwatch-api-generation",
                                 .options = g->options,
                                 .connect_timeout_s = GENERATION_CONNECT_TIMEOUT_S};
    char why[256];
    g->pg = cw_pg_connect(&params, why, sizeof(why));
    if (g->pg) {
        PGresult *p = PQprepare(g->pg, "cw_generation",
                                "SELECT anomaly_generation FROM chainwatch.ingest_state", 0, NULL);
        bool ok = PQresultStatus(p) == PGRES_COMMAND_OK;
        PQclear(p);
        if (ok)
            return 0;
    }
    PQfinish(g->pg);
    g->pg = NULL;
    g->retry_at_ns = cw_mono_ns() + RETRY_MS * 1000000LL;
    return -1;
}

/*
 * run_query reads the generation on the dedicated connection; the value, or FAILED. Called by the
 * running thread only, without the mutex. A statement timeout leaves the connection as it is (the
 * next query may find the table free); any other failure closes it: it broke (reconnect at once),
 * or e.g. the extension was dropped and the statement must be prepared again (after RETRY_MS).
 */
static int64_t run_query(generation *g)
{
    if (ensure_connected(g) != 0)
        return FAILED;
    PGresult *r = PQexecPrepared(g->pg, "cw_generation", 0, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        return v;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool timed_out = state && !strcmp(state, "57014");
    PQclear(r);
    if (timed_out && PQstatus(g->pg) == CONNECTION_OK)
        return FAILED;
    g->retry_at_ns = PQstatus(g->pg) != CONNECTION_OK ? 0 : cw_mono_ns() + RETRY_MS * 1000000LL;
    PQfinish(g->pg);
    g->pg = NULL;
    return FAILED;
}

int generation_fresh(generation *g, long wait_ms, int64_t *gen)
{
    long long deadline = cw_mono_ns() + wait_ms * 1000000LL;
    struct timespec until = {deadline / 1000000000LL, deadline % 1000000000LL};
    int rc = 0;

    lock(g);
    uint64_t need = g->started + 1; /* the first query to start after this call began */
    while (g->finished < need && rc == 0) {
        if (!g->running) {
            uint64_t mine = ++g->started;
            g->running = true;
            unlock(g);
            int64_t v = run_query(g);
            lock(g);
            g->running = false;
            g->finished = mine;
            g->value = v;
            if (pthread_cond_broadcast(&g->done) != 0)
                abort();
            continue;
        }
        int w = pthread_cond_timedwait(&g->done, &g->mu, &until);
        if (w == ETIMEDOUT && g->finished < need)
            rc = -1;
        else if (w != 0 && w != ETIMEDOUT)
            abort();
    }
    int64_t v = g->value;
    unlock(g);
    if (rc != 0 || v == FAILED)
        return -1;
    *gen = v;
    return 0;
}
