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
#define MAX_TAKERS   3

typedef struct scene scene;

typedef struct taker {
    scene *sc;
    int id;
    long wait_ms;
    _Atomic int got; /* what slotq_take returned; -2 until it returns */
} taker;

/* scene: a one-slot queue whose slot the test holds, and up to MAX_TAKERS threads queued on it */
struct scene {
    slotq *q;
    taker t[MAX_TAKERS];
    pthread_t th[MAX_TAKERS];
    _Atomic int order[MAX_TAKERS]; /* ids in the order they got the slot */
    _Atomic int n_order;
    _Atomic int *may_give; /* NULL, or 0: keep the slot until the test sets it */
};

static void *take_and_give(void *arg)
{
    taker *t = arg;
    scene *sc = t->sc;
    int slot = slotq_take(sc->q, t->wait_ms);
    atomic_store(&t->got, slot);
    if (slot < 0)
        return NULL;
    sc->order[atomic_fetch_add(&sc->n_order, 1)] = t->id;
    while (sc->may_give && !atomic_load(sc->may_give))
        sched_yield();
    slotq_give(sc->q, slot);
    return NULL;
}

/* scene_start makes the queue, takes its slot and starts n takers, the i-th waiting up to
 * waits[i] ms, each started only once the ones before it are queued (or have given up), so they
 * queue in the order 1 .. n */
static void scene_start(scene *sc, const long *waits, int n, _Atomic int *may_give)
{
    *sc = (scene){.q = slotq_create(1), .may_give = may_give};
    assert_non_null(sc->q);
    assert_int_equal(slotq_take(sc->q, 0), 0);
    for (int i = 0; i < n; i++) {
        sc->t[i] = (taker){sc, i + 1, waits[i], -2};
        pthread_create(&sc->th[i], NULL, take_and_give, &sc->t[i]);
        for (;;) {
            int still_taking = 0;
            for (int j = 0; j <= i; j++)
                still_taking += atomic_load(&sc->t[j].got) == -2;
            if (slotq_waiting(sc->q) == still_taking)
                break;
            sched_yield();
        }
    }
}

/* scene_end checks that the slot ended up free (not with a taker that left) and frees the queue */
static void scene_end(scene *sc)
{
    assert_int_equal(slotq_take(sc->q, 0), 0);
    slotq_destroy(sc->q);
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
    scene sc;
    const long waits[3] = {LONG_WAIT_MS, LONG_WAIT_MS, LONG_WAIT_MS};
    scene_start(&sc, waits, 3, NULL);
    slotq_give(sc.q, 0);
    for (int i = 0; i < 3; i++)
        pthread_join(sc.th[i], NULL);
    assert_int_equal(sc.n_order, 3);
    assert_int_equal(sc.order[0], 1);
    assert_int_equal(sc.order[1], 2);
    assert_int_equal(sc.order[2], 3);
    scene_end(&sc);
}

static void test_giver_cannot_take_back_a_handed_slot(void **state)
{
    (void) state;
    scene sc;
    _Atomic int may_give = 0;
    const long waits[1] = {LONG_WAIT_MS};
    scene_start(&sc, waits, 1, &may_give);
    slotq_give(sc.q, 0);
    /* the slot went to the waiter, whether or not it has run yet: nothing is free */
    assert_int_equal(slotq_take(sc.q, 0), -1);
    atomic_store(&may_give, 1);
    pthread_join(sc.th[0], NULL);
    assert_int_equal(sc.t[0].got, 0);
    scene_end(&sc);
}

static void test_timed_out_waiter_leaves_the_queue(void **state)
{
    (void) state;
    scene sc;
    const long waits[3] = {LONG_WAIT_MS, 50, LONG_WAIT_MS};
    scene_start(&sc, waits, 3, NULL);
    pthread_join(sc.th[1], NULL); /* the middle one gives up */
    assert_int_equal(sc.t[1].got, -1);
    assert_int_equal(slotq_waiting(sc.q), 2);
    slotq_give(sc.q, 0);
    pthread_join(sc.th[0], NULL);
    pthread_join(sc.th[2], NULL);
    assert_int_equal(sc.n_order, 2);
    assert_int_equal(sc.order[0], 1);
    assert_int_equal(sc.order[1], 3);
    /* the last waiter gave it back to the free set, not to the one that left */
    scene_end(&sc);
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
