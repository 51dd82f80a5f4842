/* tests/unit/test_api_pgbin.c — cmocka: RFC 3339 text of PostgreSQL timestamps
 * (common/src/rfc3339.c, which the extension's anomaly documents use) and JSON string escaping
 * (common/src/strbuf.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgbin.h"
#include "rfc3339.h"
#include "strbuf.h"

static void assert_timestamp(int64_t us2000, const char *want)
{
    char out[CW_RFC3339_MAX];
    size_t n = cw_rfc3339_us(out, us2000);
    if (!want) {
        assert_int_equal(n, 0);
        return;
    }
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void test_timestamp(void **state)
{
    (void) state;
    assert_timestamp(0, "2000-01-01T00:00:00.000000Z");
    assert_timestamp(-1, "1999-12-31T23:59:59.999999Z");
    assert_timestamp(INT64_C(762529507123456), "2024-02-29T13:45:07.123456Z");
    assert_timestamp(INT64_C(-960867740000000), "1969-07-20T20:17:40.000000Z");
    assert_timestamp(-PGBIN_EPOCH_OFFSET_US, "1970-01-01T00:00:00.000000Z");
    assert_timestamp(INT64_MAX, NULL);
    assert_timestamp(INT64_MIN, NULL);
    /* year 10000 and before year 0: still a readable timestamp, not a crash */
    assert_timestamp(INT64_C(252455616000000000), "10000-01-01T00:00:00.000000Z");
    char out[CW_RFC3339_MAX];
    size_t n = cw_rfc3339_us(out, INT64_MIN + 1); /* the earliest finite count: a negative year */
    assert_true(n > 0 && n < CW_RFC3339_MAX && out[0] == '-' && out[n - 1] == 'Z');
}

static void test_json_string(void **state)
{
    cw_strbuf b = CW_STRBUF_INIT;
    (void) state;
    cw_strbuf_json_string(&b, "a\"b\\c\nd\re\tf\x01g", 13);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\"");
    cw_strbuf_reset(&b);
    cw_strbuf_json_string(&b, "plain 0xabc", 11);
    assert_string_equal(b.data, "\"plain 0xabc\"");
    cw_strbuf_reset(&b);
    cw_strbuf_json_string(&b, "\x1f", 1);
    assert_string_equal(b.data, "\"\\u001f\"");
    cw_strbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
