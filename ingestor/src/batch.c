/* ingestor/src/batch.c — decode, score and render a batch as PostgreSQL COPY data; pure, no I/O
 *
 * Formats. The transactions, nearly all of the data, go in COPY's binary format: Postgres then
 * reads each field with the type's receive function instead of parsing text (numeric_in,
 * timestamptz_in, float8in), which made loading the same 1M rows into the indexed table 20-25%
 * cheaper (COPY text 5.8-7.6 s, binary 4.7-5.8 s, alternating runs); and rendering needs no
 * printf for the score or strftime for the time. Anomalies (about 1% of rows) and dead letters
 * stay COPY text, which is easier to read in a log and to test.
 *
 * Binary COPY (PostgreSQL's "Binary Format" of COPY): a 19-byte header (signature, flags, header
 * extension length), then per row an int16 field count and per field an int32 length (-1 for
 * NULL) and the value as the type's send function writes it, all integers big-endian; an int16 -1
 * ends the data. The values: text as its bytes; int4/int8 as integers; float8 as its IEEE bits;
 * timestamptz as int8 microseconds since 2000-01-01 UTC; numeric as int16 ndigits, weight, sign
 * and dscale, then ndigits base-10000 digits, the first worth 10000^weight.
 */
#include "batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "txdecode.h"
#include "txfeatures.h"

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
    b->has_history = false;
}

void batch_free(batch *b)
{
    batch_clear(b);
    free(b->items);
    free(b->features);
    free(b->scores);
    free(b->history);
    memset(b, 0, sizeof(*b));
}

int batch_add(batch *b, ingest_msg *m)
{
    if (b->n >= b->cap)
        return -1;
    memset(&b->items[b->n], 0, sizeof(batch_item));
    b->items[b->n++].msg = m;
    b->scored_with = -1;
    b->has_history = false;
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
    if (removed) {
        b->scored_with = -1;
        b->has_history = false;
    }
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
            it->stage = ITEM_DEAD_LETTER;
            it->dead = true;
            it->dead_reason = err.reason;
            snprintf(it->dead_error, sizeof(it->dead_error), "%s", err.message);
        }
    }
}

int batch_score(batch *b, const loaded_model *m)
{
    size_t rows = 0;

    if (!model_usable(m)) {
        /* nothing to score with: the rows are stored unscored (batch_copy_stream) */
        b->scored_with = m->model_id;
        return 0;
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].stage == ITEM_ROWS)
            rows += b->items[i].n_txs;
    if (rows > b->rows_cap) {
        /* room for the raw amounts or a behaviour/1 model's features, whichever is wider */
        double *f = realloc(b->features, sizeof(double) * CW_FEATURES * rows);
        if (!f)
            return -1;
        b->features = f;
        double *s = realloc(b->scores, sizeof(double) * rows);
        if (!s)
            return -1;
        b->scores = s;
        b->rows_cap = rows;
    }
    if (m->behaviour) {
        /* the features come from the profiles, read in the batch's transaction */
        if (!b->has_history)
            return 0;
        int w = m->n_select;
        for (size_t r = 0; r < rows; r++)
            for (int k = 0; k < w; k++)
                b->features[(size_t) w * r + k] = b->history[CW_FEATURES * r + m->select[k]];
        if (rows > 0)
            forest_score_batch(m->forest, b->features, rows, b->scores);
        b->scored_with = m->model_id;
        return 0;
    }
    size_t r = 0;
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        it->first_score = r;
        if (it->stage != ITEM_ROWS)
            continue;
        for (size_t k = 0; k < it->n_txs; k++, r++) {
            b->features[MODEL_FEATURES * r] = it->txs[k].f_value;
            b->features[MODEL_FEATURES * r + 1] = it->txs[k].f_gas;
            b->features[MODEL_FEATURES * r + 2] = it->txs[k].f_gas_price;
        }
    }
    if (rows > 0)
        forest_score_batch(m->forest, b->features, rows, b->scores);
    b->scored_with = m->model_id;
    return 0;
}

size_t batch_clip_utf8(char *dst, size_t dstlen, const char *src, size_t max)
{
    size_t n = strlen(src);
    if (dstlen == 0)
        return 0;
    if (n > max)
        n = max;
    if (n > dstlen - 1)
        n = dstlen - 1;
    /* back over the continuation bytes (10xxxxxx) of a character the cut went through */
    if (n < strlen(src)) {
        size_t k = n;
        while (k > 0 && ((unsigned char) src[k] & 0xC0) == 0x80)
            k--;
        n = k;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    if (!cw_utf8_valid(dst, n))
        for (size_t i = 0; i < n; i++)
            if ((unsigned char) dst[i] >= 0x80)
                dst[i] = '?';
    return n;
}

/* sqlstate_or_unknown: s when it looks like a SQLSTATE (five digits or capitals), else "?????" */
static const char *sqlstate_or_unknown(const char *s)
{
    size_t n = 0;
    while (s && n < 6 && ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'A' && s[n] <= 'Z')))
        n++;
    return s && n == 5 && s[5] == '\0' ? s : "?????";
}

item_stage batch_item_refused(batch_item *it, const char *sqlstate, const char *error)
{
    const char *state = sqlstate_or_unknown(sqlstate);
    if (!it->first_refusal[0])
        snprintf(it->first_refusal, sizeof(it->first_refusal), "%s", state);
    switch (it->stage) {
    case ITEM_ROWS: {
        char clipped[201];
        batch_clip_utf8(clipped, sizeof(clipped), error ? error : "", 200);
        free(it->txs);
        it->txs = NULL;
        it->n_txs = 0;
        it->stage = ITEM_DEAD_LETTER;
        it->dead = true;
        it->dead_reason = DEAD_REASON_DB_REJECTED;
        snprintf(it->dead_error, sizeof(it->dead_error), "database refused: %s", clipped);
        break;
    }
    case ITEM_DEAD_LETTER:
        /* the error text or the payload may be what is refused: keep neither (the reason stays) */
        it->stage = ITEM_MINIMAL;
        if (it->dead_reason == DEAD_REASON_DB_REJECTED)
            snprintf(it->dead_error, sizeof(it->dead_error),
                     "the database refused this message (SQLSTATE %s) and its dead letter "
                     "(SQLSTATE %s); payload not stored, read it from Kafka",
                     it->first_refusal, state);
        else
            snprintf(it->dead_error, sizeof(it->dead_error),
                     "the database refused this message's dead letter (SQLSTATE %s); payload not "
                     "stored, read it from Kafka",
                     state);
        break;
    case ITEM_MINIMAL:
    case ITEM_DROPPED:
        it->stage = ITEM_DROPPED;
        it->dead = false;
        break;
    }
    return it->stage;
}

/* the header of binary COPY data: signature, flags (none), header extension length (0) */
static const char PGCOPY_HEADER[19] = {'P',  'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n',
                                       '\0', 0,   0,   0,   0,   0,   0,    0,      0};

#define PG_EPOCH_UNIX 946684800LL /* 2000-01-01 00:00:00 UTC */

/* a binary COPY row being built in a fixed buffer (a row is at most ~650 bytes: see bin_row) */
typedef struct bin_row {
    unsigned char buf[1024];
    size_t len;
} bin_row;

static void be16(bin_row *r, uint16_t v)
{
    r->buf[r->len++] = (unsigned char) (v >> 8);
    r->buf[r->len++] = (unsigned char) v;
}

static void be32(bin_row *r, uint32_t v)
{
    for (int shift = 24; shift >= 0; shift -= 8)
        r->buf[r->len++] = (unsigned char) (v >> shift);
}

static void be64(bin_row *r, uint64_t v)
{
    for (int shift = 56; shift >= 0; shift -= 8)
        r->buf[r->len++] = (unsigned char) (v >> shift);
}

static void bin_null(bin_row *r)
{
    be32(r, UINT32_MAX);
}

/* bin_text: s of len bytes (NULL: a NULL field); callers bound len (hashes, addresses, topic) */
static void bin_text(bin_row *r, const char *s, size_t len)
{
    if (!s) {
        bin_null(r);
        return;
    }
    be32(r, (uint32_t) len);
    memcpy(r->buf + r->len, s, len);
    r->len += len;
}

static void bin_int4(bin_row *r, int32_t v)
{
    be32(r, 4);
    be32(r, (uint32_t) v);
}

static void bin_int8(bin_row *r, int64_t v)
{
    be32(r, 8);
    be64(r, (uint64_t) v);
}

static void bin_float8(bin_row *r, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    be32(r, 8);
    be64(r, u);
}

/* bin_features: a float8[] of CW_FEATURES elements in array_send's layout (ndim, has-null flag,
 * element type, then per dimension its length and lower bound, then each element with its length)
 */
static void bin_features(bin_row *r, const double *x)
{
    be32(r, (uint32_t) (20 + 12 * CW_FEATURES));
    be32(r, 1);   /* one dimension */
    be32(r, 0);   /* no NULLs */
    be32(r, 701); /* float8 */
    be32(r, CW_FEATURES);
    be32(r, 1); /* lower bound */
    for (int i = 0; i < CW_FEATURES; i++)
        bin_float8(r, x[i]);
}

/* put_features appends a float8[] as COPY text: every element exact (%.17g reads back the same) */
static void put_features(cw_strbuf *o, const double *x, bool last)
{
    if (!x) {
        cw_strbuf_append(o, "\\N", 2);
    } else {
        cw_strbuf_putc(o, '{');
        for (int i = 0; i < CW_FEATURES; i++)
            cw_strbuf_printf(o, i ? ",%.17g" : "%.17g", x[i]);
        cw_strbuf_putc(o, '}');
    }
    cw_strbuf_putc(o, last ? '\n' : '\t');
}

/* bin_time: unix seconds as timestamptz, NULL where the text format had no time either */
static void bin_time(bin_row *r, int64_t unix_seconds)
{
    if (!cw_tx_time_known(unix_seconds))
        bin_null(r);
    else
        bin_int8(r, (unix_seconds - PG_EPOCH_UNIX) * 1000000);
}

/*
 * bin_numeric: a non-negative integer given as decimal digits (cw_wei_parse's canonical text: no
 * sign, no leading zeros, "0" for zero; at most 78 digits) in numeric's binary layout. Groups of
 * four digits from the right are the base-10000 digits; trailing zero groups are left out (the
 * weight keeps the value) and zero has no digits at all, as numeric_send writes them.
 */
static void bin_numeric(bin_row *r, const char *dec)
{
    size_t n = strlen(dec);
    uint16_t groups[CW_WEI_DEC_MAX / 4 + 1];
    int ngroups = 0;

    while (n > 1 && dec[0] == '0') { /* defensive: canonical text has none */
        dec++;
        n--;
    }
    size_t first = n % 4 ? n % 4 : 4; /* digits in the most significant group */
    for (size_t i = 0; i < n;) {
        size_t take = i == 0 ? first : 4;
        unsigned v = 0;
        for (size_t k = 0; k < take; k++)
            v = v * 10 + (unsigned) (dec[i + k] - '0');
        groups[ngroups++] = (uint16_t) v;
        i += take;
    }
    int weight = ngroups - 1;
    while (ngroups > 0 && groups[ngroups - 1] == 0)
        ngroups--; /* zero itself ends with no digits and weight 0 */
    if (ngroups == 0)
        weight = 0;
    be32(r, (uint32_t) (8 + 2 * ngroups));
    be16(r, (uint16_t) ngroups);
    be16(r, (uint16_t) weight);
    be16(r, 0); /* NUMERIC_POS */
    be16(r, 0); /* dscale: an integer */
    for (int i = 0; i < ngroups; i++)
        be16(r, groups[i]);
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
    if (!cw_tx_time_known(unix_seconds) || !gmtime_r(&t, &tm)) {
        cw_strbuf_append(o, "\\N", 2);
    } else {
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S+00", &tm);
        cw_strbuf_puts(o, buf);
    }
    cw_strbuf_putc(o, last ? '\n' : '\t');
}

/*
 * batch_copy writes, per decoded row: transactions in binary COPY format (hash, from_address,
 * to_address, value, gas, gas_price, block_number, tx_time, score, model_id, kafka_topic,
 * kafka_partition, kafka_offset, features; header first, trailer last, so even no row is a valid
 * COPY); per flagged row also anomalies as COPY text (the same plus severity, in the column order
 * of the COPY in txn.c); per refused message dead_letters as COPY text (payload as bytea hex,
 * error, reason, kafka_topic, kafka_partition, kafka_offset).
 */
void batch_copy(const batch *b, const loaded_model *m, const char *topic, cw_strbuf *tx,
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
    bool scored = model_usable(m) && b->scored_with == m->model_id;
    double threshold = scored ? forest_threshold(m->forest) : 0;

    memset(counts, 0, sizeof(*counts));
    snprintf(model_buf, sizeof(model_buf), "%d", m->model_id);
    size_t topic_len = strnlen(topic, 255); /* Kafka topic names have at most 249 bytes */
    bin_row row;
    cw_strbuf_append(tx, PGCOPY_HEADER, sizeof(PGCOPY_HEADER));
    for (size_t i = 0; i < b->n; i++) {
        const batch_item *it = &b->items[i];
        const ingest_msg *msg = it->msg;
        if (it->stage == ITEM_DROPPED) {
            counts->dropped++; /* its offset is committed with the batch's range, nothing else */
            continue;
        }
        if (it->dead) {
            cw_strbuf_append(dead, "\\\\x", 3);
            const unsigned char *p = (const unsigned char *) msg->payload;
            size_t len = it->stage == ITEM_MINIMAL ? 0 : msg->len;
            for (size_t k = 0; k < len; k++) {
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
            const double *x =
                b->has_history ? &b->history[CW_FEATURES * (it->first_score + k)] : NULL;
            row.len = 0;
            be16(&row, 14); /* the columns of COPY_TX in txn.c */
            bin_text(&row, t->hash, strlen(t->hash));
            bin_text(&row, t->from[0] ? t->from : NULL, strlen(t->from));
            bin_text(&row, t->to[0] ? t->to : NULL, strlen(t->to));
            bin_numeric(&row, t->value);
            bin_numeric(&row, t->gas);
            bin_numeric(&row, t->gas_price);
            if (t->block_number < 0)
                bin_null(&row);
            else
                bin_int8(&row, t->block_number);
            bin_time(&row, t->timestamp);
            if (scored) {
                bin_float8(&row, score);
                bin_int4(&row, m->model_id);
            } else {
                bin_null(&row);
                bin_null(&row);
            }
            bin_text(&row, topic, topic_len);
            bin_int4(&row, msg->partition);
            bin_int8(&row, msg->offset);
            if (x)
                bin_features(&row, x);
            else
                bin_null(&row);
            cw_strbuf_append(tx, (const char *) row.buf, row.len);
            if (scored && score > threshold) {
                cw_strbuf *o = anomalies;
                snprintf(score_buf, sizeof(score_buf), "%.17g", score);
                put_field(o, t->hash, false);
                put_field(o, t->from[0] ? t->from : NULL, false);
                put_field(o, t->to[0] ? t->to : NULL, false);
                put_field(o, t->value, false);
                put_field(o, t->gas, false);
                put_field(o, t->gas_price, false);
                put_int(o, t->block_number, t->block_number < 0, false);
                put_time(o, t->timestamp, false);
                put_field(o, score_buf, false);
                put_field(o, model_buf, false);
                int sev = severity_of(m, score, t->value, t->gas_price);
                put_field(o, severity_names[sev], false);
                counts->by_severity[sev]++;
                counts->anomalies++;
                put_field(o, topic, false);
                put_int(o, msg->partition, false, false);
                put_int(o, msg->offset, false, false);
                put_features(o, x, true);
            }
            counts->rows++;
            if (!scored)
                counts->unscored++;
            if (sink && flushed == 0 && tx->len >= sink->flush_at)
                flushed = sink->flush(sink->ctx, tx);
        }
    }
    cw_strbuf_append(tx, "\xff\xff", 2); /* int16 -1: the end of the binary COPY data */
    return flushed;
}
