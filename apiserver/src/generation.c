/* apiserver/src/generation.c — request-time anomaly generation: one dedicated connection, shared
 * queries
 *
 * Why not only LISTEN. chainwatch.commit_batch() bumps anomaly_generation and NOTIFYs at commit,
 * and listener.c follows those notifications, but a notification reaches this process a little
 * after the committing client sees its COMMIT succeed. A client that commits an anomaly and at once
 * lists anomalies could still be served the list cached under the previous generation. To make
 * "never staler than the newest committed anomaly" hold without exception, list requests key the
 * cache by a generation read *after the request arrived*.
 *
 * Cost control: requests do not each run a query. Tickets are numbered as they arrive; one query at
 * a time runs on a dedicated connection and, when it started, covered every ticket issued before
 * it. A request whose ticket a finished query covers takes that query's value; otherwise it waits
 * for (or starts) the next query. So at any load at most one tiny indexed read is in flight, and
 * each request waits at most two round trips.
 */
#include "generation.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "log.h"

#define RETRY_MS 500

struct generation {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *conninfo;
    PGconn *pg;
    long long retry_at_ns;
    uint64_t issued;  /* tickets handed out */
    uint64_t covered; /* every ticket <= covered has a value no older than its arrival */
    bool running;
    bool failed; /* the last query failed */
    int64_t value;
};

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

generation *generation_create(const char *conninfo)
{
    generation *g = calloc(1, sizeof(*g));
    if (!g || !(g->conninfo = strdup(conninfo))) {
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &attr);
    pthread_condattr_destroy(&attr);
    return g;
}

void generation_destroy(generation *g)
{
    if (!g)
        return;
    if (g->pg)
        PQfinish(g->pg);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->conninfo);
    free(g);
}

/* query reads the generation on the dedicated connection (reconnecting with back-off); called
 * by the one thread that set running, without the mutex held */
static int query(generation *g, int64_t *out)
{
    if (!g->pg || PQstatus(g->pg) != CONNECTION_OK) {
        if (mono_ns() < g->retry_at_ns)
            return -1;
        if (g->pg)
            PQfinish(g->pg);
        const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
        const char *vals[] = {g->conninfo, "chainwatch-api-generation", "3", NULL};
        g->pg = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(g->pg) != CONNECTION_OK) {
            g->retry_at_ns = mono_ns() + RETRY_MS * 1000000LL;
            return -1;
        }
        PGresult *p = PQprepare(g->pg, "cw_generation",
                                "SELECT anomaly_generation FROM chainwatch.ingest_state", 0, NULL);
        bool ok = PQresultStatus(p) == PGRES_COMMAND_OK;
        PQclear(p);
        if (!ok) {
            PQfinish(g->pg);
            g->pg = NULL;
            g->retry_at_ns = mono_ns() + RETRY_MS * 1000000LL;
            return -1;
        }
    }
    PGresult *r = PQexecPrepared(g->pg, "cw_generation", 0, NULL, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        rc = 0;
    } else if (PQstatus(g->pg) != CONNECTION_OK) {
        g->retry_at_ns = 0; /* reconnect at the next query */
    } else {
        /* e.g. the extension was dropped: the prepared statement must be made again */
        PQfinish(g->pg);
        g->pg = NULL;
        g->retry_at_ns = mono_ns() + RETRY_MS * 1000000LL;
    }
    PQclear(r);
    return rc;
}

int generation_fresh(generation *g, long wait_ms, int64_t *gen)
{
    long long deadline = mono_ns() + wait_ms * 1000000LL;
    struct timespec until = {deadline / 1000000000LL, deadline % 1000000000LL};
    int rc = -1;

    pthread_mutex_lock(&g->mu);
    uint64_t ticket = ++g->issued;
    while (g->covered < ticket) {
        if (!g->running) {
            /* this query covers every ticket issued so far, ours included */
            uint64_t covers = g->issued;
            int64_t v = 0;
            g->running = true;
            pthread_mutex_unlock(&g->mu);
            int qrc = query(g, &v);
            pthread_mutex_lock(&g->mu);
            g->running = false;
            g->covered = covers;
            g->failed = qrc != 0;
            if (qrc == 0)
                g->value = v;
            pthread_cond_broadcast(&g->cv);
            continue;
        }
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT && g->covered < ticket) {
            pthread_mutex_unlock(&g->mu);
            return -1;
        }
    }
    if (!g->failed) {
        *gen = g->value;
        rc = 0;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}
