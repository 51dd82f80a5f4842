/* tests/unit/test_ingestor_consumer.c — cmocka: the consumer's rebalance, routing and back-pressure
 * decisions (ingestor/src/consumer.c) with its effects recorded by fakes */

/*
 * consumer.c takes every effect through consumer_ops. The fakes here record what they were asked
 * (assignments with their start offsets, pauses, resumes, drops) and answer from a script (stored
 * offsets or "Postgres away", a full or a free queue, idle writers), so each test checks one
 * decision: where an assigned partition starts, that a partition numbered 4096 and above is
 * consumed, that one beyond what can be tracked stops the process, that a revocation clears
 * ownership, resumes and drops exactly the revoked partitions' messages, that a fatal Kafka error
 * is a failure carrying librdkafka's reason. The partition table and the messages are real
 * (partitions.c, fake_msg.c records each destroyed message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "consumer.h"
#include "fake_msg.h"
#include "offsets.h"
#include "partitions.h"
#include "stats.h"

#define TOPIC "tx"

/* ---- the fakes --------------------------------------------------------------------------------
 */

typedef struct fake {
    /* script */
    bool postgres_away;
    offset_map stored;
    bool queue_full;
    bool writers_idle;
    /* record */
    int assigns, unassigns, resumed_calls;
    int32_t assigned[16];
    int64_t assigned_offset[16];
    int n_assigned;
    int32_t paused[16], unpaused[16];
    int n_paused, n_unpaused;
    ingest_msg *pushed[16];
    int n_pushed;
    /* the "queued" messages of the writers, which drop_queued purges */
    ingest_msg *queued[16];
    int n_queued;
} fake;

static int f_assign(void *ctx, rd_kafka_topic_partition_list_t *parts, bool cooperative, char *err,
                    size_t errlen)
{
    fake *f = ctx;
    (void) cooperative, (void) err, (void) errlen;
    f->assigns++;
    for (int i = 0; i < parts->cnt && f->n_assigned < 16; i++) {
        f->assigned[f->n_assigned] = parts->elems[i].partition;
        f->assigned_offset[f->n_assigned++] = parts->elems[i].offset;
    }
    return 0;
}

static int f_unassign(void *ctx, rd_kafka_topic_partition_list_t *parts, bool cooperative,
                      char *err, size_t errlen)
{
    fake *f = ctx;
    (void) parts, (void) cooperative, (void) err, (void) errlen;
    f->unassigns++;
    return 0;
}

static void f_set_paused(void *ctx, int32_t partition, bool pause)
{
    fake *f = ctx;
    if (pause)
        f->paused[f->n_paused++] = partition;
    else
        f->unpaused[f->n_unpaused++] = partition;
}

static void f_resumed(void *ctx)
{
    ((fake *) ctx)->resumed_calls++;
}

static rd_kafka_resp_err_t f_fatal_error(void *ctx, char *reason, size_t len)
{
    (void) ctx;
    snprintf(reason, len, "the producer was fenced");
    return RD_KAFKA_RESP_ERR__FENCED;
}

static int f_stored_offsets(void *ctx, offset_map *out)
{
    fake *f = ctx;
    offsets_clear(out);
    if (f->postgres_away)
        return -1;
    for (size_t i = 0; i < f->stored.n; i++)
        assert_int_equal(offsets_add(out, f->stored.e[i].partition, f->stored.e[i].next), 0);
    offsets_sort(out);
    return 0;
}

static bool f_push(void *ctx, ingest_msg *m, int wait_ms)
{
    fake *f = ctx;
    (void) wait_ms;
    if (f->queue_full)
        return false;
    f->pushed[f->n_pushed++] = m;
    f->queued[f->n_queued++] = m; /* the writer's queue owns it now */
    return true;
}

static bool f_has_room(void *ctx, int32_t partition)
{
    (void) partition;
    return !((fake *) ctx)->queue_full;
}

static size_t f_drop_queued(void *ctx, bool (*revoked)(int32_t p, void *arg), void *arg)
{
    fake *f = ctx;
    size_t dropped = 0;
    int kept = 0;
    for (int i = 0; i < f->n_queued; i++) {
        if (revoked(f->queued[i]->partition, arg)) {
            ingest_msg_free(f->queued[i]);
            dropped++;
        } else {
            f->queued[kept++] = f->queued[i];
        }
    }
    f->n_queued = kept;
    return dropped;
}

static bool f_writers_idle(void *ctx)
{
    return ((fake *) ctx)->writers_idle;
}

static const consumer_ops fake_ops = {
    f_assign,         f_unassign, f_set_paused, f_resumed,     f_fatal_error,
    f_stored_offsets, f_push,     f_has_room,   f_drop_queued, f_writers_idle,
};

typedef struct world {
    fake f;
    partitions parts;
    ingest_stats stats;
    consumer c;
} world;

static int world_setup(void **state)
{
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(partitions_init(&w->parts), 0);
    ingest_stats_init(&w->stats);
    consumer_init(&w->c, &fake_ops, &w->f, &w->parts, &w->stats, false);
    reset_destroyed(NULL);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world *w = *state;
    consumer_free(&w->c);
    for (int i = 0; i < w->f.n_queued; i++)
        ingest_msg_free(w->f.queued[i]);
    offsets_free(&w->f.stored);
    partitions_destroy(&w->parts);
    free(w);
    return 0;
}

/* list_of makes a topic-partition list of n partitions */
static rd_kafka_topic_partition_list_t *list_of(int n, const int32_t *p)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p[i]);
    return l;
}

static void assign(world *w, int n, const int32_t *p)
{
    rd_kafka_topic_partition_list_t *l = list_of(n, p);
    consumer_rebalance(&w->c, RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, l, true, false);
    rd_kafka_topic_partition_list_destroy(l);
}

static void revoke(world *w, int n, const int32_t *p)
{
    rd_kafka_topic_partition_list_t *l = list_of(n, p);
    consumer_rebalance(&w->c, RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS, l, true, false);
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- assignment -------------------------------------------------------------------------------
 */

static void assignment_starts_at_postgres_offsets_else_auto_offset_reset(void **state)
{
    world *w = *state;
    assert_int_equal(offsets_add(&w->f.stored, 0, 42), 0);
    assert_int_equal(offsets_add(&w->f.stored, 2, 7), 0);
    assign(w, 3, (int32_t[]){0, 1, 2});
    assert_int_equal(w->f.assigns, 1);
    assert_int_equal(w->f.n_assigned, 3);
    assert_int_equal(w->f.assigned_offset[0], 42);
    assert_int_equal(w->f.assigned_offset[1], RD_KAFKA_OFFSET_BEGINNING); /* nothing stored */
    assert_int_equal(w->f.assigned_offset[2], 7);
    for (int32_t p = 0; p < 3; p++)
        assert_true(partitions_owned(&w->parts, p));
    assert_false(partitions_owned(&w->parts, 3));
    assert_int_equal(partitions_owned_count(&w->parts), 3);
    /* messages below the stored offset are skipped by the writers */
    assert_int_equal(partitions_floor(&w->parts, 0), 42);
    assert_false(consumer_failed(&w->c, NULL, 0));
}

static void assignment_latest_starts_at_the_end_when_postgres_has_nothing(void **state)
{
    world *w = *state;
    consumer_free(&w->c);
    consumer_init(&w->c, &fake_ops, &w->f, &w->parts, &w->stats, true);
    assign(w, 1, (int32_t[]){5});
    assert_int_equal(w->f.assigned_offset[0], RD_KAFKA_OFFSET_END);
}

static void assignment_with_postgres_away_uses_kafkas_committed_offsets(void **state)
{
    world *w = *state;
    w->f.postgres_away = true;
    assign(w, 2, (int32_t[]){0, 1});
    assert_int_equal(w->f.assigned_offset[0], RD_KAFKA_OFFSET_INVALID);
    assert_int_equal(w->f.assigned_offset[1], RD_KAFKA_OFFSET_INVALID);
    assert_true(partitions_owned(&w->parts, 0) && partitions_owned(&w->parts, 1));
}

/* before issue 23 partitions >= 4096 were assigned and their messages silently dropped */
static void partitions_numbered_4096_and_above_are_consumed(void **state)
{
    world *w = *state;
    w->f.writers_idle = true;
    assign(w, 3, (int32_t[]){4095, 4096, 70000});
    assert_false(consumer_failed(&w->c, NULL, 0));
    assert_true(partitions_owned(&w->parts, 4096) && partitions_owned(&w->parts, 70000));
    assert_false(partitions_owned(&w->parts, 4097));
    ingest_msg *m = fake_str("{}", 70000, 3);
    consumer_route(&w->c, m);
    assert_int_equal(w->f.n_pushed, 1);
    assert_ptr_equal(w->f.pushed[0], m);
    assert_false(was_destroyed(m));
    /* at the end of each: drained */
    assert_false(consumer_drained(&w->c));
    consumer_eof(&w->c, 4095);
    consumer_eof(&w->c, 4096);
    assert_false(consumer_drained(&w->c));
    consumer_eof(&w->c, 70000);
    assert_true(consumer_drained(&w->c));
    w->f.writers_idle = false;
    assert_false(consumer_drained(&w->c));
}

static void a_partition_beyond_the_limit_is_a_fatal_error(void **state)
{
    world *w = *state;
    char why[512];
    assign(w, 2, (int32_t[]){1, PARTITIONS_LIMIT});
    assert_true(consumer_failed(&w->c, why, sizeof(why)));
    if (!strstr(why, "cannot consume partition"))
        fail_msg("reason: %s", why);
    assert_true(partitions_owned(&w->parts, 1));
    assert_false(partitions_owned(&w->parts, PARTITIONS_LIMIT));
}

/* ---- routing and back-pressure ----------------------------------------------------------------
 */

static void a_message_of_a_partition_not_owned_is_dropped(void **state)
{
    world *w = *state;
    assign(w, 1, (int32_t[]){0});
    ingest_msg *m = fake_str("{}", 1, 0);
    consumer_route(&w->c, m);
    assert_true(was_destroyed(m));
    assert_int_equal(w->f.n_pushed, 0);
}

static void a_full_queue_stashes_and_pauses_then_resumes_in_order(void **state)
{
    world *w = *state;
    assign(w, 2, (int32_t[]){0, 1});
    w->f.queue_full = true;
    ingest_msg *m1 = fake_str("{}", 0, 10), *m2 = fake_str("{}", 0, 11);
    consumer_route(&w->c, m1);
    assert_int_equal(w->f.n_paused, 1);
    assert_int_equal(w->f.paused[0], 0);
    assert_false(was_destroyed(m1)); /* kept aside */
    assert_int_equal(atomic_load(&w->stats.paused_total), 1);
    /* a later message of the paused partition is dropped: it is fetched again after the resume */
    consumer_route(&w->c, m2);
    assert_true(was_destroyed(m2));
    /* still full: nothing moves */
    consumer_unstash(&w->c);
    assert_int_equal(w->f.n_pushed, 0);
    assert_int_equal(w->f.n_unpaused, 0);
    assert_false(consumer_drained(&w->c));
    /* room again: the stashed message goes first, the partition resumes, the fetchers are woken */
    w->f.queue_full = false;
    consumer_unstash(&w->c);
    assert_int_equal(w->f.n_pushed, 1);
    assert_ptr_equal(w->f.pushed[0], m1);
    assert_int_equal(w->f.n_unpaused, 1);
    assert_int_equal(w->f.unpaused[0], 0);
    assert_int_equal(w->f.resumed_calls, 1);
}

/* ---- revocation -------------------------------------------------------------------------------
 */

static void revocation_drops_exactly_the_revoked_partitions_messages(void **state)
{
    world *w = *state;
    assign(w, 3, (int32_t[]){0, 1, 2});
    ingest_msg *q0 = fake_str("{}", 0, 1), *q1 = fake_str("{}", 1, 1);
    consumer_route(&w->c, q0);
    consumer_route(&w->c, q1);
    w->f.queue_full = true;
    ingest_msg *s1 = fake_str("{}", 1, 2), *s2 = fake_str("{}", 2, 1);
    consumer_route(&w->c, s1); /* stashed, 1 paused */
    consumer_route(&w->c, s2); /* stashed, 2 paused */
    assert_int_equal(w->f.n_paused, 2);

    revoke(w, 1, (int32_t[]){1});
    assert_int_equal(w->f.unassigns, 1);
    assert_false(partitions_owned(&w->parts, 1));
    assert_true(partitions_owned(&w->parts, 0) && partitions_owned(&w->parts, 2));
    /* the revoked partition was resumed, so it cannot come back paused */
    assert_int_equal(w->f.n_unpaused, 1);
    assert_int_equal(w->f.unpaused[0], 1);
    /* its queued and stashed messages are gone, the others' are kept */
    assert_true(was_destroyed(q1) && was_destroyed(s1));
    assert_false(was_destroyed(q0) || was_destroyed(s2));
    assert_int_equal(destroyed_count(), 2);
    assert_int_equal(w->f.n_queued, 1);

    /* assigned again later: it starts unpaused and its messages flow */
    w->f.queue_full = false;
    assign(w, 1, (int32_t[]){1});
    ingest_msg *again = fake_str("{}", 1, 2);
    consumer_route(&w->c, again);
    assert_ptr_equal(w->f.pushed[w->f.n_pushed - 1], again);
}

static void a_rebalance_error_revokes_as_lost(void **state)
{
    world *w = *state;
    assign(w, 2, (int32_t[]){0, 1});
    rd_kafka_topic_partition_list_t *l = list_of(2, (int32_t[]){0, 1});
    consumer_rebalance(&w->c, RD_KAFKA_RESP_ERR__STATE, l, true, false);
    rd_kafka_topic_partition_list_destroy(l);
    assert_int_equal(partitions_owned_count(&w->parts), 0);
    assert_int_equal(w->f.unassigns, 1);
}

/* a revocation waits for the writers' transactions: the assignment lock cannot be had while a
 * writer is inside one */
static void a_revocation_cannot_pass_a_writer_in_a_transaction(void **state)
{
    world *w = *state;
    partitions_writers_enter(&w->parts);
    assert_false(partitions_revoke_try(&w->parts));
    partitions_writers_leave(&w->parts);
    assert_true(partitions_revoke_try(&w->parts));
    partitions_revoke_end(&w->parts);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

/* before issue 23 RD_KAFKA_RESP_ERR__FATAL was logged and the process went on consuming nothing */
static void a_fatal_kafka_error_fails_with_librdkafkas_reason(void **state)
{
    world *w = *state;
    char why[512];
    consumer_error(&w->c, RD_KAFKA_RESP_ERR__TRANSPORT, "broker down");
    consumer_error(&w->c, RD_KAFKA_RESP_ERR__RESOLVE, "no such host");
    assert_false(consumer_failed(&w->c, why, sizeof(why)));
    consumer_error(&w->c, RD_KAFKA_RESP_ERR__FATAL, "fatal");
    assert_true(consumer_failed(&w->c, why, sizeof(why)));
    if (!strstr(why, "the producer was fenced") || !strstr(why, "_FENCED"))
        fail_msg("reason: %s", why);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)
    const struct CMUnitTest tests[] = {
        T(assignment_starts_at_postgres_offsets_else_auto_offset_reset),
        T(assignment_latest_starts_at_the_end_when_postgres_has_nothing),
        T(assignment_with_postgres_away_uses_kafkas_committed_offsets),
        T(partitions_numbered_4096_and_above_are_consumed),
        T(a_partition_beyond_the_limit_is_a_fatal_error),
        T(a_message_of_a_partition_not_owned_is_dropped),
        T(a_full_queue_stashes_and_pauses_then_resumes_in_order),
        T(revocation_drops_exactly_the_revoked_partitions_messages),
        T(a_rebalance_error_revokes_as_lost),
        T(a_revocation_cannot_pass_a_writer_in_a_transaction),
        T(a_fatal_kafka_error_fails_with_librdkafkas_reason),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
