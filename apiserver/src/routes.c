/* apiserver/src/routes.c — the route table of chainwatch-api and the path matcher; matching is pure
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"

/* clang-format off */
const api_route api_routes[] = {
    {"GET",  "/api/v1/anomalies",               anomalies_list,  ROLE_READER, true},
    {"GET",  "/api/v1/anomalies/{hash}",        anomalies_get,   ROLE_READER, true},
    {"GET",  "/api/v1/transactions/{hash}",     transactions_get, ROLE_READER, true},
    {"POST", "/api/v1/predict",                 predict_one,     ROLE_READER, true},
    {"POST", "/api/v1/predict/batch",           predict_batch,   ROLE_READER, true},
    {"GET",  "/api/v1/stats",                   stats_get,       ROLE_READER, true},
    {"GET",  "/api/v1/models",                  models_list,     ROLE_READER, true},
    {"GET",  "/api/v1/models/{id}",             models_get,      ROLE_READER, true},
    {"POST", "/api/v1/models/train",            models_train,    ROLE_ADMIN,  true},
    {"POST", "/api/v1/models/{id}/activate",    models_activate, ROLE_ADMIN,  true},
    {"POST", "/api/v1/models/rollback",         models_rollback, ROLE_ADMIN,  true},
    {"GET",  "/api/v1/openapi.json",            openapi_get,     ROLE_NONE,   true},
    {"GET",  "/health",                         health_full,     ROLE_NONE,   false},
    {"GET",  "/health/live",                    health_live,     ROLE_NONE,   false},
    {"GET",  "/health/ready",                   health_ready,    ROLE_NONE,   false},
    {"GET",  "/metrics",                        metrics_get,     ROLE_NONE,   false},
};
/* clang-format on */
const int api_routes_count = (int) (sizeof(api_routes) / sizeof(api_routes[0]));

/*
 * match_pattern compares path with pattern segment by segment; "{x}" takes one non-empty segment.
 * A trailing slash is not the same path. Returns 1 and fills params on a match.
 */
static int match_pattern(const char *pattern, const char *path,
                         char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *n_params)
{
    const char *p = pattern, *s = path;
    int n = 0;

    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t plen = pe ? (size_t) (pe - p) : strlen(p);
        size_t slen = se ? (size_t) (se - s) : strlen(s);
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || slen >= ROUTE_PARAM_MAX || n >= ROUTE_MAX_PARAMS)
                return 0;
            memcpy(params[n], s, slen);
            params[n][slen] = '\0';
            n++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen, s += slen;
    }
    if (*p || *s)
        return 0;
    *n_params = n;
    return 1;
}

int routes_match(const api_route *table, int n, const char *method, const char *path,
                 char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *n_params, bool *path_known,
                 char *allow, int allow_len)
{
    char scratch[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
    int found = -1, np = 0, used = 0;

    *path_known = false;
    *n_params = 0;
    if (allow && allow_len > 0)
        allow[0] = '\0';
    /* literal segments win over parameters: /models/train is never /models/{id}, not even
     * for another method (GET /models/train is a 405, not model "train") */
    for (int pass = 0; pass < 2 && found < 0 && !*path_known; pass++) {
        for (int i = 0; i < n; i++) {
            bool has_param = strchr(table[i].pattern, '{') != NULL;
            if (has_param != (pass == 1))
                continue;
            if (!match_pattern(table[i].pattern, path, scratch, &np))
                continue;
            if (strcmp(table[i].method, method) == 0) {
                found = i;
                memcpy(params, scratch, sizeof(scratch));
                *n_params = np;
                break;
            }
            *path_known = true;
            if (allow && used < allow_len && !strstr(allow, table[i].method))
                used += snprintf(allow + used, (size_t) (allow_len - used), "%s%s",
                                 used ? ", " : "", table[i].method);
        }
    }
    if (found >= 0)
        *path_known = true;
    return found;
}
