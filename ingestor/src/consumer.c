/* ingestor/src/consumer.c — the poll thread: consumer-group membership, routing, back-pressure,
 * rebalances */

/*
 * Design
 * ------
 * One thread owns the rd_kafka_t consumer. It polls with a 100 ms timeout (so stop flags are
 * seen quickly) and routes each message to its partition's writer (writer_of), whose queue takes
 * ownership. The queues share one budget (queue.h). When it stays spent for BACKPRESSURE_WAIT_MS
 * (about one batch commit), the message is kept aside ("stashed", at most one per partition) and
 * the partition is paused: librdkafka then drops what it had prefetched for it and, on resume,
 * fetches again from the message after the last one delivered — the stashed one, which is pushed
 * first. Memory is therefore bounded by the budget, one stashed message per partition and
 * librdkafka's own prefetch limit (queued.max.messages.kbytes).
 *
 * Assignment (cooperative-sticky, incremental): each newly assigned partition starts at the
 * next offset stored in chainwatch.kafka_offsets for this group — the only offsets that count —
 * or where auto.offset.reset says when Postgres has none for it, or, if Postgres cannot be
 * asked, at Kafka's committed offset, which is never ahead of
 * Postgres's (writers commit to Kafka only after Postgres): that may re-read messages, and
 * commit_batch's replay check skips them. Revocation (or loss) clears ownership, then waits for
 * the writers' in-flight transactions (assign_lock), then purges the revoked partitions'
 * queued messages, so once the callback returns no batch of ours can commit them.
 *
 * A partition paused for back-pressure is resumed when it is revoked, so it cannot come back
 * paused in a later assignment. Assignment itself resumes nothing: a resume bumps the partition's
 * op version, and librdkafka then discards the answer to the offset lookup the assignment just
 * sent ("outdated offset response") and asks again only after 500 ms, which delayed the first
 * fetch of every partition by up to that much.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <libpq-fe.h>

#include "ingestor.h"
#include "log.h"
#include "writer.h"

extern char **environ;

#define BACKPRESSURE_WAIT_MS 250
#define CLOCK_EVERY          64 /* messages between clock reads in the poll loop */

/* per-partition state private to the poll thread */
static ingest_msg *stash[MAX_PARTITIONS];
static bool paused[MAX_PARTITIONS];
static bool at_eof[MAX_PARTITIONS];
static int n_stashed; /* partitions with a stashed message */
static PGconn *offsets_conn;

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

/* fetch_stored_offsets reads chainwatch.kafka_offsets for the group; -1 if Postgres is away */
static int fetch_stored_offsets(ingestor *ing, int64_t *stored)
{
    for (int i = 0; i < MAX_PARTITIONS; i++)
        stored[i] = -1;
    if (!offsets_conn || PQstatus(offsets_conn) != CONNECTION_OK) {
        if (offsets_conn)
            PQfinish(offsets_conn);
        offsets_conn = pg_connect(ing->cfg->database_url, "chainwatch-ingestor offsets");
        if (PQstatus(offsets_conn) != CONNECTION_OK) {
            log_warn("cannot read stored offsets: %s", PQerrorMessage(offsets_conn));
            PQfinish(offsets_conn);
            offsets_conn = NULL;
            return -1;
        }
    }
    const char *params[2] = {ing->cfg->kafka_group_id, ing->cfg->kafka_topic};
    PGresult *res = PQexecParams(offsets_conn,
                                 "SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                 "WHERE consumer_group = $1 AND topic = $2",
                                 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("cannot read stored offsets: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int p = atoi(PQgetvalue(res, i, 0));
        if (p >= 0 && p < MAX_PARTITIONS)
            stored[p] = atoll(PQgetvalue(res, i, 1));
    }
    PQclear(res);
    atomic_store(&ing->db_up, true);
    return 0;
}

typedef struct purge_ctx {
    const bool *revoked;
} purge_ctx;

static bool in_revoked(const ingest_msg *m, void *arg)
{
    const purge_ctx *ctx = arg;
    return m->partition >= 0 && m->partition < MAX_PARTITIONS && ctx->revoked[m->partition];
}

static void set_paused(ingestor *ing, int p, bool pause);

/* on_assign seeks new partitions to their stored offsets and takes ownership of them */
static void on_assign(ingestor *ing, rd_kafka_topic_partition_list_t *parts, bool cooperative)
{
    static int64_t stored[MAX_PARTITIONS];
    bool have_stored = fetch_stored_offsets(ing, stored) == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int p = tp->partition;
        if (p < 0 || p >= MAX_PARTITIONS) {
            log_error("partition %d is beyond the supported %d", p, MAX_PARTITIONS);
            continue;
        }
        int64_t start = have_stored ? stored[p] : -1;
        if (start >= 0)
            tp->offset = start;
        else if (have_stored) /* Postgres has nothing for it: auto.offset.reset decides */
            tp->offset = strcmp(ing->cfg->kafka_auto_offset_reset, "latest") == 0
                             ? RD_KAFKA_OFFSET_END
                             : RD_KAFKA_OFFSET_BEGINNING;
        else /* Postgres away: Kafka's committed offset, never ahead of Postgres's */
            tp->offset = RD_KAFKA_OFFSET_INVALID;
        atomic_store(&ing->floor[p], start);
        atomic_store(&ing->committed[p], start);
        at_eof[p] = false;
        atomic_store(&ing->owned[p], true);
    }
    if (cooperative)
        error = rd_kafka_incremental_assign(ing->rk, parts);
    else
        err = rd_kafka_assign(ing->rk, parts);
    if (error) {
        log_error("incremental assign failed: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (err) {
        log_error("assign failed: %s", rd_kafka_err2str(err));
    }
    atomic_fetch_add(&ing->assigned, parts->cnt);
    log_info("assigned %d partition(s)%s; %d now", parts->cnt,
             have_stored ? " at their stored offsets" : " (Postgres away: Kafka offsets)",
             atomic_load(&ing->assigned));
}

/* on_revoke gives partitions up: nothing of theirs is committed by us after this returns */
static void on_revoke(ingestor *ing, rd_kafka_topic_partition_list_t *parts, bool cooperative,
                      bool lost)
{
    static bool revoked[MAX_PARTITIONS];
    purge_ctx ctx = {revoked};
    size_t purged = 0;

    memset(revoked, 0, sizeof(revoked));
    for (int i = 0; i < parts->cnt; i++) {
        int p = parts->elems[i].partition;
        if (p >= 0 && p < MAX_PARTITIONS) {
            revoked[p] = true;
            atomic_store(&ing->owned[p], false);
            if (paused[p]) /* not to come back paused in a later assignment */
                set_paused(ing, p, false);
        }
    }
    /* wait until no writer is inside a transaction that might still contain these */
    pthread_rwlock_wrlock(&ing->assign_lock);
    for (int i = 0; i < ing->n_writers; i++)
        purged += queue_purge(&ing->writers[i].queue, in_revoked, &ctx);
    for (int p = 0; p < MAX_PARTITIONS; p++) {
        if (revoked[p] && stash[p]) {
            ingest_msg_free(stash[p]);
            stash[p] = NULL;
            n_stashed--;
            purged++;
        }
    }
    pthread_rwlock_unlock(&ing->assign_lock);

    if (cooperative) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(ing->rk, parts);
        if (error) {
            log_error("incremental unassign failed: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_assign(ing->rk, NULL);
    }
    atomic_fetch_sub(&ing->assigned, parts->cnt);
    log_info("%s %d partition(s) (%zu queued messages dropped, to be re-read by the new owner); "
             "%d remain",
             lost ? "lost" : "revoked", parts->cnt, purged, atomic_load(&ing->assigned));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ingestor *ing = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        on_assign(ing, parts, cooperative);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        on_revoke(ing, parts, cooperative, rd_kafka_assignment_lost(rk));
        break;
    default:
        log_error("rebalance error: %s", rd_kafka_err2str(err));
        on_revoke(ing, parts, cooperative, true);
        break;
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void) rk;
    (void) opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT)
        log_warn("Kafka: %s (reconnecting)", reason);
    else
        log_error("Kafka: %s: %s", rd_kafka_err2name(err), reason);
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

int consumer_create(ingestor *ing, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32], kerr[512];
    const ingestor_settings *s = ing->cfg;

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
    rd_kafka_conf_set_opaque(conf, ing);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);

    ing->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr));
    if (!ing->rk) {
        snprintf(err, errlen, "cannot create the Kafka consumer: %s", kerr);
        goto fail;
    }
    /* rd_kafka_new now owns conf */
    rd_kafka_poll_set_consumer(ing->rk);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, s->kafka_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(ing->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rerr) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", s->kafka_topic, rd_kafka_err2str(rerr));
        rd_kafka_destroy(ing->rk);
        ing->rk = NULL;
        return -1;
    }
    return 0;
fail:
    rd_kafka_conf_destroy(conf);
    return -1;
}

/* pause_one / resume_one pause or resume a single partition of our topic */
static void set_paused(ingestor *ing, int p, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, ing->cfg->kafka_topic, p);
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(ing->rk, l) : rd_kafka_resume_partitions(ing->rk, l);
    if (err)
        log_warn("%s partition %d: %s", pause ? "pausing" : "resuming", p, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
    paused[p] = pause;
    if (pause)
        atomic_fetch_add(&ing->stats.paused_total, 1);
}

/* writer_of is the writer of partition p: a multiplicative hash rather than p % n, because the
 * group often gives a member every other partition (two members: all even ones), which p % 4 would
 * hand to only two of four writers */
static writer *writer_of(ingestor *ing, int p)
{
    uint64_t h = ((uint64_t) (uint32_t) p * 2654435761u) >> 16;
    return &ing->writers[h % (uint64_t) ing->n_writers];
}

/* unstash pushes kept-aside messages whose queue has room again and resumes their partitions */
static void unstash(ingestor *ing)
{
    bool resumed = false;
    if (n_stashed == 0)
        return;
    for (int p = 0; p < MAX_PARTITIONS; p++) {
        if (!stash[p])
            continue;
        writer *w = writer_of(ing, p);
        if (queue_free(&w->queue) * 2 < w->queue.capacity && queue_free(&w->queue) < 1000)
            continue; /* resume only once half the budget is free (hysteresis) */
        if (queue_push(&w->queue, stash[p])) {
            stash[p] = NULL;
            n_stashed--;
            set_paused(ing, p, false);
            resumed = true;
        }
    }
    if (resumed)
        nudger_now(&ing->nudger); /* resuming does not wake the fetchers either */
}

/* route hands m to its writer, or stashes it and pauses its partition when the queue is full */
static void route(ingestor *ing, ingest_msg *m)
{
    int p = m->partition;
    if (p < 0 || p >= MAX_PARTITIONS || !atomic_load(&ing->owned[p])) {
        ingest_msg_free(m);
        return;
    }
    at_eof[p] = false;
    writer *w = writer_of(ing, p);
    /* a full queue usually frees up within one commit: wait that long before pausing, since a
     * pause makes librdkafka drop and later re-fetch everything it prefetched for p */
    if (stash[p] || !queue_push_wait(&w->queue, m, BACKPRESSURE_WAIT_MS)) {
        if (stash[p]) {
            /* cannot happen after a pause; keep order by dropping the later message, which
             * will be fetched again after the resume */
            ingest_msg_free(m);
            return;
        }
        stash[p] = m;
        n_stashed++;
        set_paused(ing, p, true);
    }
}

/* all_drained: --drain is done when every owned partition is at its end and nothing is pending */
static bool all_drained(ingestor *ing)
{
    if (atomic_load(&ing->assigned) <= 0)
        return false;
    for (int p = 0; p < MAX_PARTITIONS; p++)
        if ((atomic_load(&ing->owned[p]) && !at_eof[p]) || stash[p])
            return false;
    return writers_idle(ing);
}

void *consumer_main(void *arg)
{
    ingestor *ing = arg;

    atomic_fetch_add(&ing->threads_active, 1);
    atomic_store(&ing->consumer_running, true);
    int64_t checked_at = 0, trimmed_at = cw_mono_ms();
    unsigned since_clock = 0;
    if (nudger_start(&ing->nudger, ing->rk, ing->cfg->kafka_topic) != 0)
        log_warn("cannot start the fetch nudger: a full prefetch will stall fetching for a second");
    while (!atomic_load(&ing->stop_polling)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ing->rk, 100);
        nudger_check(&ing->nudger, m && !m->err ? m->len : 0);
        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->partition >= 0 && m->partition < MAX_PARTITIONS)
                    at_eof[m->partition] = true;
                rd_kafka_message_destroy(m);
            } else if (m->err) {
                log_warn("Kafka consumer: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
            } else {
                /* copy and release at once: see ingest_msg in queue.h */
                ingest_msg *copy = ingest_msg_copy(m);
                rd_kafka_message_destroy(m);
                if (copy)
                    route(ing, copy);
                else
                    log_error("out of memory copying a message; it will be read again");
            }
        }
        unstash(ing);
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
        /* the drain check walks every partition: a few times a second is enough. It is exact:
         * EOF follows a partition's last message, which was routed before it, and a writer's
         * popped messages count until they are committed (queue_idle) */
        if (ing->cfg->drain && (!m || now - checked_at >= 50)) {
            checked_at = now;
            if (all_drained(ing)) {
                atomic_store(&ing->drained, true);
                break;
            }
        }
    }
    nudger_stop(&ing->nudger);
    atomic_store(&ing->consumer_running, false);
    atomic_fetch_sub(&ing->threads_active, 1);
    return NULL;
}

/* consumer_close leaves the group (revoking through the callback) and frees the consumer */
void consumer_close(ingestor *ing)
{
    if (!ing->rk)
        return;
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(ing->rk);
    if (err)
        log_warn("closing the consumer: %s", rd_kafka_err2str(err));
    for (int p = 0; p < MAX_PARTITIONS; p++) {
        if (stash[p]) {
            ingest_msg_free(stash[p]);
            stash[p] = NULL;
        }
    }
    n_stashed = 0;
    rd_kafka_destroy(ing->rk);
    ing->rk = NULL;
    if (offsets_conn) {
        PQfinish(offsets_conn);
        offsets_conn = NULL;
    }
}
