/* tests/unit/test_api_routes.c — cmocka: the route table and matcher of chainwatch-api
 * (apiserver/src/routes.c, apiserver/src/router.c) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "handlers.h"
#include "routes.h"

static char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];

/* match returns the matched pattern or NULL, filling path_known and allow */
static const char *match(const char *method, const char *path, bool *known, char *allow)
{
    int n;
    int i = router_match(api_routes, api_routes_count, method, path, params, &n, known, allow, 64);
    return i < 0 ? NULL : api_routes[i].pattern;
}

static void test_literal_routes(void **state)
{
    bool known;
    char allow[64];
    (void) state;
    assert_string_equal(match("GET", "/api/v1/anomalies", &known, allow), "/api/v1/anomalies");
    assert_string_equal(match("GET", "/health", &known, allow), "/health");
    assert_string_equal(match("GET", "/health/live", &known, allow), "/health/live");
    assert_string_equal(match("GET", "/metrics", &known, allow), "/metrics");
    assert_string_equal(match("POST", "/api/v1/predict/batch", &known, allow),
                        "/api/v1/predict/batch");
}

static void test_parameters(void **state)
{
    bool known;
    char allow[64];
    (void) state;
    assert_string_equal(match("GET", "/api/v1/anomalies/0xabc", &known, allow),
                        "/api/v1/anomalies/{hash}");
    assert_string_equal(params[0], "0xabc");
    assert_string_equal(match("POST", "/api/v1/models/42/activate", &known, allow),
                        "/api/v1/models/{id}/activate");
    assert_string_equal(params[0], "42");
    assert_string_equal(match("GET", "/api/v1/models/7", &known, allow), "/api/v1/models/{id}");
    assert_string_equal(params[0], "7");
}

static void test_literal_beats_parameter(void **state)
{
    bool known;
    char allow[64];
    (void) state;
    assert_string_equal(match("POST", "/api/v1/models/train", &known, allow),
                        "/api/v1/models/train");
    assert_string_equal(match("POST", "/api/v1/models/rollback", &known, allow),
                        "/api/v1/models/rollback");
    /* GET /models/train is not model "train": 405 with Allow: POST */
    assert_null(match("GET", "/api/v1/models/train", &known, allow));
    assert_true(known);
    assert_string_equal(allow, "POST");
}

static void test_not_found_and_method(void **state)
{
    bool known;
    char allow[64];
    (void) state;
    assert_null(match("GET", "/api/v1/nothing", &known, allow));
    assert_false(known);
    assert_null(match("GET", "/api/v1/anomalies/", &known, allow)); /* empty parameter */
    assert_false(known);
    assert_null(match("GET", "/api/v1/anomalies/a/b", &known, allow));
    assert_false(known);
    assert_null(match("GET", "/api/v1/anomalies/", &known, allow));
    assert_null(match("GET", "//api/v1/anomalies", &known, allow));
    assert_null(match("GET", "/api/v1/anomaliesx", &known, allow));
    assert_null(match("GET", "/health/", &known, allow));
    assert_null(match("DELETE", "/api/v1/anomalies", &known, allow));
    assert_true(known);
    assert_string_equal(allow, "GET");
    assert_null(match("GET", "/api/v1/predict", &known, allow));
    assert_true(known);
    assert_string_equal(allow, "POST");
}

static void test_parameter_too_long(void **state)
{
    bool known;
    char allow[64], path[400];
    (void) state;
    memset(path, 'a', sizeof(path));
    memcpy(path, "/api/v1/anomalies/", 18);
    path[sizeof(path) - 1] = '\0';
    assert_null(match("GET", path, &known, allow));
}

static void test_roles_and_limits(void **state)
{
    (void) state;
    for (int i = 0; i < api_routes_count; i++) {
        const api_route *r = &api_routes[i];
        bool admin = strstr(r->pattern, "/train") || strstr(r->pattern, "/activate") ||
                     strstr(r->pattern, "/rollback");
        bool open = strncmp(r->pattern, "/health", 7) == 0 || !strcmp(r->pattern, "/metrics") ||
                    strstr(r->pattern, "openapi");
        assert_int_equal(r->role, admin ? ROLE_ADMIN : open ? ROLE_NONE : ROLE_READER);
        /* probes and scrapes are never rate limited */
        if (strncmp(r->pattern, "/health", 7) == 0 || !strcmp(r->pattern, "/metrics"))
            assert_false(r->rate_limited);
        /* every pattern is unique per method */
        for (int j = i + 1; j < api_routes_count; j++)
            assert_false(!strcmp(r->pattern, api_routes[j].pattern) &&
                         !strcmp(r->method, api_routes[j].method));
    }
}

/* the readiness check's extension version comparison (health.c): API_MIN_EXTENSION or later */
static void test_extension_version(void **state)
{
    (void) state;
    assert_true(api_extension_version_ok(API_MIN_EXTENSION));
    assert_true(api_extension_version_ok("0.7.1"));
    assert_true(api_extension_version_ok("0.10.0")); /* numeric, not text, comparison */
    assert_true(api_extension_version_ok("1.0.0"));
    assert_false(api_extension_version_ok("0.6.0"));
    assert_false(api_extension_version_ok("0.6.9"));
    assert_false(api_extension_version_ok("0.1.0"));
    assert_false(api_extension_version_ok("0.7")); /* fewer components */
    assert_false(api_extension_version_ok(""));
    assert_false(api_extension_version_ok("dev"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_routes),          cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_literal_beats_parameter), cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_parameter_too_long),      cmocka_unit_test(test_roles_and_limits),
        cmocka_unit_test(test_extension_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
