/* apiserver/src/slotq.c — a first-come-first-served set of slot numbers with timed waits
 *
 * Why not a mutex, a free list and one condition variable. That is what the connection pool used,
 * and under load it is unfair: a thread releasing a connection signals a waiter, but before the
 * waiter has been scheduled the releasing thread (its keep-alive client has already sent the next
 * request) or a newly arrived one takes the slot again. The same few threads keep the connections
 * while the others wait round after round. Measured with wrk, 50 connections, DB_POOL_SIZE=8,
 * uncached predict, three runs each: p99 20-41 ms and p99.9 260-590 ms before, 6.5-7.6 ms and
 * 10-74 ms with the hand-off below, at the same or higher throughput (14.6-16.9k -> 15.8-17.2k
 * req/s). The uncached list's p90 went from 22-25 ms to 16-19 ms; its p99 did not move, because
 * that tail is Postgres backends queueing for a core (schedstat over 8 s: the 8 backends ran 10 s
 * and waited 46 s on the run queue, and single executions took up to 420 ms): with Postgres on
 * the same 2 cores, DB_POOL_SIZE=4 brings that p99 to about 20 ms (docs/api.md).
 *
 * Hand-off. A waiter queues a record on its own stack (a condition variable and a "given" field)
 * at the tail of a FIFO. slotq_give, when anyone waits, writes the slot into the head waiter's
 * record and signals that waiter alone; the slot never passes through the free set, so nobody can
 * barge in front of it. slotq_take only takes from the free set when nobody waits, which holds
 * whenever the free set is not empty. Free slots are a stack (the last given back is the next
 * taken, so warm connections are reused first).
 *
 * Timeouts. A waiter whose deadline passes unlinks itself under the mutex; if a slot was handed to
 * it in the meantime it keeps the slot, so a hand-off is never lost. Records live on the waiter's
 * stack: slotq_give signals under the mutex, and a waiter leaves only after re-taking the mutex,
 * so a record is never touched after its owner returned.
 */
#include "slotq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "monoclock.h"

typedef struct waiter {
    pthread_cond_t cv;
    int given; /* the slot handed over, -1 until then */
    struct waiter *next;
} waiter;

struct slotq {
    pthread_mutex_t mu;
    pthread_condattr_t cv_attr; /* CLOCK_MONOTONIC, for the waiters' condition variables */
    int *free_slots;            /* stack of free slot numbers */
    int n_free;
    int n_waiting;
    waiter *head, *tail; /* FIFO of waiters */
};

slotq *slotq_create(int n)
{
    slotq *q = calloc(1, sizeof(*q));
    if (!q || !(q->free_slots = calloc((size_t) (n > 0 ? n : 1), sizeof(int)))) {
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&q->cv_attr);
    pthread_condattr_setclock(&q->cv_attr, CLOCK_MONOTONIC);
    /* pushed so that slot 0 is taken first */
    for (int i = 0; i < n; i++)
        q->free_slots[q->n_free++] = n - 1 - i;
    return q;
}

void slotq_destroy(slotq *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_condattr_destroy(&q->cv_attr);
    free(q->free_slots);
    free(q);
}

/* unlink removes w from the FIFO (it timed out); called with the mutex held */
static void unlink_waiter(slotq *q, waiter *w)
{
    waiter *prev = NULL;
    for (waiter *it = q->head; it; prev = it, it = it->next) {
        if (it != w)
            continue;
        if (prev)
            prev->next = w->next;
        else
            q->head = w->next;
        if (q->tail == w)
            q->tail = prev;
        q->n_waiting--;
        return;
    }
}

int slotq_take(slotq *q, long wait_ms)
{
    struct timespec deadline = cw_deadline_ms(wait_ms);

    pthread_mutex_lock(&q->mu);
    if (q->n_free > 0) {
        int slot = q->free_slots[--q->n_free];
        pthread_mutex_unlock(&q->mu);
        return slot;
    }
    waiter w = {.given = -1, .next = NULL};
    pthread_cond_init(&w.cv, &q->cv_attr);
    if (q->tail)
        q->tail->next = &w;
    else
        q->head = &w;
    q->tail = &w;
    q->n_waiting++;
    while (w.given < 0) {
        if (pthread_cond_timedwait(&w.cv, &q->mu, &deadline) == ETIMEDOUT && w.given < 0) {
            unlink_waiter(q, &w);
            break;
        }
    }
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&w.cv);
    return w.given;
}

void slotq_give(slotq *q, int slot)
{
    pthread_mutex_lock(&q->mu);
    waiter *w = q->head;
    if (w) {
        q->head = w->next;
        if (!q->head)
            q->tail = NULL;
        q->n_waiting--;
        w->given = slot;
        pthread_cond_signal(&w->cv);
    } else {
        q->free_slots[q->n_free++] = slot;
    }
    pthread_mutex_unlock(&q->mu);
}

int slotq_waiting(slotq *q)
{
    pthread_mutex_lock(&q->mu);
    int n = q->n_waiting;
    pthread_mutex_unlock(&q->mu);
    return n;
}
