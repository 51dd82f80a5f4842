/* tests/unit/test_api_params.c — cmocka: query parameter parsing, times, cursors
 * (apiserver/src/params.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "params.h"

static void test_defaults(void **state)
{
    anomaly_query q;
    param_error e;
    (void) state;
    assert_int_equal(params_parse_anomaly_query("", &q, &e), 0);
    assert_int_equal(q.limit, 100);
    assert_int_equal(q.severities, 0);
    assert_false(q.has_since || q.has_until || q.has_min_score || q.has_cursor);
    assert_string_equal(q.address, "");
}

static void test_all_parameters(void **state)
{
    anomaly_query q;
    param_error e;
    (void) state;
    assert_int_equal(
        params_parse_anomaly_query("severity=high&severity=critical,low&since=2024-05-01T12:00:00Z"
                                   "&until=2024-05-01T13:00:00.5%2B01:00&address=0xABCDEFabcdef"
                                   "0123456789abcdef0123456789ab&min_score=0.75&limit=10",
                                   &q, &e),
        0);
    assert_int_equal(q.severities, (1u << 0) | (1u << 2) | (1u << 3));
    assert_int_equal(q.since_us, 1714564800LL * 1000000);
    assert_int_equal(q.until_us, (1714564800LL + 3600 - 3600) * 1000000 + 500000);
    assert_string_equal(q.address, "0xabcdefabcdef0123456789abcdef0123456789ab");
    assert_true(q.has_min_score);
    assert_true(q.min_score == 0.75);
    assert_int_equal(q.limit, 10);
    char sev[64];
    params_severity_array(q.severities, sev, sizeof(sev));
    assert_string_equal(sev, "{low,high,critical}");
}

/* expect_error checks that query is refused, naming param */
static void expect_error(const char *query, const char *param)
{
    anomaly_query q;
    param_error e;
    assert_int_equal(params_parse_anomaly_query(query, &q, &e), -1);
    assert_string_equal(e.param, param);
    assert_true(strlen(e.message) > 0);
}

static void test_errors_name_the_parameter(void **state)
{
    (void) state;
    expect_error("limit=0", "limit");
    expect_error("limit=1001", "limit");
    expect_error("limit=abc", "limit");
    expect_error("limit=-5", "limit");
    expect_error("severity=urgent", "severity");
    expect_error("severity=", "severity");
    expect_error("since=yesterday", "since");
    expect_error("until=2024-02-30T00:00:00Z", "until");
    expect_error("since=2024-05-01T12:00:00", "since"); /* no offset */
    expect_error("address=0x1234", "address");
    expect_error("min_score=1.5", "min_score");
    expect_error("min_score=nan", "min_score");
    expect_error("cursor=!!!", "cursor");
    expect_error("colour=red", "colour");
    expect_error("since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z", "until");
}

static void test_times(void **state)
{
    int64_t us;
    (void) state;
    assert_int_equal(params_parse_time("1970-01-01T00:00:00Z", &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(params_parse_time("2000-02-29T23:59:59.123456Z", &us), 0);
    assert_int_equal(us, 951868799123456LL);
    assert_int_equal(params_parse_time("2024-01-01T01:00:00+01:00", &us), 0);
    assert_int_equal(us, 1704067200LL * 1000000);
    assert_int_equal(params_parse_time("2024-01-01T00:00:00.1234567Z", &us), 0);
    assert_int_equal(us % 1000000, 123456);
    assert_int_equal(params_parse_time("2023-02-29T00:00:00Z", &us), -1);
    assert_int_equal(params_parse_time("2024-13-01T00:00:00Z", &us), -1);
    assert_int_equal(params_parse_time("2024-01-01T00:00:00Zjunk", &us), -1);
    assert_int_equal(params_parse_time("", &us), -1);
}

static void test_cursor_round_trip(void **state)
{
    char buf[64];
    int64_t us, id;
    (void) state;
    params_encode_cursor(1714564800123456LL, 987654321, buf, sizeof(buf));
    assert_int_equal(params_decode_cursor(buf, &us, &id), 0);
    assert_int_equal(us, 1714564800123456LL);
    assert_int_equal(id, 987654321);
    assert_int_equal(params_decode_cursor("", &us, &id), -1);
    assert_int_equal(params_decode_cursor("MTIz", &us, &id), -1); /* "123": no id */
}

static void test_canonical_key(void **state)
{
    anomaly_query a, b;
    param_error e;
    char ka[256], kb[256];
    (void) state;
    assert_int_equal(params_parse_anomaly_query("severity=high,low&limit=5", &a, &e), 0);
    assert_int_equal(params_parse_anomaly_query("limit=5&severity=low&severity=high", &b, &e), 0);
    params_anomaly_query_key(&a, ka, sizeof(ka));
    params_anomaly_query_key(&b, kb, sizeof(kb));
    assert_string_equal(ka, kb);
    assert_int_equal(params_parse_anomaly_query("severity=high,low&limit=6", &b, &e), 0);
    params_anomaly_query_key(&b, kb, sizeof(kb));
    assert_string_not_equal(ka, kb);
}

static void test_window_and_ids(void **state)
{
    long s;
    int id;
    char hash[67];
    (void) state;
    assert_int_equal(params_parse_window("3600", &s), 0);
    assert_int_equal(s, 3600);
    assert_int_equal(params_parse_window("15m", &s), 0);
    assert_int_equal(s, 900);
    assert_int_equal(params_parse_window("7d", &s), 0);
    assert_int_equal(s, 604800);
    assert_int_equal(params_parse_window("0", &s), -1);
    assert_int_equal(params_parse_window("1w", &s), -1);
    assert_int_equal(params_parse_window("400d", &s), -1);
    assert_true(params_positive_int("12", &id));
    assert_int_equal(id, 12);
    assert_false(params_positive_int("0", &id));
    assert_false(params_positive_int("1e3", &id));
    assert_false(params_positive_int("9999999999", &id));
    assert_true(params_hex_id("0xAB00000000000000000000000000000000000000000000000000000000000001",
                              64, hash));
    assert_string_equal(hash, "0xab00000000000000000000000000000000000000000000000000000000000001");
    assert_false(params_hex_id("0xAB", 64, hash));
    assert_false(params_hex_id("ab00000000000000000000000000000000000000000000000000000000000001zz",
                               64, hash));
}

static void test_url_decoding(void **state)
{
    const char *q = "a%20b=c+d&e=%zz&&f";
    char name[16], value[16];
    bool too_long;
    (void) state;
    assert_true(params_next(&q, name, sizeof(name), value, sizeof(value), &too_long));
    assert_string_equal(name, "a b");
    assert_string_equal(value, "c d");
    assert_true(params_next(&q, name, sizeof(name), value, sizeof(value), &too_long));
    assert_string_equal(value, "%zz"); /* invalid escapes stay as they are */
    assert_true(params_next(&q, name, sizeof(name), value, sizeof(value), &too_long));
    assert_string_equal(name, "f");
    assert_string_equal(value, "");
    assert_false(params_next(&q, name, sizeof(name), value, sizeof(value), &too_long));
    q = "x=0123456789abcdefghij";
    assert_true(params_next(&q, name, sizeof(name), value, sizeof(value), &too_long));
    assert_true(too_long);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_parameters),
        cmocka_unit_test(test_errors_name_the_parameter),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_canonical_key),
        cmocka_unit_test(test_window_and_ids),
        cmocka_unit_test(test_url_decoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
