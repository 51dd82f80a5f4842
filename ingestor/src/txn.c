/* ingestor/src/txn.c — one batch's database transaction: rows, anomalies and dead letters by COPY
 * and the offsets by commit_batch, all or nothing */

/*
 * Design
 * ------
 * A batch is committed in ONE database transaction:
 *
 *   BEGIN; SELECT _batch_profiles(the batch's addresses); COPY transactions; COPY anomalies;
 *   COPY dead_letters;
 *   SELECT * FROM chainwatch.commit_batch(group, topic, partitions, first, next, model); COMMIT
 *
 * commit_batch stores each partition's next offset in chainwatch.kafka_offsets under a row lock
 * and refuses a batch that starts before the stored offset (SQLSTATE CW002), so whatever
 * crashes, restarts or rebalances happen, a message is inserted at most once, and since offsets
 * only move with the rows, at least once. The lock order is the one docs/store.md gives:
 * transactions, anomalies, dead_letters, then the offset rows.
 *
 * The transactions data (binary COPY) is sent while it is rendered, in COPY_CHUNK pieces: Postgres
 * reads one piece while the next is built, no batch-sized buffer exists, and libpq's output buffer
 * stays at the piece size. Anomalies and dead letters, a few rows of COPY text, are rendered on the
 * way and sent after it.
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
#include "txn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "log.h"
#include "monoclock.h"
#include "strbuf.h"

static const char COPY_TX[] =
    "COPY chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, "
    "block_number, tx_time, score, model_id, kafka_topic, kafka_partition, kafka_offset, "
    "features) FROM STDIN WITH (FORMAT binary)";
static const char COPY_ANOMALIES[] =
    "COPY chainwatch.anomalies (hash, from_address, to_address, value, gas, gas_price, "
    "block_number, tx_time, score, model_id, severity, kafka_topic, kafka_partition, "
    "kafka_offset, features) FROM STDIN";
static const char COPY_DEAD[] =
    "COPY chainwatch.dead_letters (payload, error, reason, kafka_topic, kafka_partition, "
    "kafka_offset) FROM STDIN";

/* COPY data goes out in pieces of this size: libpq grows a connection's output buffer to the
 * largest piece it is given and never shrinks it, so one piece per batch would pin a batch-sized
 * buffer (megabytes) per writer */
#define COPY_CHUNK 65536

int range_set_of(range_set *rs, const batch *b)
{
    rs->n = 0;
    for (size_t i = 0; i < b->n; i++) {
        const ingest_msg *m = b->items[i].msg;
        int32_t p = m->partition;
        if (p < 0)
            continue;
        if ((size_t) p >= rs->n_slot) {
            size_t n = (size_t) p + 1 > 2 * rs->n_slot ? (size_t) p + 1 : 2 * rs->n_slot;
            int32_t *slot = realloc(rs->slot, n * sizeof(*slot));
            if (!slot)
                goto oom;
            for (size_t k = rs->n_slot; k < n; k++)
                slot[k] = -1;
            rs->slot = slot;
            rs->n_slot = n;
        }
        int32_t k = rs->slot[p];
        if (k < 0) {
            if (rs->n == rs->cap) {
                int cap = rs->cap ? rs->cap * 2 : 64;
                offset_range *r = realloc(rs->r, (size_t) cap * sizeof(*r));
                if (!r)
                    goto oom;
                rs->r = r;
                rs->cap = cap;
            }
            k = rs->n++;
            rs->slot[p] = k;
            rs->r[k].partition = p;
            rs->r[k].first = m->offset;
            rs->r[k].next = m->offset + 1;
        } else {
            if (m->offset < rs->r[k].first)
                rs->r[k].first = m->offset;
            if (m->offset + 1 > rs->r[k].next)
                rs->r[k].next = m->offset + 1;
        }
    }
    for (int k = 0; k < rs->n; k++)
        rs->slot[rs->r[k].partition] = -1;
    return 0;
oom:
    for (int k = 0; k < rs->n; k++)
        rs->slot[rs->r[k].partition] = -1;
    rs->n = 0;
    return -1;
}

void range_set_free(range_set *rs)
{
    free(rs->r);
    free(rs->slot);
    memset(rs, 0, sizeof(*rs));
}

int load_slots_init(load_slots *s, long slots, int writers, char *err, size_t errlen)
{
    s->limited = slots > 0 && slots < writers;
    if (s->limited && sem_init(&s->sem, 0, (unsigned) slots) != 0) {
        snprintf(err, errlen, "cannot create the load slots: %s", strerror(errno));
        s->limited = false;
        return -1;
    }
    return 0;
}

void load_slots_destroy(load_slots *s)
{
    if (s->limited)
        sem_destroy(&s->sem);
    s->limited = false;
}

/* slot_take waits for a load slot; *held records that it has one */
static void slot_take(load_slots *s, bool *held)
{
    if (!s->limited)
        return;
    while (sem_wait(&s->sem) != 0)
        if (errno != EINTR) {
            log_error("waiting for a load slot: %s; loading without one", strerror(errno));
            return;
        }
    *held = true;
}

/* slot_give releases the load slot, if *held */
static void slot_give(load_slots *s, bool *held)
{
    if (*held)
        sem_post(&s->sem);
    *held = false;
}

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

/* offsets_literals renders the ranges as the SQL array literals commit_batch takes */
static void offsets_literals(const range_set *rs, cw_strbuf *parts, cw_strbuf *firsts,
                             cw_strbuf *nexts)
{
    cw_strbuf_putc(parts, '{');
    cw_strbuf_putc(firsts, '{');
    cw_strbuf_putc(nexts, '{');
    for (int k = 0; k < rs->n; k++) {
        if (k) {
            cw_strbuf_putc(parts, ',');
            cw_strbuf_putc(firsts, ',');
            cw_strbuf_putc(nexts, ',');
        }
        cw_strbuf_put_int(parts, rs->r[k].partition);
        cw_strbuf_put_int(firsts, rs->r[k].first);
        cw_strbuf_put_int(nexts, rs->r[k].next);
    }
    cw_strbuf_putc(parts, '}');
    cw_strbuf_putc(firsts, '}');
    cw_strbuf_putc(nexts, '}');
}

void txn_failure(PGconn *conn, const PGresult *res, pg_failure *why)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    pg_error_fields f = {
        .connection_ok = PQstatus(conn) == CONNECTION_OK,
        .sqlstate = state,
        .schema = res ? PQresultErrorField(res, PG_DIAG_SCHEMA_NAME) : NULL,
        .table = res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL,
        .constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL,
    };
    const char *msg = res ? PQresultErrorMessage(res) : "";
    why->kind = retry_classify(&f);
    snprintf(why->sqlstate, sizeof(why->sqlstate), "%s", state ? state : "");
    snprintf(why->message, sizeof(why->message), "%s", *msg ? msg : PQerrorMessage(conn));
}

/* fail_oom: not the data's fault; the caller retries the whole batch later */
static attempt_result fail_oom(pg_failure *why)
{
    why->kind = ATTEMPT_TRANSIENT;
    why->sqlstate[0] = '\0';
    snprintf(why->message, sizeof(why->message), "out of memory");
    return ATTEMPT_TRANSIENT;
}

attempt_result txn_commit(const txn_env *e, batch *b, const loaded_model *m, const range_set *rs,
                          batch_counts *counts, pg_failure *why)
{
    PGconn *conn = e->conn;
    PGresult *res;
    attempt_result ar = ATTEMPT_OK;
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT;
    cw_strbuf parts = CW_STRBUF_INIT, firsts = CW_STRBUF_INIT, nexts = CW_STRBUF_INIT;
    char model_param[16];
    bool slot = false;

    int64_t t_start = cw_mono_ms(), t_copied = 0;
    offsets_literals(rs, &parts, &firsts, &nexts);
    if (parts.oom || firsts.oom || nexts.oom) {
        ar = fail_oom(why);
        goto out;
    }

    slot_take(e->slots, &slot);
    res = PQexec(conn, "BEGIN");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        txn_failure(conn, res, why);
        ar = why->kind;
        PQclear(res);
        goto out;
    }
    PQclear(res);

    /* the rows' behavioural features from the profiles as this transaction sees them, and the
     * scores of a model over them; a failure goes to the end like any statement's */
    {
        bool oom;
        res = history_compute(conn, b, &oom);
        if (oom || (!res && m->behaviour && batch_score(b, m) != 0)) {
            PQclear(PQexec(conn, "ROLLBACK"));
            ar = fail_oom(why);
            goto out;
        }
    }

    /* a batch of dead letters only sends an empty COPY of transactions */
    if (!res)
        res = start_copy(conn, COPY_TX);
    if (!res) {
        copy_sink sink = {COPY_CHUNK, stream_flush, conn};
        bool sent = batch_copy_stream(b, m, e->topic, &tx, &an, &dl, counts, &sink) == 0 &&
                    stream_flush(conn, &tx) == 0;
        res = finish_copy(conn, sent);
        if (tx.oom || an.oom || dl.oom) {
            PQclear(res);
            PQclear(PQexec(conn, "ROLLBACK"));
            ar = fail_oom(why);
            goto out;
        }
    }
    slot_give(e->slots, &slot); /* the COPY of transactions is over (or never started) */
    if (!res && an.len > 0)
        res = run_copy(conn, COPY_ANOMALIES, &an);
    if (!res && dl.len > 0)
        res = run_copy(conn, COPY_DEAD, &dl);
    t_copied = cw_mono_ms();
    if (!res) {
        const char *params[6];
        snprintf(model_param, sizeof(model_param), "%d", m->model_id);
        params[0] = e->group;
        params[1] = e->topic;
        params[2] = parts.data;
        params[3] = firsts.data;
        params[4] = nexts.data;
        params[5] = m->model_id ? model_param : NULL; /* the active model's, usable or not */
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
        txn_failure(conn, res, why);
        ar = why->kind;
        PQclear(res);
        if (PQstatus(conn) == CONNECTION_OK)
            PQclear(PQexec(conn, "ROLLBACK"));
    }
    log_debug("writer %d: %zu messages: build and copy %lld ms, commit_batch+commit %lld ms",
              e->writer_id, b->n, (long long) (t_copied - t_start),
              (long long) (cw_mono_ms() - t_copied));
out:
    slot_give(e->slots, &slot);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    cw_strbuf_free(&parts);
    cw_strbuf_free(&firsts);
    cw_strbuf_free(&nexts);
    return ar;
}
