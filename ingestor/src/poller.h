/* ingestor/src/poller.h — the poll thread: the Kafka consumer handle, its callbacks and the poll
 * loop */
#ifndef INGESTOR_POLLER_H
#define INGESTOR_POLLER_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "consumer.h"
#include "nudge.h"
#include "partitions.h"
#include "settings.h"
#include "stats.h"
#include "writer.h"

/* the poll thread's world: everything here but the atomics belongs to that thread once started */
typedef struct poller {
    const ingestor_settings *cfg;
    rd_kafka_t *rk;       /* created by poller_create, destroyed by the poll thread at its end */
    consumer consumer;    /* the decisions (consumer.c) */
    writer_pool *writers; /* where messages go (not owned) */
    PGconn *offsets_conn; /* for the assignment's stored offsets */
    fetch_nudger nudger;  /* wakes librdkafka's fetchers (nudge.c) */
    pthread_t thread;
    bool started;
    _Atomic bool stop;     /* main: stop fetching, finish the writers, close */
    _Atomic bool running;  /* polling (/health/ready) */
    _Atomic bool drained;  /* --drain: everything assigned was consumed and committed */
    _Atomic bool finished; /* the thread has closed the consumer and is about to return */
} poller;

/* poller_create builds the Kafka consumer and subscribes; 0, or -1 with err */
int poller_create(poller *pl, const ingestor_settings *cfg, partitions *parts, writer_pool *writers,
                  ingest_stats *stats, char *err, size_t errlen);
/* poller_start starts the poll thread */
int poller_start(poller *pl, char *err, size_t errlen);
/* poller_stop asks the thread to stop polling; it then tells the writers to finish, waits for
 * them, leaves the group and destroys the handle, and sets finished. Never blocks. */
void poller_stop(poller *pl);
bool poller_finished(poller *pl);
/* poller_join waits for the thread (after poller_finished: returns at once) */
void poller_join(poller *pl);
/* poller_failed: a fatal Kafka error (or an untrackable partition) happened */
bool poller_failed(poller *pl, char *why, size_t len);
/* poller_committed is the writers' committed hook: offsets to Kafka, for lag tooling only */
void poller_committed(void *ctx, const offset_range *ranges, int n);
/* poller_nudges: fetch nudges sent so far */
uint64_t poller_nudges(poller *pl);
/* poller_free releases what poller_create made if the thread never ran */
void poller_free(poller *pl);

#endif /* INGESTOR_POLLER_H */
