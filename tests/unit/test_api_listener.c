/* tests/unit/test_api_listener.c — cmocka: the listener's state (apiserver/src/listener.c) under
 * concurrent writers and readers, with real threads; also run under ThreadSanitizer
 * (tests/suites/68-tsan.sh)
 *
 * Two writer threads replace the whole state again and again, each write with every field set to
 * one value; two reader threads check that every state they get has all fields equal. Without a
 * writer lock the seqlock's sequence is even again while both writers are mid-write, and readers
 * accept a mix of the two. The listener's own thread is pointed at a port where nothing listens,
 * so it never writes.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "listener.h"

#define WRITERS 2
#define READERS 2
#define WRITES  1000000 /* per writer */

typedef struct scene {
    listener *l;
    _Atomic int writers_left;
    _Atomic long reads;
    _Atomic long torn;
    listener_state first_torn; /* written by the reader that counted the first torn read */
} scene;

typedef struct writer_arg {
    scene *sc;
    int id;
} writer_arg;

static void *writer(void *arg)
{
    writer_arg *w = arg;
    for (int i = 0; i < WRITES; i++) {
        int32_t v = (int32_t) (i * WRITERS + w->id + 1);
        const listener_state s = {.ext_oid = (uint32_t) v,
                                  .anomaly_generation = v,
                                  .registry_generation = v,
                                  .active_model = v};
        listener_publish(w->sc->l, &s);
    }
    atomic_fetch_sub(&w->sc->writers_left, 1);
    return NULL;
}

static void *reader(void *arg)
{
    scene *sc = arg;
    while (atomic_load(&sc->writers_left) > 0) {
        listener_state s;
        listener_get(sc->l, &s);
        atomic_fetch_add(&sc->reads, 1);
        if ((int64_t) s.ext_oid != s.anomaly_generation ||
            s.anomaly_generation != s.registry_generation ||
            s.registry_generation != s.active_model) {
            if (atomic_fetch_add(&sc->torn, 1) == 0)
                sc->first_torn = s;
        }
    }
    return NULL;
}

static void test_no_torn_reads_with_two_writers(void **state)
{
    (void) state;
    char err[256];
    scene sc = {.writers_left = WRITERS};
    /* port 1 refuses at once: the listener thread only retries, it never writes the state */
    sc.l = listener_start("postgresql://127.0.0.1:1/none", err, sizeof(err));
    assert_non_null(sc.l);

    pthread_t w[WRITERS], r[READERS];
    writer_arg wa[WRITERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&r[i], NULL, reader, &sc), 0);
    for (int i = 0; i < WRITERS; i++) {
        wa[i] = (writer_arg){&sc, i};
        assert_int_equal(pthread_create(&w[i], NULL, writer, &wa[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);

    listener_state last;
    listener_get(sc.l, &last);
    listener_stop(sc.l);
    print_message("%ld reads, %ld torn\n", atomic_load(&sc.reads), atomic_load(&sc.torn));
    if (atomic_load(&sc.torn))
        fail_msg("%ld of %ld reads mixed two writes, e.g. ext_oid %u, anomaly %lld, registry %lld, "
                 "model %d",
                 atomic_load(&sc.torn), atomic_load(&sc.reads), sc.first_torn.ext_oid,
                 (long long) sc.first_torn.anomaly_generation,
                 (long long) sc.first_torn.registry_generation, sc.first_torn.active_model);
    /* the last write of some writer is what stays */
    assert_true(last.anomaly_generation > (WRITES - 1) * WRITERS);
    assert_true(last.active_model == last.anomaly_generation);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_torn_reads_with_two_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
