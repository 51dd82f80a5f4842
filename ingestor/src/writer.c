/* ingestor/src/writer.c — the writer threads: lifecycle, batch collection, routing, and their
 * Postgres connection */

/*
 * Design
 * ------
 * Each writer owns one PGconn and one queue fed by the poll thread (a partition always goes to the
 * same writer, so its order is kept); the queues share one budget of KAFKA_MAX_QUEUE_SIZE messages
 * (queue.h). A writer collects up to BATCH_SIZE messages or waits BATCH_FLUSH_MS after the first
 * one, then commits the batch with commit_run (commit.c: the retry loop; txn.c: the transaction).
 * This file gives the retry loop its effects (commit_ops) on the writer's connection and hooks:
 * after each commit the ranges go to hooks.committed (the poll thread commits them to Kafka, for
 * lag tooling only), and a missing partition goes to hooks.maintenance_now.
 *
 * The poll thread owns the input side: it pushes, drops the queued messages of revoked partitions
 * (writers_drop) and, once it has stopped polling, tells the writers to finish (writers_finish):
 * each commits what it holds and what is queued, then exits. Nothing here waits for another
 * thread; main watches writers_done.
 */
#include "writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monoclock.h"
#include "offsets.h"
#include "pgconn.h"
#include "sleep.h"

/*
 * A writer's session is idle inside a transaction only between two statements it sends back to back
 * (milliseconds). A writer frozen there (SIGSTOP, a paused VM, a network partition) would keep
 * commit_batch's row locks on kafka_offsets and partition_state for as long as it stays frozen, and
 * every other member's commit_batch would wait on them: the whole group stops ingesting, also after
 * the rebalance has moved the frozen member's partitions away. Postgres ends such a session after
 * this long, which rolls the batch back (the partition's owner reads it again: nothing is lost) and
 * releases the locks; the writer, once it runs again, sees a lost connection and retries as usual.
 * Short, because the frozen member's other writers may be queued on the same locks and each, once
 * granted, holds them for this long in turn; a session ended by mistake only costs a retry.
 */
#define IDLE_IN_TRANSACTION_TIMEOUT "SET idle_in_transaction_session_timeout = '2s'"

/* writer_of is the writer of partition p: a multiplicative hash rather than p % n, because the
 * group often gives a member every other partition (two members: all even ones), which p % 4 would
 * hand to only two of four writers */
static writer *writer_of(writer_pool *pool, int32_t p)
{
    uint64_t h = ((uint64_t) (uint32_t) p * 2654435761u) >> 16;
    return &pool->w[h % (uint64_t) pool->n];
}

/* ---- commit_ops on the writer's connection ----------------------------------------------------
 */

/* w_connect (re)opens the connection and bounds its idle transactions; 0 on success */
static int w_connect(void *ctx)
{
    writer *w = ctx;
    char err[256];
    if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
        return 0;
    PQfinish(w->conn);
    cw_pg_params params = {w->pool->cfg->database_url, "chainwatch-ingestor", NULL, 0};
    w->conn = cw_pg_connect(&params, err, sizeof(err));
    if (!w->conn) {
        log_warn("writer %d: cannot connect to Postgres: %s", w->id, err);
        return -1;
    }
    PGresult *res = PQexec(w->conn, IDLE_IN_TRANSACTION_TIMEOUT);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_warn("writer %d: cannot bound idle transactions: %s", w->id, PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(w->conn);
        w->conn = NULL;
        return -1;
    }
    PQclear(res);
    atomic_store(&w->pool->stats->db_up, true); /* ready before the first batch, too */
    w->committer.model.loaded = false;          /* a new session reads the model again */
    return 0;
}

static void w_disconnect(void *ctx)
{
    writer *w = ctx;
    PQfinish(w->conn);
    w->conn = NULL;
}

static int w_load_model(void *ctx, loaded_model *m, char *err, size_t errlen)
{
    writer *w = ctx;
    int rc = model_load(w->conn, m, err, errlen);
    if (rc != 0 && PQstatus(w->conn) != CONNECTION_OK)
        atomic_store(&w->pool->stats->db_up, false);
    return rc;
}

static attempt_result w_attempt(void *ctx, batch *b, const loaded_model *m, const range_set *rs,
                                batch_counts *counts, pg_failure *why)
{
    writer *w = ctx;
    txn_env env = {w->conn, w->pool->cfg->kafka_group_id, w->pool->cfg->kafka_topic,
                   &w->pool->slots, w->id};
    return txn_commit(&env, b, m, rs, counts, why);
}

/* w_resync reads the stored next offsets after a CW002 so that stored messages are skipped */
static int w_resync(void *ctx)
{
    writer *w = ctx;
    offset_map stored = {0};
    char err[256];
    if (offsets_read(w->conn, w->pool->cfg->kafka_group_id, w->pool->cfg->kafka_topic, &stored, err,
                     sizeof(err)) != 0) {
        log_warn("writer %d: cannot read the stored offsets: %s", w->id, err);
        offsets_free(&stored);
        return -1;
    }
    for (size_t i = 0; i < stored.n; i++)
        partitions_resync(w->pool->parts, stored.e[i].partition, stored.e[i].next);
    offsets_free(&stored);
    return 0;
}

static void w_maintenance_now(void *ctx)
{
    writer *w = ctx;
    if (w->pool->hooks.maintenance_now)
        w->pool->hooks.maintenance_now(w->pool->hooks.maintenance_ctx);
}

static void w_committed(void *ctx, const range_set *rs)
{
    writer *w = ctx;
    if (w->pool->hooks.committed && rs->n > 0)
        w->pool->hooks.committed(w->pool->hooks.committed_ctx, rs->r, rs->n);
}

static bool w_sleep(void *ctx, long ms)
{
    writer *w = ctx;
    return !sleep_ms_unless(ms, &w->pool->abandon);
}

static const commit_ops writer_commit_ops = {
    w_connect, w_disconnect,      w_load_model, w_attempt,
    w_resync,  w_maintenance_now, w_committed,  w_sleep,
};

/* ---- the thread ---------------------------------------------------------------------------------
 */

/* writer_main collects batches from the queue and commits them until told to finish */
static void *writer_main(void *arg)
{
    writer *w = arg;
    writer_pool *pool = w->pool;
    const ingestor_settings *cfg = pool->cfg;
    batch b;
    ingest_msg **taken = NULL;

    if (batch_init(&b, (size_t) cfg->batch_size) != 0 ||
        !(taken = malloc(sizeof(ingest_msg *) * b.cap))) {
        log_error("writer %d: out of memory", w->id);
        batch_free(&b);
        atomic_fetch_sub(&pool->running, 1);
        return NULL;
    }
    (void) w_connect(w); /* early, so /health/ready reflects Postgres on an idle topic */
    /* woken once a share of the budget has arrived, not only at a full batch: a writer that
     * waited for a whole batch would sit on budget the others need */
    size_t share = (size_t) cfg->kafka_max_queue_size / (2 * (size_t) pool->n);
    if (share == 0)
        share = 1;
    for (;;) {
        /* wait for a full batch, or for whatever came by the flush deadline */
        int64_t deadline = 0;
        for (;;) {
            size_t room = b.cap - b.n;
            int wait = 100;
            if (b.n > 0) {
                int64_t left = deadline - cw_mono_ms();
                if (left <= 0 || room == 0)
                    break;
                wait = (int) left;
            }
            size_t got = queue_pop_many(&w->queue, taken, room, room < share ? room : share, wait);
            for (size_t i = 0; i < got; i++)
                batch_add(&b, taken[i]); /* the batch owns them now */
            if (b.n > 0 && deadline == 0)
                deadline = cw_mono_ms() + cfg->batch_flush_ms;
            if (b.n == 0 && (atomic_load(&pool->finish) || atomic_load(&pool->abandon)))
                goto done;
            if (atomic_load(&pool->finish) && queue_count(&w->queue) == 0)
                break; /* finishing: commit what we have without waiting for the deadline */
        }
        if (b.n == 0)
            continue;
        commit_run(&w->committer, &b);
        batch_clear(&b);
        queue_settled(&w->queue); /* committed, or dropped to be read again */
    }
done:
    free(taken);
    batch_free(&b);
    committer_free(&w->committer);
    PQfinish(w->conn);
    w->conn = NULL;
    atomic_fetch_sub(&pool->running, 1);
    return NULL;
}

/* ---- the pool -----------------------------------------------------------------------------------
 */

int writers_init(writer_pool *pool, const ingestor_settings *cfg, partitions *parts,
                 ingest_stats *stats, const writer_hooks *hooks, char *err, size_t errlen)
{
    memset(pool, 0, sizeof(*pool));
    pool->cfg = cfg;
    pool->parts = parts;
    pool->stats = stats;
    pool->hooks = *hooks;
    pool->n = (int) cfg->kafka_num_worker_threads;
    /* one budget of KAFKA_MAX_QUEUE_SIZE messages for all writers (see queue.h) */
    size_t limit = (size_t) cfg->kafka_max_queue_size;
    queue_budget_init(&pool->budget, limit);
    if (load_slots_init(&pool->slots, cfg->copy_concurrency, pool->n, err, errlen) != 0)
        return -1;
    pool->w = calloc((size_t) pool->n, sizeof(writer));
    if (!pool->w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < pool->n; i++) {
        writer *w = &pool->w[i];
        w->pool = pool;
        w->id = i;
        committer_init(&w->committer, &writer_commit_ops, w, parts, stats,
                       (size_t) cfg->max_message_bytes, i);
        if (queue_init(&w->queue, limit, &pool->budget) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

int writers_start(writer_pool *pool, char *err, size_t errlen)
{
    for (int i = 0; i < pool->n; i++) {
        atomic_fetch_add(&pool->running, 1);
        if (pthread_create(&pool->w[i].thread, NULL, writer_main, &pool->w[i]) != 0) {
            atomic_fetch_sub(&pool->running, 1);
            snprintf(err, errlen, "cannot start writer thread %d", i);
            return -1;
        }
        pool->w[i].started = true;
    }
    return 0;
}

bool writers_push(writer_pool *pool, ingest_msg *m, int wait_ms)
{
    writer *w = writer_of(pool, m->partition);
    return wait_ms > 0 ? queue_push_wait(&w->queue, m, wait_ms) : queue_push(&w->queue, m);
}

bool writers_has_room(writer_pool *pool, int32_t p)
{
    msg_queue *q = &writer_of(pool, p)->queue;
    size_t room = queue_free(q);
    return room * 2 >= q->capacity || room >= 1000;
}

typedef struct drop_ctx {
    bool (*revoked)(int32_t p, void *arg);
    void *arg;
} drop_ctx;

static bool drop_revoked(const ingest_msg *m, void *arg)
{
    const drop_ctx *ctx = arg;
    return ctx->revoked(m->partition, ctx->arg);
}

size_t writers_drop(writer_pool *pool, bool (*revoked)(int32_t p, void *arg), void *arg)
{
    drop_ctx ctx = {revoked, arg};
    size_t dropped = 0;
    for (int i = 0; i < pool->n; i++)
        dropped += queue_purge(&pool->w[i].queue, drop_revoked, &ctx);
    return dropped;
}

void writers_finish(writer_pool *pool)
{
    atomic_store(&pool->finish, true);
    for (int i = 0; i < pool->n; i++)
        queue_wake(&pool->w[i].queue);
}

void writers_abandon(writer_pool *pool)
{
    atomic_store(&pool->abandon, true);
    writers_finish(pool);
}

bool writers_done(writer_pool *pool)
{
    return atomic_load(&pool->running) == 0;
}

void writers_join(writer_pool *pool)
{
    for (int i = 0; i < pool->n; i++)
        if (pool->w[i].started) {
            pthread_join(pool->w[i].thread, NULL);
            pool->w[i].started = false;
        }
}

void writers_free(writer_pool *pool)
{
    if (pool->w) {
        for (int i = 0; i < pool->n; i++) {
            queue_destroy(&pool->w[i].queue);
            committer_free(&pool->w[i].committer);
        }
        free(pool->w);
        pool->w = NULL;
    }
    queue_budget_destroy(&pool->budget);
    load_slots_destroy(&pool->slots);
}

bool writers_idle(writer_pool *pool)
{
    for (int i = 0; i < pool->n; i++)
        if (!queue_idle(&pool->w[i].queue))
            return false;
    return true;
}

size_t writers_queued(writer_pool *pool)
{
    size_t n = 0;
    for (int i = 0; i < pool->n; i++)
        n += queue_count(&pool->w[i].queue);
    return n;
}
