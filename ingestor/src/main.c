/* ingestor/src/main.c — chainwatch-ingestor: settings, threads, signals and the shutdown state
 * machine */

/*
 * Threads and owners: main (signals, the shutdown state machine, the stats line; it never waits on
 * Postgres, Kafka or another thread's progress), the poll thread (poller.c: the Kafka handle),
 * KAFKA_NUM_WORKER_THREADS writers (writer.c: one PGconn each), the maintenance thread
 * (maintenance.c: its own PGconn, maintain() and the store gauges), the fetch nudger (nudge.c),
 * and civetweb's threads for /metrics. Main owns the shared state they are given: the settings, the
 * counters (stats.h) and the partition table (partitions.h).
 *
 * Shutdown is a state machine driven from main's loop (100 ms running, 10 ms stopping):
 *   RUNNING   -- SIGTERM/SIGINT, --drain finished, or a fatal Kafka error -->  STOPPING: the poll
 *                thread stops fetching, tells the writers to finish (they commit what is queued),
 *                waits for them, leaves the group and destroys the consumer; the maintenance
 *                thread cancels what it runs
 *   STOPPING  -- every thread finished --> join them (at once), exit 0 (3 after a fatal error)
 *   STOPPING  -- SHUTDOWN_TIMEOUT_MS passed --> exit 1 at once: uncommitted messages are simply
 *                not stored (their offsets never moved) and are read again by the next owner
 *   STOPPING  -- another SIGTERM/SIGINT --> exit 1 at once, for the same reason
 * Main only watches flags while stopping, so a writer stuck in libpq, a revocation waiting for it
 * or a maintenance statement waiting on a lock can delay the exit by SHUTDOWN_TIMEOUT_MS at most,
 * and a second signal is seen within 10 ms whatever the other threads do. Signal handlers only
 * count signals; main compares the count with the ones it has acted on, so none is lost.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "maintenance.h"
#include "monoclock.h"
#include "observe.h"
#include "partitions.h"
#include "poller.h"
#include "settings.h"
#include "sleep.h"
#include "stats.h"
#include "writer.h"

#define EXIT_TIMEOUT 1 /* shutdown timed out, or a second signal */
#define EXIT_STARTUP 2 /* invalid settings, or a startup failure */
#define EXIT_FATAL   3 /* a fatal Kafka error (logged with librdkafka's reason) */

static volatile sig_atomic_t terms = 0; /* SIGTERM/SIGINT received */
static volatile sig_atomic_t got_hup = 0;

static void on_term(int sig)
{
    (void) sig;
    terms++;
}

static void on_hup(int sig)
{
    (void) sig;
    got_hup = 1;
}

/* the process's parts, owned by main (static: they outlive every thread, even one abandoned) */
static ingestor_settings cfg;
static ingest_stats stats;
static partitions parts;
static writer_pool writers;
static poller poll_thread;
static maintenance maint;

/* all_finished: every thread has ended its work (joining them now returns at once) */
static bool all_finished(void)
{
    return poller_finished(&poll_thread) && writers_done(&writers) && maintenance_finished(&maint);
}

/* start builds the parts and starts the threads; -1 with err */
static int start(const observe_sources *src, char *err, size_t errlen)
{
    if (partitions_init(&parts) != 0) {
        snprintf(err, errlen, "cannot create the partition table");
        return -1;
    }
    writer_hooks hooks = {poller_committed, &poll_thread, maintenance_request, &maint};
    if (writers_init(&writers, &cfg, &parts, &stats, &hooks, err, errlen) != 0 ||
        poller_create(&poll_thread, &cfg, &parts, &writers, &stats, err, errlen) != 0 ||
        maintenance_start(&maint, &cfg, &stats, err, errlen) != 0 ||
        writers_start(&writers, err, errlen) != 0 || observe_start(src, err, errlen) != 0 ||
        poller_start(&poll_thread, err, errlen) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    char err[512];
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
        return EXIT_STARTUP;
    }
    if (cw_log_init("chainwatch-ingestor", cfg.log_level, cfg.log_format) != 0) {
        fprintf(stderr, "chainwatch-ingestor: invalid LOG_LEVEL or LOG_FORMAT\n");
        return EXIT_STARTUP;
    }
    if (cfg.log_file && cw_log_set_file(cfg.log_file) != 0) {
        fprintf(stderr, "chainwatch-ingestor: cannot open LOG_FILE %s: %s\n", cfg.log_file,
                strerror(errno));
        return EXIT_STARTUP;
    }
    ingest_stats_init(&stats);
    atomic_store(&stats.heartbeat_ms, cw_mono_ms());

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    observe_sources src = {&cfg, &stats, &parts, &writers, &poll_thread, &maint};
    if (start(&src, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EXIT_STARTUP; /* threads already started die with the process */
    }
    log_info(
        "consuming %s as group %s with %d writer threads (batch %ld, flush %ld ms, %ld loading "
        "at once)%s",
        cfg.kafka_topic, cfg.kafka_group_id, writers.n, cfg.batch_size, cfg.batch_flush_ms,
        writers.slots.limited ? cfg.copy_concurrency : (long) writers.n,
        cfg.drain ? ", until drained" : "");

    enum { RUNNING, STOPPING } state = RUNNING;
    int64_t stats_at = cw_mono_ms(), stop_deadline = 0;
    sig_atomic_t terms_seen = 0;
    int exit_code = 0;
    for (;;) {
        /* running: react to a finished drain at once; stopping: to the last thread finishing */
        sleep_ms_unless(state == RUNNING ? 100 : 10,
                        state == RUNNING ? &poll_thread.drained : NULL);
        atomic_store(&stats.heartbeat_ms, cw_mono_ms());
        if (got_hup) {
            got_hup = 0;
            cw_log_reopen();
            log_info("SIGHUP: log reopened");
        }
        if (cw_mono_ms() - stats_at >= 10000) {
            observe_log_stats(&src);
            stats_at = cw_mono_ms();
        }
        sig_atomic_t t = terms;
        if (state == RUNNING) {
            bool fatal = poller_failed(&poll_thread, err, sizeof(err));
            bool drained = atomic_load(&poll_thread.drained);
            if (t > terms_seen || drained || fatal) {
                terms_seen = t;
                log_info("%s: finishing in-flight batches (up to %ld ms)",
                         fatal     ? "fatal Kafka error"
                         : drained ? "all partitions drained"
                                   : "shutdown requested",
                         cfg.shutdown_timeout_ms);
                if (fatal)
                    exit_code = EXIT_FATAL;
                state = STOPPING;
                stop_deadline = cw_mono_ms() + cfg.shutdown_timeout_ms;
                atomic_store(&stats.shutting_down, true);
                poller_stop(&poll_thread); /* it finishes the writers once it stopped polling */
                maintenance_stop(&maint);
            }
        } else {
            if (t > terms_seen) {
                log_warn("second signal: exiting now; uncommitted messages will be read again");
                _exit(EXIT_TIMEOUT);
            }
            if (all_finished())
                break;
            if (cw_mono_ms() > stop_deadline) {
                writers_abandon(&writers);
                log_error("shutdown timed out after %ld ms; exiting with batches uncommitted "
                          "(they will be read again)",
                          cfg.shutdown_timeout_ms);
                _exit(EXIT_TIMEOUT); /* threads may be stuck in libpq: nothing is joined or freed */
            }
        }
    }
    /* every thread has finished: the joins return at once */
    poller_join(&poll_thread);
    writers_join(&writers);
    maintenance_join(&maint);
    observe_stop();
    observe_log_stats(&src);
    writers_free(&writers);
    partitions_destroy(&parts);
    log_info("stopped");
    settings_free(&cfg);
    return exit_code;
}
