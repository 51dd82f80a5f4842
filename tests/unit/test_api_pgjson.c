/* tests/unit/test_api_pgjson.c — cmocka: JSON from PostgreSQL binary values
 * (apiserver/src/pgjson.c) and JSON string escaping (common/src/strbuf.c) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgjson.h"

/* numeric_bin builds numeric_send's layout: ndigits, weight, sign, dscale, base-10000 digits */
static size_t numeric_bin(char *out, int weight, unsigned sign, int dscale, int ndigits, ...)
{
    va_list ap;
    int16_t head[4] = {(int16_t) ndigits, (int16_t) weight, (int16_t) sign, (int16_t) dscale};
    for (int i = 0; i < 4; i++) {
        out[2 * i] = (char) ((uint16_t) head[i] >> 8);
        out[2 * i + 1] = (char) (head[i] & 0xFF);
    }
    va_start(ap, ndigits);
    for (int i = 0; i < ndigits; i++) {
        int d = va_arg(ap, int);
        out[8 + 2 * i] = (char) (d >> 8);
        out[9 + 2 * i] = (char) (d & 0xFF);
    }
    va_end(ap);
    return 8 + 2 * (size_t) ndigits;
}

static void assert_numeric(const char *bin, size_t len, const char *want)
{
    cw_strbuf b = CW_STRBUF_INIT;
    assert_true(pgjson_put_numeric(&b, bin, len));
    assert_string_equal(b.data, want);
    cw_strbuf_free(&b);
}

static void test_numeric(void **state)
{
    char bin[64];
    (void) state;
    assert_numeric(bin, numeric_bin(bin, 0, 0, 0, 0), "0");
    assert_numeric(bin, numeric_bin(bin, 2, 0, 0, 3, 1, 2345, 6789), "123456789");
    /* 10^22 wei: one digit (100) worth 10000^5, trailing zero groups not stored */
    assert_numeric(bin, numeric_bin(bin, 5, 0, 0, 1, 100), "10000000000000000000000");
    assert_numeric(bin, numeric_bin(bin, 1, 0, 0, 2, 42, 7), "420007");
    assert_numeric(bin, numeric_bin(bin, 0, 0, 1, 2, 1, 5000), "1.5");
    assert_numeric(bin, numeric_bin(bin, -1, 0x4000, 4, 1, 12), "-0.0012");
    assert_numeric(bin, numeric_bin(bin, 0, 0, 6, 1, 3), "3.000000");
    assert_numeric(bin, numeric_bin(bin, 0, 0xC000, 0, 0), "NaN");
    assert_numeric(bin, numeric_bin(bin, 0, 0xD000, 0, 0), "Infinity");
    assert_numeric(bin, numeric_bin(bin, 0, 0xF000, 0, 0), "-Infinity");
    /* 2^256 - 1: 78 digits, 20 base-10000 digits */
    assert_numeric(
        bin,
        numeric_bin(bin, 19, 0, 0, 20, 11, 5792, 892, 3731, 6195, 4235, 7098, 5008, 6879, 785, 3269,
                    9846, 6564, 564, 394, 5758, 4007, 9131, 2963, 9935),
        "115792089237316195423570985008687907853269984665640564039457584007913129639935");
}

static void test_numeric_malformed(void **state)
{
    char bin[64];
    cw_strbuf b = CW_STRBUF_INIT;
    (void) state;
    size_t len = numeric_bin(bin, 0, 0, 0, 2, 1, 2);
    assert_false(pgjson_put_numeric(&b, bin, len - 1)); /* truncated */
    assert_false(pgjson_put_numeric(&b, bin, 4));
    numeric_bin(bin, 0, 0x1234, 0, 0); /* unknown sign */
    assert_false(pgjson_put_numeric(&b, bin, 8));
    len = numeric_bin(bin, 0, 0, 0, 1, 10000); /* digit out of range */
    assert_false(pgjson_put_numeric(&b, bin, len));
    assert_int_equal(b.len, 0); /* nothing appended */
    cw_strbuf_free(&b);
}

static void assert_timestamp(int64_t us, const char *want)
{
    cw_strbuf b = CW_STRBUF_INIT;
    pgjson_put_timestamp(&b, us);
    assert_string_equal(b.data, want);
    cw_strbuf_free(&b);
}

static void test_timestamp(void **state)
{
    (void) state;
    assert_timestamp(0, "\"2000-01-01T00:00:00.000000Z\"");
    assert_timestamp(-1, "\"1999-12-31T23:59:59.999999Z\"");
    assert_timestamp(INT64_C(762529507123456), "\"2024-02-29T13:45:07.123456Z\"");
    assert_timestamp(INT64_C(-960867740000000), "\"1969-07-20T20:17:40.000000Z\"");
    assert_timestamp(-PGJSON_EPOCH_OFFSET_US, "\"1970-01-01T00:00:00.000000Z\"");
    assert_timestamp(INT64_MAX, "null");
    assert_timestamp(INT64_MIN, "null");
    /* year 10000 and before year 0: still a readable timestamp, not a crash */
    assert_timestamp(INT64_C(252455616000000000), "\"10000-01-01T00:00:00.000000Z\"");
}

static void test_float8(void **state)
{
    const double values[] = {0.1, 0.648885497175029, 0.5725081347757865, 1e-300, 1.0 / 3, 2.5,
                             -0.0};
    (void) state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        cw_strbuf b = CW_STRBUF_INIT;
        pgjson_put_float8(&b, values[i]);
        assert_true(strtod(b.data, NULL) == values[i]); /* reads back exactly */
        cw_strbuf_free(&b);
    }
    cw_strbuf b = CW_STRBUF_INIT;
    pgjson_put_float8(&b, 0.5);
    assert_string_equal(b.data, "0.5");
    cw_strbuf_reset(&b);
    pgjson_put_float8(&b, NAN);
    assert_string_equal(b.data, "null");
    cw_strbuf_free(&b);
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
        cmocka_unit_test(test_numeric),     cmocka_unit_test(test_numeric_malformed),
        cmocka_unit_test(test_timestamp),   cmocka_unit_test(test_float8),
        cmocka_unit_test(test_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
