/* ingestor/src/writer.h — writer threads: one PGconn and one bounded queue each */
#ifndef INGESTOR_WRITER_H
#define INGESTOR_WRITER_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "batch.h"
#include "ingestor.h"
#include "model.h"
#include "queue.h"

/* one partition's offsets in a batch: [first, next) */
typedef struct offset_range {
    int32_t partition;
    int64_t first, next;
} offset_range;

typedef struct writer {
    ingestor *ing;
    int id;
    pthread_t thread;
    bool started;
    msg_queue queue;      /* fed by the poll thread */
    _Atomic bool abandon; /* shutdown timed out: stop retrying */
    PGconn *conn;         /* owned by this thread */
    loaded_model model;   /* this thread's copy of the active model */
    int32_t *slot;        /* MAX_PARTITIONS entries, -1 = unused (scratch for batch_ranges) */
    offset_range *ranges; /* the current batch's partitions */
    int n_ranges;
} writer;

/* writers_start creates ing->n_writers queues and threads */
int writers_start(ingestor *ing, char *err, size_t errlen);
/* writers_finish tells the writers to commit what they hold and finish, waking any that wait */
void writers_finish(ingestor *ing);
/* writers_join finishes the writers (writers_finish) and waits for them */
void writers_join(ingestor *ing);
void writers_free(ingestor *ing);
/* writers_idle: no writer has a message queued or in hand (every popped one is settled) */
bool writers_idle(ingestor *ing);

/* writer_run_maintenance calls chainwatch.maintain() on conn (creates missing partitions); a
 * failure is logged with Postgres's or libpq's reason */
void writer_run_maintenance(PGconn *conn);
size_t writers_queued(ingestor *ing);

#endif /* INGESTOR_WRITER_H */
