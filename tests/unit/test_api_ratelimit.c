/* tests/unit/test_api_ratelimit.c — cmocka: the token bucket and the per-client table
 * (apiserver/src/ratelimit.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ratelimit.h"

#define SEC 1000000000LL

static void test_burst_then_refuse(void **state)
{
    token_bucket b = {0};
    (void) state;
    for (int i = 0; i < 5; i++)
        assert_int_equal(tb_take(&b, 10 * SEC, 2, 5), 0);
    int64_t wait = tb_take(&b, 10 * SEC, 2, 5);
    /* 2 tokens/s: the next one comes in half a second */
    assert_true(wait > 0);
    assert_true(wait <= SEC / 2);
}

static void test_refill_rate(void **state)
{
    token_bucket b = {0};
    int passed = 0;
    (void) state;
    /* 10 s of requests every 10 ms at 20 rps, burst 1: ~200 pass */
    for (int64_t t = SEC; t < 11 * SEC; t += SEC / 100)
        passed += tb_take(&b, t, 20, 1) == 0;
    assert_in_range(passed, 199, 201);
}

static void test_refill_capped_at_burst(void **state)
{
    token_bucket b = {0};
    (void) state;
    assert_int_equal(tb_take(&b, SEC, 1, 3), 0);
    /* an hour idle refills to the burst, not to 3600 */
    int passed = 0;
    for (int i = 0; i < 10; i++)
        passed += tb_take(&b, 3601 * SEC, 1, 3) == 0;
    assert_int_equal(passed, 3);
}

static void test_clock_going_backwards(void **state)
{
    token_bucket b = {0};
    (void) state;
    assert_int_equal(tb_take(&b, 5 * SEC, 1, 1), 0);
    assert_true(tb_take(&b, 4 * SEC, 1, 1) > 0); /* no refill from a backwards clock */
}

static void test_clients_are_separate(void **state)
{
    ratelimit *r = ratelimit_create(1, 2);
    (void) state;
    assert_int_equal(ratelimit_check(r, "ip:1.2.3.4", SEC), 0);
    assert_int_equal(ratelimit_check(r, "ip:1.2.3.4", SEC), 0);
    int wait = ratelimit_check(r, "ip:1.2.3.4", SEC);
    assert_int_equal(wait, 1); /* Retry-After in whole seconds, at least 1 */
    assert_int_equal(ratelimit_check(r, "key:abc", SEC), 0);
    assert_int_equal(ratelimit_refused(r), 1);
    assert_int_equal(ratelimit_check(r, "ip:1.2.3.4", 2 * SEC), 0);
    ratelimit_destroy(r);
}

static void test_table_is_bounded(void **state)
{
    ratelimit *r = ratelimit_create(1, 1);
    char id[32];
    (void) state;
    /* far more clients than entries: every new client still starts with a full bucket */
    for (int i = 0; i < 200000; i++) {
        snprintf(id, sizeof(id), "ip:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(ratelimit_check(r, id, SEC + i), 0);
    }
    assert_int_equal(ratelimit_refused(r), 0);
    ratelimit_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse),      cmocka_unit_test(test_refill_rate),
        cmocka_unit_test(test_refill_capped_at_burst), cmocka_unit_test(test_clock_going_backwards),
        cmocka_unit_test(test_clients_are_separate),   cmocka_unit_test(test_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
