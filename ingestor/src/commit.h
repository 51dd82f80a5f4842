/* ingestor/src/commit.h — committing one batch: the retry loop around the batch transaction */
#ifndef INGESTOR_COMMIT_H
#define INGESTOR_COMMIT_H

#include <stdbool.h>

#include "batch.h"
#include "model.h"
#include "partitions.h"
#include "prng.h"
#include "retry.h"
#include "stats.h"
#include "txn.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/*
 * The effects of the retry loop, so that its decisions can be tested without Postgres: writer.c
 * implements them with libpq (txn.c) and the writer's hooks, the unit tests with scripts.
 */
typedef struct commit_ops {
    /* connect opens the connection unless it is open; 0 when there is one */
    int (*connect)(void *ctx);
    /* disconnect drops a connection found broken */
    void (*disconnect)(void *ctx);
    /* load_model reads the active model and rules into m; -1 with err when Postgres failed */
    int (*load_model)(void *ctx, loaded_model *m, char *err, size_t errlen);
    /* attempt runs the batch transaction once (txn_commit) */
    attempt_result (*attempt)(void *ctx, batch *b, const loaded_model *m, const range_set *rs,
                              batch_counts *counts, pg_failure *why);
    /* resync re-reads the stored offsets after a replay (CW002) into the partitions' floors */
    int (*resync)(void *ctx);
    /* maintenance_now asks the maintenance owner to create partitions now (it may be the server's
     * worker, which cannot be asked: then this does nothing) */
    void (*maintenance_now)(void *ctx);
    /* committed hands the stored ranges on after COMMIT (Kafka's informational offsets) */
    void (*committed)(void *ctx, const range_set *rs);
    /* sleep waits ms before the next attempt; false when the process gave up on us (shutdown
     * timed out): stop retrying */
    bool (*sleep)(void *ctx, long ms);
} commit_ops;

/* one writer's retry loop state; everything here belongs to the writer's thread */
typedef struct committer {
    const commit_ops *ops;
    void *ctx;
    partitions *parts;   /* ownership and floors (shared) */
    ingest_stats *stats; /* counters (shared) */
    loaded_model model;  /* this thread's copy of the active model */
    range_set ranges;    /* scratch: the batch's partitions */
    size_t max_message_bytes;
    int id;      /* writer number, for logs */
    cw_prng rng; /* backoff jitter */
} committer;

/* committer_init prepares c (seeded by id); committer_free releases the model and scratch */
void committer_init(committer *c, const commit_ops *ops, void *ctx, partitions *parts,
                    ingest_stats *stats, size_t max_message_bytes, int id);
void committer_free(committer *c);

/*
 * commit_run commits b, retrying until it is committed or holds nothing of ours any more, or the
 * process gave up (sleep returned false). It never returns with a message of ours uncommitted
 * but for that last case, whose offsets never moved (the partition's next owner reads them again).
 * b is left with the messages it committed or dropped; the caller clears it.
 */
void commit_run(committer *c, batch *b);

#endif /* INGESTOR_COMMIT_H */
