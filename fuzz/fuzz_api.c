/* fuzz/fuzz_api.c — libFuzzer target: the API's path routing and query-parameter parsing */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the API's route shapes (handlers are not called here) */
static const api_route fuzz_routes[] = {
    {"GET", "/api/v1/anomalies", NULL, ROLE_READER, true},
    {"GET", "/api/v1/anomalies/{hash}", NULL, ROLE_READER, true},
    {"GET", "/api/v1/transactions/{hash}", NULL, ROLE_READER, true},
    {"POST", "/api/v1/predict", NULL, ROLE_READER, true},
    {"POST", "/api/v1/predict/batch", NULL, ROLE_READER, true},
    {"GET", "/api/v1/models/{id}", NULL, ROLE_READER, true},
    {"POST", "/api/v1/models/{id}/activate", NULL, ROLE_ADMIN, true},
    {"GET", "/health", NULL, ROLE_NONE, false},
};

/*
 * LLVMFuzzerTestOneInput: the first byte picks what the rest (as a C string) is fed to: a query
 * string, a request path, a pagination cursor, or a time/window parameter.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';

    switch (data[0] % 4) {
    case 0: {
        anomaly_query q;
        param_error err;
        char key[512];
        if (params_parse_anomaly_query(s, &q, &err) == 0) {
            if (q.limit < 1 || q.limit > PARAMS_LIMIT_MAX)
                abort();
            params_anomaly_query_key(&q, key, sizeof(key));
        }
        break;
    }
    case 1: {
        char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], allow[64];
        int n_params = 0;
        bool known = false;
        for (int m = 0; m < 2; m++)
            (void) router_match(fuzz_routes, (int) (sizeof(fuzz_routes) / sizeof(fuzz_routes[0])),
                                m ? "POST" : "GET", s, params, &n_params, &known, allow,
                                (int) sizeof(allow));
        break;
    }
    case 2: {
        int64_t us, id, us2, id2;
        char buf[128];
        if (params_decode_cursor(s, &us, &id) == 0) {
            params_encode_cursor(us, id, buf, sizeof(buf));
            if (params_decode_cursor(buf, &us2, &id2) != 0 || us2 != us || id2 != id)
                abort();
        }
        break;
    }
    default: {
        int64_t us;
        long seconds;
        (void) params_parse_time(s, &us);
        (void) params_parse_window(s, &seconds);
        break;
    }
    }
    free(s);
    return 0;
}
