/* tests/unit/test_api_slotq.c — cmocka: the connection pool's first-come-first-served free list
 * (apiserver/src/slotq.c), with real threads */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "slotq.h"

#define LONG_WAIT_MS 10000

typedef struct taker {
    slotq *q;
    int id;
    long wait_ms;
    _Atomic int got;    /* what slotq_take returned; -2 until it returns */
    _Atomic int *order; /* ids in the order they got a slot */
    _Atomic int *n_order;
    _Atomic int *may_give; /* 0: keep the slot until the test sets it */
} taker;

static void *take_and_give(void *arg)
{
    taker *t = arg;
    int slot = slotq_take(t->q, t->wait_ms);
    atomic_store(&t->got, slot);
    if (slot < 0)
        return NULL;
    t->order[atomic_fetch_add(t->n_order, 1)] = t->id;
    while (t->may_give && !atomic_load(t->may_give))
        sched_yield();
    slotq_give(t->q, slot);
    return NULL;
}

/* start_takers starts n takers of q, the i-th waiting up to waits[i] ms, each started only once
 * the ones before it are queued (or have given up), so they queue in the order 1 .. n; with
 * may_give, each keeps its slot until *may_give is set */
static void start_takers(slotq *q, taker *t, pthread_t *th, const long *waits, int n,
                         _Atomic int *order, _Atomic int *n_order, _Atomic int *may_give)
{
    for (int i = 0; i < n; i++) {
        t[i] = (taker){q, i + 1, waits[i], -2, order, n_order, may_give};
        pthread_create(&th[i], NULL, take_and_give, &t[i]);
        for (;;) {
            int still_taking = 0;
            for (int j = 0; j <= i; j++)
                still_taking += atomic_load(&t[j].got) == -2;
            if (slotq_waiting(q) == still_taking)
                break;
            sched_yield();
        }
    }
}

static void test_free_slots_then_timeout(void **state)
{
    (void) state;
    slotq *q = slotq_create(3);
    assert_non_null(q);
    assert_int_equal(slotq_take(q, 0), 0);
    assert_int_equal(slotq_take(q, 0), 1);
    assert_int_equal(slotq_take(q, 0), 2);
    assert_int_equal(slotq_take(q, 20), -1);
    assert_int_equal(slotq_waiting(q), 0);
    /* the last given back is the next taken (warm connections first) */
    slotq_give(q, 1);
    slotq_give(q, 2);
    assert_int_equal(slotq_take(q, 0), 2);
    assert_int_equal(slotq_take(q, 0), 1);
    slotq_destroy(q);
}

static void test_waiters_served_in_arrival_order(void **state)
{
    (void) state;
    slotq *q = slotq_create(1);
    _Atomic int order[3] = {0}, n_order = 0;
    taker t[3];
    pthread_t th[3];
    assert_int_equal(slotq_take(q, 0), 0);
    const long waits[3] = {LONG_WAIT_MS, LONG_WAIT_MS, LONG_WAIT_MS};
    start_takers(q, t, th, waits, 3, order, &n_order, NULL);
    slotq_give(q, 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(n_order, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 3);
    assert_int_equal(slotq_take(q, 0), 0);
    slotq_destroy(q);
}

static void test_giver_cannot_take_back_a_handed_slot(void **state)
{
    (void) state;
    slotq *q = slotq_create(1);
    _Atomic int order[1] = {0}, n_order = 0, may_give = 0;
    pthread_t th;
    assert_int_equal(slotq_take(q, 0), 0);
    taker t;
    const long waits[1] = {LONG_WAIT_MS};
    start_takers(q, &t, &th, waits, 1, order, &n_order, &may_give);
    slotq_give(q, 0);
    /* the slot went to the waiter, whether or not it has run yet: nothing is free */
    assert_int_equal(slotq_take(q, 0), -1);
    atomic_store(&may_give, 1);
    pthread_join(th, NULL);
    assert_int_equal(t.got, 0);
    assert_int_equal(slotq_take(q, 0), 0);
    slotq_destroy(q);
}

static void test_timed_out_waiter_leaves_the_queue(void **state)
{
    (void) state;
    slotq *q = slotq_create(1);
    _Atomic int order[3] = {0}, n_order = 0;
    taker t[3];
    pthread_t th[3];
    assert_int_equal(slotq_take(q, 0), 0);
    const long waits[3] = {LONG_WAIT_MS, 50, LONG_WAIT_MS};
    start_takers(q, t, th, waits, 3, order, &n_order, NULL);
    pthread_join(th[1], NULL); /* the middle one gives up */
    assert_int_equal(t[1].got, -1);
    assert_int_equal(slotq_waiting(q), 2);
    slotq_give(q, 0);
    pthread_join(th[0], NULL);
    pthread_join(th[2], NULL);
    assert_int_equal(n_order, 2);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 3);
    /* the last waiter gave it back to the free set, not to the one that left */
    assert_int_equal(slotq_take(q, 0), 0);
    slotq_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_slots_then_timeout),
        cmocka_unit_test(test_waiters_served_in_arrival_order),
        cmocka_unit_test(test_giver_cannot_take_back_a_handed_slot),
        cmocka_unit_test(test_timed_out_waiter_leaves_the_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
