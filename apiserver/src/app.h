/* apiserver/src/app.h — the process-wide handles every request handler may use (built by main.c) */
#ifndef API_APP_H
#define API_APP_H

#include <stddef.h>

#include "settings.h"

struct db_pool;
struct cache;
struct ratelimit;
struct listener;
struct generation;
struct auth_cache;
struct api_metrics;

/*
 * api_app: created once by main before the HTTP server starts and destroyed after it stopped,
 * so handlers use these pointers without locking; each module does its own locking inside.
 */
typedef struct api_app {
    const api_settings *cfg;
    struct db_pool *db;
    struct cache *cache; /* never NULL; with REDIS_ENABLED=false every lookup is a BYPASS */
    struct ratelimit *ratelimit;
    struct listener *listener;
    struct generation *generation; /* request-time anomaly generation (list cache keys) */
    struct auth_cache *auth;
    struct api_metrics *metrics;
} api_app;

#endif /* API_APP_H */
