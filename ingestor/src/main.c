/* ingestor/src/main.c — chainwatch-ingestor: settings, threads, signals and the shutdown state
 * machine */

/*
 * Threads: main (signals, maintenance schedule, stats line, shutdown), one poll thread
 * (consumer.c) and KAFKA_NUM_WORKER_THREADS writers (writer.c), plus civetweb's for /metrics.
 *
 * Shutdown is a state machine driven from main's 100 ms loop:
 *   RUNNING   -- SIGTERM/SIGINT, or --drain finished -->  STOPPING: the poll thread stops
 *                fetching; writers commit what is queued, then exit
 *   STOPPING  -- writers done --> CLOSING: leave the group (revokes through the callback),
 *                destroy the consumer, exit 0
 *   STOPPING  -- SHUTDOWN_TIMEOUT_MS passed --> abandon: uncommitted messages are simply not
 *                stored (their offsets never moved), exit 1
 * A second SIGTERM/SIGINT exits at once (exit 1); nothing is lost then either, since only
 * committed offsets count. Signal handlers only set flags.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ingestor.h"
#include "log.h"
#include "writer.h"

static volatile sig_atomic_t got_term = 0;
static volatile sig_atomic_t got_hup = 0;

static void on_term(int sig)
{
    (void) sig;
    got_term++;
}

static void on_hup(int sig)
{
    (void) sig;
    got_hup = 1;
}

void sleep_ms_unless(long ms, _Atomic bool *flag)
{
    while (ms > 0 && !(flag && atomic_load(flag))) {
        long step = ms > 50 ? 50 : ms;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

PGconn *pg_connect(const char *url, const char *application_name)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, "5", application_name, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

/* store_refresh reads chainwatch.status() into the store gauges of /metrics */
static void store_refresh(ingestor *ing, PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT table_name, rows, max_rows, evicted_ttl, evicted_size "
                                 "FROM chainwatch.status() ORDER BY table_name");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        int n = PQntuples(res) < N_STORE_TABLES ? PQntuples(res) : N_STORE_TABLES;
        for (int i = 0; i < n; i++) {
            store_gauge *g = &ing->store[i];
            snprintf(g->table, sizeof(g->table), "%s", PQgetvalue(res, i, 0));
            atomic_store(&g->rows, atoll(PQgetvalue(res, i, 1)));
            atomic_store(&g->max_rows, atoll(PQgetvalue(res, i, 2)));
            atomic_store(&g->evicted_ttl, atoll(PQgetvalue(res, i, 3)));
            atomic_store(&g->evicted_size, atoll(PQgetvalue(res, i, 4)));
        }
        atomic_store(&ing->n_store, n);
    }
    PQclear(res);
}

/* maintenance_tick refreshes the store gauges and runs chainwatch.maintain() unless the
 * server's maintenance worker runs it */
static void maintenance_tick(ingestor *ing, PGconn **conn)
{
    static int worker_present = -1; /* -1 unknown */
    static int64_t checked_at;

    if (!*conn || PQstatus(*conn) != CONNECTION_OK) {
        if (*conn)
            PQfinish(*conn);
        *conn = pg_connect(ing->cfg->database_url, "chainwatch-ingestor maintenance");
        if (PQstatus(*conn) != CONNECTION_OK) {
            PQfinish(*conn);
            *conn = NULL;
            return;
        }
    }
    if (worker_present < 0 || cw_mono_ms() - checked_at > 60000) {
        PGresult *res = PQexec(*conn, "SELECT count(*) FROM pg_stat_activity "
                                      "WHERE backend_type = 'chainwatch maintenance' "
                                      "AND datname = current_database()");
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            worker_present = atoi(PQgetvalue(res, 0, 0)) > 0;
        PQclear(res);
        checked_at = cw_mono_ms();
    }
    store_refresh(ing, *conn);
    if (worker_present == 1)
        return;
    writer_run_maintenance(*conn);
}

int main(int argc, char **argv)
{
    static ingestor ing;
    ingestor_settings cfg;
    char err[512];
    pthread_t poll_thread;
    PGconn *maint_conn = NULL;
    int rc;

    /* a few malloc arenas instead of one per thread: the writers free what the poll thread's
     * librdkafka allocated, and per-thread arenas keep that memory resident */
    mallopt(M_ARENA_MAX, 2);

    rc = settings_load(&cfg, argc, argv, err, sizeof(err));
    if (rc != 0) {
        settings_free(&cfg);
        if (rc == 1)
            return 0; /* --help */
        fprintf(stderr, "chainwatch-ingestor: %s\n", err);
        return 2;
    }
    if (cw_log_init("chainwatch-ingestor", cfg.log_level, cfg.log_format) != 0) {
        fprintf(stderr, "chainwatch-ingestor: invalid LOG_LEVEL or LOG_FORMAT\n");
        return 2;
    }
    if (cfg.log_file && cw_log_set_file(cfg.log_file) != 0) {
        fprintf(stderr, "chainwatch-ingestor: cannot open LOG_FILE %s: %s\n", cfg.log_file,
                strerror(errno));
        return 2;
    }

    ing.cfg = &cfg;
    ing.n_writers = (int) cfg.kafka_num_worker_threads;
    pthread_rwlockattr_t rwattr;
    pthread_rwlockattr_init(&rwattr);
    /* the rebalance callback must not starve behind writers that keep re-acquiring */
    pthread_rwlockattr_setkind_np(&rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&ing.assign_lock, &rwattr);
    pthread_rwlockattr_destroy(&rwattr);
    for (int p = 0; p < MAX_PARTITIONS; p++) {
        atomic_store(&ing.committed[p], -1);
        atomic_store(&ing.floor[p], -1);
    }
    cw_histogram_init(&ing.stats.batch_duration, cw_latency_buckets, cw_latency_buckets_n);
    atomic_store(&ing.heartbeat_ms, cw_mono_ms());

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (consumer_create(&ing, err, sizeof(err)) != 0 ||
        writers_start(&ing, err, sizeof(err)) != 0 || observe_start(&ing, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 2;
    }
    if (pthread_create(&poll_thread, NULL, consumer_main, &ing) != 0) {
        log_error("cannot start the poll thread");
        return 2;
    }
    log_info(
        "consuming %s as group %s with %d writer threads (batch %ld, flush %ld ms, %ld loading "
        "at once)%s",
        cfg.kafka_topic, cfg.kafka_group_id, ing.n_writers, cfg.batch_size, cfg.batch_flush_ms,
        ing.copy_limited ? cfg.copy_concurrency : (long) ing.n_writers,
        cfg.drain ? ", until drained" : "");

    enum { RUNNING, STOPPING } state = RUNNING;
    int64_t stats_at = cw_mono_ms(), maint_at = 0, stop_deadline = 0;
    int exit_code = 0;
    for (;;) {
        /* running: react to a finished drain at once; stopping: to the last writer finishing */
        sleep_ms_unless(state == RUNNING ? 100 : 10, state == RUNNING ? &ing.drained : NULL);
        atomic_store(&ing.heartbeat_ms, cw_mono_ms());
        if (got_hup) {
            got_hup = 0;
            cw_log_reopen();
            log_info("SIGHUP: log reopened");
        }
        if (cw_mono_ms() - stats_at >= 10000) {
            observe_log_stats(&ing);
            stats_at = cw_mono_ms();
        }
        if (state == RUNNING) {
            if (cfg.maintenance_interval_ms > 0 &&
                cw_mono_ms() - maint_at >= cfg.maintenance_interval_ms) {
                maintenance_tick(&ing, &maint_conn);
                maint_at = cw_mono_ms();
            }
            if (got_term || atomic_load(&ing.drained)) {
                log_info("%s: finishing in-flight batches (up to %ld ms)",
                         got_term ? "shutdown requested" : "all partitions drained",
                         cfg.shutdown_timeout_ms);
                state = STOPPING;
                stop_deadline = cw_mono_ms() + cfg.shutdown_timeout_ms;
                atomic_store(&ing.shutting_down, true);
                atomic_store(&ing.stop_polling, true);
                pthread_join(poll_thread, NULL);
                writers_finish(&ing);
                got_term = 0;
            }
        } else {
            if (got_term) {
                log_warn("second signal: exiting now; uncommitted messages will be read again");
                _exit(1);
            }
            if (writers_idle(&ing) && atomic_load(&ing.threads_active) == 0)
                break;
            if (cw_mono_ms() > stop_deadline) {
                log_error("shutdown timed out after %ld ms; exiting with batches uncommitted "
                          "(they will be read again)",
                          cfg.shutdown_timeout_ms);
                for (int i = 0; i < ing.n_writers; i++)
                    atomic_store(&ing.writers[i].abandon, true);
                exit_code = 1;
                break;
            }
        }
    }
    writers_join(&ing);
    consumer_close(&ing);
    observe_stop();
    observe_log_stats(&ing);
    writers_free(&ing);
    if (maint_conn)
        PQfinish(maint_conn);
    log_info("stopped");
    settings_free(&cfg);
    pthread_rwlock_destroy(&ing.assign_lock);
    return exit_code;
}
