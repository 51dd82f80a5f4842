/* apiserver/src/listener.c — LISTEN chainwatch_anomalies/_model/_models/_api_keys on a dedicated
 * connection
 *
 * Design. Cache correctness hangs on this thread. The ingest path bumps
 * chainwatch.ingest_state.anomaly_generation and NOTIFYs chainwatch_anomalies in the transaction
 * that commits new anomalies; Postgres delivers the notification at commit. Cached lists are keyed
 * by the generation this thread last read, and a notification makes it read the generations again
 * at once (the payload is never believed: see handle), so once a commit's notification has arrived
 * no request can hit a list cached before it. Likewise registry changes (chainwatch_models, from
 * the 0.3.0 trigger), activations (chainwatch_model: prediction keys contain the model id) and key
 * revocations (chainwatch_api_keys: drop cached authentications).
 *
 * The order on (re)connect matters: LISTEN first, then read the current values, so a change that
 * commits in between is seen either in the read or as a notification. While disconnected the
 * state is invalid and callers bypass the cache (correct, only slower); on reconnect everything is
 * re-read, and the authentication epoch is bumped because a revocation may have been missed. The
 * values are also re-read every REFRESH_S seconds as a safety net (an extension dropped and
 * recreated sends no notification).
 *
 * Readers take the state without locks: a seqlock (even sequence = stable) over atomics. A seqlock
 * allows one writer at a time, and there are several (this thread, and request threads recording
 * an activation or a registry change they committed): writers take write_lock around the
 * sequence bumps, so two of them never overlap and leave the sequence even mid-write, where a
 * reader would accept a mix of both. Readers never take it.
 */
#include "listener.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "log.h"
#include "pgconn.h"

#define REFRESH_S                  5
#define LISTENER_CONNECT_TIMEOUT_S 3

struct listener {
    pthread_t thread;
    char *conninfo;
    atomic_bool stop;
    atomic_bool connected;
    pthread_mutex_t
        write_lock; /* one writer of the fields below at a time; readers never take it */
    _Atomic uint64_t seq;
    _Atomic uint32_t ext_oid;
    _Atomic int64_t anomaly_gen;
    _Atomic int64_t registry_gen;
    _Atomic int32_t active_model;
    _Atomic uint64_t auth_epoch;
};

/* begin_write takes the writer lock and makes the sequence odd: readers retry until end_write */
static void begin_write(listener *l)
{
    if (pthread_mutex_lock(&l->write_lock) != 0)
        abort(); /* a default mutex fails only when misused */
    atomic_fetch_add(&l->seq, 1);
}

/* end_write makes the sequence even again and releases the writer lock */
static void end_write(listener *l)
{
    atomic_fetch_add(&l->seq, 1);
    if (pthread_mutex_unlock(&l->write_lock) != 0)
        abort();
}

void listener_get(listener *l, listener_state *out)
{
    uint64_t s1, s2;
    do {
        s1 = atomic_load(&l->seq);
        out->valid = atomic_load(&l->connected);
        out->ext_oid = atomic_load(&l->ext_oid);
        out->anomaly_generation = atomic_load(&l->anomaly_gen);
        out->registry_generation = atomic_load(&l->registry_gen);
        out->active_model = atomic_load(&l->active_model);
        s2 = atomic_load(&l->seq);
    } while (s1 != s2 || (s1 & 1));
    if (out->ext_oid == 0)
        out->valid = false;
}

void listener_publish(listener *l, const listener_state *s)
{
    begin_write(l);
    atomic_store(&l->ext_oid, s->ext_oid);
    atomic_store(&l->anomaly_gen, s->anomaly_generation);
    atomic_store(&l->registry_gen, s->registry_generation);
    atomic_store(&l->active_model, s->active_model);
    end_write(l);
}

/* set_connected records whether the LISTEN connection is up, as one write */
static void set_connected(listener *l, bool up)
{
    begin_write(l);
    atomic_store(&l->connected, up);
    end_write(l);
}

void listener_set_active_model(listener *l, int32_t model_id)
{
    begin_write(l);
    atomic_store(&l->active_model, model_id);
    end_write(l);
}

static void raise_to(_Atomic int64_t *a, int64_t v);

void listener_raise_registry(listener *l, int64_t generation)
{
    begin_write(l);
    raise_to(&l->registry_gen, generation);
    end_write(l);
}

uint64_t listener_auth_epoch(listener *l)
{
    return atomic_load(&l->auth_epoch);
}

bool listener_connected(listener *l)
{
    return atomic_load(&l->connected);
}

/* read_state re-reads every value; -1 (logged) on failure */
static int read_state(listener *l, PGconn *pg)
{
    PGresult *r =
        PQexec(pg, "SELECT e.oid::bigint,"
                   " (SELECT i.anomaly_generation FROM chainwatch.ingest_state i),"
                   " (SELECT s.generation FROM chainwatch.registry_state s),"
                   " coalesce((SELECT m.id FROM chainwatch.models m WHERE m.is_active), 0)"
                   " FROM pg_catalog.pg_extension e WHERE e.extname = 'chainwatch'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            log_warn("listener: the chainwatch extension is not installed; caching is bypassed");
        else
            log_warn("listener: cannot read the generations: %s", PQerrorMessage(pg));
        PQclear(r);
        begin_write(l);
        atomic_store(&l->ext_oid, 0);
        end_write(l);
        return -1;
    }
    const listener_state s = {
        .ext_oid = (uint32_t) strtoul(PQgetvalue(r, 0, 0), NULL, 10),
        .anomaly_generation = strtoll(PQgetvalue(r, 0, 1), NULL, 10),
        .registry_generation = strtoll(PQgetvalue(r, 0, 2), NULL, 10),
        .active_model = (int32_t) strtol(PQgetvalue(r, 0, 3), NULL, 10),
    };
    listener_publish(l, &s);
    PQclear(r);
    return 0;
}

/* raise_to stores v into a if it is larger (generations only move forward) */
static void raise_to(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/*
 * handle takes one notification as a hint, never as the state (issue 24, finding 1): any role that
 * can log in may NOTIFY these channels with any payload. `NOTIFY chainwatch_models, '48'` used to
 * raise the registry generation above every real one, so the model list stayed cached for a day,
 * and `NOTIFY chainwatch_model, '1'` made predict answer with a model that was not active. A
 * generation or model notification now only asks for read_state (once per batch of notifications,
 * true is returned); a key notification drops the cached authentications, which costs a forger
 * nothing but a re-check of keys against the database.
 */
static bool handle(listener *l, const PGnotify *n)
{
    if (!strcmp(n->relname, "chainwatch_api_keys")) {
        begin_write(l);
        atomic_fetch_add(&l->auth_epoch, 1);
        end_write(l);
        return false;
    }
    return !strcmp(n->relname, "chainwatch_anomalies") ||
           !strcmp(n->relname, "chainwatch_models") || !strcmp(n->relname, "chainwatch_model");
}

/* connect_and_listen opens the listener's connection and LISTENs; NULL with libpq's reason (its
 * first line: names host, port and user, never the password) in why on failure */
static PGconn *connect_and_listen(listener *l, char *why, size_t why_len)
{
    const cw_pg_params params = {.url = l->conninfo,
                                 .application_name = "chainwatch-api-listener",
                                 .connect_timeout_s = LISTENER_CONNECT_TIMEOUT_S};
    PGconn *pg = cw_pg_connect(&params, why, why_len);
    PGresult *r;

    if (!pg)
        return NULL;
    r = PQexec(pg, "LISTEN chainwatch_anomalies; LISTEN chainwatch_model; LISTEN chainwatch_models;"
                   " LISTEN chainwatch_api_keys");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        log_warn("listener: LISTEN failed: %s", PQerrorMessage(pg));
        PQclear(r);
        PQfinish(pg);
        return NULL;
    }
    PQclear(r);
    return pg;
}

static void *listener_main(void *arg)
{
    listener *l = arg;
    PGconn *pg = NULL;
    time_t last_refresh = 0;
    bool warned = false;

    while (!atomic_load(&l->stop)) {
        if (!pg) {
            char why[256];
            pg = connect_and_listen(l, why, sizeof(why));
            if (!pg) {
                if (!warned)
                    log_warn("listener: cannot connect to PostgreSQL (%s); cache lookups are "
                             "bypassed until it is back",
                             why);
                warned = true;
                for (int i = 0; i < 10 && !atomic_load(&l->stop); i++)
                    nanosleep(&(struct timespec){0, 100000000L}, NULL);
                continue;
            }
            warned = false;
            atomic_fetch_add(&l->auth_epoch, 1);
            if (read_state(l, pg) == 0)
                log_info("listener: connected; anomaly generation %lld",
                         (long long) atomic_load(&l->anomaly_gen));
            set_connected(l, true);
            last_refresh = time(NULL);
        }
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        int rc = poll(&pfd, 1, 100);
        if (rc > 0 && PQconsumeInput(pg) == 0) {
            log_warn("listener: connection lost: %s", PQerrorMessage(pg));
            set_connected(l, false);
            atomic_fetch_add(&l->auth_epoch, 1);
            PQfinish(pg);
            pg = NULL;
            continue;
        }
        PGnotify *n;
        bool reread = false;
        while ((n = PQnotifies(pg)) != NULL) {
            reread |= handle(l, n);
            PQfreemem(n);
        }
        if (reread || time(NULL) - last_refresh >= REFRESH_S) {
            last_refresh = time(NULL);
            if (read_state(l, pg) != 0 && PQstatus(pg) == CONNECTION_BAD) {
                set_connected(l, false);
                PQfinish(pg);
                pg = NULL;
            }
        }
    }
    if (pg)
        PQfinish(pg);
    return NULL;
}

listener *listener_start(const char *conninfo, char *err, size_t errlen)
{
    listener *l = calloc(1, sizeof(*l));
    if (!l || !(l->conninfo = strdup(conninfo))) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&l->write_lock, NULL) != 0) {
        snprintf(err, errlen, "cannot create the listener's lock");
        free(l->conninfo);
        free(l);
        return NULL;
    }
    if (pthread_create(&l->thread, NULL, listener_main, l) != 0) {
        snprintf(err, errlen, "cannot start the listener thread");
        pthread_mutex_destroy(&l->write_lock);
        free(l->conninfo);
        free(l);
        return NULL;
    }
    return l;
}

void listener_stop(listener *l)
{
    if (!l)
        return;
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->write_lock);
    free(l->conninfo);
    free(l);
}
