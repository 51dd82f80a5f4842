/* ingestor/src/maintenance.h — the maintenance thread: chainwatch.maintain() where no server worker
 * runs it, and the store gauges */
#ifndef INGESTOR_MAINTENANCE_H
#define INGESTOR_MAINTENANCE_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "settings.h"
#include "stats.h"

/* maintenance_runs_maintain: does this process call maintain(), given the mode, whether a
 * server worker is seen (-1 unknown, 0 no, 1 yes) and MAINTENANCE_INTERVAL_MS (0 = never) */
bool maintenance_runs_maintain(maintenance_mode mode, int worker_seen, long interval_ms);

/* the store's size and evictions as chainwatch.status() reported them at the last refresh */
#define N_STORE_TABLES 4
typedef struct store_gauge {
    char table[24]; /* written once, before n_store counts it */
    _Atomic int64_t rows, max_rows, evicted_ttl, evicted_size;
} store_gauge;

typedef struct maintenance {
    const ingestor_settings *cfg;
    ingest_stats *stats;
    maintenance_mode mode;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* CLOCK_MONOTONIC */
    bool wanted;             /* under mu: a writer asked for maintain() now */
    _Atomic bool stop;       /* main: cancel what runs and exit */
    _Atomic bool finished;   /* the thread is about to return */
    _Atomic int worker_seen; /* -1 unknown, 0 no, 1 a `chainwatch maintenance` worker runs */
    PGconn *conn;            /* the thread's own */
    store_gauge store[N_STORE_TABLES];
    _Atomic int n_store; /* entries filled */
} maintenance;

/* maintenance_start starts the thread; -1 with err */
int maintenance_start(maintenance *m, const ingestor_settings *cfg, ingest_stats *stats, char *err,
                      size_t errlen);
/* maintenance_request is the writers' hook for a missing partition: run maintain() now if this
 * process is the maintainer (coalesced: several requests make one run); never blocks for long */
void maintenance_request(void *m);
/* maintenance_stop asks the thread to stop, cancelling a statement in flight; never blocks */
void maintenance_stop(maintenance *m);
bool maintenance_finished(maintenance *m);
/* maintenance_join waits for the thread (after maintenance_finished: returns at once) and frees */
void maintenance_join(maintenance *m);

#endif /* INGESTOR_MAINTENANCE_H */
