/* tests/unit/test_ingestor_writer.c — cmocka: the writer's retry loop (ingestor/src/commit.c) and
 * how it classifies a failed attempt (retry.c), with Postgres replaced by a script */

/*
 * commit_run takes its effects through commit_ops. Here the attempt answers from a script (a
 * lost connection, a missing partition, a refusal, a model change, a replay, success) and every
 * call is recorded: what each attempt held, how long each wait was, whether maintenance was asked
 * for. So each test checks one decision of the retry loop, the ones issue 23 found wrong: a
 * message whose dead letter is refused too is given up and no longer retried without a pause, a
 * missing partition backs off (capped exponential) and asks the maintenance owner instead of
 * looping, a shutdown that gave up on the writers ends the loop. The batch, the decoder, the
 * partition table and the messages are real.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batch.h"
#include "commit.h"
#include "fake_msg.h"
#include "partitions.h"
#include "retry.h"
#include "stats.h"
#include "strbuf.h"

#define HASH(c)                                                                                    \
    "0x" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
        c c c c c c c c c c c c c c c c c c c
#define TX(c)     "{\"hash\":\"" HASH(c) "\",\"value\":\"1\",\"gas\":21000,\"gasPrice\":1}"
#define MAX_CALLS 64

/* ---- retry_classify -----------------------------------------------------------------------------
 */

static attempt_result classify(bool ok, const char *sqlstate, const char *table,
                               const char *constraint)
{
    pg_error_fields f = {ok, sqlstate, table ? "chainwatch" : NULL, table, constraint};
    return retry_classify(&f);
}

/* before issue 23 a missing partition was recognised by its English message: with another
 * lc_messages its rows went to dead letters */
static void a_missing_partition_is_known_by_its_fields_not_its_text(void **state)
{
    (void) state;
    /* ExecFindPartition: 23514 naming the partitioned table and no constraint */
    assert_int_equal(classify(true, "23514", "transactions", NULL), ATTEMPT_NO_PARTITION);
    assert_int_equal(classify(true, "23514", "transactions", ""), ATTEMPT_NO_PARTITION);
    /* a CHECK constraint is 23514 too, but names its constraint: the row is refused */
    assert_int_equal(classify(true, "23514", "transactions", "transactions_gas_check"),
                     ATTEMPT_DATA);
    assert_int_equal(classify(true, "23514", NULL, "positive_wei"), ATTEMPT_DATA);
    assert_int_equal(classify(true, "23514", NULL, NULL), ATTEMPT_DATA);
}

static void failures_are_classified_by_sqlstate(void **state)
{
    (void) state;
    assert_int_equal(classify(false, "23505", NULL, NULL), ATTEMPT_CONNECTION); /* conn broken */
    assert_int_equal(classify(true, NULL, NULL, NULL), ATTEMPT_CONNECTION);     /* libpq's own */
    assert_int_equal(classify(true, "", NULL, NULL), ATTEMPT_CONNECTION);
    assert_int_equal(classify(true, "08006", NULL, NULL), ATTEMPT_CONNECTION);
    assert_int_equal(classify(true, "57P01", NULL, NULL), ATTEMPT_CONNECTION); /* admin shutdown */
    assert_int_equal(classify(true, "CW001", NULL, NULL), ATTEMPT_MODEL_CHANGED);
    assert_int_equal(classify(true, "CW002", NULL, NULL), ATTEMPT_REPLAYED);
    assert_int_equal(classify(true, "40001", NULL, NULL), ATTEMPT_TRANSIENT);
    assert_int_equal(classify(true, "40P01", NULL, NULL), ATTEMPT_TRANSIENT);
    assert_int_equal(classify(true, "55P03", NULL, NULL), ATTEMPT_TRANSIENT);
    assert_int_equal(classify(true, "53100", NULL, NULL), ATTEMPT_TRANSIENT); /* disk full */
    assert_int_equal(classify(true, "22021", NULL, NULL), ATTEMPT_DATA);      /* bad UTF-8 */
    assert_int_equal(classify(true, "22023", NULL, NULL), ATTEMPT_DATA);
    assert_int_equal(classify(true, "23505", "transactions", "transactions_pkey"), ATTEMPT_DATA);
    assert_int_equal(classify(true, "XX000", NULL, NULL), ATTEMPT_TRANSIENT);
    assert_int_equal(classify(true, "42P01", NULL, NULL), ATTEMPT_TRANSIENT);
}

static void backoff_doubles_with_jitter_up_to_its_cap(void **state)
{
    (void) state;
    backoff bo;
    cw_prng rng;
    cw_prng_seed(&rng, 7);
    backoff_init(&bo, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    long step = BACKOFF_MIN_MS;
    for (int i = 0; i < 20; i++) {
        long w = backoff_next(&bo, &rng);
        if (w < step / 2 || w > step)
            fail_msg("wait %d: %ld ms, outside [%ld, %ld]", i, w, step / 2, step);
        step = step * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : step * 2;
    }
}

/* ---- the retry loop -----------------------------------------------------------------------------
 */

typedef struct call {
    size_t n;          /* messages in the attempt */
    int64_t offset0;   /* the first one's offset */
    item_stage stage0; /* the first one's stage */
} call;

typedef struct script {
    /* what the attempts answer, in order; past the end: `rest` */
    attempt_result answers[MAX_CALLS];
    int n_answers;
    attempt_result rest;
    /* an attempt holding this offset at ITEM_ROWS is refused (a message the database refuses) */
    int64_t refuse_offset;
    const char *refusal; /* the server's text for a refusal */
    int sleeps_allowed;  /* sleep returns false after this many (-1: never) */
    /* record */
    call calls[MAX_CALLS];
    int n_calls;
    long sleeps[MAX_CALLS];
    int n_sleeps;
    int connects, disconnects, loads, resyncs, maintenance, committed;
    int64_t committed_next[MAX_CALLS];
    int n_committed_next;
    partitions *parts;
    int64_t resync_to;
} script;

static int s_connect(void *ctx)
{
    ((script *) ctx)->connects++;
    return 0;
}

static void s_disconnect(void *ctx)
{
    ((script *) ctx)->disconnects++;
}

static int s_load_model(void *ctx, loaded_model *m, char *err, size_t errlen)
{
    (void) err, (void) errlen;
    ((script *) ctx)->loads++;
    m->loaded = true; /* no model active: rows stored unscored */
    m->model_id = 0;
    return 0;
}

static attempt_result s_attempt(void *ctx, batch *b, const loaded_model *m, const range_set *rs,
                                batch_counts *counts, pg_failure *why)
{
    script *s = ctx;
    (void) m, (void) rs;
    assert_true(s->n_calls < MAX_CALLS); /* a loop that never ends fails here */
    call *c = &s->calls[s->n_calls];
    c->n = b->n;
    c->offset0 = b->items[0].msg->offset;
    c->stage0 = b->items[0].stage;
    attempt_result r = s->n_calls < s->n_answers ? s->answers[s->n_calls] : s->rest;
    s->n_calls++;
    for (size_t i = 0; s->refusal && i < b->n; i++)
        if (b->items[i].msg->offset == s->refuse_offset && b->items[i].stage == ITEM_ROWS)
            r = ATTEMPT_DATA;
    memset(counts, 0, sizeof(*counts));
    if (r == ATTEMPT_OK) {
        for (size_t i = 0; i < b->n; i++) {
            if (b->items[i].stage == ITEM_DROPPED)
                counts->dropped++;
            else if (b->items[i].dead)
                counts->dead++;
            else
                counts->rows += b->items[i].n_txs;
        }
        counts->unscored = counts->rows; /* no model is active */
        return r;
    }
    why->kind = r;
    snprintf(why->sqlstate, sizeof(why->sqlstate), "%s", r == ATTEMPT_DATA ? "22021" : "");
    snprintf(why->message, sizeof(why->message), "%s", s->refusal ? s->refusal : "failed");
    return r;
}

static int s_resync(void *ctx)
{
    script *s = ctx;
    s->resyncs++;
    partitions_resync(s->parts, 0, s->resync_to);
    return 0;
}

static void s_maintenance_now(void *ctx)
{
    ((script *) ctx)->maintenance++;
}

static void s_committed(void *ctx, const range_set *rs)
{
    script *s = ctx;
    s->committed++;
    for (int i = 0; i < rs->n && s->n_committed_next < MAX_CALLS; i++)
        s->committed_next[s->n_committed_next++] = rs->r[i].next;
}

static bool s_sleep(void *ctx, long ms)
{
    script *s = ctx;
    assert_true(s->n_sleeps < MAX_CALLS);
    s->sleeps[s->n_sleeps++] = ms;
    return s->sleeps_allowed < 0 || s->n_sleeps <= s->sleeps_allowed;
}

static const commit_ops script_ops = {
    s_connect, s_disconnect,      s_load_model, s_attempt,
    s_resync,  s_maintenance_now, s_committed,  s_sleep,
};

typedef struct rig {
    script s;
    partitions parts;
    ingest_stats stats;
    committer c;
    batch b;
} rig;

static int rig_setup(void **state)
{
    rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    assert_int_equal(partitions_init(&r->parts), 0);
    ingest_stats_init(&r->stats);
    r->s.parts = &r->parts;
    r->s.sleeps_allowed = -1;
    r->s.refuse_offset = -1;
    committer_init(&r->c, &script_ops, &r->s, &r->parts, &r->stats, 1 << 20, 0);
    assert_int_equal(batch_init(&r->b, 16), 0);
    assert_int_equal(partitions_take(&r->parts, 0, 0), 0);
    reset_destroyed(NULL);
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    rig *r = *state;
    batch_free(&r->b);
    committer_free(&r->c);
    partitions_destroy(&r->parts);
    free(r);
    return 0;
}

/* add puts n valid transactions of partition 0 from offset first into the batch */
static void add(rig *r, int n, int64_t first)
{
    static const char *const tx[] = {TX("a"), TX("b"), TX("c"), TX("d")};
    for (int i = 0; i < n; i++) {
        ingest_msg *m = fake_str(tx[i % 4], 0, first + i);
        m->generation = partitions_generation(&r->parts, 0); /* as consumer_route stamps it */
        assert_int_equal(batch_add(&r->b, m), 0);
    }
}

static void answers(script *s, int n, const attempt_result *a)
{
    if (n > 0)
        memcpy(s->answers, a, (size_t) n * sizeof(*a));
    s->n_answers = n;
    s->rest = ATTEMPT_OK;
}

static void a_batch_commits_and_hands_its_ranges_on(void **state)
{
    rig *r = *state;
    add(r, 3, 10);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 1);
    assert_int_equal(r->s.calls[0].n, 3);
    assert_int_equal(r->s.n_sleeps, 0);
    assert_int_equal(r->s.committed, 1);
    assert_int_equal(r->s.committed_next[0], 13);
    assert_int_equal(partitions_committed(&r->parts, 0), 13);
    assert_int_equal(atomic_load(&r->stats.rows), 3);
    assert_int_equal(atomic_load(&r->stats.unscored_rows[UNSCORED_NO_MODEL]), 3);
}

/* before issue 23 a missing partition was retried in a hot BEGIN/COPY/ROLLBACK loop */
static void a_missing_partition_backs_off_and_asks_for_maintenance(void **state)
{
    rig *r = *state;
    attempt_result a[12];
    for (int i = 0; i < 12; i++)
        a[i] = ATTEMPT_NO_PARTITION;
    answers(&r->s, 12, a);
    add(r, 2, 0);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 13);
    assert_int_equal(r->s.maintenance, 12);
    assert_int_equal(r->s.n_sleeps, 12);
    long step = BACKOFF_MIN_MS;
    for (int i = 0; i < 12; i++) {
        if (r->s.sleeps[i] < step / 2 || r->s.sleeps[i] > step)
            fail_msg("wait %d: %ld ms, outside [%ld, %ld]", i, r->s.sleeps[i], step / 2, step);
        step = step * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : step * 2;
    }
    assert_true(r->s.sleeps[11] >= BACKOFF_MAX_MS / 2); /* capped, and still waiting */
    assert_int_equal(r->s.committed, 1);
    assert_int_equal(r->s.calls[12].n, 2); /* nothing was given up meanwhile */
}

/*
 * Before issue 23 a message whose dead letter was refused twice was logged "giving it up" but
 * retried for ever without a pause (one trigger: a non-ASCII server message cut into invalid
 * UTF-8, refused as 22021 every time). Now it moves down one stage per refusal and is given up
 * (its offset committed alone); a refusal that still comes back then is not the message's and is
 * retried with backoff.
 */
static void a_refused_message_moves_down_to_given_up_and_never_spins(void **state)
{
    rig *r = *state;
    attempt_result a[6];
    for (int i = 0; i < 6; i++)
        a[i] = ATTEMPT_DATA;
    answers(&r->s, 6, a);
    r->s.refusal = "ERROR:  refusé: caractère invalide \xe2\x82\xac\xe2\x82\xac";
    add(r, 1, 5);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 7);
    assert_int_equal(r->s.calls[0].stage0, ITEM_ROWS);
    assert_int_equal(r->s.calls[1].stage0, ITEM_DEAD_LETTER);
    assert_int_equal(r->s.calls[2].stage0, ITEM_MINIMAL);
    for (int i = 3; i < 7; i++)
        assert_int_equal(r->s.calls[i].stage0, ITEM_DROPPED);
    /* the three moves down are retried at once; the refusals of nothing, with growing waits */
    assert_int_equal(r->s.n_sleeps, 3);
    assert_true(r->s.sleeps[1] >= r->s.sleeps[0] && r->s.sleeps[2] >= r->s.sleeps[1]);
    assert_int_equal(r->s.committed, 1);
    assert_int_equal(r->s.committed_next[0], 6);
    assert_int_equal(atomic_load(&r->stats.messages_dropped), 1);
    /* the dead letter's error text is valid UTF-8 whatever the server said */
    assert_true(cw_utf8_valid(r->b.items[0].dead_error, strlen(r->b.items[0].dead_error)));
}

static void a_refused_batch_is_split_and_only_the_bad_message_becomes_a_dead_letter(void **state)
{
    rig *r = *state;
    answers(&r->s, 0, NULL);
    r->s.refusal = "ERROR:  no";
    r->s.refuse_offset = 21;
    add(r, 3, 20);
    commit_run(&r->c, &r->b);
    /* the batch, then each message alone, the refused one twice (rows, then dead letter) */
    assert_int_equal(r->s.n_calls, 5);
    assert_int_equal(r->s.calls[0].n, 3);
    for (int i = 1; i < 5; i++)
        assert_int_equal(r->s.calls[i].n, 1);
    assert_int_equal(r->s.calls[2].offset0, 21);
    assert_int_equal(r->s.calls[3].offset0, 21);
    assert_int_equal(r->s.calls[3].stage0, ITEM_DEAD_LETTER);
    assert_int_equal(r->s.n_sleeps, 0);
    assert_int_equal(r->s.committed, 3);
    assert_int_equal(atomic_load(&r->stats.messages_dead), 1);
    assert_int_equal(atomic_load(&r->stats.messages_ok), 2);
    assert_int_equal(partitions_committed(&r->parts, 0), 23);
}

static void a_lost_connection_reconnects_after_a_wait(void **state)
{
    rig *r = *state;
    answers(&r->s, 2, (attempt_result[]){ATTEMPT_CONNECTION, ATTEMPT_CONNECTION});
    add(r, 1, 0);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 3);
    assert_int_equal(r->s.disconnects, 2);
    assert_int_equal(r->s.n_sleeps, 2);
    assert_int_equal(r->s.committed, 1);
    assert_true(atomic_load(&r->stats.db_up));
}

/* a shutdown that timed out gives up on the writers: the retry loop ends, nothing is committed
 * (the offsets never moved, so the partition's next owner reads the batch again) */
static void the_loop_ends_when_the_process_gives_up_on_it(void **state)
{
    rig *r = *state;
    answers(&r->s, 0, NULL);
    r->s.rest = ATTEMPT_CONNECTION;
    r->s.sleeps_allowed = 2;
    add(r, 2, 0);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 3);
    assert_int_equal(r->s.n_sleeps, 3);
    assert_int_equal(r->s.committed, 0);
    assert_int_equal(partitions_committed(&r->parts, 0), 0); /* where it was taken */
}

static void a_model_change_reloads_and_retries_at_once_the_first_time(void **state)
{
    rig *r = *state;
    answers(
        &r->s, 3,
        (attempt_result[]){ATTEMPT_MODEL_CHANGED, ATTEMPT_MODEL_CHANGED, ATTEMPT_MODEL_CHANGED});
    add(r, 1, 0);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 4);
    assert_int_equal(r->s.loads, 4);
    assert_int_equal(r->s.n_sleeps, 2); /* the second and third time it comes back */
    assert_int_equal(atomic_load(&r->stats.model_reloads), 4);
}

static void a_replayed_batch_skips_what_is_stored(void **state)
{
    rig *r = *state;
    answers(&r->s, 1, (attempt_result[]){ATTEMPT_REPLAYED});
    r->s.resync_to = 32; /* another member stored 30 and 31 */
    add(r, 4, 30);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.resyncs, 1);
    assert_int_equal(r->s.n_calls, 2);
    assert_int_equal(r->s.calls[1].n, 2);
    assert_int_equal(r->s.calls[1].offset0, 32);
    assert_int_equal(r->s.n_sleeps, 0);
    assert_int_equal(atomic_load(&r->stats.messages_skipped), 2);
}

static void messages_of_a_revoked_partition_are_not_sent(void **state)
{
    rig *r = *state;
    add(r, 2, 0);
    partitions_release(&r->parts, 0);
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 0);
    assert_int_equal(r->s.committed, 0);
    assert_int_equal(atomic_load(&r->stats.messages_skipped), 2);
    assert_int_equal(destroyed_count(), 2);
}

/* chaos (kill -9 of a member) stored three offsets twice: a writer held messages it had taken
 * before a revocation, the partition came back to the same member, was fetched again from the
 * stored offset, and both copies went into one batch above the floor with the partition owned */
static void copies_taken_before_a_revocation_are_dropped_when_the_partition_comes_back(void **state)
{
    rig *r = *state;
    add(r, 3, 5); /* polled under the first assignment, taken from the queue by the writer */
    partitions_release(&r->parts, 0);
    assert_int_equal(partitions_take(&r->parts, 0, 5), 0); /* back, from the stored offset 5 */
    add(r, 3, 5);                                          /* fetched again */
    commit_run(&r->c, &r->b);
    assert_int_equal(r->s.n_calls, 1);
    assert_int_equal(r->s.calls[0].n, 3);
    assert_int_equal(r->s.committed_next[0], 8);
    assert_int_equal(atomic_load(&r->stats.messages_skipped), 3);
    assert_int_equal(atomic_load(&r->stats.rows), 3);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_missing_partition_is_known_by_its_fields_not_its_text),
        cmocka_unit_test(failures_are_classified_by_sqlstate),
        cmocka_unit_test(backoff_doubles_with_jitter_up_to_its_cap),
        T(a_batch_commits_and_hands_its_ranges_on),
        T(a_missing_partition_backs_off_and_asks_for_maintenance),
        T(a_refused_message_moves_down_to_given_up_and_never_spins),
        T(a_refused_batch_is_split_and_only_the_bad_message_becomes_a_dead_letter),
        T(a_lost_connection_reconnects_after_a_wait),
        T(the_loop_ends_when_the_process_gives_up_on_it),
        T(a_model_change_reloads_and_retries_at_once_the_first_time),
        T(a_replayed_batch_skips_what_is_stored),
        T(messages_of_a_revoked_partition_are_not_sent),
        T(copies_taken_before_a_revocation_are_dropped_when_the_partition_comes_back),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
