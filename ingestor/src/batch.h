/* ingestor/src/batch.h — one writer's batch: messages, their decoded rows and scores, as COPY data
 */
#ifndef INGESTOR_BATCH_H
#define INGESTOR_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"

#include "model.h"
#include "strbuf.h"
#include "txdecode.h"

#define DEAD_REASON_DB_REJECTED CW_DECODE_REASONS /* a row the database refused */
#define N_DEAD_REASONS          (CW_DECODE_REASONS + 1)

/*
 * What is stored for a message. A message the database refuses on its own (a batch of one) moves
 * one stage down per refusal, so that it is stored in some form or given up after at most three
 * refusals and never holds its partition back:
 *   ITEM_ROWS          its decoded transactions (the normal case)
 *   ITEM_DEAD_LETTER   a dead letter: the raw payload, the reason and the error text (a message
 *                      that does not decode starts here)
 *   ITEM_MINIMAL       a dead letter without the payload and with a plain ASCII error text
 *   ITEM_DROPPED       nothing: only its offset is committed (the message stays in Kafka, and the
 *                      log names its position)
 */
typedef enum item_stage {
    ITEM_ROWS,
    ITEM_DEAD_LETTER,
    ITEM_MINIMAL,
    ITEM_DROPPED,
} item_stage;

typedef struct batch_item {
    ingest_msg *msg; /* owned by the batch */
    bool decoded;
    cw_tx *txs; /* owned; n_txs rows when the message decoded */
    size_t n_txs;
    item_stage stage;
    bool dead;       /* goes to dead_letters (ITEM_DEAD_LETTER or ITEM_MINIMAL) */
    int dead_reason; /* cw_decode_reason, or DEAD_REASON_DB_REJECTED */
    char dead_error[256];
    char first_refusal[6]; /* SQLSTATE of the first refusal by the database, "" before one */
    size_t first_score;    /* index of its first row in batch.scores (and batch.history) */
} batch_item;

typedef struct batch {
    batch_item *items;
    size_t n, cap;
    double *features; /* per row the model's features: MODEL_FEATURES amounts, or the behaviour/1
                         features a model takes (at most CW_FEATURES) */
    double *scores;
    size_t rows_cap;
    int scored_with; /* model id the scores belong to; -1 not scored */
    double *history; /* CW_FEATURES per row: behaviour/1, computed in the batch's transaction */
    size_t history_cap;
    bool has_history; /* history holds this attempt's features (history_compute) */
} batch;

typedef struct batch_counts {
    size_t rows, anomalies, dead;
    size_t dropped;  /* messages given up (ITEM_DROPPED): offset only */
    size_t unscored; /* rows stored without a score (no model active, or one we cannot use) */
    size_t by_severity[N_SEVERITIES];
} batch_counts;

int batch_init(batch *b, size_t capacity);
void batch_free(batch *b);
/* batch_add takes ownership of m; -1 when the batch is full (ownership stays with caller) */
int batch_add(batch *b, ingest_msg *m);
/* batch_clear destroys every message and decoded row */
void batch_clear(batch *b);
/* batch_remove_if destroys and removes items for which pred is true; returns how many */
size_t batch_remove_if(batch *b, bool (*pred)(const batch_item *, void *), void *arg);
/* batch_decode decodes items not decoded yet (pure) */
void batch_decode(batch *b, size_t max_message_bytes);
/* batch_score scores every row with m (no-op when m has no usable forest, and for a behaviour/1
 * model until history_compute has run in the batch's transaction); -1 on ENOMEM */
int batch_score(batch *b, const loaded_model *m);
/*
 * batch_item_refused moves a message the database refused on its own one stage down (see
 * item_stage), keeping sqlstate and error (Postgres's text, cut to 200 bytes on a UTF-8 character
 * boundary) in its dead letter. Returns the new stage; ITEM_DROPPED stays ITEM_DROPPED.
 */
item_stage batch_item_refused(batch_item *it, const char *sqlstate, const char *error);
/* batch_clip_utf8 copies at most max bytes of src into dst (dstlen bytes) without cutting a UTF-8
 * sequence; bytes of src that are not valid UTF-8 become '?'. Returns the length written. */
size_t batch_clip_utf8(char *dst, size_t dstlen, const char *src, size_t max);
/* batch_copy renders the COPY data of the three tables (transactions in binary format, anomalies
 * and dead letters as text) and counts rows */
void batch_copy(const batch *b, const loaded_model *m, const char *topic, cw_strbuf *tx,
                cw_strbuf *anomalies, cw_strbuf *dead, batch_counts *counts);

/* copy_sink takes the transactions data as it is rendered: batch_copy_stream calls flush(ctx, tx)
 * whenever tx holds at least flush_at bytes (and never after a flush returned nonzero); flush
 * consumes the text and empties tx */
typedef struct copy_sink {
    size_t flush_at;
    int (*flush)(void *ctx, cw_strbuf *tx);
    void *ctx;
} copy_sink;

/* batch_copy_stream is batch_copy handing the transactions data to sink as it goes, so a
 * batch's COPY never exists in full; whatever is left in tx at the end is the caller's to send.
 * Returns the first nonzero flush result, or 0. */
int batch_copy_stream(const batch *b, const loaded_model *m, const char *topic, cw_strbuf *tx,
                      cw_strbuf *anomalies, cw_strbuf *dead, batch_counts *counts,
                      const copy_sink *sink);

#endif /* INGESTOR_BATCH_H */
