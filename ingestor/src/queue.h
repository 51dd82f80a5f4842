/* ingestor/src/queue.h — bounded FIFO of Kafka messages between the poll thread and one writer */
#ifndef INGESTOR_QUEUE_H
#define INGESTOR_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

/*
 * ingest_msg is a Kafka message copied out of librdkafka as soon as it is polled: librdkafka's
 * messages point into shared fetch buffers, and holding thousands of them across batches would
 * keep many whole fetch responses resident. One malloc per message: header and payload.
 */
typedef struct ingest_msg {
    int32_t partition;
    uint32_t
        generation; /* the partition's assignment generation when it was polled (partitions.h) */
    int64_t offset;
    size_t len;
    char payload[]; /* len bytes, not NUL-terminated */
} ingest_msg;

/* ingest_msg_copy copies what the ingestor needs of a librdkafka message; NULL on ENOMEM */
struct rd_kafka_message_s;
ingest_msg *ingest_msg_copy(const struct rd_kafka_message_s *m);
void ingest_msg_free(ingest_msg *m);

/*
 * A queue_budget bounds the messages held by several queues together (KAFKA_MAX_QUEUE_SIZE over
 * all writers). A fixed share per queue made the poll thread wait on whichever writer was busy
 * committing while the others ran dry; with one budget a busy writer's queue can grow into what
 * the idle ones do not use, and the poll thread waits only when all of them together are full.
 */
typedef struct queue_budget {
    pthread_mutex_t lock;
    pthread_cond_t room; /* broadcast whenever messages leave a queue */
    size_t used, limit;
} queue_budget;

int queue_budget_init(queue_budget *b, size_t limit);
void queue_budget_destroy(queue_budget *b);

/*
 * A ring buffer of ingest_msg pointers with a fixed capacity, optionally drawing on a shared
 * budget too. The queue owns the messages it holds: queue_push transfers ownership in (only when
 * it returns true), queue_pop_wait transfers it out, queue_purge destroys what it removes.
 */
typedef struct msg_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    pthread_cond_t nonfull;
    ingest_msg **items;
    size_t capacity, head, count;
    size_t wake_at;       /* a waiting consumer wants this many before being woken */
    bool woken;           /* queue_wake: waiters return now */
    bool held;            /* the consumer has popped messages it has not settled (queue_settled) */
    queue_budget *budget; /* NULL: bounded by capacity alone */
} msg_queue;

/* queue_init: a queue of at most capacity messages and, when budget is not NULL, no more than the
 * budget has left (a queue's capacity is then usually the budget's limit) */
int queue_init(msg_queue *q, size_t capacity, queue_budget *budget);
void queue_destroy(msg_queue *q); /* destroys remaining messages */
/* queue_push appends m; false (ownership stays with the caller) when full */
bool queue_push(msg_queue *q, ingest_msg *m);
/* queue_push_wait is queue_push waiting up to timeout_ms for room */
bool queue_push_wait(msg_queue *q, ingest_msg *m, int timeout_ms);
/* queue_pop_wait removes the oldest message, waiting up to timeout_ms; NULL on timeout */
ingest_msg *queue_pop_wait(msg_queue *q, int timeout_ms);
/*
 * queue_pop_many waits up to timeout_ms until the queue holds at least `want` messages (capped at
 * its capacity), then moves up to max of them into out and returns how many (possibly fewer
 * than want, or 0, at the timeout). Producers wake the waiter only when `want` is reached, so a
 * writer is woken about once per batch instead of once per message.
 */
size_t queue_pop_many(msg_queue *q, ingest_msg **out, size_t max, size_t want, int timeout_ms);
size_t queue_count(msg_queue *q);
/*
 * queue_settled: the consumer is done with every message it popped (committed or dropped them).
 * queue_idle is true when the queue is empty and nothing popped is unsettled; a pop marks its
 * messages held under the queue's lock, so no moment exists where popped messages are neither
 * counted nor held (the --drain check relies on that).
 */
void queue_settled(msg_queue *q);
bool queue_idle(msg_queue *q);
/* queue_free: how many more messages queue_push would take now (its room, or the budget's) */
size_t queue_free(msg_queue *q);
/* queue_purge destroys every message for which drop(m, arg) is true; returns how many */
size_t queue_purge(msg_queue *q, bool (*drop)(const ingest_msg *, void *), void *arg);
/* queue_wake wakes a waiting consumer (used at shutdown) */
void queue_wake(msg_queue *q);

#endif /* INGESTOR_QUEUE_H */
