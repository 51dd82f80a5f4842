/* ingestor/src/consumer.c — what the poll thread decides: assignment, revocation, routing,
 * back-pressure; pure of librdkafka and libpq calls (consumer_ops) */

/*
 * Design
 * ------
 * The poll thread routes each message to its partition's writer, whose queue takes ownership.
 * The queues share one budget (queue.h). When it stays spent for BACKPRESSURE_WAIT_MS (about one
 * batch commit), the message is kept aside ("stashed", at most one per partition) and the
 * partition is paused: librdkafka then drops what it had prefetched for it and, on resume,
 * fetches again from the message after the last one delivered — the stashed one, which is pushed
 * first. Memory is therefore bounded by the budget, one stashed message per partition and
 * librdkafka's own prefetch limit (queued.max.messages.kbytes).
 *
 * Assignment (cooperative-sticky, incremental): each newly assigned partition starts at the
 * next offset stored in chainwatch.kafka_offsets for this group — the only offsets that count —
 * or where auto.offset.reset says when Postgres has none for it, or, if Postgres cannot be
 * asked, at Kafka's committed offset, which is never ahead of Postgres's (writers commit to Kafka
 * only after Postgres): that may re-read messages, and commit_batch's replay check skips them.
 * Revocation (or loss) clears ownership, then waits for the writers' in-flight transactions (the
 * assignment lock, partitions.h), then has the writers drop the revoked partitions' queued
 * messages and drops their stashed ones, so once the callback returns no batch of ours can commit
 * them. When a writer's transaction is in flight the wait is logged first: a writer stuck in
 * Postgres then shows in the log as a revocation that does not end (the main thread is never held
 * up by it; see main.c).
 *
 * A partition paused for back-pressure is resumed when it is revoked, so it cannot come back
 * paused in a later assignment. Assignment itself resumes nothing: a resume bumps the partition's
 * op version, and librdkafka then discards the answer to the offset lookup the assignment just
 * sent ("outdated offset response") and asks again only after 500 ms, which delayed the first
 * fetch of every partition by up to that much.
 *
 * Partition numbers are not bounded here: per-partition state grows with the highest partition
 * assigned (a topic may gain partitions while we run), up to PARTITIONS_LIMIT; a partition beyond
 * that is refused loudly (a fatal error) rather than consumed and dropped.
 */
#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void consumer_init(consumer *c, const consumer_ops *ops, void *ctx, partitions *parts,
                   ingest_stats *stats, bool latest)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->ctx = ctx;
    c->parts = parts;
    c->stats = stats;
    c->latest = latest;
    atomic_init(&c->fatal, false);
}

void consumer_free(consumer *c)
{
    for (int i = 0; i < c->n_stashed; i++) {
        consumer_part *cp = &c->part[c->stashed[i]];
        ingest_msg_free(cp->stash);
        cp->stash = NULL;
    }
    free(c->part);
    free(c->stashed);
    offsets_free(&c->stored);
    c->part = NULL;
    c->stashed = NULL;
    c->n_part = 0;
    c->n_stashed = 0;
}

/* fail records a fatal error (the first one wins) for main to stop the process */
static void fail(consumer *c, const char *why)
{
    if (atomic_load(&c->fatal))
        return;
    snprintf(c->fatal_reason, sizeof(c->fatal_reason), "%s", why);
    log_error("%s", why);
    atomic_store(&c->fatal, true);
}

/* part_of returns p's state, or NULL when p has none yet */
static consumer_part *part_of(consumer *c, int32_t p)
{
    return p >= 0 && (size_t) p < c->n_part ? &c->part[p] : NULL;
}

/* part_create returns p's state, growing the table, and the stash list with it (so that keeping
 * a message aside never needs memory); NULL on ENOMEM or a partition beyond PARTITIONS_LIMIT */
static consumer_part *part_create(consumer *c, int32_t p)
{
    if (p < 0 || p >= PARTITIONS_LIMIT)
        return NULL;
    if ((size_t) p >= c->n_part) {
        size_t n = (size_t) p + 1 > 2 * c->n_part ? (size_t) p + 1 : 2 * c->n_part;
        if (n > PARTITIONS_LIMIT)
            n = PARTITIONS_LIMIT;
        int32_t *stashed = realloc(c->stashed, n * sizeof(*stashed));
        if (!stashed)
            return NULL;
        c->stashed = stashed;
        consumer_part *grown = realloc(c->part, n * sizeof(*grown));
        if (!grown)
            return NULL;
        memset(grown + c->n_part, 0, (n - c->n_part) * sizeof(*grown));
        c->part = grown;
        c->n_part = n;
    }
    return &c->part[p];
}

static void set_paused(consumer *c, int32_t p, consumer_part *cp, bool pause)
{
    c->ops->set_paused(c->ctx, p, pause);
    cp->paused = pause;
    if (pause)
        atomic_fetch_add(&c->stats->paused_total, 1);
}

/* stash_add keeps m (owned from now on) aside for p; the list has room for every partition */
static void stash_add(consumer *c, int32_t p, consumer_part *cp, ingest_msg *m)
{
    c->stashed[c->n_stashed++] = p;
    cp->stash = m;
}

/* stash_remove forgets the i-th stashed partition (its message was pushed or destroyed) */
static void stash_remove(consumer *c, int i)
{
    c->part[c->stashed[i]].stash = NULL;
    c->stashed[i] = c->stashed[--c->n_stashed];
}

void consumer_assign(consumer *c, rd_kafka_topic_partition_list_t *parts, bool cooperative)
{
    bool have_stored = c->ops->stored_offsets(c->ctx, &c->stored) == 0;
    char err[512];

    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int32_t p = tp->partition;
        int64_t start = have_stored ? offsets_lookup(&c->stored, p) : -1;
        if (start >= 0)
            tp->offset = start;
        else if (have_stored) /* Postgres has nothing for it: auto.offset.reset decides */
            tp->offset = c->latest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
        else /* Postgres away: Kafka's committed offset, never ahead of Postgres's */
            tp->offset = RD_KAFKA_OFFSET_INVALID;
        consumer_part *cp = part_create(c, p);
        if (!cp || partitions_take(c->parts, p, start) != 0) {
            if (p < 0 || p >= PARTITIONS_LIMIT)
                snprintf(
                    err, sizeof(err),
                    "cannot consume partition %d of %s: partitions are numbered below %d here; "
                    "stopping",
                    p, tp->topic, PARTITIONS_LIMIT);
            else
                snprintf(err, sizeof(err),
                         "cannot consume partition %d of %s: out of memory; stopping", p,
                         tp->topic);
            fail(c, err); /* the process stops: nothing of it is committed, nothing is lost */
            continue;
        }
        cp->at_eof = false;
    }
    if (c->ops->assign(c->ctx, parts, cooperative, err, sizeof(err)) != 0)
        log_error("%s", err);
    log_info("assigned %d partition(s)%s; %d now", parts->cnt,
             have_stored ? " at their stored offsets" : " (Postgres away: Kafka offsets)",
             partitions_owned_count(c->parts));
}

/* is_revoking: the predicate handed to the writers (called from this thread) */
static bool is_revoking(int32_t p, void *arg)
{
    consumer_part *cp = part_of(arg, p);
    return cp && cp->revoking;
}

void consumer_revoke(consumer *c, rd_kafka_topic_partition_list_t *parts, bool cooperative,
                     bool lost)
{
    size_t dropped = 0;
    char err[512];

    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        consumer_part *cp = part_of(c, p);
        partitions_release(c->parts, p);
        if (!cp)
            continue;
        cp->revoking = true;
        if (cp->paused) /* not to come back paused in a later assignment */
            set_paused(c, p, cp, false);
    }
    /* wait until no writer is inside a transaction that might still contain these */
    if (!partitions_revoke_try(c->parts)) {
        log_info("revoking %d partition(s): waiting for the writers' transactions in flight",
                 parts->cnt);
        partitions_revoke_begin(c->parts);
    }
    dropped += c->ops->drop_queued(c->ctx, is_revoking, c);
    for (int i = 0; i < c->n_stashed;) {
        consumer_part *cp = &c->part[c->stashed[i]];
        if (cp->revoking) {
            ingest_msg_free(cp->stash);
            stash_remove(c, i);
            dropped++;
        } else {
            i++;
        }
    }
    partitions_revoke_end(c->parts);
    for (int i = 0; i < parts->cnt; i++) {
        consumer_part *cp = part_of(c, parts->elems[i].partition);
        if (cp)
            cp->revoking = false;
    }

    if (c->ops->unassign(c->ctx, parts, cooperative, err, sizeof(err)) != 0)
        log_error("%s", err);
    log_info("%s %d partition(s) (%zu queued messages dropped, to be re-read by the new owner); "
             "%d remain",
             lost ? "lost" : "revoked", parts->cnt, dropped, partitions_owned_count(c->parts));
}

void consumer_rebalance(consumer *c, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, bool cooperative, bool lost)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        consumer_assign(c, parts, cooperative);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        consumer_revoke(c, parts, cooperative, lost);
        break;
    default:
        log_error("rebalance error: %s", rd_kafka_err2str(err));
        consumer_revoke(c, parts, cooperative, true);
        break;
    }
}

void consumer_route(consumer *c, ingest_msg *m)
{
    int32_t p = m->partition;
    consumer_part *cp = part_of(c, p);
    if (!cp || !partitions_owned(c->parts, p)) {
        ingest_msg_free(m); /* revoked meanwhile: the new owner reads it */
        return;
    }
    m->generation = partitions_generation(c->parts, p);
    cp->at_eof = false;
    if (cp->stash) {
        /* cannot happen after a pause; keep order by dropping the later message, which will be
         * fetched again after the resume */
        ingest_msg_free(m);
        return;
    }
    /* a full queue usually frees up within one commit: wait that long before pausing, since a
     * pause makes librdkafka drop and later re-fetch everything it prefetched for p */
    if (c->ops->push(c->ctx, m, BACKPRESSURE_WAIT_MS))
        return;
    stash_add(c, p, cp, m);
    set_paused(c, p, cp, true);
}

void consumer_unstash(consumer *c)
{
    bool resumed = false;
    for (int i = 0; i < c->n_stashed;) {
        int32_t p = c->stashed[i];
        consumer_part *cp = &c->part[p];
        /* resume only once half the budget is free (hysteresis) */
        if (c->ops->has_room(c->ctx, p) && c->ops->push(c->ctx, cp->stash, 0)) {
            stash_remove(c, i);
            set_paused(c, p, cp, false);
            resumed = true;
        } else {
            i++;
        }
    }
    if (resumed)
        c->ops->resumed(c->ctx); /* resuming does not wake the fetchers either */
}

void consumer_eof(consumer *c, int32_t partition)
{
    consumer_part *cp = part_of(c, partition);
    if (cp)
        cp->at_eof = true;
}

bool consumer_drained(consumer *c)
{
    if (partitions_owned_count(c->parts) <= 0 || c->n_stashed > 0)
        return false;
    for (size_t p = 0; p < c->n_part; p++)
        if (!c->part[p].at_eof && partitions_owned(c->parts, (int32_t) p))
            return false;
    return c->ops->writers_idle(c->ctx);
}

void consumer_error(consumer *c, int err, const char *reason)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[400], msg[512];
        rd_kafka_resp_err_t orig = c->ops->fatal_error(c->ctx, why, sizeof(why));
        snprintf(msg, sizeof(msg), "Kafka: fatal error %s: %s; stopping", rd_kafka_err2name(orig),
                 why);
        fail(c, msg);
    } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
        log_warn("Kafka: %s (reconnecting)", reason);
    } else {
        log_error("Kafka: %s: %s", rd_kafka_err2name(err), reason);
    }
}

bool consumer_failed(consumer *c, char *why, size_t len)
{
    if (!atomic_load(&c->fatal))
        return false;
    if (why && len)
        snprintf(why, len, "%s", c->fatal_reason);
    return true;
}
