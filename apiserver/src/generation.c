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
 *
 * Waiting is lock-free. The state is a handful of atomics and the waiters sleep on a futex word
 * that every finished query bumps. (A mutex and condition variable cost each request about four
 * context switches under load: a broadcast wakes every waiter, and all of them then queue on the
 * mutex; with the futex a waiter sleeps once and is woken once or twice.) The connection moves
 * through three phases: IDLE, SENT (a query is on the wire, nobody is reading its answer) and
 * RECEIVING (one request's thread is reading it). Whoever reads an answer publishes it and, if
 * tickets arrived meanwhile, sends the next query at once, before it wakes anyone: under load the
 * queries run back to back and no request waits for another thread to be scheduled just to start
 * one. One of the woken waiters then takes over the reading. Memory order is the default
 * (sequentially consistent) everywhere: the reader publishes the value, then the covered ticket,
 * then the new phase, then bumps the futex word, so a waiter that loaded the word before the bump
 * either sees the new covered ticket or is woken by the bump.
 *
 * Why any later value is good enough: queries run one at a time, so a value published after a
 * query covered ticket t comes from a query that started after that one, hence after t arrived.
 */
#include "generation.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "monoclock.h"
#include "pgconn.h"

#define RETRY_MS                     500
#define GENERATION_CONNECT_TIMEOUT_S 3
#define FAILED                       (-1) /* value published by a failed query (generations are never negative) */

enum { IDLE, SENT, RECEIVING };

struct generation {
    char *conninfo;
    PGconn *pg;               /* owned by the current querier */
    long long retry_at_ns;    /* likewise */
    _Atomic uint64_t issued;  /* tickets handed out */
    _Atomic uint64_t covered; /* every ticket <= covered has a value no older than its arrival */
    _Atomic int64_t value;    /* the last query's generation, or FAILED */
    _Atomic int phase;        /* IDLE, SENT or RECEIVING */
    uint64_t sent_covers;     /* the tickets the query on the wire covers (written before SENT) */
    _Atomic uint32_t done;    /* futex word: bumped after every query */
};

generation *generation_create(const char *conninfo)
{
    generation *g = calloc(1, sizeof(*g));
    if (!g || !(g->conninfo = strdup(conninfo))) {
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
    free(g->conninfo);
    free(g);
}

/* ensure_connected opens the dedicated connection (with back-off after a failure); 0 when it is
 * usable */
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

/* send_query puts a query covering every ticket issued so far on the wire; called by the thread
 * that owns the connection (phase RECEIVING). 0, or -1 when it could not be sent. */
static int send_query(generation *g)
{
    g->sent_covers = atomic_load(&g->issued);
    if (ensure_connected(g) != 0)
        return -1;
    if (!PQsendQueryPrepared(g->pg, "cw_generation", 0, NULL, NULL, NULL, 0)) {
        g->retry_at_ns = 0; /* reconnect at the next query */
        PQfinish(g->pg);
        g->pg = NULL;
        return -1;
    }
    return 0;
}

/* receive_query reads the answer to the query on the wire */
static int receive_query(generation *g, int64_t *out)
{
    int rc = -1;
    bool broken = false;
    PGresult *r;
    while ((r = PQgetResult(g->pg)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            rc = 0;
        } else {
            broken = true;
        }
        PQclear(r);
    }
    if (rc != 0 || broken) {
        /* the connection broke, or e.g. the extension was dropped and the prepared statement
         * must be made again: start over with a new connection */
        g->retry_at_ns = PQstatus(g->pg) != CONNECTION_OK ? 0 : cw_mono_ns() + RETRY_MS * 1000000LL;
        PQfinish(g->pg);
        g->pg = NULL;
        return -1;
    }
    return 0;
}

/* publish hands every waiter whose ticket <= covers the value (or FAILED), sends the next query at
 * once if tickets arrived meanwhile, and wakes the waiters; called by the connection's owner */
static void publish(generation *g, uint64_t covers, int64_t value)
{
    atomic_store(&g->value, value);
    atomic_store(&g->covered, covers);
    if (atomic_load(&g->issued) > covers && g->pg && send_query(g) == 0)
        atomic_store(&g->phase, SENT);
    else
        atomic_store(&g->phase, IDLE);
    atomic_fetch_add(&g->done, 1);
    syscall(SYS_futex, (uint32_t *) &g->done, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* complete reads the answer to the query on the wire and publishes it */
static void complete(generation *g)
{
    int64_t v = 0;
    uint64_t covers = g->sent_covers;
    publish(g, covers, receive_query(g, &v) == 0 ? v : FAILED);
}

/* futex_wait sleeps while *word == seen, at most until deadline_ns (CLOCK_MONOTONIC) */
static void futex_wait(_Atomic uint32_t *word, uint32_t seen, long long deadline_ns)
{
    long long left = deadline_ns - cw_mono_ns();
    if (left <= 0)
        return;
    struct timespec ts = {left / 1000000000LL, left % 1000000000LL};
    syscall(SYS_futex, (uint32_t *) word, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
}

int generation_fresh(generation *g, long wait_ms, int64_t *gen)
{
    long long deadline = cw_mono_ns() + wait_ms * 1000000LL;
    uint64_t ticket = atomic_fetch_add(&g->issued, 1) + 1;

    for (;;) {
        uint32_t seen = atomic_load(&g->done);
        if (atomic_load(&g->covered) >= ticket)
            break;
        int phase = IDLE;
        if (atomic_compare_exchange_strong(&g->phase, &phase, RECEIVING)) {
            /* nothing on the wire: send a query covering this ticket, then read it */
            if (send_query(g) != 0)
                publish(g, g->sent_covers, FAILED);
            else
                complete(g);
            continue;
        }
        if (phase == SENT && atomic_compare_exchange_strong(&g->phase, &phase, RECEIVING)) {
            complete(g); /* a query is on the wire and nobody reads it: read it */
            continue;
        }
        if (cw_mono_ns() >= deadline)
            return -1;
        futex_wait(&g->done, seen, deadline);
    }
    int64_t v = atomic_load(&g->value);
    if (v == FAILED)
        return -1;
    *gen = v;
    return 0;
}
