/* tests/unit/test_api_openapi.c — cmocka: the embedded OpenAPI document lists exactly the routes of
 * routes.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "openapi.h"
#include "routes.h"
#include "settings.h"

static cJSON *doc;

static int setup(void **state)
{
    (void) state;
    doc = cJSON_ParseWithLength(api_openapi_json, api_openapi_json_len);
    return doc ? 0 : -1;
}

static int teardown(void **state)
{
    (void) state;
    cJSON_Delete(doc);
    return 0;
}

static void test_is_openapi3(void **state)
{
    (void) state;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "openapi");
    assert_true(cJSON_IsString(v));
    assert_int_equal(strncmp(v->valuestring, "3.", 2), 0);
}

static void test_every_route_documented(void **state)
{
    (void) state;
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    for (int i = 0; i < api_routes_count; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(paths, api_routes[i].pattern);
        char method[8];
        for (size_t k = 0; k <= strlen(api_routes[i].method); k++)
            method[k] = (char) tolower((unsigned char) api_routes[i].method[k]);
        if (!p || !cJSON_GetObjectItemCaseSensitive(p, method))
            fail_msg("route %s %s is not in docs/openapi.yaml", api_routes[i].method,
                     api_routes[i].pattern);
    }
}

static void test_every_documented_operation_routed(void **state)
{
    (void) state;
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    const cJSON *p, *op;
    cJSON_ArrayForEach(p, paths)
    {
        cJSON_ArrayForEach(op, p)
        {
            bool found = false;
            for (int i = 0; i < api_routes_count; i++)
                found |= !strcmp(api_routes[i].pattern, p->string) &&
                         !strcasecmp(api_routes[i].method, op->string);
            if (!found)
                fail_msg("docs/openapi.yaml documents %s %s, which has no route", op->string,
                         p->string);
        }
    }
}

static void test_auth_matches_roles(void **state)
{
    (void) state;
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    for (int i = 0; i < api_routes_count; i++) {
        char method[8];
        for (size_t k = 0; k <= strlen(api_routes[i].method); k++)
            method[k] = (char) tolower((unsigned char) api_routes[i].method[k]);
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(paths, api_routes[i].pattern), method);
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
        bool open = cJSON_IsArray(sec) && cJSON_GetArraySize(sec) == 0;
        if (open != (api_routes[i].role == ROLE_NONE))
            fail_msg("%s %s: security in openapi.yaml disagrees with its role",
                     api_routes[i].method, api_routes[i].pattern);
        if (api_routes[i].role != ROLE_NONE &&
            !cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(op, "responses"),
                                              "401"))
            fail_msg("%s %s: no 401 response documented", api_routes[i].method,
                     api_routes[i].pattern);
    }
}

static void test_settings_table(void **state)
{
    static const char *const required[] = {"API_PORT",
                                           "API_THREADS",
                                           "DATABASE_URL",
                                           "DB_POOL_SIZE",
                                           "REDIS_ENABLED",
                                           "REDIS_HOST",
                                           "REDIS_PORT",
                                           "REDIS_DB",
                                           "REDIS_PASSWORD",
                                           "REDIS_MAX_CONNECTIONS",
                                           "CACHE_TTL_PREDICTION",
                                           "CACHE_TTL_QUERY",
                                           "CACHE_TTL_MODEL",
                                           "RATE_LIMIT_RPS",
                                           "RATE_LIMIT_BURST",
                                           "MAX_BODY_BYTES",
                                           "REQUEST_TIMEOUT_MS",
                                           "CORS_ALLOWED_ORIGINS",
                                           "LOG_LEVEL",
                                           "LOG_FORMAT"};
    (void) state;
    for (size_t r = 0; r < sizeof(required) / sizeof(required[0]); r++) {
        bool found = false;
        for (size_t i = 0; i < api_settings_count; i++)
            found |= !strcmp(api_settings_table[i].env, required[r]);
        if (!found)
            fail_msg("setting %s missing", required[r]);
    }
    for (size_t i = 0; i < api_settings_count; i++) {
        if (!strcmp(api_settings_table[i].env, "REDIS_PASSWORD") ||
            !strcmp(api_settings_table[i].env, "DATABASE_URL"))
            assert_true(api_settings_table[i].flags & CW_CFG_SECRET);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_openapi3),
        cmocka_unit_test(test_every_route_documented),
        cmocka_unit_test(test_every_documented_operation_routed),
        cmocka_unit_test(test_auth_matches_roles),
        cmocka_unit_test(test_settings_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
