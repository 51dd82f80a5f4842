/* tests/unit/test_ingestor_units.c — cmocka: bounded queue, batch COPY text, severity */

/*
 * Messages come from fake_msg.c, whose ingest_msg_free records what it destroys: a purge destroys
 * what it removes and nothing else, queue_destroy and batch_clear destroy what they still hold,
 * and a message is never destroyed twice.
 *
 * Expected COPY lines are written out by hand from PostgreSQL's COPY text rules (tab-separated,
 * \N for NULL, backslash escapes), not produced by the code under test. Scores are compared with
 * forest_score() on the same row, a different entry point than the batch's forest_score_batch().
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "batch.h"
#include "fake_msg.h"
#include "model.h"
#include "monoclock.h"
#include "prng.h"
#include "queue.h"
#include "strbuf.h"
#include "txdecode.h"
#include "txfeatures.h"

/* ---- queue ------------------------------------------------------------------------------------
 */

static void queue_holds_exactly_its_capacity(void **state)
{
    (void) state;
    msg_queue q;
    ingest_msg *m[4];
    assert_int_equal(queue_init(&q, 3, NULL), 0);
    for (int i = 0; i < 4; i++)
        m[i] = fake_str("x", 0, i);
    assert_int_equal(queue_free(&q), 3);
    for (int i = 0; i < 3; i++)
        assert_true(queue_push(&q, m[i]));
    assert_false(queue_push(&q, m[3])); /* full: ownership stays with the caller */
    assert_false(was_destroyed(m[3]));
    assert_int_equal(queue_count(&q), 3);
    assert_int_equal(queue_free(&q), 0);
    ingest_msg_free(m[3]);
    queue_destroy(&q); /* destroys the three it holds */
    assert_int_equal(destroyed_count(), 4);
    for (int i = 0; i < 3; i++)
        assert_true(was_destroyed(m[i]));
}

static void queue_is_fifo_across_wraparound(void **state)
{
    (void) state;
    msg_queue q;
    int64_t next_out = 0, next_in = 0;
    assert_int_equal(queue_init(&q, 4, NULL), 0);
    /* push and pop in uneven steps so head wraps several times */
    for (int round = 0; round < 10; round++) {
        int push = 1 + round % 4;
        for (int i = 0; i < push && queue_free(&q) > 0; i++)
            assert_true(queue_push(&q, fake_str("x", 1, next_in++)));
        int pop = 1 + (round * 3) % 4;
        for (int i = 0; i < pop; i++) {
            ingest_msg *m = queue_pop_wait(&q, 0);
            if (!m)
                break;
            if (m->offset != next_out)
                fail_msg("popped offset %lld, expected %lld (FIFO broken)", (long long) m->offset,
                         (long long) next_out);
            next_out++;
            ingest_msg_free(m);
        }
    }
    while (queue_count(&q) > 0) {
        ingest_msg *m = queue_pop_wait(&q, 0);
        assert_int_equal(m->offset, next_out++);
        ingest_msg_free(m);
    }
    assert_int_equal(next_out, next_in);
    queue_destroy(&q);
}

static bool odd_offset(const ingest_msg *m, void *arg)
{
    int *calls = arg;
    (*calls)++;
    return m->offset % 2 == 1;
}

static void queue_purge_removes_matches_and_keeps_order(void **state)
{
    (void) state;
    msg_queue q;
    ingest_msg *m[8];
    int calls = 0;
    assert_int_equal(queue_init(&q, 8, NULL), 0);
    /* make head non-zero so the purge compacts across the wrap */
    for (int i = 0; i < 5; i++)
        assert_true(queue_push(&q, fake_str("pre", 9, 100 + i)));
    for (int i = 0; i < 5; i++)
        ingest_msg_free(queue_pop_wait(&q, 0));
    reset_destroyed(NULL);
    for (int i = 0; i < 8; i++) {
        m[i] = fake_str("x", 2, i);
        assert_true(queue_push(&q, m[i]));
    }
    assert_int_equal(queue_purge(&q, odd_offset, &calls), 4);
    assert_int_equal(calls, 8);
    assert_int_equal(queue_count(&q), 4);
    for (int i = 0; i < 8; i++)
        if (was_destroyed(m[i]) != (i % 2 == 1))
            fail_msg("message at offset %d: destroyed=%d, expected %d", i, was_destroyed(m[i]),
                     i % 2 == 1);
    for (int want = 0; want < 8; want += 2) {
        ingest_msg *got = queue_pop_wait(&q, 0);
        assert_ptr_equal(got, m[want]);
        ingest_msg_free(got);
    }
    assert_int_equal(queue_free(&q), 8); /* the freed slots are usable again */
    queue_destroy(&q);
}

static void queue_timed_wait_times_out(void **state)
{
    (void) state;
    msg_queue q;
    assert_int_equal(queue_init(&q, 2, NULL), 0);
    int64_t t0 = cw_mono_ms();
    assert_null(queue_pop_wait(&q, 0)); /* 0: do not wait */
    assert_true(cw_mono_ms() - t0 < 50);
    t0 = cw_mono_ms();
    assert_null(queue_pop_wait(&q, 150));
    int64_t waited = cw_mono_ms() - t0;
    if (waited < 145 || waited > 1000)
        fail_msg("an empty pop with a 150 ms timeout returned after %lld ms", (long long) waited);
    queue_destroy(&q);
}

/* a queue is idle only when it is empty and its consumer has settled what it popped: --drain
 * must not see an emptied queue as idle while the popped messages are still being committed */
static void queue_idle_counts_popped_messages_until_settled(void **state)
{
    (void) state;
    msg_queue q;
    ingest_msg *out[4];
    assert_int_equal(queue_init(&q, 4, NULL), 0);
    assert_true(queue_idle(&q));
    assert_true(queue_push(&q, fake_str("a", 0, 0)));
    assert_true(queue_push(&q, fake_str("b", 0, 1)));
    assert_false(queue_idle(&q));
    assert_int_equal(queue_pop_many(&q, out, 4, 1, 0), 2);
    assert_int_equal(queue_count(&q), 0);
    assert_false(queue_idle(&q)); /* empty, but two messages are in hand */
    queue_settled(&q);
    assert_true(queue_idle(&q));
    assert_int_equal(queue_pop_many(&q, out + 2, 2, 1, 0), 0); /* popping nothing holds nothing */
    assert_true(queue_idle(&q));
    assert_true(queue_push(&q, fake_str("c", 0, 2)));
    ingest_msg *m = queue_pop_wait(&q, 0);
    assert_non_null(m);
    assert_false(queue_idle(&q));
    queue_settled(&q);
    assert_true(queue_idle(&q));
    ingest_msg_free(out[0]);
    ingest_msg_free(out[1]);
    ingest_msg_free(m);
    queue_destroy(&q);
}

/* queues sharing a budget: together they hold at most its limit, each may use all of it, and a
 * push waiting for room is woken when another queue gives some back */
static void *pop_one_later(void *arg)
{
    msg_queue *q = arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    ingest_msg_free(queue_pop_wait(q, 0));
    return NULL;
}

static void queue_budget_is_shared(void **state)
{
    (void) state;
    queue_budget b;
    msg_queue busy, idle;
    pthread_t t;
    assert_int_equal(queue_budget_init(&b, 4), 0);
    assert_int_equal(queue_init(&busy, 4, &b), 0);
    assert_int_equal(queue_init(&idle, 4, &b), 0);
    for (int i = 0; i < 3; i++) /* one queue may take most of the budget... */
        assert_true(queue_push(&busy, fake_str("b", 1, i)));
    assert_int_equal(queue_free(&idle), 1); /* ...and the other sees what is left */
    assert_true(queue_push(&idle, fake_str("i", 1, 0)));
    ingest_msg *extra = fake_str("x", 1, 9);
    assert_false(queue_push(&busy, extra)); /* together: at most the limit */
    assert_false(queue_push(&idle, extra));
    /* room given back by the other queue wakes a waiting push */
    assert_int_equal(pthread_create(&t, NULL, pop_one_later, &idle), 0);
    int64_t t0 = cw_mono_ms();
    assert_true(queue_push_wait(&busy, extra, 5000));
    int64_t waited = cw_mono_ms() - t0;
    pthread_join(t, NULL);
    if (waited > 1000)
        fail_msg("push waited %lld ms for room given back after 50 ms", (long long) waited);
    assert_int_equal(queue_count(&busy), 4);
    assert_int_equal(queue_free(&idle), 0);
    /* a purge gives room back too */
    int calls = 0;
    assert_int_equal(queue_purge(&busy, odd_offset, &calls), 2); /* offsets 1 and 9 */
    assert_int_equal(queue_free(&idle), 2);
    ingest_msg *out[4];
    assert_int_equal(queue_pop_many(&busy, out, 4, 1, 0), 2);
    ingest_msg_free(out[0]);
    ingest_msg_free(out[1]);
    assert_int_equal(queue_free(&idle), 4);
    assert_true(queue_push_wait(&idle, fake_str("t", 1, 0), 0));
    queue_destroy(&busy);
    queue_destroy(&idle); /* gives its message's room back */
    assert_int_equal(b.used, 0);
    queue_budget_destroy(&b);
}

typedef struct delayed_push {
    msg_queue *q;
    ingest_msg *m;
    int delay_ms;
} delayed_push;

static void *push_later(void *arg)
{
    delayed_push *d = arg;
    struct timespec ts = {0, (long) d->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    queue_push(d->q, d->m);
    return NULL;
}

static void queue_timed_wait_wakes_on_push(void **state)
{
    (void) state;
    msg_queue q;
    pthread_t t;
    assert_int_equal(queue_init(&q, 2, NULL), 0);
    delayed_push d = {&q, fake_str("late", 3, 7), 50};
    int64_t t0 = cw_mono_ms();
    assert_int_equal(pthread_create(&t, NULL, push_later, &d), 0);
    ingest_msg *m = queue_pop_wait(&q, 5000);
    int64_t waited = cw_mono_ms() - t0;
    pthread_join(t, NULL);
    assert_ptr_equal(m, d.m);
    if (waited > 1000)
        fail_msg("pop waited %lld ms for a message pushed after 50 ms", (long long) waited);
    ingest_msg_free(m);
    queue_destroy(&q);
}

/* ---- batch: decoding and COPY text ------------------------------------------------------------
 */

#define HASH_A "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "0xcccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define ADDR_1 "0x1111111111111111111111111111111111111111"
#define ADDR_2 "0x2222222222222222222222222222222222222222"

/* check_text compares a COPY buffer with the expected text, printing both on a mismatch */
#define check_text(buf, want) check_text_at((buf), (want), __FILE__, __LINE__)
static void check_text_at(const cw_strbuf *b, const char *want, const char *file, int line)
{
    const char *got = b->data ? b->data : "";
    if (b->len != strlen(want) || memcmp(got, want, b->len) != 0) {
        size_t i = 0;
        while (i < b->len && want[i] && got[i] == want[i])
            i++;
        print_error(
            "%s:%d: COPY text differs at byte %zu\n--- expected ---\n%s\n--- got ---\n%.*s\n", file,
            line, i, want, (int) b->len, got);
        _fail(file, line);
    }
}

static loaded_model no_model(void)
{
    loaded_model m;
    memset(&m, 0, sizeof(m));
    m.loaded = true;
    return m;
}

static void batch_capacity_and_ownership(void **state)
{
    (void) state;
    batch b;
    assert_int_equal(batch_init(&b, 2), 0);
    ingest_msg *m1 = fake_str("{}", 0, 1), *m2 = fake_str("{}", 0, 2), *m3 = fake_str("{}", 0, 3);
    assert_int_equal(batch_add(&b, m1), 0);
    assert_int_equal(batch_add(&b, m2), 0);
    assert_int_equal(batch_add(&b, m3), -1); /* full: still the caller's */
    assert_false(was_destroyed(m3));
    batch_clear(&b);
    assert_int_equal(b.n, 0);
    assert_true(was_destroyed(m1) && was_destroyed(m2));
    assert_int_equal(destroyed_count(), 2);
    ingest_msg_free(m3);
    batch_free(&b);
}

static bool partition_is(const batch_item *it, void *arg)
{
    return it->msg->partition == *(int *) arg;
}

static void batch_remove_if_destroys_removed_and_keeps_order(void **state)
{
    (void) state;
    batch b;
    ingest_msg *m[6];
    int revoked = 1;
    assert_int_equal(batch_init(&b, 6), 0);
    for (int i = 0; i < 6; i++) {
        m[i] = fake_str("{}", i % 2, i);
        assert_int_equal(batch_add(&b, m[i]), 0);
    }
    b.scored_with = 5;
    assert_int_equal(batch_remove_if(&b, partition_is, &revoked), 3);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.scored_with, -1); /* scores no longer line up: must re-score */
    for (size_t i = 0; i < b.n; i++)
        assert_ptr_equal(b.items[i].msg, m[2 * i]);
    for (int i = 0; i < 6; i++)
        assert_int_equal(was_destroyed(m[i]), i % 2 == 1);
    batch_free(&b);
    assert_int_equal(destroyed_count(), 6);
}

/*
 * tx_as_text decodes the binary COPY data of the transactions columns (PostgreSQL's binary COPY
 * format, written here from the format's documentation, independently of batch.c) into the COPY
 * text the same rows would have in text format, which the expectations are written in. Any
 * malformed byte fails the test: the header, a field count other than 14, a length that does not
 * fit its type, a numeric that numeric_send would not write (leading or trailing zero digit, a
 * sign or scale), a time with a fraction of a second, or bytes after the trailer.
 */
enum { C_TEXT, C_NUMERIC, C_INT8, C_TIME, C_FLOAT8, C_INT4, C_FLOAT8_ARRAY };
#define TX_FIELDS 14
static const int tx_types[TX_FIELDS] = {C_TEXT,    C_TEXT, C_TEXT, C_NUMERIC,     C_NUMERIC,
                                        C_NUMERIC, C_INT8, C_TIME, C_FLOAT8,      C_INT4,
                                        C_TEXT,    C_INT4, C_INT8, C_FLOAT8_ARRAY};

static uint64_t rd_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

#define TX_NEED(n)                                                                                 \
    do {                                                                                           \
        if ((size_t) (end - p) < (size_t) (n)) {                                                   \
            print_error("%s:%d: binary COPY data ends early\n", file, line);                       \
            _fail(file, line);                                                                     \
        }                                                                                          \
    } while (0)
#define TX_BAD(...)                                                                                \
    do {                                                                                           \
        print_error("%s:%d: binary COPY data: ", file, line);                                      \
        print_error(__VA_ARGS__);                                                                  \
        _fail(file, line);                                                                         \
    } while (0)

/* tx_numeric_as_text appends numeric_send's layout (len bytes at p) as decimal text */
static void tx_numeric_as_text(cw_strbuf *out, const unsigned char *p, int32_t len,
                               const char *file, int line)
{
    if (len < 8)
        TX_BAD("numeric of %d bytes\n", len);
    int nd = (int16_t) rd_be(p, 2), weight = (int16_t) rd_be(p + 2, 2);
    if (nd < 0 || len != 8 + 2 * nd || rd_be(p + 4, 2) != 0 || rd_be(p + 6, 2) != 0)
        TX_BAD("numeric header: ndigits %d, sign %u, dscale %u\n", nd, (unsigned) rd_be(p + 4, 2),
               (unsigned) rd_be(p + 6, 2));
    if (nd == 0) {
        if (weight != 0)
            TX_BAD("zero with weight %d\n", weight);
        cw_strbuf_putc(out, '0');
        return;
    }
    if (rd_be(p + 8, 2) == 0 || rd_be(p + 8 + 2 * (nd - 1), 2) == 0 || weight < nd - 1)
        TX_BAD("numeric digits not as numeric_send writes them\n");
    for (int i = 0; i <= weight; i++) {
        unsigned d = i < nd ? (unsigned) rd_be(p + 8 + 2 * i, 2) : 0;
        if (d > 9999)
            TX_BAD("numeric digit %u\n", d);
        cw_strbuf_printf(out, i == 0 ? "%u" : "%04u", d);
    }
}

#define tx_as_text(bin, out) tx_as_text_at((bin), (out), __FILE__, __LINE__)
static void tx_as_text_at(const cw_strbuf *bin, cw_strbuf *out, const char *file, int line)
{
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    const unsigned char *p = (const unsigned char *) bin->data, *end = p + bin->len;
    TX_NEED(19);
    if (memcmp(p, header, 19) != 0)
        TX_BAD("bad header\n");
    p += 19;
    for (;;) {
        TX_NEED(2);
        int16_t nf = (int16_t) rd_be(p, 2);
        p += 2;
        if (nf == -1)
            break;
        if (nf != TX_FIELDS)
            TX_BAD("a row of %d fields\n", nf);
        for (int c = 0; c < TX_FIELDS; c++) {
            TX_NEED(4);
            int32_t len = (int32_t) rd_be(p, 4);
            p += 4;
            if (c)
                cw_strbuf_putc(out, '\t');
            if (len == -1) {
                cw_strbuf_puts(out, "\\N");
                continue;
            }
            TX_NEED(len);
            int want =
                tx_types[c] == C_INT4 ? 4
                : tx_types[c] == C_TEXT || tx_types[c] == C_NUMERIC || tx_types[c] == C_FLOAT8_ARRAY
                    ? len
                    : 8;
            if (len != want)
                TX_BAD("column %d: %d bytes\n", c + 1, len);
            uint64_t u = len == 8 ? rd_be(p, 8) : 0;
            switch (tx_types[c]) {
            case C_TEXT:
                cw_strbuf_append(out, (const char *) p, (size_t) len);
                break;
            case C_INT8:
                cw_strbuf_printf(out, "%lld", (long long) (int64_t) u);
                break;
            case C_INT4:
                cw_strbuf_printf(out, "%d", (int) (int32_t) rd_be(p, 4));
                break;
            case C_FLOAT8: {
                double d;
                memcpy(&d, &u, sizeof(d));
                cw_strbuf_printf(out, "%.17g", d);
                break;
            }
            case C_TIME: {
                int64_t us = (int64_t) u;
                if (us % 1000000 != 0)
                    TX_BAD("a time with a fraction of a second\n");
                time_t t = (time_t) (us / 1000000 + 946684800);
                struct tm tm;
                char buf[40];
                gmtime_r(&t, &tm);
                strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S+00", &tm);
                cw_strbuf_puts(out, buf);
                break;
            }
            case C_NUMERIC:
                tx_numeric_as_text(out, p, len, file, line);
                break;
            case C_FLOAT8_ARRAY: {
                /* array_send: ndim 1, no NULLs, float8 (701), one dimension of n from 1 */
                if (len < 20 || rd_be(p, 4) != 1 || rd_be(p + 4, 4) != 0 ||
                    rd_be(p + 8, 4) != 701 || rd_be(p + 16, 4) != 1 ||
                    len != 20 + 12 * (int) rd_be(p + 12, 4))
                    TX_BAD("column %d: not a one-dimensional float8[] without NULLs\n", c + 1);
                int n = (int) rd_be(p + 12, 4);
                cw_strbuf_putc(out, '{');
                for (int k = 0; k < n; k++) {
                    const unsigned char *e = p + 20 + 12 * k;
                    if (rd_be(e, 4) != 8)
                        TX_BAD("column %d: element %d of %u bytes\n", c + 1, k,
                               (unsigned) rd_be(e, 4));
                    uint64_t bits = rd_be(e + 4, 8);
                    double d;
                    memcpy(&d, &bits, sizeof(d));
                    cw_strbuf_printf(out, k ? ",%.17g" : "%.17g", d);
                }
                cw_strbuf_putc(out, '}');
                break;
            }
            }
            p += len;
        }
        cw_strbuf_putc(out, '\n');
    }
    if (p != end)
        TX_BAD("%zu bytes after the trailer\n", (size_t) (end - p));
}

/* check_tx compares binary transactions COPY data with the expected text of the same rows */
#define check_tx(bin, want) check_tx_at((bin), (want), __FILE__, __LINE__)
static void check_tx_at(const cw_strbuf *bin, const char *want, const char *file, int line)
{
    cw_strbuf text = CW_STRBUF_INIT;
    tx_as_text_at(bin, &text, file, line);
    check_text_at(&text, want, file, line);
    cw_strbuf_free(&text);
}

static void batch_copy_unscored_rows_and_nulls(void **state)
{
    (void) state;
    batch b;
    loaded_model m = no_model();
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT;
    batch_counts c;

    assert_int_equal(batch_init(&b, 4), 0);
    /* Etherscan with every optional field, JSON-RPC creation (to null, no timestamp), an array */
    batch_add(&b, fake_str("{\"hash\":\"" HASH_A "\",\"from\":\"" ADDR_1 "\",\"to\":\"" ADDR_2 "\","
                           "\"value\":\"100000000000000000000\",\"gas\":\"21000\","
                           "\"gasPrice\":\"30000000000\",\"blockNumber\":\"19000000\","
                           "\"timeStamp\":\"1704067200\"}",
                           3, 41));
    batch_add(&b, fake_str("{\"hash\":\"" HASH_B "\",\"from\":\"" ADDR_1 "\",\"to\":null,"
                           "\"value\":\"0x0\",\"gas\":\"0x7a120\",\"maxFeePerGas\":\"0x3b9aca00\"}",
                           3, 42));
    batch_add(&b, fake_str("[{\"hash\":\"" HASH_C "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":2},"
                           "{\"hash\":\"" HASH_A "\",\"value\":\"2\",\"gas\":3,\"gasPrice\":4,"
                           "\"timestamp\":0}]",
                           17, 9000000000LL));
    batch_decode(&b, 0);
    assert_int_equal(batch_score(&b, &m), 0); /* no model: features only */
    batch_copy(&b, &m, "blockchain-transactions", &tx, &an, &dl, &c);
    check_tx(
        &tx, HASH_A
        "\t" ADDR_1 "\t" ADDR_2 "\t100000000000000000000\t21000\t30000000000\t"
        "19000000\t2024-01-01 00:00:00+00\t\\N\t\\N\tblockchain-transactions\t3\t41\t\\N\n" HASH_B
        "\t" ADDR_1 "\t\\N\t0\t500000\t1000000000\t\\N\t\\N\t\\N\t\\N\t"
        "blockchain-transactions\t3\t42\t\\N\n" HASH_C
        "\t\\N\t\\N\t1\t1\t2\t\\N\t\\N\t\\N\t\\N\tblockchain-transactions\t17\t"
        "9000000000\t\\N\n" HASH_A "\t\\N\t\\N\t2\t3\t4\t\\N\t1970-01-01 00:00:00+00\t\\N\t\\N\t"
        "blockchain-transactions\t17\t9000000000\t\\N\n");
    check_text(&an, "");
    check_text(&dl, "");
    assert_int_equal(c.rows, 4);
    assert_int_equal(c.anomalies, 0);
    assert_int_equal(c.dead, 0);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    batch_free(&b);
}

/* amounts at the edges of numeric's base-10000 digits, up to 2^256 - 1, arrive exactly */
static void batch_copy_binary_amounts_exact(void **state)
{
    (void) state;
    static const char *const amounts[] = {
        "0",
        "1",
        "9999",
        "10000",
        "10001",
        "99990000",
        "100000000",
        "123456789",
        "1000000000000000000000000000000000000000000000000000000000000000000000000000",
        "115792089237316195423570985008687907853269984665640564039457584007913129639935"};
    enum { N = sizeof(amounts) / sizeof(amounts[0]) };
    batch b;
    loaded_model m = no_model();
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT, want = CW_STRBUF_INIT;
    batch_counts c;
    assert_int_equal(batch_init(&b, N), 0);
    for (int i = 0; i < N; i++) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "{\"hash\":\"" HASH_A "\",\"value\":\"%s\",\"gas\":\"%s\",\"gasPrice\":\"%s\","
                 "\"timeStamp\":\"253402300799\"}",
                 amounts[i], amounts[N - 1 - i], amounts[i]);
        batch_add(&b, fake_str(msg, 0, i));
        cw_strbuf_printf(
            &want,
            HASH_A "\t\\N\t\\N\t%s\t%s\t%s\t\\N\t9999-12-31 23:59:59+00\t\\N\t\\N\tt\t0\t%d\t\\N\n",
            amounts[i], amounts[N - 1 - i], amounts[i], i);
    }
    batch_decode(&b, 0);
    assert_int_equal(batch_score(&b, &m), 0);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    assert_int_equal(c.rows, N);
    check_tx(&tx, want.data);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    cw_strbuf_free(&want);
    batch_free(&b);
}

static void batch_copy_dead_letters_as_bytea_hex(void **state)
{
    (void) state;
    batch b;
    loaded_model m = no_model();
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT;
    batch_counts c;
    /* bytes that COPY text would mangle if they were not hex-encoded: NUL, tab, newline,
     * backslash, 0xff (invalid UTF-8) */
    const unsigned char raw[] = {'{', 0x00, '\t', '\n', '\\', 0xff, '}'};

    assert_int_equal(batch_init(&b, 4), 0);
    batch_add(&b, fake_msg(raw, sizeof(raw), 5, 7));
    batch_add(&b,
              fake_str("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}", 5, 8));
    batch_add(&b, fake_str("[-1]", 5, 9));
    batch_add(&b, fake_str("", 6, 0)); /* an empty message (a tombstone) */
    batch_decode(&b, 0);
    assert_true(b.items[0].dead && !b.items[1].dead && b.items[2].dead && b.items[3].dead);
    assert_int_equal(b.items[0].dead_reason, CW_DECODE_INVALID_UTF8);
    assert_int_equal(b.items[2].dead_reason, CW_DECODE_NOT_OBJECT);
    assert_int_equal(b.items[3].dead_reason, CW_DECODE_INVALID_JSON);
    /* an error text with the characters COPY must escape (as the database's can have) */
    snprintf(b.items[2].dead_error, sizeof(b.items[2].dead_error), "a\tb\nc\\d\re");
    b.items[2].dead_reason = DEAD_REASON_DB_REJECTED;
    assert_int_equal(batch_score(&b, &m), 0);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    check_tx(&tx, HASH_A "\t\\N\t\\N\t1\t1\t1\t\\N\t\\N\t\\N\t\\N\tt\t5\t8\t\\N\n");
    check_text(&dl, "\\\\x7b00090a5cff7d\tmessage is not valid UTF-8\tinvalid_utf8\tt\t5\t7\n"
                    "\\\\x5b2d315d\ta\\tb\\nc\\\\d\\re\tdb_rejected\tt\t5\t9\n"
                    "\\\\x\tempty message\tinvalid_json\tt\t6\t0\n");
    assert_int_equal(c.rows, 1);
    assert_int_equal(c.dead, 3);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    batch_free(&b);
}

/* ---- severity (model.c) -----------------------------------------------------------------------
 */

static severity_rule rule(int level, double min_score, const char *min_value_wei,
                          const char *min_gas_price_wei)
{
    severity_rule r;
    memset(&r, 0, sizeof(r));
    r.level = level;
    r.has_score = !isnan(min_score);
    r.min_score = r.has_score ? min_score : 0;
    snprintf(r.min_value_wei, sizeof(r.min_value_wei), "%s", min_value_wei ? min_value_wei : "");
    snprintf(r.min_gas_price_wei, sizeof(r.min_gas_price_wei), "%s",
             min_gas_price_wei ? min_gas_price_wei : "");
    return r;
}

/* the shipped default rules (extension's severity_rules), as model_load turns them into wei;
 * listed highest first so the evaluation order cannot be what makes the answer right */
static loaded_model default_rules(void)
{
    loaded_model m = no_model();
    const severity_rule rules[] = {
        rule(3, NAN, "10000000000000000000000", NULL), /* value >= 10,000 ETH */
        rule(3, NAN, NULL, "10000000000000"),          /* gas price >= 10,000 gwei */
        rule(3, 0.80, "1000000000000000000000", NULL), /* score >= .8 and 1,000 ETH */
        rule(2, NAN, "1000000000000000000000", NULL),
        rule(2, NAN, NULL, "2000000000000"),
        rule(2, 0.75, "100000000000000000000", NULL),
        rule(1, NAN, "100000000000000000000", NULL), /* value >= 100 ETH */
        rule(1, NAN, NULL, "500000000000"),
        rule(1, 0.70, "10000000000000000000", NULL),
    };
    memcpy(m.rules, rules, sizeof(rules));
    m.n_rules = (int) (sizeof(rules) / sizeof(rules[0]));
    return m;
}

#define severity_is(m, score, value, gp, want)                                                     \
    do {                                                                                           \
        int got_ = severity_of((m), (score), (value), (gp));                                       \
        if (got_ != (want))                                                                        \
            fail_msg("severity_of(score %.17g, value %s, gas price %s) = %s, expected %s",         \
                     (double) (score), (value), (gp), severity_names[got_], severity_names[want]); \
    } while (0)

static void severity_exact_at_the_100_eth_boundary(void **state)
{
    (void) state;
    loaded_model m = default_rules();
    severity_is(&m, 0.5, "99999999999999999999", "1", 0);  /* 100 ETH - 1 wei */
    severity_is(&m, 0.5, "100000000000000000000", "1", 1); /* exactly 100 ETH */
    severity_is(&m, 0.5, "100000000000000000001", "1", 1);
    severity_is(&m, 0.5, "900000000000000000000", "1", 1);  /* longer, smaller first digit */
    severity_is(&m, 0.5, "999999999999999999999", "1", 1);  /* 1,000 ETH - 1 wei */
    severity_is(&m, 0.5, "1000000000000000000000", "1", 2); /* exactly 1,000 ETH */
    severity_is(&m, 0.5, "10000000000000000000000", "1", 3);
    severity_is(&m, 0.5, "0", "0", 0);
    /* the doubles of 100 ETH - 1 wei and 100 ETH are equal: only exact comparison tells them apart
     */
    assert_true(strtod("99999999999999999999", NULL) == strtod("100000000000000000000", NULL));
}

static void severity_gas_price_and_score_conditions(void **state)
{
    (void) state;
    loaded_model m = default_rules();
    severity_is(&m, 0.1, "0", "499999999999", 0);
    severity_is(&m, 0.1, "0", "500000000000", 1); /* exactly 500 gwei */
    severity_is(&m, 0.1, "0", "2000000000000", 2);
    severity_is(&m, 0.1, "0", "10000000000000", 3);
    /* score rules need both conditions; the score bound is inclusive */
    severity_is(&m, nextafter(0.70, 0), "10000000000000000000", "1", 0);
    severity_is(&m, 0.70, "10000000000000000000", "1", 1);
    severity_is(&m, 0.70, "9999999999999999999", "1", 0);
    severity_is(&m, 0.75, "100000000000000000000", "1", 2);
    severity_is(&m, 0.80, "1000000000000000000000", "1", 3);
    severity_is(&m, NAN, "10000000000000000000", "1", 0); /* NaN satisfies no score bound */
    /* no rules: everything is low */
    loaded_model none = no_model();
    severity_is(&none, 1.0,
                "115792089237316195423570985008687907853269984665640564039457584007913129639935",
                "1", 0);
}

/* ---- batch with a model: scores, anomalies with severity ----------------------------------------
 */

/* stream_sink_ctx collects what batch_copy_stream flushes; flush number fail_at (1-based) fails */
typedef struct stream_sink_ctx {
    cw_strbuf got;
    int calls;
    int fail_at;
} stream_sink_ctx;

static int stream_sink_flush(void *ctx, cw_strbuf *tx)
{
    stream_sink_ctx *sc = ctx;
    sc->calls++;
    if (sc->calls == sc->fail_at)
        return -sc->fail_at;
    cw_strbuf_append(&sc->got, tx->data, tx->len);
    cw_strbuf_reset(tx);
    return 0;
}

static void batch_scored_rows_and_anomalies(void **state)
{
    (void) state;
    /* train on ordinary transfers; a 50,000 ETH transfer with a huge gas price is an outlier */
    enum { N = 512 };
    double *rows = malloc(sizeof(double) * 3 * N);
    assert_non_null(rows);
    cw_prng rng;
    cw_prng_seed(&rng, 42);
    for (int i = 0; i < N; i++) { /* a dense cloud: 0.1..1.1 ETH, ~21000 gas, 20..30 gwei */
        rows[3 * i] = 1e17 + 1e18 * cw_prng_double(&rng);
        rows[3 * i + 1] = 21000 + 4000 * cw_prng_double(&rng);
        rows[3 * i + 2] = 2e10 + 1e10 * cw_prng_double(&rng);
    }
    forest_params params = {3, 100, 256, 0.05, 42, FOREST_TRANSFORM_LOG1P};
    forest_error ferr;
    forest *f = forest_train(rows, N, &params, NULL, &ferr);
    free(rows);
    if (!f)
        fail_msg("forest_train: %s", ferr.message);
    loaded_model m = default_rules();
    m.forest = f;
    m.model_id = 7;

    batch b;
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT;
    batch_counts c;
    assert_int_equal(batch_init(&b, 3), 0);
    batch_add(&b,
              fake_str("[{\"hash\":\"" HASH_A "\",\"value\":\"500000000000000000\",\"gas\":21000,"
                       "\"gasPrice\":25000000000},"
                       "{\"hash\":\"" HASH_B "\",\"value\":\"50000000000000000000000\","
                       "\"gas\":21000,\"gasPrice\":20000000000000}]",
                       0, 10));
    batch_add(&b, fake_str("not json", 0, 11)); /* a dead item between scored ones */
    batch_add(&b,
              fake_str("{\"hash\":\"" HASH_C "\",\"value\":\"1000000000000000000\",\"gas\":25000,"
                       "\"gasPrice\":22000000000}",
                       0, 12));
    batch_decode(&b, 0);
    assert_int_equal(batch_score(&b, &m), 0);
    assert_int_equal(b.scored_with, 7);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);

    const double want_rows[3][3] = {
        {5e17, 21000, 2.5e10}, {5e22, 21000, 2e13}, {1e18, 25000, 2.2e10}};
    const char *hashes[3] = {HASH_A, HASH_B, HASH_C};
    const char *values[3] = {"500000000000000000", "50000000000000000000000",
                             "1000000000000000000"};
    const char *gas[3] = {"21000", "21000", "25000"};
    const char *gp[3] = {"25000000000", "20000000000000", "22000000000"};
    const int offsets[3] = {10, 10, 12};
    cw_strbuf want_tx = CW_STRBUF_INIT, want_an = CW_STRBUF_INIT;
    size_t n_anomalies = 0;
    for (int i = 0; i < 3; i++) {
        double s = forest_score(f, want_rows[i]);
        char line[512];
        snprintf(line, sizeof(line), "%s\t\\N\t\\N\t%s\t%s\t%s\t\\N\t\\N\t%.17g\t7\t", hashes[i],
                 values[i], gas[i], gp[i], s);
        cw_strbuf_puts(&want_tx, line);
        cw_strbuf_printf(&want_tx, "t\t0\t%d\t\\N\n", offsets[i]);
        if (s > forest_threshold(f)) {
            n_anomalies++;
            cw_strbuf_puts(&want_an, line);
            cw_strbuf_printf(&want_an, "%s\tt\t0\t%d\t\\N\n",
                             severity_names[severity_of(&m, s, values[i], gp[i])], offsets[i]);
        }
    }
    /* the outlier must be flagged, and (50,000 ETH) critical; the ordinary ones not */
    if (!(forest_score(f, want_rows[1]) > forest_threshold(f)) ||
        forest_score(f, want_rows[0]) > forest_threshold(f))
        fail_msg("test model unfit: scores %.6f (ordinary) %.6f (outlier), threshold %.6f",
                 forest_score(f, want_rows[0]), forest_score(f, want_rows[1]), forest_threshold(f));
    check_tx(&tx, want_tx.data);
    check_text(&an, want_an.data);
    if (!strstr(an.data, "\tcritical\t"))
        fail_msg("the 50,000 ETH outlier is not critical:\n%s", an.data);
    check_text(&dl, "\\\\x6e6f74206a736f6e\tmessage is not valid JSON\tinvalid_json\tt\t0\t11\n");
    assert_int_equal(c.rows, 3);
    assert_int_equal(c.dead, 1);
    assert_int_equal(c.anomalies, n_anomalies);
    assert_int_equal(c.by_severity[3], 1);

    /* streamed in pieces (a flush at every row past 100 bytes), the transactions text arrives
     * whole and in order, and the other two tables' text is the same */
    for (int fail_at = 0; fail_at < 3; fail_at++) {
        stream_sink_ctx sc = {CW_STRBUF_INIT, 0, fail_at};
        copy_sink sink = {100, stream_sink_flush, &sc};
        cw_strbuf rest = CW_STRBUF_INIT, an3 = CW_STRBUF_INIT, dl3 = CW_STRBUF_INIT;
        batch_counts c3;
        int rc = batch_copy_stream(&b, &m, "t", &rest, &an3, &dl3, &c3, &sink);
        if (fail_at == 0) {
            /* never fails: every piece but the tail went to the sink */
            assert_int_equal(rc, 0);
            assert_true(sc.calls >= 2);
            cw_strbuf_append(&sc.got, rest.data ? rest.data : "", rest.len);
            check_tx(&sc.got, want_tx.data);
        } else {
            /* the flush that fails is the last one made */
            assert_int_equal(rc, -fail_at);
            assert_int_equal(sc.calls, fail_at);
        }
        check_text(&an3, want_an.data);
        assert_int_equal(c3.rows, 3);
        assert_int_equal(c3.anomalies, n_anomalies);
        cw_strbuf_free(&sc.got);
        cw_strbuf_free(&rest);
        cw_strbuf_free(&an3);
        cw_strbuf_free(&dl3);
    }

    /* a batch scored with another model than the one rendering it is written unscored */
    loaded_model other = m;
    other.model_id = 8;
    cw_strbuf tx2 = CW_STRBUF_INIT, an2 = CW_STRBUF_INIT, dl2 = CW_STRBUF_INIT;
    batch_copy(&b, &other, "t", &tx2, &an2, &dl2, &c);
    assert_int_equal(c.anomalies, 0);
    cw_strbuf tx2_text = CW_STRBUF_INIT;
    tx_as_text(&tx2, &tx2_text);
    assert_non_null(strstr(tx2_text.data, "\t\\N\t\\N\tt\t0\t10\t\\N\n"));
    cw_strbuf_free(&tx2_text);

    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    cw_strbuf_free(&tx2);
    cw_strbuf_free(&an2);
    cw_strbuf_free(&dl2);
    cw_strbuf_free(&want_tx);
    cw_strbuf_free(&want_an);
    batch_free(&b);
    forest_free(f);
}

/* ---- a model the ingestor cannot score with; messages refused by the database --------------- */

/* uniform_forest: a forest of n_trees trained on 256 rows of nf uniform features (a float8[]
 * model), from seed */
static forest *uniform_forest(int nf, int n_trees, uint64_t seed)
{
    enum { N = 256 };
    double *rows = malloc(sizeof(double) * N * (size_t) nf);
    assert_non_null(rows);
    cw_prng rng;
    cw_prng_seed(&rng, seed);
    for (int i = 0; i < N * nf; i++)
        rows[i] = cw_prng_double(&rng);
    forest_params params = {nf, n_trees, 64, 0.05, seed, FOREST_TRANSFORM_IDENTITY};
    forest_error ferr;
    forest *f = forest_train(rows, N, &params, NULL, &ferr);
    free(rows);
    if (!f)
        fail_msg("forest_train: %s", ferr.message);
    return f;
}

/* five_feature_forest: a forest trained on rows of five features (a float8[] model) */
static forest *five_feature_forest(void)
{
    return uniform_forest(5, 10, 5);
}

/* two_transfers fills b with two one-transaction messages of partition 3, offsets 40 and 41 */
static void two_transfers(batch *b)
{
    assert_int_equal(batch_init(b, 2), 0);
    batch_add(b, fake_str("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":21000,\"gasPrice\":1}",
                          3, 40));
    batch_add(b, fake_str("{\"hash\":\"" HASH_B "\",\"value\":\"2\",\"gas\":21000,\"gasPrice\":1}",
                          3, 41));
    batch_decode(b, 0);
}

/* a model over behaviour/1 scores the batch's history (history.c, filled in the batch's
 * transaction) and nothing else: before the history exists the rows stay unscored; with it, each
 * row's score is the forest's score of its features, and the features go to the COPY exactly */
static void batch_behaviour_model_scores_the_history(void **state)
{
    (void) state;
    enum { F = CW_FEATURES };
    forest *f = uniform_forest(F, 20, 12);
    loaded_model m = default_rules();
    m.forest = f;
    m.model_id = 11;
    m.behaviour = true;
    m.n_select = F; /* all of them, in order (model_load maps a model's names) */
    for (int k = 0; k < F; k++)
        m.select[k] = k;

    batch b;
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT, text = CW_STRBUF_INIT;
    batch_counts c;
    two_transfers(&b);
    assert_int_equal(batch_score(&b, &m), 0);
    assert_int_equal(b.scored_with, -1); /* no history yet: not scored */
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    assert_int_equal(c.unscored, 2);

    /* the history as history_compute leaves it: one vector per row, first_score its index */
    b.history = malloc(sizeof(double) * 2 * F);
    assert_non_null(b.history);
    b.history_cap = 2;
    for (int k = 0; k < 2 * F; k++)
        b.history[k] =
            k == F + 3 ? 25.0 : 0.1 * k; /* the second row far outside the training cloud */
    b.items[0].first_score = 0;
    b.items[1].first_score = 1;
    b.has_history = true;
    assert_int_equal(batch_score(&b, &m), 0);
    assert_int_equal(b.scored_with, 11);
    cw_strbuf_reset(&tx);
    cw_strbuf_reset(&an);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    tx_as_text(&tx, &text);
    cw_strbuf want = CW_STRBUF_INIT;
    const char *hashes[2] = {HASH_A, HASH_B};
    for (int r = 0; r < 2; r++) {
        cw_strbuf_printf(&want, "%s\t\\N\t\\N\t%d\t21000\t1\t\\N\t\\N\t%.17g\t11\tt\t3\t%d\t{",
                         hashes[r], r + 1, forest_score(f, &b.history[F * r]), 40 + r);
        for (int k = 0; k < F; k++)
            cw_strbuf_printf(&want, k ? ",%.17g" : "%.17g", b.history[F * r + k]);
        cw_strbuf_puts(&want, "}\n");
    }
    check_text(&text, want.data);
    assert_int_equal(c.unscored, 0);
    /* the outlier is an anomaly, its features in the anomalies COPY too */
    assert_true(forest_score(f, &b.history[F]) > forest_threshold(f));
    assert_non_null(strstr(an.data, HASH_B));
    assert_non_null(strstr(an.data, ",25,"));
    cw_strbuf_free(&want);
    cw_strbuf_free(&text);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    batch_free(&b);
    model_free(&m);
}

static void batch_with_an_unusable_model_stores_null_scores(void **state)
{
    (void) state;
    /* what model_load makes of an active model of five features: its id, no forest (issue 26:
     * the batch was marked scored without scoring, and uninitialised scores were stored) */
    forest *five = five_feature_forest();
    assert_int_equal(forest_n_features(five), 5);
    forest_free(five);
    loaded_model m = default_rules();
    m.model_id = 9;
    snprintf(m.unusable, sizeof(m.unusable), "it has 5 features");
    assert_false(model_usable(&m));

    batch b;
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT, text = CW_STRBUF_INIT;
    batch_counts c;
    two_transfers(&b);
    /* scores hold garbage, as realloc'd memory may: none of it may reach the COPY */
    b.scores = malloc(2 * sizeof(double));
    b.features = malloc(3 * 2 * sizeof(double));
    b.rows_cap = 2;
    b.scores[0] = 4.65e-310;
    b.scores[1] = 1e300;
    assert_int_equal(batch_score(&b, &m), 0);
    assert_int_equal(b.scored_with, 9);
    assert_true(b.scores[0] == 4.65e-310 && b.scores[1] == 1e300); /* nothing was computed */
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    tx_as_text(&tx, &text);
    check_text(&text, HASH_A "\t\\N\t\\N\t1\t21000\t1\t\\N\t\\N\t\\N\t\\N\tt\t3\t40\t\\N\n" HASH_B
                             "\t\\N\t\\N\t2\t21000\t1\t\\N\t\\N\t\\N\t\\N\tt\t3\t41\t\\N\n");
    assert_int_equal(an.len, 0);
    assert_int_equal(c.rows, 2);
    assert_int_equal(c.unscored, 2);
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    cw_strbuf_free(&text);
    batch_free(&b);
}

static void clip_utf8_never_cuts_a_character(void **state)
{
    (void) state;
    char out[64];
    /* "ab" then three euro signs (e2 82 ac): a cut at 4 bytes falls inside the first one */
    const char *s = "ab\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac";
    for (size_t max = 0; max <= strlen(s); max++) {
        size_t n = batch_clip_utf8(out, sizeof(out), s, max);
        size_t want = max < 2 ? max : 2 + 3 * ((max - 2) / 3);
        if (n != want || strlen(out) != n || memcmp(out, s, n) != 0 || !cw_utf8_valid(out, n))
            fail_msg("clip to %zu bytes gave %zu bytes (want %zu)", max, n, want);
    }
    /* the destination's size bounds it too */
    assert_int_equal(batch_clip_utf8(out, 6, s, 100), 5);
    assert_string_equal(out, "ab\xe2\x82\xac");
    /* bytes that are not UTF-8 at all become '?' */
    assert_int_equal(batch_clip_utf8(out, sizeof(out),
                                     "a\xff\xfe"
                                     "b",
                                     100),
                     4);
    assert_string_equal(out, "a??b");
}

static void refused_message_moves_down_to_a_dead_letter_then_minimal_then_dropped(void **state)
{
    (void) state;
    batch b;
    cw_strbuf tx = CW_STRBUF_INIT, an = CW_STRBUF_INIT, dl = CW_STRBUF_INIT;
    batch_counts c;
    loaded_model m = no_model();
    char error[400];
    /* a server message of 3-byte characters whose 200-byte cut falls inside one */
    int k = snprintf(error, sizeof(error), "ERROR:  refused ");
    for (int i = 0; i < 100; i++)
        k += snprintf(error + k, sizeof(error) - (size_t) k, "\xe2\x82\xac");
    assert_int_equal(batch_init(&b, 1), 0);
    batch_add(&b, fake_str("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":21000,\"gasPrice\":1}",
                           2, 7));
    batch_decode(&b, 0);
    batch_item *it = &b.items[0];
    assert_int_equal(it->stage, ITEM_ROWS);

    assert_int_equal(batch_item_refused(it, "22023", error), ITEM_DEAD_LETTER);
    assert_true(it->dead && it->n_txs == 0 && it->dead_reason == DEAD_REASON_DB_REJECTED);
    assert_true(strncmp(it->dead_error, "database refused: ERROR:  refused \xe2\x82\xac", 37) == 0);
    assert_true(cw_utf8_valid(it->dead_error, strlen(it->dead_error)));
    assert_int_equal(strlen(it->dead_error), strlen("database refused: ") + 16 + 3 * 61);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    assert_int_equal(c.dead, 1);
    assert_non_null(strstr(dl.data, "\\\\x7b22")); /* the payload, as bytea hex */

    cw_strbuf_reset(&dl);
    assert_int_equal(batch_item_refused(it, "22021", "ERROR:  no"), ITEM_MINIMAL);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    check_text(&dl,
               "\\\\x\tthe database refused this message (SQLSTATE 22023) and its dead letter "
               "(SQLSTATE 22021); payload not stored, read it from Kafka\tdb_rejected\tt\t2\t7\n");
    assert_int_equal(c.dead, 1);

    cw_strbuf_reset(&dl);
    assert_int_equal(batch_item_refused(it, NULL, "ERROR:  still"), ITEM_DROPPED);
    batch_copy(&b, &m, "t", &tx, &an, &dl, &c);
    assert_int_equal(dl.len, 0);
    assert_true(c.dead == 0 && c.rows == 0 && c.dropped == 1);
    assert_int_equal(batch_item_refused(it, "22023", "x"), ITEM_DROPPED); /* the last stage */

    /* a message that did not decode starts as a dead letter and keeps its reason */
    batch_clear(&b);
    batch_add(&b, fake_str("not json", 2, 8));
    batch_decode(&b, 0);
    it = &b.items[0];
    assert_int_equal(it->stage, ITEM_DEAD_LETTER);
    assert_int_equal(batch_item_refused(it, "23505", "ERROR:  x"), ITEM_MINIMAL);
    assert_int_equal(it->dead_reason, CW_DECODE_INVALID_JSON);
    assert_string_equal(it->dead_error, "the database refused this message's dead letter (SQLSTATE "
                                        "23505); payload not stored, read it from Kafka");
    cw_strbuf_free(&tx);
    cw_strbuf_free(&an);
    cw_strbuf_free(&dl);
    batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(queue_holds_exactly_its_capacity, reset_destroyed),
        cmocka_unit_test_setup(queue_is_fifo_across_wraparound, reset_destroyed),
        cmocka_unit_test_setup(queue_purge_removes_matches_and_keeps_order, reset_destroyed),
        cmocka_unit_test_setup(queue_budget_is_shared, reset_destroyed),
        cmocka_unit_test_setup(queue_idle_counts_popped_messages_until_settled, reset_destroyed),
        cmocka_unit_test_setup(queue_timed_wait_times_out, reset_destroyed),
        cmocka_unit_test_setup(queue_timed_wait_wakes_on_push, reset_destroyed),
        cmocka_unit_test_setup(batch_capacity_and_ownership, reset_destroyed),
        cmocka_unit_test_setup(batch_remove_if_destroys_removed_and_keeps_order, reset_destroyed),
        cmocka_unit_test_setup(batch_copy_unscored_rows_and_nulls, reset_destroyed),
        cmocka_unit_test_setup(batch_copy_binary_amounts_exact, reset_destroyed),
        cmocka_unit_test_setup(batch_copy_dead_letters_as_bytea_hex, reset_destroyed),
        cmocka_unit_test_setup(severity_exact_at_the_100_eth_boundary, reset_destroyed),
        cmocka_unit_test_setup(severity_gas_price_and_score_conditions, reset_destroyed),
        cmocka_unit_test_setup(batch_scored_rows_and_anomalies, reset_destroyed),
        cmocka_unit_test_setup(batch_with_an_unusable_model_stores_null_scores, reset_destroyed),
        cmocka_unit_test_setup(batch_behaviour_model_scores_the_history, reset_destroyed),
        cmocka_unit_test(clip_utf8_never_cuts_a_character),
        cmocka_unit_test_setup(
            refused_message_moves_down_to_a_dead_letter_then_minimal_then_dropped, reset_destroyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
