/* ingestor/src/queue.c — bounded message FIFO with a condition variable; the only memory between
 * threads */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monoclock.h"

/* cond_init_monotonic: a condition variable whose timed waits use CLOCK_MONOTONIC deadlines */
static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

int queue_budget_init(queue_budget *b, size_t limit)
{
    b->used = 0;
    b->limit = limit ? limit : 1;
    pthread_mutex_init(&b->lock, NULL);
    cond_init_monotonic(&b->room);
    return 0;
}

void queue_budget_destroy(queue_budget *b)
{
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->room);
}

/* budget_take reserves room for one message; false when the budget is spent */
static bool budget_take(queue_budget *b)
{
    pthread_mutex_lock(&b->lock);
    bool ok = b->used < b->limit;
    if (ok)
        b->used++;
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* budget_give returns n messages' room and wakes a producer waiting for it */
static void budget_give(queue_budget *b, size_t n)
{
    if (!b || n == 0)
        return;
    pthread_mutex_lock(&b->lock);
    b->used -= n < b->used ? n : b->used;
    pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->lock);
}

int queue_init(msg_queue *q, size_t capacity, queue_budget *budget)
{
    q->budget = budget;
    q->items = calloc(capacity ? capacity : 1, sizeof(ingest_msg *));
    if (!q->items)
        return -1;
    q->capacity = capacity ? capacity : 1;
    q->head = q->count = 0;
    q->wake_at = 1;
    q->woken = false;
    q->held = false;
    pthread_mutex_init(&q->lock, NULL);
    cond_init_monotonic(&q->nonempty);
    cond_init_monotonic(&q->nonfull);
    return 0;
}

void queue_destroy(msg_queue *q)
{
    if (!q->items)
        return;
    for (size_t i = 0; i < q->count; i++)
        ingest_msg_free(q->items[(q->head + i) % q->capacity]);
    budget_give(q->budget, q->count);
    free(q->items);
    q->items = NULL;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->nonempty);
    pthread_cond_destroy(&q->nonfull);
}

/*
 * lazy_deadline: a CLOCK_MONOTONIC deadline timeout_ms after its first use. Reading the clock costs
 * ~0.2 us on this VM and the poll thread pushes every message, so it is read only when a caller
 * is about to wait, not on every call.
 */
typedef struct lazy_deadline {
    int timeout_ms;
    bool set;
    struct timespec at;
} lazy_deadline;

/* deadline_get returns the deadline, reading the clock on the first call */
static const struct timespec *deadline_get(lazy_deadline *d)
{
    if (!d->set) {
        d->at = cw_deadline_ms(d->timeout_ms);
        d->set = true;
    }
    return &d->at;
}

bool queue_push_wait(msg_queue *q, ingest_msg *m, int timeout_ms)
{
    lazy_deadline dl = {.timeout_ms = timeout_ms > 0 ? timeout_ms : 0};
    queue_budget *b = q->budget;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        /* with a budget, count <= used <= limit: only the budget can be full */
        while (!b && q->count >= q->capacity && timeout_ms > 0) {
            if (pthread_cond_timedwait(&q->nonfull, &q->lock, deadline_get(&dl)) == ETIMEDOUT)
                break;
        }
        if (q->count < q->capacity && (!b || budget_take(b))) {
            q->items[(q->head + q->count) % q->capacity] = m;
            q->count++;
            if (q->count >= q->wake_at)
                pthread_cond_signal(&q->nonempty);
            pthread_mutex_unlock(&q->lock);
            return true;
        }
        pthread_mutex_unlock(&q->lock);
        if (!b || timeout_ms <= 0)
            return false;
        /* wait for any queue sharing the budget to give some back */
        bool timed_out = false;
        pthread_mutex_lock(&b->lock);
        while (b->used >= b->limit && !timed_out)
            timed_out = pthread_cond_timedwait(&b->room, &b->lock, deadline_get(&dl)) == ETIMEDOUT;
        pthread_mutex_unlock(&b->lock);
        if (timed_out)
            timeout_ms = 0; /* one last try, then give up */
    }
}

size_t queue_pop_many(msg_queue *q, ingest_msg **out, size_t max, size_t want, int timeout_ms)
{
    lazy_deadline dl = {.timeout_ms = timeout_ms > 0 ? timeout_ms : 0};
    size_t n = 0;

    if (want > q->capacity)
        want = q->capacity;
    if (want < 1)
        want = 1;
    pthread_mutex_lock(&q->lock);
    q->wake_at = want;
    while (q->count < want && timeout_ms > 0 && !q->woken) {
        if (pthread_cond_timedwait(&q->nonempty, &q->lock, deadline_get(&dl)) == ETIMEDOUT)
            break;
    }
    q->woken = false;
    q->wake_at = 1;
    while (n < max && q->count > 0) {
        out[n++] = q->items[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
    }
    if (n > 0) {
        q->held = true;
        pthread_cond_broadcast(&q->nonfull);
    }
    pthread_mutex_unlock(&q->lock);
    budget_give(q->budget, n);
    return n;
}

bool queue_push(msg_queue *q, ingest_msg *m)
{
    return queue_push_wait(q, m, 0);
}

ingest_msg *queue_pop_wait(msg_queue *q, int timeout_ms)
{
    ingest_msg *m = NULL;
    lazy_deadline dl = {.timeout_ms = timeout_ms > 0 ? timeout_ms : 0};

    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && timeout_ms > 0 && !q->woken) {
        if (pthread_cond_timedwait(&q->nonempty, &q->lock, deadline_get(&dl)) == ETIMEDOUT)
            break;
    }
    q->woken = false;
    if (q->count > 0) {
        m = q->items[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        q->held = true;
        pthread_cond_signal(&q->nonfull);
    }
    pthread_mutex_unlock(&q->lock);
    if (m)
        budget_give(q->budget, 1);
    return m;
}

size_t queue_count(msg_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t queue_free(msg_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->capacity - q->count;
    pthread_mutex_unlock(&q->lock);
    if (q->budget) {
        pthread_mutex_lock(&q->budget->lock);
        size_t left = q->budget->limit - q->budget->used;
        pthread_mutex_unlock(&q->budget->lock);
        n = left < n ? left : n;
    }
    return n;
}

size_t queue_purge(msg_queue *q, bool (*drop)(const ingest_msg *, void *), void *arg)
{
    size_t kept = 0, dropped = 0;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->count; i++) {
        ingest_msg *m = q->items[(q->head + i) % q->capacity];
        if (drop(m, arg)) {
            ingest_msg_free(m);
            dropped++;
        } else {
            q->items[(q->head + kept) % q->capacity] = m;
            kept++;
        }
    }
    q->count = kept;
    if (dropped)
        pthread_cond_broadcast(&q->nonfull);
    pthread_mutex_unlock(&q->lock);
    budget_give(q->budget, dropped);
    return dropped;
}

void queue_settled(msg_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->held = false;
    pthread_mutex_unlock(&q->lock);
}

bool queue_idle(msg_queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool idle = q->count == 0 && !q->held;
    pthread_mutex_unlock(&q->lock);
    return idle;
}

void queue_wake(msg_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->woken = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}
