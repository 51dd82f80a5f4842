/* ingestor/src/commit.c — the retry loop of one batch: attempt, classify, back off, split,
 * dead-letter, give up */

/*
 * Design
 * ------
 * A writer commits each batch with commit_run, which retries until the batch is committed or has
 * nothing of ours left. What a failure means comes from retry_classify (retry.c); what is done:
 *
 *   connection lost / 08xxx      drop the connection, back off, same batch again
 *   CW001 (model changed)        reload the active model, re-score, same batch again
 *   CW002 (batch replayed)       re-read the stored offsets, skip what is stored, retry the rest
 *   23514 from routing           no partition for the rows' time: ask the maintenance owner to run
 *                                now and back off (the writers never run maintain() themselves:
 *                                one owner, see maintenance.c)
 *   serialization, deadlock, lock timeout, anything unknown: back off
 *   other data errors            split: one message per transaction. A message the database
 *                                still refuses moves one stage down per refusal (batch.h,
 *                                item_stage): a dead letter, a minimal dead letter, given up with
 *                                only its offset committed. So no message can stall its partition,
 *                                and every offset is accounted for.
 *
 * Backoff is capped exponential with jitter (retry.h), from BACKOFF_MIN_MS to BACKOFF_MAX_MS, and
 * restarts with every batch. A model change or a replay is retried at once the first time (each
 * makes progress: a reload, skipped messages), then with backoff if it comes back; a refusal that
 * moves a message down a stage is retried at once (at most three). Nothing retries in a loop
 * without a pause.
 *
 * While retrying, the writer holds no lock, so a rebalance can revoke partitions; before each
 * attempt the batch is filtered by ownership under the assignment lock (partitions.h), held until
 * the transaction has ended.
 */
#include "commit.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "monoclock.h"

void committer_init(committer *c, const commit_ops *ops, void *ctx, partitions *parts,
                    ingest_stats *stats, size_t max_message_bytes, int id)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->ctx = ctx;
    c->parts = parts;
    c->stats = stats;
    c->max_message_bytes = max_message_bytes;
    c->id = id;
    cw_prng_seed(&c->rng, (uint64_t) cw_mono_ns() ^ ((uint64_t) id << 32));
}

void committer_free(committer *c)
{
    model_free(&c->model);
    range_set_free(&c->ranges);
}

typedef struct skip_ctx {
    partitions *parts;
    size_t skipped;
} skip_ctx;

/* not_ours: the partition was revoked (and perhaps taken again since the message was polled: a
 * stale copy, see partitions.h), or the message is below what Postgres already has */
static bool not_ours(const batch_item *it, void *arg)
{
    skip_ctx *ctx = arg;
    bool drop =
        !partitions_current(ctx->parts, it->msg->partition, it->msg->generation, it->msg->offset);
    if (drop)
        ctx->skipped++;
    return drop;
}

/* model_loaded logs the model a writer now scores with; an unusable one once per model id */
static void model_loaded(committer *c)
{
    ingest_stats *st = c->stats;
    atomic_fetch_add(&st->model_reloads, 1);
    if (c->model.model_id && !model_usable(&c->model)) {
        if (atomic_exchange(&st->unusable_model, c->model.model_id) != c->model.model_id)
            log_error("cannot score with the active model %d: %s; storing rows unscored (NULL "
                      "score) until another model is activated",
                      c->model.model_id, c->model.unusable);
        return;
    }
    atomic_store(&st->unusable_model, 0);
    log_info("writer %d: scoring with model %d (%d severity rules)", c->id, c->model.model_id,
             c->model.n_rules);
}

/* committed_stats records a committed batch: counters, stored offsets, the informational hook */
static void committed_stats(committer *c, const batch *b, const batch_counts *n, int64_t t0)
{
    ingest_stats *st = c->stats;
    atomic_fetch_add(&st->batches, 1);
    atomic_fetch_add(&st->rows, n->rows);
    atomic_fetch_add(&st->messages_dead, n->dead);
    atomic_fetch_add(&st->messages_dropped, n->dropped);
    atomic_fetch_add(&st->messages_ok, b->n - n->dead - n->dropped);
    atomic_fetch_add(
        &st->unscored_rows[c->model.model_id ? UNSCORED_UNUSABLE_MODEL : UNSCORED_NO_MODEL],
        n->unscored);
    for (int s = 0; s < N_SEVERITIES; s++)
        atomic_fetch_add(&st->anomalies[s], n->by_severity[s]);
    for (size_t i = 0; i < b->n; i++) {
        const batch_item *it = &b->items[i];
        if (it->dead && it->dead_reason >= 0 && it->dead_reason < N_DEAD_REASONS)
            atomic_fetch_add(&st->dead_letters[it->dead_reason], 1);
    }
    for (int k = 0; k < c->ranges.n; k++)
        partitions_stored(c->parts, c->ranges.r[k].partition, c->ranges.r[k].next);
    cw_histogram_observe(&st->batch_duration, (double) (cw_mono_ns() - t0) / 1e9);
    c->ops->committed(c->ctx, &c->ranges);
}

/* line1 is the length of the first line of a server message (the rest is CONTEXT and DETAIL),
 * for log lines that stay on one line */
static int line1(const char *msg)
{
    return (int) strcspn(msg, "\n");
}

/* refused moves the single message of b one stage down after the database refused it; returns
 * whether anything of it was still sent (false: the refusal cannot be the message's) */
static bool refused(committer *c, batch *b, const pg_failure *why)
{
    batch_item *it = &b->items[0];
    int32_t p = it->msg->partition;
    long long o = (long long) it->msg->offset;
    item_stage before = it->stage;
    item_stage now = batch_item_refused(it, why->sqlstate, why->message);
    int len = line1(why->message);
    b->scored_with = -1;
    switch (now) {
    case ITEM_DEAD_LETTER:
        log_warn("writer %d: message %d/%lld refused by the database (%.*s): storing it as a dead "
                 "letter",
                 c->id, p, o, len, why->message);
        break;
    case ITEM_MINIMAL:
        log_error("writer %d: message %d/%lld: its dead letter was refused too (%.*s): storing "
                  "one without its payload",
                  c->id, p, o, len, why->message);
        break;
    case ITEM_DROPPED:
        if (before != ITEM_DROPPED)
            log_error("writer %d: message %d/%lld: even its minimal dead letter was refused "
                      "(%.*s); giving it up: its offset is committed without a row (it stays in "
                      "Kafka)",
                      c->id, p, o, len, why->message);
        else
            log_warn("writer %d: message %d/%lld, given up, is still refused (%.*s): the refusal "
                     "is not the message's; retrying with backoff",
                     c->id, p, o, len, why->message);
        break;
    case ITEM_ROWS:
        break;
    }
    return before != ITEM_DROPPED;
}

static void commit_loop(committer *c, batch *b);

/* commit_split commits the items of b one message per transaction (after a data error) */
static void commit_split(committer *c, batch *b)
{
    batch single;
    backoff bo;
    backoff_init(&bo, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    while (batch_init(&single, 1) != 0) {
        /* the messages must not be skipped: later offsets would commit past them */
        log_error("writer %d: out of memory splitting a batch; retrying", c->id);
        if (!c->ops->sleep(c->ctx, backoff_next(&bo, &c->rng)))
            return;
    }
    for (size_t i = 0; i < b->n; i++) {
        single.items[0] = b->items[i];
        single.n = 1;
        single.scored_with = -1;
        memset(&b->items[i], 0, sizeof(batch_item)); /* single owns the message now */
        commit_loop(c, &single);
        batch_clear(&single);
    }
    b->n = 0;
    batch_free(&single);
}

void commit_run(committer *c, batch *b)
{
    commit_loop(c, b);
}

/* commit_loop is commit_run's body: attempt b, classify a failure (retry.c) and act on it (see the
 * design note above), until b is committed, holds nothing of ours, or sleep says to stop. A data
 * error on several messages recurses through commit_split, one message at a time. */
static void commit_loop(committer *c, batch *b)
{
    ingest_stats *st = c->stats;
    backoff bo;
    attempt_result last = ATTEMPT_OK;
    int64_t t0 = cw_mono_ns();
    char error[1024];

    backoff_init(&bo, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    batch_decode(b, c->max_message_bytes);
    for (;;) {
        pg_failure why = {ATTEMPT_OK, "", ""};
        batch_counts counts;
        attempt_result ar;
        bool wait = true;

        if (c->ops->connect(c->ctx) != 0) {
            atomic_store(&st->db_up, false);
            atomic_fetch_add(&st->db_errors, 1);
            goto next;
        }
        if (!c->model.loaded) {
            if (c->ops->load_model(c->ctx, &c->model, error, sizeof(error)) != 0) {
                log_warn("writer %d: %s", c->id, error);
                atomic_fetch_add(&st->db_errors, 1);
                goto next;
            }
            model_loaded(c);
        }

        partitions_writers_enter(c->parts);
        skip_ctx skip = {c->parts, 0};
        batch_remove_if(b, not_ours, &skip);
        atomic_fetch_add(&st->messages_skipped, skip.skipped);
        if (b->n == 0) {
            partitions_writers_leave(c->parts);
            return;
        }
        if ((b->scored_with != c->model.model_id && batch_score(b, &c->model) != 0) ||
            range_set_of(&c->ranges, b) != 0) {
            partitions_writers_leave(c->parts);
            log_error("writer %d: out of memory preparing a batch", c->id);
            goto next;
        }
        ar = c->ops->attempt(c->ctx, b, &c->model, &c->ranges, &counts, &why);
        partitions_writers_leave(c->parts);

        switch (ar) {
        case ATTEMPT_OK:
            atomic_store(&st->db_up, true);
            committed_stats(c, b, &counts, t0);
            return;
        case ATTEMPT_MODEL_CHANGED:
            log_info("writer %d: the active model changed; reloading and re-scoring", c->id);
            c->model.loaded = false;
            wait = last == ATTEMPT_MODEL_CHANGED;
            break;
        case ATTEMPT_REPLAYED:
            log_info("writer %d: batch already stored by another consumer; skipping it", c->id);
            wait = c->ops->resync(c->ctx) != 0 || last == ATTEMPT_REPLAYED;
            break;
        case ATTEMPT_NO_PARTITION:
            if (last != ATTEMPT_NO_PARTITION)
                log_warn("writer %d: no partition for the current time (%.*s); waiting for "
                         "maintenance to create it",
                         c->id, line1(why.message), why.message);
            atomic_fetch_add(&st->db_errors, 1);
            c->ops->maintenance_now(c->ctx);
            break;
        case ATTEMPT_CONNECTION:
            log_warn("writer %d: Postgres unavailable: %.*s", c->id, line1(why.message),
                     why.message);
            atomic_store(&st->db_up, false);
            atomic_fetch_add(&st->db_errors, 1);
            c->ops->disconnect(c->ctx);
            break;
        case ATTEMPT_DATA:
            atomic_fetch_add(&st->db_errors, 1);
            if (b->n > 1) {
                log_warn("writer %d: batch refused (%.*s); retrying message by message", c->id,
                         line1(why.message), why.message);
                commit_split(c, b);
                return;
            }
            wait = !refused(c, b, &why);
            break;
        case ATTEMPT_TRANSIENT:
            log_warn("writer %d: transaction failed, retrying: %.*s", c->id, line1(why.message),
                     why.message);
            atomic_fetch_add(&st->db_errors, 1);
            break;
        }
        last = ar;
    next:
        /* at shutdown with Postgres away this loops until the process gives up on us: the
         * offsets were never stored, so whoever owns the partitions next reads these again */
        if (wait && !c->ops->sleep(c->ctx, backoff_next(&bo, &c->rng)))
            return;
    }
}
