/* tests/unit/test_api_pgbin.c — cmocka: values of binary-format results (apiserver/src/pgbin.c,
 * read from PGresults built in memory), RFC 3339 text of PostgreSQL timestamps
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

/* set_be stores the n-byte big-endian form of v (what PostgreSQL's *_send functions write) as
 * the value of (row, col) */
static void set_be(PGresult *r, int row, int col, uint64_t v, int n)
{
    char buf[8];
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        buf[i] = (char) (v & 0xff);
    assert_int_equal(PQsetvalue(r, row, col, buf, n), 1);
}

static void test_binary_values(void **state)
{
    (void) state;
    PGresAttDesc cols[5];
    memset(cols, 0, sizeof(cols));
    static const char *const names[5] = {"i2", "i4", "i8", "f8", "ts"};
    static const Oid types[5] = {21, 23, 20, 701, 1184};
    static const int sizes[5] = {2, 4, 8, 8, 8};
    for (int i = 0; i < 5; i++) {
        cols[i].name = (char *) names[i];
        cols[i].format = 1;
        cols[i].typid = types[i];
        cols[i].typlen = sizes[i];
        cols[i].atttypmod = -1;
    }
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(r);
    assert_int_equal(PQsetResultAttrs(r, 5, cols), 1);

    /* row 0: negative and extreme values, sign extension of the short widths */
    set_be(r, 0, 0, (uint16_t) -2, 2);
    set_be(r, 0, 1, (uint32_t) -70000, 4);
    set_be(r, 0, 2, (uint64_t) (INT64_MIN + 5), 8);
    double d = -0.1;
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    set_be(r, 0, 3, bits, 8);
    set_be(r, 0, 4, (uint64_t) INT64_C(762529507123456), 8);
    /* row 1: positive maxima, and a NULL float8 and timestamp */
    set_be(r, 1, 0, INT16_MAX, 2);
    set_be(r, 1, 1, INT32_MAX, 4);
    set_be(r, 1, 2, INT64_MAX, 8);
    assert_int_equal(PQsetvalue(r, 1, 3, NULL, -1), 1);
    assert_int_equal(PQsetvalue(r, 1, 4, NULL, -1), 1);
    /* row 2: a value of an unexpected width reads as 0, not as a misaligned integer */
    assert_int_equal(PQsetvalue(r, 2, 0, "abc", 3), 1);
    assert_int_equal(PQsetvalue(r, 2, 3, "abcd", 4), 1);

    assert_int_equal(pgbin_int(r, 0, 0), -2);
    assert_int_equal(pgbin_int(r, 0, 1), -70000);
    assert_true(pgbin_int(r, 0, 2) == INT64_MIN + 5);
    assert_true(pgbin_float8(r, 0, 3) == -0.1);
    assert_true(pgbin_int(r, 0, 4) == INT64_C(762529507123456));
    assert_int_equal(pgbin_int(r, 1, 0), INT16_MAX);
    assert_int_equal(pgbin_int(r, 1, 1), INT32_MAX);
    assert_true(pgbin_int(r, 1, 2) == INT64_MAX);
    assert_true(pgbin_float8(r, 1, 3) == 0);
    assert_true(pgbin_int(r, 1, 4) == 0);
    assert_true(pgbin_int(r, 2, 0) == 0);
    assert_true(pgbin_float8(r, 2, 3) == 0);
    PQclear(r);
}

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
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
