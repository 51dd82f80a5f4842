/* ingestor/src/stats.h — the ingestor's counters and health flags: atomics that any thread updates
 */
#ifndef INGESTOR_STATS_H
#define INGESTOR_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "batch.h"
#include "metrics.h"
#include "model.h"

/* why a row was stored without a score (label of chainwatch_ingest_unscored_rows_total) */
typedef enum unscored_reason {
    UNSCORED_NO_MODEL,       /* no model is active (a cold start) */
    UNSCORED_UNUSABLE_MODEL, /* the active model cannot be used by the ingestor */
    N_UNSCORED_REASONS,
} unscored_reason;

/* counters behind /metrics and the stats log line; owned by main, written by every thread */
typedef struct ingest_stats {
    _Atomic uint64_t messages_ok;      /* committed as transactions */
    _Atomic uint64_t messages_dead;    /* committed as dead letters */
    _Atomic uint64_t messages_skipped; /* already committed by someone (replay) or revoked */
    _Atomic uint64_t messages_dropped; /* refused with their dead letters: offset committed alone */
    _Atomic uint64_t rows;
    _Atomic uint64_t unscored_rows[N_UNSCORED_REASONS];
    _Atomic uint64_t anomalies[N_SEVERITIES];
    _Atomic uint64_t dead_letters[N_DEAD_REASONS];
    _Atomic uint64_t batches;
    _Atomic uint64_t db_errors;
    _Atomic uint64_t model_reloads;
    _Atomic uint64_t paused_total;
    cw_histogram batch_duration;
    _Atomic bool db_up;           /* the last database attempt worked */
    _Atomic int unusable_model;   /* id of an active model the writers cannot score with; 0: none */
    _Atomic int64_t heartbeat_ms; /* main loop liveness (/health/live) */
    _Atomic bool shutting_down;
} ingest_stats;

/* ingest_stats_init zeroes every counter and sets up the batch histogram */
static inline void ingest_stats_init(ingest_stats *st)
{
    memset(st, 0, sizeof(*st));
    cw_histogram_init(&st->batch_duration, cw_latency_buckets, cw_latency_buckets_n);
}

#endif /* INGESTOR_STATS_H */
