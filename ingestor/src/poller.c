/* ingestor/src/poller.c — the poll thread: librdkafka configuration and callbacks, the poll loop,
 * and the consumer's effects (consumer_ops) on librdkafka, libpq and the writers */

/*
 * Design
 * ------
 * One thread owns the rd_kafka_t consumer: it polls with a 100 ms timeout (so a stop request is
 * seen quickly), serves the rebalance and error callbacks (consumer.c decides what they do) and,
 * at the end, leaves the group and destroys the handle itself. Other threads never touch the
 * handle, with one exception: the writers' committed hook commits offsets to Kafka
 * (rd_kafka_commit is thread-safe), and the writers have all exited before the handle is closed.
 * /metrics reads lag from the watermarks this thread copies into the partition table 5 times a
 * second, not from the handle, so a scrape during shutdown cannot touch a destroyed handle.
 *
 * Stopping (poller_stop, or --drain finished): stop polling, tell the writers to finish (this
 * thread is the only producer of their queues, so nothing is pushed after that), wait until they
 * have exited, close the consumer (the revocation runs through the callback), destroy it, set
 * finished. The waits are this thread's: main only watches the flags, so a writer stuck in Postgres
 * or a revocation waiting for it never holds main up (main exits at SHUTDOWN_TIMEOUT_MS).
 */
#include "poller.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "log.h"
#include "monoclock.h"
#include "offsets.h"
#include "pgconn.h"
#include "sleep.h"

extern char **environ;

#define CLOCK_EVERY      64  /* messages between clock reads in the poll loop */
#define WATERMARKS_EVERY 200 /* ms between copies of the watermarks into the partition table */
#define STOP_CHECK_MS    10

/* ---- consumer_ops on librdkafka, libpq and the writers ----------------------------------------
 */

/* k_change takes (add) or gives up parts: incrementally for the cooperative protocol, else the
 * whole assignment (an eager revocation gives up everything); -1 with librdkafka's reason */
static int k_change(poller *pl, rd_kafka_topic_partition_list_t *parts, bool cooperative, bool add,
                    char *err, size_t errlen)
{
    const char *what = add ? "assign" : "unassign";
    if (cooperative) {
        rd_kafka_error_t *error = add ? rd_kafka_incremental_assign(pl->rk, parts)
                                      : rd_kafka_incremental_unassign(pl->rk, parts);
        if (error) {
            snprintf(err, errlen, "incremental %s failed: %s", what, rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            return -1;
        }
        return 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(pl->rk, add ? parts : NULL);
    if (e) {
        snprintf(err, errlen, "%s failed: %s", what, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static int k_assign(void *ctx, rd_kafka_topic_partition_list_t *parts, bool cooperative, char *err,
                    size_t errlen)
{
    return k_change(ctx, parts, cooperative, true, err, errlen);
}

static int k_unassign(void *ctx, rd_kafka_topic_partition_list_t *parts, bool cooperative,
                      char *err, size_t errlen)
{
    return k_change(ctx, parts, cooperative, false, err, errlen);
}

/* k_set_paused pauses or resumes a single partition of our topic */
static void k_set_paused(void *ctx, int32_t p, bool pause)
{
    poller *pl = ctx;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, pl->cfg->kafka_topic, p);
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(pl->rk, l) : rd_kafka_resume_partitions(pl->rk, l);
    if (err)
        log_warn("%s partition %d: %s", pause ? "pausing" : "resuming", p, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void k_resumed(void *ctx)
{
    poller *pl = ctx;
    nudger_now(&pl->nudger);
}

static rd_kafka_resp_err_t k_fatal_error(void *ctx, char *reason, size_t len)
{
    poller *pl = ctx;
    return rd_kafka_fatal_error(pl->rk, reason, len);
}

/* k_stored_offsets reads chainwatch.kafka_offsets for the group on the poll thread's connection */
static int k_stored_offsets(void *ctx, offset_map *out)
{
    poller *pl = ctx;
    char err[256];
    offsets_clear(out);
    if (pl->offsets_conn && PQstatus(pl->offsets_conn) != CONNECTION_OK) {
        PQfinish(pl->offsets_conn);
        pl->offsets_conn = NULL;
    }
    if (!pl->offsets_conn) {
        cw_pg_params params = {pl->cfg->database_url, "chainwatch-ingestor offsets", NULL, 0};
        pl->offsets_conn = cw_pg_connect(&params, err, sizeof(err));
        if (!pl->offsets_conn) {
            log_warn("cannot read stored offsets: %s", err);
            return -1;
        }
    }
    if (offsets_read(pl->offsets_conn, pl->cfg->kafka_group_id, pl->cfg->kafka_topic, out, err,
                     sizeof(err)) != 0) {
        log_warn("cannot read stored offsets: %s", err);
        return -1;
    }
    atomic_store(&pl->consumer.stats->db_up, true);
    return 0;
}

static bool k_push(void *ctx, ingest_msg *m, int wait_ms)
{
    poller *pl = ctx;
    return writers_push(pl->writers, m, wait_ms);
}

static bool k_has_room(void *ctx, int32_t p)
{
    poller *pl = ctx;
    return writers_has_room(pl->writers, p);
}

static size_t k_drop_queued(void *ctx, bool (*revoked)(int32_t p, void *arg), void *arg)
{
    poller *pl = ctx;
    return writers_drop(pl->writers, revoked, arg);
}

static bool k_writers_idle(void *ctx)
{
    poller *pl = ctx;
    return writers_idle(pl->writers);
}

static const consumer_ops kafka_consumer_ops = {
    k_assign,         k_unassign, k_set_paused, k_resumed,     k_fatal_error,
    k_stored_offsets, k_push,     k_has_room,   k_drop_queued, k_writers_idle,
};

/* ---- librdkafka callbacks (served by the poll thread) ------------------------------------------
 */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    poller *pl = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    consumer_rebalance(&pl->consumer, err, parts, cooperative,
                       err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && rd_kafka_assignment_lost(rk));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void) rk;
    poller *pl = opaque;
    consumer_error(&pl->consumer, err, reason);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void) rk;
    if (level <= 3)
        log_error("librdkafka %s: %s", fac, buf);
    else if (level <= 4)
        log_warn("librdkafka %s: %s", fac, buf);
    else
        log_debug("librdkafka %s: %s", fac, buf);
}

/* ---- creating the consumer ----------------------------------------------------------------------
 */

/* conf_set sets one property; -1 with err naming it on failure */
static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                    size_t errlen)
{
    char kerr[256];
    if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "Kafka property %s: %s", name, kerr);
        return -1;
    }
    return 0;
}

/* pass_through applies every KAFKA_CONFIG_<PROPERTY> variable (FOO_BAR → foo.bar) */
static int pass_through(rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    static const char prefix[] = "KAFKA_CONFIG_";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        const char *name = *e + sizeof(prefix) - 1, *eq = strchr(name, '=');
        char prop[256];
        size_t n = 0;
        if (!eq || eq == name)
            continue;
        for (const char *c = name; c < eq && n + 1 < sizeof(prop); c++)
            prop[n++] = *c == '_' ? '.' : (char) tolower((unsigned char) *c);
        prop[n] = '\0';
        if (conf_set(conf, prop, eq + 1, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int poller_create(poller *pl, const ingestor_settings *s, partitions *parts, writer_pool *writers,
                  ingest_stats *stats, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32], kerr[512];

    memset(pl, 0, sizeof(*pl));
    pl->cfg = s;
    pl->writers = writers;
    consumer_init(&pl->consumer, &kafka_consumer_ops, pl, parts, stats,
                  strcmp(s->kafka_auto_offset_reset, "latest") == 0);
    if (conf_set(conf, "bootstrap.servers", s->kafka_bootstrap_servers, err, errlen) ||
        conf_set(conf, "group.id", s->kafka_group_id, err, errlen) ||
        conf_set(conf, "client.id", "chainwatch-ingestor", err, errlen) ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        conf_set(conf, "enable.partition.eof", "true", err, errlen) ||
        conf_set(conf, "auto.offset.reset", s->kafka_auto_offset_reset, err, errlen) ||
        /* bounded memory whatever the backlog: at most 8 MiB prefetched in total and ~2 MiB per
         * fetch response and broker (librdkafka's defaults allow 64 MiB and 50 MiB). A full
         * prefetch stops the fetchers until nudge.c wakes them, so it only has to carry the
         * writers through a nudge's round trip. Measured with make bench-ingest conditions
         * (256 partitions, 1M messages) with the nudges: 4 MiB 81k msg/s steady, peak RSS 81 MiB;
         * 8 MiB 89k, 83 MiB; 14 MiB 90k, 98 MiB. (Without nudges, a second per full prefetch:
         * 14 MiB gave 53k.) A fetch response stays allocated while any of its messages is
         * prefetched, so with producers that batch hard (a few large message sets per partition)
         * 4 MiB responses took the peak to 101-107 MB; 2 MiB keeps it at 85-92 MB, same speed
         * (1,024 partitions, linger.ms=1000). */
        conf_set(conf, "queued.max.messages.kbytes", "8192", err, errlen) ||
        conf_set(conf, "fetch.max.bytes", "2097152", err, errlen) ||
        conf_set(conf, "receive.message.max.bytes", "5242880", err, errlen))
        goto fail;
    snprintf(num, sizeof(num), "%ld", s->kafka_session_timeout_ms);
    if (conf_set(conf, "session.timeout.ms", num, err, errlen))
        goto fail;
    snprintf(num, sizeof(num), "%ld",
             s->kafka_session_timeout_ms / 3 < 3000 ? s->kafka_session_timeout_ms / 3 : 3000);
    if (conf_set(conf, "heartbeat.interval.ms", num, err, errlen))
        goto fail;
    snprintf(num, sizeof(num), "%ld", s->kafka_max_poll_interval_ms);
    if (conf_set(conf, "max.poll.interval.ms", num, err, errlen))
        goto fail;
    if (pass_through(conf, err, errlen) != 0)
        goto fail;
    rd_kafka_conf_set_opaque(conf, pl);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);

    pl->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr));
    if (!pl->rk) {
        snprintf(err, errlen, "cannot create the Kafka consumer: %s", kerr);
        goto fail;
    }
    /* rd_kafka_new now owns conf */
    rd_kafka_poll_set_consumer(pl->rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, s->kafka_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(pl->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rerr) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", s->kafka_topic, rd_kafka_err2str(rerr));
        rd_kafka_destroy(pl->rk);
        pl->rk = NULL;
        return -1;
    }
    return 0;
fail:
    rd_kafka_conf_destroy(conf);
    return -1;
}

/* ---- the poll thread ----------------------------------------------------------------------------
 */

/* copy_watermarks copies the owned partitions' cached watermarks into the partition table (lag) */
static void copy_watermarks(poller *pl)
{
    partitions *ps = pl->consumer.parts;
    int32_t limit = partitions_limit(ps);
    for (int32_t p = 0; p < limit; p++) {
        int64_t lo, hi;
        if (partitions_owned(ps, p) &&
            rd_kafka_get_watermark_offsets(pl->rk, pl->cfg->kafka_topic, p, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR)
            partitions_set_watermarks(ps, p, lo, hi);
    }
}

/* handle_message routes one polled message or event; consumes m */
static void handle_message(poller *pl, rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        consumer_eof(&pl->consumer, m->partition);
        rd_kafka_message_destroy(m);
    } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        consumer_error(&pl->consumer, m->err, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    } else if (m->err) {
        log_warn("Kafka consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    } else {
        /* copy and release at once: see ingest_msg in queue.h */
        ingest_msg *copy = ingest_msg_copy(m);
        rd_kafka_message_destroy(m);
        if (copy)
            consumer_route(&pl->consumer, copy); /* the consumer owns copy now */
        else
            log_error("out of memory copying a message; it will be read again");
    }
}

/* poll_loop polls until stopped or, with --drain, until everything assigned is stored */
static void poll_loop(poller *pl)
{
    int64_t checked_at = 0, trimmed_at = cw_mono_ms(), marks_at = 0;
    unsigned since_clock = 0;
    while (!atomic_load(&pl->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(pl->rk, 100);
        nudger_check(&pl->nudger, m && !m->err ? m->len : 0);
        if (m)
            handle_message(pl, m);
        consumer_unstash(&pl->consumer);
        /* the clock is read every CLOCK_EVERY messages and on every empty poll: the periodic
         * work below needs millisecond precision at most, and a read costs ~0.2 us on this VM */
        if (m && ++since_clock < CLOCK_EVERY)
            continue;
        since_clock = 0;
        int64_t now = cw_mono_ms();
#ifdef __GLIBC__
        /* messages are allocated here and freed by the writers, batches grow and shrink: the
         * heaps fill with free pages that glibc keeps; hand them back once a second, so resident
         * memory follows what is in use rather than its high-water mark plus fragmentation */
        if (now - trimmed_at >= 1000) {
            malloc_trim(0);
            trimmed_at = now;
        }
#endif
        if (now - marks_at >= WATERMARKS_EVERY) {
            copy_watermarks(pl);
            marks_at = now;
        }
        /* the drain check walks every partition: a few times a second is enough. It is exact:
         * EOF follows a partition's last message, which was routed before it, and a writer's
         * popped messages count until they are committed (queue_idle) */
        if (pl->cfg->drain && (!m || now - checked_at >= 50)) {
            checked_at = now;
            if (consumer_drained(&pl->consumer)) {
                atomic_store(&pl->drained, true);
                break;
            }
        }
    }
}

/* poller_main polls, then finishes the writers, waits for them, and closes the consumer */
static void *poller_main(void *arg)
{
    poller *pl = arg;

    poll_loop(pl);
    nudger_stop(&pl->nudger);
    atomic_store(&pl->running, false);

    /* this thread alone pushes to the writers' queues: from here on nothing is pushed */
    writers_finish(pl->writers);
    while (!writers_done(pl->writers))
        sleep_ms_unless(STOP_CHECK_MS, NULL);

    /* the writers have exited, so no commit can use the handle any more */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(pl->rk); /* revokes through the callback */
    if (err)
        log_warn("closing the consumer: %s", rd_kafka_err2str(err));
    consumer_free(&pl->consumer);
    rd_kafka_destroy(pl->rk);
    pl->rk = NULL;
    PQfinish(pl->offsets_conn);
    pl->offsets_conn = NULL;
    atomic_store(&pl->finished, true);
    return NULL;
}

int poller_start(poller *pl, char *err, size_t errlen)
{
    /* before the thread, so that /metrics never reads the nudger while it is set up */
    if (nudger_start(&pl->nudger, pl->rk, pl->cfg->kafka_topic) != 0)
        log_warn("cannot start the fetch nudger: a full prefetch will stall fetching for a second");
    atomic_store(&pl->running, true);
    if (pthread_create(&pl->thread, NULL, poller_main, pl) != 0) {
        atomic_store(&pl->running, false);
        snprintf(err, errlen, "cannot start the poll thread");
        return -1;
    }
    pl->started = true;
    return 0;
}

void poller_stop(poller *pl)
{
    atomic_store(&pl->stop, true);
}

bool poller_finished(poller *pl)
{
    return !pl->started || atomic_load(&pl->finished);
}

void poller_join(poller *pl)
{
    if (pl->started)
        pthread_join(pl->thread, NULL);
    pl->started = false;
}

bool poller_failed(poller *pl, char *why, size_t len)
{
    return consumer_failed(&pl->consumer, why, len);
}

void poller_committed(void *ctx, const offset_range *ranges, int n)
{
    poller *pl = ctx;
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(n);
    for (int k = 0; k < n; k++)
        rd_kafka_topic_partition_list_add(offs, pl->cfg->kafka_topic, ranges[k].partition)->offset =
            ranges[k].next;
    /* informational only: Postgres holds the offsets that count */
    rd_kafka_resp_err_t err = rd_kafka_commit(pl->rk, offs, 1);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_debug("Kafka offset commit: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(offs);
}

uint64_t poller_nudges(poller *pl)
{
    return atomic_load(&pl->nudger.nudges);
}

void poller_free(poller *pl)
{
    if (pl->started)
        return; /* the thread owns everything */
    consumer_free(&pl->consumer);
    if (pl->rk)
        rd_kafka_destroy(pl->rk);
    pl->rk = NULL;
    PQfinish(pl->offsets_conn);
    pl->offsets_conn = NULL;
}
