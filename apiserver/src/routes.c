/* apiserver/src/routes.c — the route table of chainwatch-api: each endpoint's method, pattern,
 * handler and role (matched by router.c) */
#include "routes.h"

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
