/* ingestor/src/maintenance.c — the maintenance thread: one owner for chainwatch.maintain() in this
 * process, and the store gauges of /metrics */

/*
 * Design
 * ------
 * maintain() creates the partitions ahead, drops expired ones and enforces the row bounds. It must
 * have one scheduler (docs/store.md): the server's background worker where chainwatch is preloaded,
 * pg_cron where an operator prefers it, or, where neither runs (managed Postgres), this thread.
 * Nothing else in the ingestor calls it: a writer that finds no partition for its rows backs off
 * and asks this thread (maintenance_request), which runs maintain() at once if it is the maintainer
 * here. With the server's worker in charge the request is only noted: the worker creates the
 * partition within chainwatch.maintenance_interval and the writers' backoff (capped at 5 s) waits
 * for it. maintain() itself is safe against several callers (an advisory lock; a second caller
 * returns at once), so several ingestors each running this thread never collide.
 *
 * MAINTENANCE_MODE decides: auto (default) maintains while the server runs no worker for this
 * database; thread always maintains; off never does. The worker is looked up every WORKER_CHECK_MS,
 * and again when a writer asks while the worker is seen, in case it has stopped. A role without
 * pg_read_all_stats (the ingestor's, sql/roles.sql) sees other users' backends in pg_stat_activity
 * with backend_type NULL, so a `chainwatch maintenance` backend found there is only one of two
 * signs; the other, visible to any role, is the server's configuration: chainwatch.database is a
 * postmaster setting only when the library was preloaded (extension/src/chainwatch.c), and then the
 * postmaster runs a worker for each database it lists (restarted 10 s after it exits).
 * MAINTENANCE_INTERVAL_MS is the period of maintain() (0: never, whatever the mode); the store
 * gauges (chainwatch.status()) are refreshed on the same tick, every GAUGE_MS when maintain() is
 * off.
 *
 * The thread owns its connection (cw_pg_connect: keepalives, TCP user timeout). Statements are sent
 * asynchronously and waited for in steps of 100 ms, so a stop request is seen while a statement
 * runs and the statement is cancelled: a maintain() or status() waiting on a lock never holds the
 * process's shutdown up, and main never waits on Postgres (it only watches `finished`).
 */
#include "maintenance.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monoclock.h"
#include "pgconn.h"

#define WORKER_CHECK_MS    60000 /* how often the worker's presence is looked up */
#define RECHECK_ASKED_MS   5000  /* at most this often again when a writer asks */
#define GAUGE_MS           10000 /* status() refresh when maintain() never runs here */
#define REQUEST_SPACING_MS 1000  /* maintain() at most this often on writers' requests */
#define RECONNECT_MS       5000  /* after a failed connection */

bool maintenance_runs_maintain(maintenance_mode mode, int worker_seen, long interval_ms)
{
    if (interval_ms <= 0 || mode == MAINTENANCE_OFF)
        return false;
    return mode == MAINTENANCE_THREAD || worker_seen == 0;
}

/* exec_cancellable runs sql and returns its last result (caller clears; NULL when it could not be
 * sent or the connection broke); a stop request meanwhile cancels the statement */
static PGresult *exec_cancellable(maintenance *m, const char *sql)
{
    PGconn *conn = m->conn;
    bool cancelled = false;
    if (!PQsendQuery(conn, sql))
        return NULL;
    while (PQisBusy(conn)) {
        struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
        int rc = poll(&pfd, 1, 100);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && !PQconsumeInput(conn))
            break; /* the connection broke: PQgetResult reports it without waiting */
        if (!cancelled && atomic_load(&m->stop)) {
            char err[256];
            PGcancel *c = PQgetCancel(conn);
            if (!c || !PQcancel(c, err, sizeof(err)))
                log_warn("maintenance: cannot cancel the statement in flight: %s",
                         c ? err : "no cancel handle");
            PQfreeCancel(c);
            cancelled = true;
        }
    }
    PGresult *res, *last = NULL;
    while ((res = PQgetResult(conn)) != NULL) {
        PQclear(last);
        last = res;
    }
    return last;
}

/* failed: res is not a result set; logs what with Postgres's or libpq's reason */
static bool failed(maintenance *m, PGresult *res, const char *what)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return false;
    if (!atomic_load(&m->stop)) {
        const char *msg = res ? PQresultErrorMessage(res) : "";
        if (!*msg)
            msg = PQerrorMessage(m->conn);
        log_warn("maintenance: %s failed: %.*s", what, (int) strcspn(msg, "\n"), msg);
    }
    return true;
}

/* connect_db opens the thread's connection unless it is open; false when Postgres is away */
static bool connect_db(maintenance *m)
{
    char err[256];
    if (m->conn && PQstatus(m->conn) == CONNECTION_OK)
        return true;
    PQfinish(m->conn);
    cw_pg_params params = {m->cfg->database_url, "chainwatch-ingestor maintenance", NULL, 0};
    m->conn = cw_pg_connect(&params, err, sizeof(err));
    if (!m->conn)
        log_debug("maintenance: cannot connect to Postgres: %s", err);
    return m->conn != NULL;
}

/* check_worker looks for the server's maintenance worker in this database and logs changes */
static void check_worker(maintenance *m)
{
    PGresult *res = exec_cancellable(
        m, "SELECT EXISTS (SELECT FROM pg_stat_activity "
           "WHERE backend_type = 'chainwatch maintenance' AND datname = current_database()) "
           "OR COALESCE((SELECT context = 'postmaster' AND current_database() = "
           "ANY (string_to_array(replace(setting, ' ', ''), ',')) "
           "FROM pg_settings WHERE name = 'chainwatch.database'), false)");
    if (!failed(m, res, "looking for the maintenance worker")) {
        int seen = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        int before = atomic_exchange(&m->worker_seen, seen);
        if (before != seen && m->mode == MAINTENANCE_AUTO && m->cfg->maintenance_interval_ms > 0)
            log_info("maintenance: %s",
                     seen ? "the server's chainwatch maintenance worker runs maintain(); this "
                            "ingestor does not"
                          : "no chainwatch maintenance worker runs in this database; this "
                            "ingestor's maintenance thread runs maintain()");
    }
    PQclear(res);
}

/* refresh_gauges reads chainwatch.status() into the store gauges */
static void refresh_gauges(maintenance *m)
{
    PGresult *res =
        exec_cancellable(m, "SELECT table_name, rows, max_rows, evicted_ttl, "
                            "evicted_size FROM chainwatch.status() ORDER BY table_name");
    if (!failed(m, res, "chainwatch.status()")) {
        int n = PQntuples(res) < N_STORE_TABLES ? PQntuples(res) : N_STORE_TABLES;
        for (int i = 0; i < n; i++) {
            store_gauge *g = &m->store[i];
            /* names are written before n_store counts them and never change after */
            if (i >= atomic_load(&m->n_store))
                snprintf(g->table, sizeof(g->table), "%s", PQgetvalue(res, i, 0));
            atomic_store(&g->rows, atoll(PQgetvalue(res, i, 1)));
            atomic_store(&g->max_rows, atoll(PQgetvalue(res, i, 2)));
            atomic_store(&g->evicted_ttl, atoll(PQgetvalue(res, i, 3)));
            atomic_store(&g->evicted_size, atoll(PQgetvalue(res, i, 4)));
        }
        if (n > atomic_load(&m->n_store))
            atomic_store(&m->n_store, n);
    }
    PQclear(res);
}

static void run_maintain(maintenance *m)
{
    PGresult *res = exec_cancellable(m, "SELECT count(*) FROM chainwatch.maintain()");
    failed(m, res, "chainwatch.maintain()");
    PQclear(res);
}

/* wait_for_work sleeps until deadline (ms), a request or stop; returns whether a writer asked */
static bool wait_for_work(maintenance *m, int64_t deadline)
{
    pthread_mutex_lock(&m->mu);
    while (!m->wanted && !atomic_load(&m->stop) && cw_mono_ms() < deadline) {
        struct timespec at = cw_deadline_ms(deadline - cw_mono_ms());
        pthread_cond_timedwait(&m->cv, &m->mu, &at);
    }
    bool asked = m->wanted;
    m->wanted = false;
    pthread_mutex_unlock(&m->mu);
    return asked;
}

/* maintenance_main is the thread: every tick (MAINTENANCE_INTERVAL_MS, or GAUGE_MS) look for the
 * server's worker when due, run maintain() when this process is the maintainer (at once, spaced by
 * REQUEST_SPACING_MS, when a writer asked), refresh the store gauges; sets finished on stop */
static void *maintenance_main(void *arg)
{
    maintenance *m = arg;
    long interval = m->cfg->maintenance_interval_ms;
    long period = interval > 0 ? interval : GAUGE_MS;
    int64_t tick_at = 0, checked_at = 0, requested_run_at = 0;

    while (!atomic_load(&m->stop)) {
        bool asked = wait_for_work(m, tick_at);
        if (atomic_load(&m->stop))
            break;
        int64_t now = cw_mono_ms();
        bool tick = now >= tick_at;
        if (!connect_db(m)) {
            tick_at = now + (period < RECONNECT_MS ? period : RECONNECT_MS);
            continue;
        }
        if (m->mode == MAINTENANCE_AUTO && (!checked_at || now - checked_at >= WORKER_CHECK_MS ||
                                            (asked && atomic_load(&m->worker_seen) == 1 &&
                                             now - checked_at >= RECHECK_ASKED_MS))) {
            check_worker(m);
            checked_at = cw_mono_ms();
        }
        bool maintainer =
            maintenance_runs_maintain(m->mode, atomic_load(&m->worker_seen), interval);
        bool on_request = asked && maintainer && now - requested_run_at >= REQUEST_SPACING_MS;
        if (on_request) {
            log_info("maintenance: a writer found no partition; running chainwatch.maintain() now");
            requested_run_at = now;
        } else if (asked && !maintainer) {
            log_debug("maintenance: a writer found no partition; maintain() is run elsewhere");
        }
        if (maintainer && (tick || on_request))
            run_maintain(m);
        if (tick) {
            refresh_gauges(m);
            tick_at = now + period;
        }
    }
    PQfinish(m->conn);
    m->conn = NULL;
    atomic_store(&m->finished, true);
    return NULL;
}

int maintenance_start(maintenance *m, const ingestor_settings *cfg, ingest_stats *stats, char *err,
                      size_t errlen)
{
    pthread_condattr_t attr;
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->stats = stats;
    atomic_init(&m->worker_seen, -1);
    m->mode = cfg->maintenance;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&m->thread, NULL, maintenance_main, m) != 0) {
        snprintf(err, errlen, "cannot start the maintenance thread");
        return -1;
    }
    m->started = true;
    if (m->mode != MAINTENANCE_AUTO || cfg->maintenance_interval_ms <= 0)
        log_info(
            "maintenance: %s",
            maintenance_runs_maintain(m->mode, 0, cfg->maintenance_interval_ms)
                ? "this ingestor's maintenance thread runs maintain() (MAINTENANCE_MODE=thread)"
                : "this ingestor never runs maintain() (MAINTENANCE_MODE=off or "
                  "MAINTENANCE_INTERVAL_MS=0)");
    return 0;
}

void maintenance_request(void *arg)
{
    maintenance *m = arg;
    pthread_mutex_lock(&m->mu);
    m->wanted = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void maintenance_stop(maintenance *m)
{
    if (!m->started)
        return;
    pthread_mutex_lock(&m->mu);
    atomic_store(&m->stop, true);
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

bool maintenance_finished(maintenance *m)
{
    return !m->started || atomic_load(&m->finished);
}

void maintenance_join(maintenance *m)
{
    if (!m->started)
        return;
    pthread_join(m->thread, NULL);
    m->started = false;
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
}
