/* ingestor/src/batch.c — decode, score and render a batch as PostgreSQL COPY text; pure, no I/O */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingestor.h"

int batch_init(batch *b, size_t capacity)
{
    memset(b, 0, sizeof(*b));
    b->items = calloc(capacity ? capacity : 1, sizeof(batch_item));
    if (!b->items)
        return -1;
    b->cap = capacity ? capacity : 1;
    b->scored_with = -1;
    return 0;
}

static void item_release(batch_item *it)
{
    if (it->msg)
        ingest_msg_free(it->msg);
    free(it->txs);
    memset(it, 0, sizeof(*it));
}

void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        item_release(&b->items[i]);
    b->n = 0;
    b->scored_with = -1;
}

void batch_free(batch *b)
{
    batch_clear(b);
    free(b->items);
    free(b->features);
    free(b->scores);
    memset(b, 0, sizeof(*b));
}

int batch_add(batch *b, ingest_msg *m)
{
    if (b->n >= b->cap)
        return -1;
    memset(&b->items[b->n], 0, sizeof(batch_item));
    b->items[b->n++].msg = m;
    b->scored_with = -1;
    return 0;
}

size_t batch_remove_if(batch *b, bool (*pred)(const batch_item *, void *), void *arg)
{
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (pred(&b->items[i], arg)) {
            item_release(&b->items[i]);
            removed++;
        } else {
            if (kept != i)
                b->items[kept] = b->items[i];
            kept++;
        }
    }
    b->n = kept;
    if (removed)
        b->scored_with = -1;
    return removed;
}

void batch_decode(batch *b, size_t max_message_bytes)
{
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        cw_decode_error err;
        if (it->decoded)
            continue;
        it->decoded = true;
        if (cw_tx_decode(it->msg->payload, it->msg->len, max_message_bytes, &it->txs, &it->n_txs,
                         &err) != 0) {
            it->dead = true;
            it->dead_reason = err.reason;
            snprintf(it->dead_error, sizeof(it->dead_error), "%s", err.message);
        }
    }
}

int batch_score(batch *b, const loaded_model *m)
{
    size_t rows = 0;

    for (size_t i = 0; i < b->n; i++)
        if (!b->items[i].dead)
            rows += b->items[i].n_txs;
    if (rows > b->rows_cap) {
        double *f = realloc(b->features, sizeof(double) * 3 * rows);
        if (!f)
            return -1;
        b->features = f;
        double *s = realloc(b->scores, sizeof(double) * rows);
        if (!s)
            return -1;
        b->scores = s;
        b->rows_cap = rows;
    }
    size_t r = 0;
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        it->first_score = r;
        if (it->dead)
            continue;
        for (size_t k = 0; k < it->n_txs; k++, r++) {
            b->features[3 * r] = it->txs[k].f_value;
            b->features[3 * r + 1] = it->txs[k].f_gas;
            b->features[3 * r + 2] = it->txs[k].f_gas_price;
        }
    }
    if (m->forest && rows > 0 && forest_n_features(m->forest) == 3)
        forest_score_batch(m->forest, b->features, rows, b->scores);
    b->scored_with = m->model_id;
    return 0;
}

/* put_field appends a COPY text field and its delimiter (tab, or newline when last) */
static void put_field(cw_strbuf *o, const char *s, bool last)
{
    if (s)
        cw_strbuf_copy_text(o, s, strlen(s));
    else
        cw_strbuf_append(o, "\\N", 2);
    cw_strbuf_putc(o, last ? '\n' : '\t');
}

static void put_int(cw_strbuf *o, long long v, bool null, bool last)
{
    if (null)
        cw_strbuf_append(o, "\\N", 2);
    else
        cw_strbuf_put_int(o, v);
    cw_strbuf_putc(o, last ? '\n' : '\t');
}

static void put_time(cw_strbuf *o, int64_t unix_seconds, bool last)
{
    char buf[40];
    struct tm tm;
    time_t t = (time_t) unix_seconds;
    if (unix_seconds < 0 || unix_seconds > 253402300799LL || !gmtime_r(&t, &tm)) {
        cw_strbuf_append(o, "\\N", 2);
    } else {
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S+00", &tm);
        cw_strbuf_puts(o, buf);
    }
    cw_strbuf_putc(o, last ? '\n' : '\t');
}

/*
 * batch_copy_text writes, per decoded row: transactions (hash, from_address, to_address,
 * value, gas, gas_price, block_number, tx_time, score, model_id, kafka_topic, kafka_partition,
 * kafka_offset); per flagged row also anomalies (the same plus severity, in the column order of
 * the COPY in writer.c); per refused message dead_letters (payload as bytea hex, error, reason,
 * kafka_topic, kafka_partition, kafka_offset).
 */
void batch_copy_text(const batch *b, const loaded_model *m, const char *topic, cw_strbuf *tx,
                     cw_strbuf *anomalies, cw_strbuf *dead, batch_counts *counts)
{
    (void) batch_copy_stream(b, m, topic, tx, anomalies, dead, counts, NULL);
}

int batch_copy_stream(const batch *b, const loaded_model *m, const char *topic, cw_strbuf *tx,
                      cw_strbuf *anomalies, cw_strbuf *dead, batch_counts *counts,
                      const copy_sink *sink)
{
    int flushed = 0;
    static const char hex[] = "0123456789abcdef";
    char score_buf[32], model_buf[16];
    bool scored = m->forest != NULL && b->scored_with == m->model_id;
    double threshold = scored ? forest_threshold(m->forest) : 0;

    memset(counts, 0, sizeof(*counts));
    snprintf(model_buf, sizeof(model_buf), "%d", m->model_id);
    for (size_t i = 0; i < b->n; i++) {
        const batch_item *it = &b->items[i];
        const ingest_msg *msg = it->msg;
        if (it->dead) {
            cw_strbuf_append(dead, "\\\\x", 3);
            const unsigned char *p = (const unsigned char *) msg->payload;
            for (size_t k = 0; k < msg->len; k++) {
                char pair[2] = {hex[p[k] >> 4], hex[p[k] & 15]};
                cw_strbuf_append(dead, pair, 2);
            }
            cw_strbuf_putc(dead, '\t');
            put_field(dead, it->dead_error, false);
            put_field(dead,
                      it->dead_reason == DEAD_REASON_DB_REJECTED
                          ? "db_rejected"
                          : cw_decode_reason_name((cw_decode_reason) it->dead_reason),
                      false);
            put_field(dead, topic, false);
            put_int(dead, msg->partition, false, false);
            put_int(dead, msg->offset, false, true);
            counts->dead++;
            continue;
        }
        for (size_t k = 0; k < it->n_txs; k++) {
            const cw_tx *t = &it->txs[k];
            double score = scored ? b->scores[it->first_score + k] : 0;
            const char *score_text = NULL;
            if (scored) {
                snprintf(score_buf, sizeof(score_buf), "%.17g", score);
                score_text = score_buf;
            }
            for (int pass = 0; pass < 2; pass++) {
                cw_strbuf *o = pass == 0 ? tx : anomalies;
                if (pass == 1 && !(scored && score > threshold))
                    break;
                put_field(o, t->hash, false);
                put_field(o, t->from[0] ? t->from : NULL, false);
                put_field(o, t->to[0] ? t->to : NULL, false);
                put_field(o, t->value, false);
                put_field(o, t->gas, false);
                put_field(o, t->gas_price, false);
                put_int(o, t->block_number, t->block_number < 0, false);
                put_time(o, t->timestamp, false);
                put_field(o, score_text, false);
                put_field(o, scored ? model_buf : NULL, false);
                if (pass == 1) {
                    int sev = severity_of(m, score, t->value, t->gas_price);
                    put_field(o, severity_names[sev], false);
                    counts->by_severity[sev]++;
                    counts->anomalies++;
                }
                put_field(o, topic, false);
                put_int(o, msg->partition, false, false);
                put_int(o, msg->offset, false, true);
            }
            counts->rows++;
            if (sink && flushed == 0 && tx->len >= sink->flush_at)
                flushed = sink->flush(sink->ctx, tx);
        }
    }
    return flushed;
}
