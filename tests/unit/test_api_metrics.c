/* tests/unit/test_api_metrics.c — cmocka: chainwatch-api's request counters
 * (apiserver/src/api_metrics.c), linked alone: no HTTP layer, no route table */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api_metrics.h"

static const char *const LABELS[] = {"/a", "/b/{id}"};

static const char *label(int r)
{
    return LABELS[r];
}

/* render returns the page of m in a buffer the caller frees */
static cw_strbuf render(api_metrics *m)
{
    cw_strbuf b = CW_STRBUF_INIT;
    api_metrics_render(m, &b, label);
    assert_false(b.oom);
    assert_non_null(b.data);
    return b;
}

static void assert_line(const cw_strbuf *b, const char *line)
{
    if (!strstr(b->data, line))
        fail_msg("no line \"%s\" in:\n%s", line, b->data);
}

static void test_counts_by_route_method_status(void **state)
{
    (void) state;
    api_metrics *m = api_metrics_create(2);
    assert_non_null(m);
    api_metrics_observe(m, 0, "GET", 200, 0.001);
    api_metrics_observe(m, 0, "GET", 200, 0.002);
    api_metrics_observe(m, 1, "POST", 404, 0.003);
    api_metrics_observe(m, -1, "BREW", 299, 0.004); /* unmatched, unknown method and status */
    api_metrics_observe(m, 7, "GET", 404, 0.005);   /* out of range: unmatched too */
    assert_int_equal(api_metrics_requests(m), 5);

    cw_strbuf b = render(m);
    assert_line(&b, "# TYPE chainwatch_http_requests_total counter\n");
    assert_line(&b,
                "chainwatch_http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 2\n");
    assert_line(
        &b, "chainwatch_http_requests_total{method=\"POST\",route=\"/b/{id}\",status=\"404\"} 1\n");
    assert_line(&b, "chainwatch_http_requests_total{method=\"OTHER\",route=\"unmatched\","
                    "status=\"other\"} 1\n");
    assert_line(
        &b,
        "chainwatch_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n");
    assert_line(&b, "chainwatch_http_request_duration_seconds_count{route=\"/a\"} 2\n");
    assert_line(&b, "chainwatch_http_request_duration_seconds_count{route=\"unmatched\"} 2\n");
    cw_strbuf_free(&b);
    api_metrics_destroy(m);
}

static void test_nothing_observed_renders_headers_only(void **state)
{
    (void) state;
    api_metrics *m = api_metrics_create(2);
    assert_non_null(m);
    cw_strbuf b = render(m);
    assert_line(&b, "# TYPE chainwatch_http_request_duration_seconds histogram\n");
    assert_null(strstr(b.data, "route="));
    cw_strbuf_free(&b);
    api_metrics_destroy(m);
}

static void test_route_count_bounded(void **state)
{
    (void) state;
    assert_null(api_metrics_create(API_METRICS_MAX_ROUTES + 1));
    assert_null(api_metrics_create(-1));
    api_metrics *m = api_metrics_create(API_METRICS_MAX_ROUTES);
    assert_non_null(m);
    api_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_by_route_method_status),
        cmocka_unit_test(test_nothing_observed_renders_headers_only),
        cmocka_unit_test(test_route_count_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
