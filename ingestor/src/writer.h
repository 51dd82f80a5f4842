/* ingestor/src/writer.h — the writer threads: one PGconn and one bounded queue each */
#ifndef INGESTOR_WRITER_H
#define INGESTOR_WRITER_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "commit.h"
#include "partitions.h"
#include "queue.h"
#include "settings.h"
#include "stats.h"
#include "txn.h"

/* what the writers tell others: set before writers_start, called from the writer threads */
typedef struct writer_hooks {
    /* committed: the ranges of a batch just committed (the poll thread's Kafka commit) */
    void (*committed)(void *ctx, const offset_range *ranges, int n);
    void *committed_ctx;
    /* maintenance_now: a partition is missing; ask the maintenance owner to run now */
    void (*maintenance_now)(void *ctx);
    void *maintenance_ctx;
} writer_hooks;

struct writer_pool;

typedef struct writer {
    struct writer_pool *pool;
    int id;
    pthread_t thread;
    bool started;
    msg_queue queue;     /* fed by the poll thread; the writer takes messages out */
    PGconn *conn;        /* owned by this writer's thread */
    committer committer; /* its retry loop and model (this thread's) */
} writer;

/* the writers and what they share: settings, the queues' budget and the load slots */
typedef struct writer_pool {
    const ingestor_settings *cfg;
    partitions *parts;
    ingest_stats *stats;
    writer_hooks hooks;
    int n;
    writer *w;
    queue_budget budget;  /* KAFKA_MAX_QUEUE_SIZE, shared by the writers' queues */
    load_slots slots;     /* COPY_CONCURRENCY */
    _Atomic bool finish;  /* commit what is queued, then exit (the poll thread sets it) */
    _Atomic bool abandon; /* shutdown timed out: stop retrying at once */
    _Atomic int running;  /* writer threads alive */
} writer_pool;

/* writers_init creates cfg->kafka_num_worker_threads writers and their queues, no thread yet;
 * -1 with err (what was made is freed by writers_free) */
int writers_init(writer_pool *pool, const ingestor_settings *cfg, partitions *parts,
                 ingest_stats *stats, const writer_hooks *hooks, char *err, size_t errlen);
/* writers_start starts the threads */
int writers_start(writer_pool *pool, char *err, size_t errlen);

/* the poll thread's side: routing (partition p always goes to the same writer, so its order is
 * kept), back-pressure and revocation */
bool writers_push(writer_pool *pool, ingest_msg *m, int wait_ms);
/* writers_has_room: p's writer has room to take a kept-aside message again (half the budget
 * free, for hysteresis) */
bool writers_has_room(writer_pool *pool, int32_t p);
/* writers_drop destroys every queued message whose partition revoked(p, arg) says is revoked;
 * returns how many */
size_t writers_drop(writer_pool *pool, bool (*revoked)(int32_t p, void *arg), void *arg);

/* writers_finish: commit what is queued and exit (no more messages will be pushed) */
void writers_finish(writer_pool *pool);
/* writers_abandon: stop retrying (the shutdown timed out) */
void writers_abandon(writer_pool *pool);
/* writers_done: every thread started has exited (writers_join then returns at once) */
bool writers_done(writer_pool *pool);
void writers_join(writer_pool *pool);
void writers_free(writer_pool *pool);
/* writers_idle: no writer has a message queued or in hand (every popped one is settled) */
bool writers_idle(writer_pool *pool);
size_t writers_queued(writer_pool *pool);

#endif /* INGESTOR_WRITER_H */
