/* ingestor/src/nudge.h — wakes librdkafka's fetchers once its prefetch queue has drained */
#ifndef INGESTOR_NUDGE_H
#define INGESTOR_NUDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct fetch_nudger {
    rd_kafka_t *rk;
    char *topic;
    rd_kafka_queue_t *consumer_queue; /* what the poll thread reads */
    size_t prefetch_bytes;            /* queued.max.messages.kbytes, in bytes */
    /* the poll thread's view (only it touches these) */
    double avg_len;    /* moving average of message sizes */
    size_t peak;       /* longest consumer queue since the last nudge */
    int64_t nudged_at; /* ms */
    unsigned passes;   /* nudger_check calls, to sample the queue's length */
    /* hand-off to the nudging thread */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wanted, stop, started;
    /* the nudging thread's: each partition's leader (broker id, -1 unknown), from metadata */
    int32_t *leader;
    int n_leader;
    int64_t leaders_at;      /* ms; 0: never read */
    _Atomic uint64_t nudges; /* nudges sent (chainwatch_ingest_fetch_nudges_total) */
} fetch_nudger;

/* nudger_start starts the nudging thread for rk's consumer of topic; 0, or -1 (then nothing runs)
 */
int nudger_start(fetch_nudger *n, rd_kafka_t *rk, const char *topic);

/*
 * nudger_check is called by the poll thread on every pass with the size of the message it just
 * polled (0 when none): when the prefetch had filled up and has now drained, it asks the nudging
 * thread to wake the fetchers (at most every NUDGE_MIN_INTERVAL_MS).
 */
void nudger_check(fetch_nudger *n, size_t msg_len);

/* nudger_now asks for a nudge at once (after resuming paused partitions) */
void nudger_now(fetch_nudger *n);

/* nudger_stop stops and joins the thread (waits for a nudge in flight, at most ~0.5 s) */
void nudger_stop(fetch_nudger *n);

#endif /* INGESTOR_NUDGE_H */
