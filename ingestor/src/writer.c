/* ingestor/src/writer.c — writer threads: own a PGconn, commit batches exactly once with COPY +
 * commit_batch */

/*
 * Design
 * ------
 * Each writer owns one PGconn and one queue fed by the poll thread (a partition always goes to the
 * same writer, so its order is kept); the queues share one budget of KAFKA_MAX_QUEUE_SIZE messages.
 * It collects up to BATCH_SIZE messages or waits BATCH_FLUSH_MS after the first one, then commits
 * the batch in ONE database transaction:
 *
 *   BEGIN; COPY transactions; COPY anomalies; COPY dead_letters;
 *   SELECT * FROM chainwatch.commit_batch(group, topic, partitions, first, next, model); COMMIT
 *
 * commit_batch stores each partition's next offset in chainwatch.kafka_offsets under a row lock
 * and refuses a batch that starts before the stored offset (SQLSTATE CW002), so whatever
 * crashes, restarts or rebalances happen, a message is inserted at most once, and since
 * offsets only move with the rows, at least once. Only after COMMIT are the offsets committed
 * to Kafka too (asynchronously, for lag tooling; correctness never depends on them).
 *
 * Failures, by SQLSTATE class:
 *   connection lost / 08xxx      reconnect with capped exponential backoff, same batch again
 *   CW001 (model changed)        reload the active model, re-score, same batch again
 *   CW002 (batch replayed)       read the stored offsets, skip what is stored, retry the rest
 *   23514 (no partition)         run chainwatch.maintain() to create partitions, retry
 *   40001/40P01/55P03            retry
 *   other data errors            split: one message per transaction; a message the database
 *                                still refuses becomes a dead letter (reason db_rejected)
 * While retrying, the writer holds no lock, so a rebalance can revoke partitions; before each
 * attempt the batch is filtered by ownership (see ingestor.h).
 *
 * Load slots. At most COPY_CONCURRENCY writers (default 2) stream their transactions COPY at once;
 * the others wait before BEGIN, holding nothing in Postgres, and meanwhile their threads decode
 * and score. Every row inserted into transactions' hash index locks the index's metapage
 * exclusively, so four concurrent loads spend about half their time queued on it (bench-ingest's
 * ceiling (c)). On two cores, 15 alternating pairs of 1M-message drains took 7.6 s with two slots
 * against 8.2 s with four (steady state, means; two slots faster in 13 pairs), and one slot was
 * slower than four. A slot is released as soon as the transactions COPY ends: commit_batch and
 * COMMIT (the WAL flush) run outside it.
 */
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

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

static const char COPY_TX[] =
    "COPY chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, "
    "block_number, tx_time, score, model_id, kafka_topic, kafka_partition, kafka_offset) "
    "FROM STDIN WITH (FORMAT binary)";
static const char COPY_ANOMALIES[] =
    "COPY chainwatch.anomalies (hash, from_address, to_address, value, gas, gas_price, "
    "block_number, tx_time, score, model_id, severity, kafka_topic, kafka_partition, "
    "kafka_offset) FROM STDIN";
static const char COPY_DEAD[] =
    "COPY chainwatch.dead_letters (payload, error, reason, kafka_topic, kafka_partition, "
    "kafka_offset) FROM STDIN";

typedef enum attempt_result {
    ATTEMPT_OK,
    ATTEMPT_CONNECTION,
    ATTEMPT_MODEL_CHANGED,
    ATTEMPT_REPLAYED,
    ATTEMPT_NO_PARTITION,
    ATTEMPT_TRANSIENT,
    ATTEMPT_DATA,
} attempt_result;

/* writer_connect (re)opens the connection and bounds its idle transactions; 0 on success. */
static int writer_connect(writer *w)
{
    if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
        return 0;
    if (w->conn)
        PQfinish(w->conn);
    w->conn = pg_connect(w->ing->cfg->database_url, "chainwatch-ingestor");
    if (PQstatus(w->conn) != CONNECTION_OK) {
        log_warn("writer %d: cannot connect to Postgres: %s", w->id, PQerrorMessage(w->conn));
        PQfinish(w->conn);
        w->conn = NULL;
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
    atomic_store(&w->ing->db_up, true); /* ready before the first batch, too */
    w->model.loaded = false;
    return 0;
}

/* classify maps a failed result to what to do about it */
static attempt_result classify(PGconn *conn, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(conn) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0)
        return ATTEMPT_CONNECTION;
    if (strcmp(state, "CW001") == 0)
        return ATTEMPT_MODEL_CHANGED;
    if (strcmp(state, "CW002") == 0)
        return ATTEMPT_REPLAYED;
    if (strcmp(state, "23514") == 0 && strstr(PQresultErrorMessage(res), "no partition"))
        return ATTEMPT_NO_PARTITION;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 ||
        strcmp(state, "53300") == 0)
        return ATTEMPT_TRANSIENT;
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
        return ATTEMPT_DATA;
    return ATTEMPT_TRANSIENT;
}

/* COPY data goes out in pieces of this size: libpq grows a connection's output buffer to the
 * largest piece it is given and never shrinks it, so one piece per batch would pin a batch-sized
 * buffer (megabytes) per writer */
#define COPY_CHUNK 65536

/* send_copy_data sends len bytes of COPY data in COPY_CHUNK pieces; false if libpq refused one */
static bool send_copy_data(PGconn *conn, const char *data, size_t len)
{
    for (size_t off = 0; off < len; off += COPY_CHUNK) {
        size_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;
        if (PQputCopyData(conn, data + off, (int) n) != 1)
            return false;
    }
    return true;
}

/* stream_flush is the copy_sink of the transactions COPY: send what was rendered, then reuse tx */
static int stream_flush(void *ctx, cw_strbuf *tx)
{
    bool sent = !tx->oom && send_copy_data(ctx, tx->data, tx->len);
    cw_strbuf_reset(tx);
    return sent ? 0 : -1;
}

/* finish_copy ends the COPY in progress (aborting it unless sent) and returns NULL on success or
 * the failed result (caller clears). */
static PGresult *finish_copy(PGconn *conn, bool sent)
{
    PGresult *res;
    PQputCopyEnd(conn, sent ? NULL : "client failed to send data");
    res = PQgetResult(conn);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
        return NULL;
    }
    PGresult *extra;
    while ((extra = PQgetResult(conn)) != NULL)
        PQclear(extra);
    return res;
}

/* start_copy issues a COPY ... FROM STDIN; NULL once the server waits for data, else the failed
 * result (caller clears). */
static PGresult *start_copy(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        return res;
    PQclear(res);
    return NULL;
}

/* run_copy streams one COPY of rendered data; NULL on success or the failed result. */
static PGresult *run_copy(PGconn *conn, const char *sql, const cw_strbuf *data)
{
    PGresult *res = start_copy(conn, sql);
    return res ? res : finish_copy(conn, send_copy_data(conn, data->data, data->len));
}

/*
 * batch_ranges fills w->ranges with each partition's [first, next) offset range in the batch, in
 * order of first appearance; w->slot (indexed by partition, -1 when unused) makes it linear.
 */
static void batch_ranges(writer *w, const batch *b)
{
    w->n_ranges = 0;
    for (size_t i = 0; i < b->n; i++) {
        const ingest_msg *m = b->items[i].msg;
        int32_t p = m->partition;
        if (p < 0 || p >= MAX_PARTITIONS)
            continue;
        int32_t k = w->slot[p];
        if (k < 0) {
            k = w->n_ranges++;
            w->slot[p] = k;
            w->ranges[k].partition = p;
            w->ranges[k].first = m->offset;
            w->ranges[k].next = m->offset + 1;
        } else {
            if (m->offset < w->ranges[k].first)
                w->ranges[k].first = m->offset;
            if (m->offset + 1 > w->ranges[k].next)
                w->ranges[k].next = m->offset + 1;
        }
    }
    for (int k = 0; k < w->n_ranges; k++)
        w->slot[w->ranges[k].partition] = -1;
}

/* offsets_literals renders w->ranges as the SQL array literals commit_batch takes */
static void offsets_literals(const writer *w, cw_strbuf *parts, cw_strbuf *firsts, cw_strbuf *nexts)
{
    cw_strbuf_putc(parts, '{');
    cw_strbuf_putc(firsts, '{');
    cw_strbuf_putc(nexts, '{');
    for (int k = 0; k < w->n_ranges; k++) {
        if (k) {
            cw_strbuf_putc(parts, ',');
            cw_strbuf_putc(firsts, ',');
            cw_strbuf_putc(nexts, ',');
        }
        cw_strbuf_put_int(parts, w->ranges[k].partition);
        cw_strbuf_put_int(firsts, w->ranges[k].first);
        cw_strbuf_put_int(nexts, w->ranges[k].next);
    }
    cw_strbuf_putc(parts, '}');
    cw_strbuf_putc(firsts, '}');
    cw_strbuf_putc(nexts, '}');
}

/* copy_slot_take waits for a load slot (see "Load slots" above); *held records that it has one */
static void copy_slot_take(ingestor *ing, bool *held)
{
    if (!ing->copy_limited)
        return;
    while (sem_wait(&ing->copy_slots) != 0)
        if (errno != EINTR) {
            log_error("waiting for a load slot: %s; loading without one", strerror(errno));
            return;
        }
    *held = true;
}

/* copy_slot_give releases the load slot, if *held */
static void copy_slot_give(ingestor *ing, bool *held)
{
    if (*held)
        sem_post(&ing->copy_slots);
    *held = false;
}

/*
 * attempt_commit runs the batch transaction once. On ATTEMPT_DATA, *data_error receives the
 * database's message. The transaction is always ended (committed or rolled back).
 */
static attempt_result attempt_commit(writer *w, batch *b, batch_counts *counts, char *data_error,
                                     size_t errlen)
{
    ingestor *ing = w->ing;
    PGconn *conn = w->conn;
    PGresult *res;
    attempt_result ar = ATTEMPT_OK;
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT;
    cw_strbuf parts = CW_STRBUF_INIT, firsts = CW_STRBUF_INIT, nexts = CW_STRBUF_INIT;
    char model_param[16];
    bool slot = false;

    int64_t t_start = cw_mono_ms(), t_copied = 0;
    batch_ranges(w, b);
    offsets_literals(w, &parts, &firsts, &nexts);
    if (parts.oom || firsts.oom || nexts.oom) {
        ar = ATTEMPT_TRANSIENT;
        snprintf(data_error, errlen, "out of memory");
        goto out;
    }

    copy_slot_take(ing, &slot);
    res = PQexec(conn, "BEGIN");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ar = classify(conn, res);
        snprintf(data_error, errlen, "%s", PQresultErrorMessage(res));
        PQclear(res);
        goto out;
    }
    PQclear(res);

    /* lock order shared with commit_batch and maintain(): transactions, anomalies, dead_letters.
     * The transactions data (binary COPY) is sent while it is rendered (Postgres reads one piece
     * while the next is built, and no batch-sized buffer exists); anomalies and dead letters, a
     * few rows of COPY text, are rendered on the way and sent after it. A batch of dead letters
     * only sends an empty COPY of transactions. */
    res = start_copy(conn, COPY_TX);
    if (!res) {
        copy_sink sink = {COPY_CHUNK, stream_flush, conn};
        bool sent = batch_copy_stream(b, &w->model, ing->cfg->kafka_topic, &tx, &an, &dl, counts,
                                      &sink) == 0 &&
                    stream_flush(conn, &tx) == 0;
        res = finish_copy(conn, sent);
        if (tx.oom || an.oom || dl.oom) {
            /* not the data's fault: roll back and retry the whole batch later */
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            ar = ATTEMPT_TRANSIENT;
            snprintf(data_error, errlen, "out of memory");
            goto out;
        }
    }
    copy_slot_give(ing, &slot); /* the COPY of transactions is over (or never started) */
    if (!res && an.len > 0)
        res = run_copy(conn, COPY_ANOMALIES, &an);
    if (!res && dl.len > 0)
        res = run_copy(conn, COPY_DEAD, &dl);
    t_copied = cw_mono_ms();
    if (!res) {
        const char *params[6];
        snprintf(model_param, sizeof(model_param), "%d", w->model.model_id);
        params[0] = ing->cfg->kafka_group_id;
        params[1] = ing->cfg->kafka_topic;
        params[2] = parts.data;
        params[3] = firsts.data;
        params[4] = nexts.data;
        params[5] = w->model.model_id ? model_param : NULL;
        res = PQexecParams(conn,
                           "SELECT * FROM chainwatch.commit_batch($1, $2, $3::int[], "
                           "$4::bigint[], $5::bigint[], $6::int)",
                           6, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            PQclear(res);
            res = PQexec(conn, "COMMIT");
            if (PQresultStatus(res) == PGRES_COMMAND_OK) {
                PQclear(res);
                res = NULL;
            }
        }
    }
    if (res) {
        ar = classify(conn, res);
        snprintf(data_error, errlen, "%s", PQresultErrorMessage(res));
        PQclear(res);
        if (PQstatus(conn) == CONNECTION_OK)
            PQclear(PQexec(conn, "ROLLBACK"));
    }
    log_debug("writer %d: %zu messages: build and copy %lld ms, commit_batch+commit %lld ms", w->id,
              b->n, (long long) (t_copied - t_start), (long long) (cw_mono_ms() - t_copied));
out:
    copy_slot_give(ing, &slot);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    cw_strbuf_free(&parts);
    cw_strbuf_free(&firsts);
    cw_strbuf_free(&nexts);
    return ar;
}

typedef struct skip_ctx {
    ingestor *ing;
    size_t skipped;
} skip_ctx;

/* not_ours: the partition was revoked, or the message is below what Postgres already has */
static bool not_ours(const batch_item *it, void *arg)
{
    skip_ctx *ctx = arg;
    int32_t p = it->msg->partition;
    bool drop = p < 0 || p >= MAX_PARTITIONS || !atomic_load(&ctx->ing->owned[p]) ||
                it->msg->offset < atomic_load(&ctx->ing->floor[p]);
    if (drop)
        ctx->skipped++;
    return drop;
}

/* resync_floors reads the stored next offsets after a CW002 so stored messages are skipped */
static int resync_floors(writer *w)
{
    const char *params[2] = {w->ing->cfg->kafka_group_id, w->ing->cfg->kafka_topic};
    PGresult *res = PQexecParams(w->conn,
                                 "SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                 "WHERE consumer_group = $1 AND topic = $2",
                                 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int p = atoi(PQgetvalue(res, i, 0));
        long long next = atoll(PQgetvalue(res, i, 1));
        if (p >= 0 && p < MAX_PARTITIONS) {
            if (next > atomic_load(&w->ing->floor[p]))
                atomic_store(&w->ing->floor[p], next);
            atomic_store(&w->ing->committed[p], next);
        }
    }
    PQclear(res);
    return 0;
}

void writer_run_maintenance(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT count(*) FROM chainwatch.maintain()");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : "";
        log_warn("chainwatch.maintain() failed: %s", *msg ? msg : PQerrorMessage(conn));
    }
    PQclear(res);
}

/* after_commit records a committed batch: counters, lag bookkeeping, Kafka offsets */
static void after_commit(writer *w, const batch *b, const batch_counts *c, double seconds)
{
    ingestor *ing = w->ing;
    ingest_stats *st = &ing->stats;
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(w->n_ranges);

    atomic_fetch_add(&st->batches, 1);
    atomic_fetch_add(&st->rows, c->rows);
    atomic_fetch_add(&st->messages_dead, c->dead);
    atomic_fetch_add(&st->messages_ok, b->n - c->dead);
    for (int s = 0; s < 4; s++)
        atomic_fetch_add(&st->anomalies[s], c->by_severity[s]);
    for (size_t i = 0; i < b->n; i++) {
        const batch_item *it = &b->items[i];
        if (it->dead && it->dead_reason >= 0 && it->dead_reason < N_DEAD_REASONS)
            atomic_fetch_add(&st->dead_letters[it->dead_reason], 1);
    }
    /* w->ranges still describes this batch (attempt_commit computed it) */
    for (int k = 0; k < w->n_ranges; k++) {
        int32_t p = w->ranges[k].partition;
        int64_t next = w->ranges[k].next;
        if (next > atomic_load(&ing->committed[p]))
            atomic_store(&ing->committed[p], next);
        rd_kafka_topic_partition_list_add(offs, ing->cfg->kafka_topic, p)->offset = next;
    }
    cw_histogram_observe(&st->batch_duration, seconds);
    /* informational only: Postgres holds the offsets that count */
    if (offs->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(ing->rk, offs, 1);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            log_debug("writer %d: Kafka offset commit: %s", w->id, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

/*
 * commit_one commits b, retrying until it is committed or has nothing left of ours, or the
 * process gives up at shutdown. split is set when called for a single message after a data
 * error; such a message that fails again is turned into a dead letter.
 */
static void commit_one(writer *w, batch *b, bool split);

/* commit_split commits the items of b one message per transaction */
static void commit_split(writer *w, batch *b)
{
    batch single;
    if (batch_init(&single, 1) != 0)
        return;
    for (size_t i = 0; i < b->n; i++) {
        single.items[0] = b->items[i];
        single.n = 1;
        single.scored_with = -1;
        memset(&b->items[i], 0, sizeof(batch_item));
        commit_one(w, &single, true);
        batch_clear(&single);
    }
    b->n = 0;
    batch_free(&single);
}

static void commit_one(writer *w, batch *b, bool split)
{
    ingestor *ing = w->ing;
    long backoff = BACKOFF_MIN_MS;
    int data_failures = 0;
    int64_t t0 = cw_mono_ns();
    char error[1024];

    batch_decode(b, (size_t) ing->cfg->max_message_bytes);
    for (;;) {
        skip_ctx ctx = {ing, 0};
        attempt_result ar;
        batch_counts counts;

        if (writer_connect(w) != 0) {
            atomic_store(&ing->db_up, false);
            atomic_fetch_add(&ing->stats.db_errors, 1);
            goto backoff;
        }
        if (!w->model.loaded) {
            if (model_load(w->conn, &w->model, error, sizeof(error)) != 0) {
                log_warn("writer %d: %s", w->id, error);
                atomic_fetch_add(&ing->stats.db_errors, 1);
                if (PQstatus(w->conn) != CONNECTION_OK)
                    atomic_store(&ing->db_up, false);
                goto backoff;
            }
            atomic_fetch_add(&ing->stats.model_reloads, 1);
            log_info("writer %d: scoring with model %d (%d severity rules)", w->id,
                     w->model.model_id, w->model.n_rules);
        }

        pthread_rwlock_rdlock(&ing->assign_lock);
        batch_remove_if(b, not_ours, &ctx);
        atomic_fetch_add(&ing->stats.messages_skipped, ctx.skipped);
        if (b->n == 0) {
            pthread_rwlock_unlock(&ing->assign_lock);
            return;
        }
        if (b->scored_with != w->model.model_id && batch_score(b, &w->model) != 0) {
            pthread_rwlock_unlock(&ing->assign_lock);
            log_error("writer %d: out of memory scoring a batch", w->id);
            goto backoff;
        }
        ar = attempt_commit(w, b, &counts, error, sizeof(error));
        pthread_rwlock_unlock(&ing->assign_lock);

        switch (ar) {
        case ATTEMPT_OK:
            atomic_store(&ing->db_up, true);
            after_commit(w, b, &counts, (double) (cw_mono_ns() - t0) / 1e9);
            return;
        case ATTEMPT_MODEL_CHANGED:
            log_info("writer %d: the active model changed; reloading and re-scoring", w->id);
            w->model.loaded = false;
            continue;
        case ATTEMPT_REPLAYED:
            log_info("writer %d: batch already stored by another consumer; skipping it", w->id);
            if (resync_floors(w) != 0)
                goto backoff;
            continue;
        case ATTEMPT_NO_PARTITION:
            log_warn("writer %d: no partition for the current time; running maintenance", w->id);
            writer_run_maintenance(w->conn);
            continue;
        case ATTEMPT_CONNECTION:
            log_warn("writer %d: Postgres unavailable: %s", w->id, error);
            atomic_store(&ing->db_up, false);
            atomic_fetch_add(&ing->stats.db_errors, 1);
            PQfinish(w->conn);
            w->conn = NULL;
            goto backoff;
        case ATTEMPT_DATA:
            atomic_fetch_add(&ing->stats.db_errors, 1);
            if (split || b->n == 1) {
                if (data_failures++ > 0 || b->items[0].dead) {
                    /* a dead letter that cannot be stored either: give up on the message */
                    log_error("writer %d: message %d/%lld refused twice: %s", w->id,
                              b->items[0].msg->partition, (long long) b->items[0].msg->offset,
                              error);
                }
                batch_item *it = &b->items[0];
                free(it->txs);
                it->txs = NULL;
                it->n_txs = 0;
                it->dead = true;
                it->dead_reason = DEAD_REASON_DB_REJECTED;
                snprintf(it->dead_error, sizeof(it->dead_error), "database refused: %.200s", error);
                b->scored_with = -1;
                continue;
            }
            log_warn("writer %d: batch refused (%s); retrying message by message", w->id, error);
            commit_split(w, b);
            return;
        case ATTEMPT_TRANSIENT:
            log_warn("writer %d: transaction failed, retrying: %s", w->id, error);
            atomic_fetch_add(&ing->stats.db_errors, 1);
            goto backoff;
        }
    backoff:
        /* at shutdown with Postgres away this loops until main abandons us: the offsets were
         * never stored, so whoever owns the partitions next reads these messages again */
        sleep_ms_unless(backoff, &w->abandon);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        if (atomic_load(&w->abandon))
            return;
    }
}

/* writer_main collects batches from the queue and commits them until told to stop. */
static void *writer_main(void *arg)
{
    writer *w = arg;
    ingestor *ing = w->ing;
    batch b;

    if (batch_init(&b, (size_t) ing->cfg->batch_size) != 0) {
        log_error("writer %d: out of memory", w->id);
        return NULL;
    }
    atomic_fetch_add(&ing->threads_active, 1);
    (void) writer_connect(w); /* early, so /health/ready reflects Postgres on an idle topic */
    ingest_msg **taken = malloc(sizeof(ingest_msg *) * b.cap);
    if (!taken) {
        log_error("writer %d: out of memory", w->id);
        batch_free(&b);
        atomic_fetch_sub(&ing->threads_active, 1);
        return NULL;
    }
    /* woken once a share of the budget has arrived, not only at a full batch: a writer that
     * waited for a whole batch would sit on budget the others need */
    size_t share = (size_t) ing->cfg->kafka_max_queue_size / (2 * (size_t) ing->n_writers);
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
                batch_add(&b, taken[i]);
            if (b.n > 0 && deadline == 0)
                deadline = cw_mono_ms() + ing->cfg->batch_flush_ms;
            if (b.n == 0 && (atomic_load(&ing->writers_stop) || atomic_load(&w->abandon)))
                goto done;
            if (atomic_load(&ing->writers_stop) && queue_count(&w->queue) == 0)
                break; /* stopping: commit what we have without waiting for the deadline */
        }
        if (b.n == 0)
            continue;
        commit_one(w, &b, false);
        batch_clear(&b);
        queue_settled(&w->queue); /* committed, or dropped to be read again */
    }
done:
    free(taken);
    batch_free(&b);
    model_free(&w->model);
    if (w->conn)
        PQfinish(w->conn);
    w->conn = NULL;
    atomic_fetch_sub(&ing->threads_active, 1);
    return NULL;
}

int writers_start(ingestor *ing, char *err, size_t errlen)
{
    /* one budget of KAFKA_MAX_QUEUE_SIZE messages for all writers (see queue.h) */
    size_t limit = (size_t) ing->cfg->kafka_max_queue_size;
    ing->writers = calloc((size_t) ing->n_writers, sizeof(writer));
    if (!ing->writers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    queue_budget_init(&ing->queue_budget, limit);
    long slots = ing->cfg->copy_concurrency;
    ing->copy_limited = slots > 0 && slots < ing->n_writers;
    if (ing->copy_limited && sem_init(&ing->copy_slots, 0, (unsigned) slots) != 0) {
        snprintf(err, errlen, "cannot create the load slots: %s", strerror(errno));
        ing->copy_limited = false;
        return -1;
    }
    for (int i = 0; i < ing->n_writers; i++) {
        writer *w = &ing->writers[i];
        w->ing = ing;
        w->id = i;
        w->slot = malloc(sizeof(int32_t) * MAX_PARTITIONS);
        w->ranges = malloc(sizeof(offset_range) * MAX_PARTITIONS);
        if (!w->slot || !w->ranges) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (int p = 0; p < MAX_PARTITIONS; p++)
            w->slot[p] = -1;
        if (queue_init(&w->queue, limit, &ing->queue_budget) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    for (int i = 0; i < ing->n_writers; i++) {
        if (pthread_create(&ing->writers[i].thread, NULL, writer_main, &ing->writers[i]) != 0) {
            snprintf(err, errlen, "cannot start writer thread %d", i);
            return -1;
        }
        ing->writers[i].started = true;
    }
    return 0;
}

void writers_finish(ingestor *ing)
{
    atomic_store(&ing->writers_stop, true);
    for (int i = 0; i < ing->n_writers; i++)
        queue_wake(&ing->writers[i].queue);
}

void writers_join(ingestor *ing)
{
    writers_finish(ing);
    for (int i = 0; i < ing->n_writers; i++)
        if (ing->writers[i].started)
            pthread_join(ing->writers[i].thread, NULL);
}

void writers_free(ingestor *ing)
{
    if (!ing->writers)
        return;
    for (int i = 0; i < ing->n_writers; i++) {
        queue_destroy(&ing->writers[i].queue);
        free(ing->writers[i].slot);
        free(ing->writers[i].ranges);
    }
    free(ing->writers);
    ing->writers = NULL;
    queue_budget_destroy(&ing->queue_budget);
    if (ing->copy_limited)
        sem_destroy(&ing->copy_slots);
    ing->copy_limited = false;
}

bool writers_idle(ingestor *ing)
{
    for (int i = 0; i < ing->n_writers; i++)
        if (!queue_idle(&ing->writers[i].queue))
            return false;
    return true;
}

size_t writers_queued(ingestor *ing)
{
    size_t n = 0;
    for (int i = 0; i < ing->n_writers; i++)
        n += queue_count(&ing->writers[i].queue);
    return n;
}
