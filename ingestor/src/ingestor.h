/* ingestor/src/ingestor.h — state shared by the ingestor's threads: ownership, counters, lifecycle
 */
#ifndef INGESTOR_INGESTOR_H
#define INGESTOR_INGESTOR_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "metrics.h"
#include "monoclock.h"
#include "nudge.h"
#include "queue.h"
#include "settings.h"
#include "txdecode.h"

#define MAX_PARTITIONS          4096
#define N_SEVERITIES            4
#define DEAD_REASON_DB_REJECTED CW_DECODE_REASONS /* a row the database refused */
#define N_DEAD_REASONS          (CW_DECODE_REASONS + 1)

/* counters behind /metrics and the stats log line; all atomics, written by any thread */
typedef struct ingest_stats {
    _Atomic uint64_t messages_ok;      /* committed as transactions */
    _Atomic uint64_t messages_dead;    /* committed as dead letters */
    _Atomic uint64_t messages_skipped; /* already committed by someone (replay) or revoked */
    _Atomic uint64_t rows;
    _Atomic uint64_t anomalies[N_SEVERITIES];
    _Atomic uint64_t dead_letters[N_DEAD_REASONS];
    _Atomic uint64_t batches;
    _Atomic uint64_t db_errors;
    _Atomic uint64_t model_reloads;
    _Atomic uint64_t paused_total;
    cw_histogram batch_duration;
} ingest_stats;

struct writer;

/* the store's size and evictions as chainwatch.status() reported them at the last refresh */
#define N_STORE_TABLES 3
typedef struct store_gauge {
    char table[16];
    _Atomic int64_t rows, max_rows, evicted_ttl, evicted_size;
} store_gauge;

typedef struct ingestor {
    ingestor_settings *cfg;
    rd_kafka_t *rk;
    int n_writers;
    struct writer *writers;
    queue_budget queue_budget; /* KAFKA_MAX_QUEUE_SIZE, shared by the writers' queues */
    sem_t copy_slots;          /* COPY_CONCURRENCY writers may load at once (see writer.c) */
    bool copy_limited;         /* copy_slots is in use: COPY_CONCURRENCY < writers */

    /*
     * Partition ownership. The rebalance callback clears owned[p] and then takes assign_lock
     * for writing; writers hold it for reading from the moment they filter a batch by owned[]
     * until its transaction has ended. So once the revoke callback returns, no transaction that
     * still contains rows of a revoked partition can commit.
     */
    pthread_rwlock_t assign_lock;
    _Atomic bool owned[MAX_PARTITIONS];
    _Atomic int64_t committed[MAX_PARTITIONS]; /* next offset stored in Postgres; -1 unknown */
    _Atomic int64_t floor[MAX_PARTITIONS];     /* messages below are already stored: skip */
    _Atomic int assigned;

    /* lifecycle */
    _Atomic bool stop_polling; /* poll thread: stop fetching (shutdown) */
    _Atomic bool writers_stop; /* writers: flush what is queued, commit, exit */
    _Atomic bool drained;      /* --drain: everything assigned is consumed and committed */
    _Atomic bool shutting_down;
    _Atomic bool db_up;
    _Atomic bool consumer_running;
    _Atomic int threads_active;
    _Atomic int64_t heartbeat_ms; /* main loop liveness */

    fetch_nudger nudger; /* owned by the poll thread (consumer_main) */

    ingest_stats stats;
    store_gauge store[N_STORE_TABLES];
    _Atomic int n_store; /* entries filled */
} ingestor;

/* pg_connect opens a connection from DATABASE_URL with a 5 s connect timeout */
struct pg_conn;
struct pg_conn *pg_connect(const char *url, const char *application_name);
/* sleep_ms_unless sleeps up to ms, waking early when *flag becomes true */
void sleep_ms_unless(long ms, _Atomic bool *flag);

/* consumer.c — the poll thread */
int consumer_create(ingestor *ing, char *err, size_t errlen);
void *consumer_main(void *arg);
void consumer_close(ingestor *ing);

/* observe.c — HTTP listener and stats log line */
int observe_start(ingestor *ing, char *err, size_t errlen);
void observe_stop(void);
void observe_log_stats(ingestor *ing);

#endif /* INGESTOR_INGESTOR_H */
