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

typedef struct batch_item {
    ingest_msg *msg; /* owned by the batch */
    bool decoded;
    cw_tx *txs; /* owned; n_txs rows when the message decoded */
    size_t n_txs;
    bool dead;       /* goes to dead_letters */
    int dead_reason; /* cw_decode_reason, or DEAD_REASON_DB_REJECTED */
    char dead_error[256];
    size_t first_score; /* index of its first row in batch.scores */
} batch_item;

typedef struct batch {
    batch_item *items;
    size_t n, cap;
    double *features; /* 3 per row */
    double *scores;
    size_t rows_cap;
    int scored_with; /* model id the scores belong to; -1 not scored */
} batch;

typedef struct batch_counts {
    size_t rows, anomalies, dead;
    size_t by_severity[4];
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
/* batch_score scores every row with m (no-op without a model); -1 on ENOMEM */
int batch_score(batch *b, const loaded_model *m);
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
