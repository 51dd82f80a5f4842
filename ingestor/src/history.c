/* ingestor/src/history.c — a batch's behavioural features, from its addresses' profiles read in the
 * batch's own transaction
 *
 * Design
 * ------
 * The features of a transaction compare it with its sender's and recipient's history
 * (common/src/txfeatures.c). That history is chainwatch.address_profiles, which the statement
 * trigger transactions_profiles updates when this batch's COPY ends. So, right after BEGIN, one
 * statement reads the profiles of every distinct address of the batch (_batch_profiles, a
 * definer function: the ingestor's role cannot read the table) together with now(), the
 * detected_at every row of the batch gets; then the batch's messages are walked in order: each
 * message's rows get their features from the profiles as they stand, and then are folded in, so
 * a burst spread over the messages of one batch is seen exactly as if each message had been a
 * batch of its own. Rows of one message see the history before the message, as
 * chainwatch.replay_features() does.
 *
 * Concurrency. The read takes no row locks: another writer's batch that commits between this
 * read and this batch's trigger is in the profiles but not in these features (the two batches
 * were stored at the same moment, and each is scored as if it came first). The features are
 * stored with the rows (transactions.features), so they remain the record of what was scored.
 * A batch that rolls back (a replay refused by commit_batch, a crash) leaves nothing; its next
 * attempt reads the profiles again.
 *
 * Cost. One round trip and the profiles of up to two addresses per row; the profiles are the
 * rows the trigger is about to update, so they are in shared buffers when it does.
 */
#include "history.h"

#include <stdlib.h>
#include <string.h>

#include "txfeatures.h"

typedef struct history_entry {
    const char *address; /* the row's own string (cw_tx.from / to): lives as long as the batch */
    cw_profile profile;
    int64_t hash;
    bool used;
} history_entry;

typedef struct history_table {
    history_entry *slots;
    size_t cap; /* a power of two */
} history_table;

/* fnv1a: the table's hash of an address (not the profiles' counterparty hash, which Postgres
 * computes) */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * UINT64_C(1099511628211);
    return h;
}

/* table_slot returns the entry of address, claiming a free one when absent (*created then true;
 * the table is sized for every address of the batch, so one is always free) */
static history_entry *table_slot(history_table *t, const char *address, bool *created)
{
    size_t i = (size_t) fnv1a(address) & (t->cap - 1);
    while (t->slots[i].used && strcmp(t->slots[i].address, address) != 0)
        i = (i + 1) & (t->cap - 1);
    *created = !t->slots[i].used;
    if (*created) {
        t->slots[i].used = true;
        t->slots[i].address = address;
    }
    return &t->slots[i];
}

/* table_get returns the entry of an address the table holds */
static history_entry *table_get(history_table *t, const char *address)
{
    bool created;
    return table_slot(t, address, &created);
}

/* append_quoted adds address to an array literal as a quoted element (addresses are hex digits;
 * quotes and backslashes are escaped all the same) */
static void append_quoted(cw_strbuf *s, const char *address)
{
    cw_strbuf_putc(s, '"');
    for (const char *p = address; *p; p++) {
        if (*p == '"' || *p == '\\')
            cw_strbuf_putc(s, '\\');
        cw_strbuf_putc(s, *p);
    }
    cw_strbuf_putc(s, '"');
}

PGresult *history_compute(PGconn *conn, batch *b, bool *out_of_memory)
{
    history_table t = {NULL, 0};
    cw_strbuf list = CW_STRBUF_INIT;
    PGresult *res = NULL;
    size_t rows = 0, addresses = 0, r = 0;
    int64_t detected_at = 0;
    const char *params[1];

    *out_of_memory = false;
    b->has_history = false;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].stage == ITEM_ROWS)
            rows += b->items[i].n_txs;
    if (rows == 0) {
        b->has_history = true;
        return NULL;
    }
    if (rows > b->history_cap) {
        double *h = realloc(b->history, sizeof(double) * CW_FEATURES * rows);
        if (!h)
            goto oom;
        b->history = h;
        b->history_cap = rows;
    }
    for (t.cap = 16; t.cap < 4 * rows; t.cap *= 2)
        ;
    t.slots = calloc(t.cap, sizeof(history_entry));
    if (!t.slots)
        goto oom;

    /* the distinct addresses, as one text[] literal */
    cw_strbuf_putc(&list, '{');
    for (size_t i = 0; i < b->n; i++) {
        const batch_item *it = &b->items[i];
        if (it->stage != ITEM_ROWS)
            continue;
        for (size_t k = 0; k < it->n_txs; k++) {
            const char *who[2] = {it->txs[k].from, it->txs[k].to};
            for (int w = 0; w < 2; w++) {
                if (!who[w][0])
                    continue;
                bool created;
                (void) table_slot(&t, who[w], &created);
                if (created) {
                    if (addresses++)
                        cw_strbuf_putc(&list, ',');
                    append_quoted(&list, who[w]);
                }
            }
        }
    }
    cw_strbuf_putc(&list, '}');
    if (list.oom)
        goto oom;

    params[0] = list.data;
    res = PQexecParams(conn, "SELECT * FROM chainwatch._batch_profiles($1::text[])", 1, NULL,
                       params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        goto failed;
    if (PQnfields(res) != CW_PROFILE_COLUMNS)
        goto malformed;
    for (int row = 0; row < PQntuples(res); row++) {
        const char *col[CW_PROFILE_COLUMNS];
        for (int c = 0; c < CW_PROFILE_COLUMNS; c++)
            col[c] = PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
        if (!col[CW_PC_ADDRESS])
            goto malformed;
        bool created;
        history_entry *e = table_slot(&t, col[CW_PC_ADDRESS], &created);
        if (created) /* an address we did not ask for */
            goto malformed;
        if (cw_profile_from_text(col, &e->profile, &e->hash, &detected_at) != 0)
            goto malformed;
    }
    if (PQntuples(res) == 0) {
        /* no row had an address: now() all the same, for the rows' chain time */
        PQclear(res);
        res = PQexec(conn, "SELECT (extract(epoch FROM now()) * 1000000)::bigint");
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            goto failed;
        if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
            goto malformed;
        detected_at = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    res = NULL;

    /* message by message: features against the history so far, then fold the message in */
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        it->first_score = r;
        if (it->stage != ITEM_ROWS)
            continue;
        for (int pass = 0; pass < 2; pass++) {
            for (size_t k = 0; k < it->n_txs; k++) {
                const cw_tx *tx = &it->txs[k];
                history_entry *s = tx->from[0] ? table_get(&t, tx->from) : NULL;
                history_entry *d = tx->to[0] ? table_get(&t, tx->to) : NULL;
                cw_feature_tx f;
                bool has_time = cw_tx_time_known(tx->timestamp);

                f.value = tx->f_value;
                f.gas = tx->f_gas;
                f.gas_price = tx->f_gas_price;
                f.has_to = d != NULL;
                f.to_hash = d ? d->hash : 0;
                f.at = cw_chain_time(has_time, has_time ? tx->timestamp * INT64_C(1000000) : 0,
                                     detected_at);
                if (pass == 0) {
                    static const cw_profile empty;
                    cw_features_compute(s ? &s->profile : &empty, d ? &d->profile : NULL, &f,
                                        &b->history[CW_FEATURES * (r + k)]);
                } else {
                    if (s)
                        cw_profile_fold_out(&s->profile, &f);
                    if (d)
                        cw_profile_fold_in(&d->profile, &f);
                }
            }
        }
        r += it->n_txs;
    }
    free(t.slots);
    cw_strbuf_free(&list);
    b->has_history = true;
    return NULL;

malformed:
    /* a schema this ingestor does not know: report it as the database's error would be */
    PQclear(res);
    res = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
    goto failed;
oom:
    *out_of_memory = true;
    free(t.slots);
    cw_strbuf_free(&list);
    return NULL;
failed:
    if (!res)
        res = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
    free(t.slots);
    cw_strbuf_free(&list);
    return res;
}
