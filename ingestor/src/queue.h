/* ingestor/src/queue.h — bounded FIFO of Kafka messages between the poll thread and one writer */
#ifndef INGESTOR_QUEUE_H
#define INGESTOR_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

/*
 * A ring buffer of rd_kafka_message_t pointers with a fixed capacity. The queue owns the
 * messages it holds: queue_push transfers ownership in (only when it returns true),
 * queue_pop_wait transfers it out, queue_purge destroys what it removes.
 */
typedef struct msg_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    rd_kafka_message_t **items;
    size_t capacity, head, count;
} msg_queue;

int queue_init(msg_queue *q, size_t capacity);
void queue_destroy(msg_queue *q); /* destroys remaining messages */
/* queue_push appends m; false (ownership stays with the caller) when full */
bool queue_push(msg_queue *q, rd_kafka_message_t *m);
/* queue_pop_wait removes the oldest message, waiting up to timeout_ms; NULL on timeout */
rd_kafka_message_t *queue_pop_wait(msg_queue *q, int timeout_ms);
size_t queue_count(msg_queue *q);
size_t queue_free(msg_queue *q);
/* queue_purge destroys every message for which drop(m, arg) is true; returns how many */
size_t queue_purge(msg_queue *q, bool (*drop)(const rd_kafka_message_t *, void *), void *arg);
/* queue_wake wakes a waiting consumer (used at shutdown) */
void queue_wake(msg_queue *q);

#endif /* INGESTOR_QUEUE_H */
