/* apiserver/src/settings.h — every chainwatch-api setting: one table (env, --flag, default, range,
 * help) */
#ifndef API_SETTINGS_H
#define API_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* api_settings: filled by settings_load; strings are owned by the struct (settings_free) */
typedef struct api_settings {
    long api_port;
    long api_threads;
    char *database_url;
    long db_pool_size;
    bool redis_enabled;
    char *redis_host;
    long redis_port;
    long redis_db;
    char *redis_password;
    long redis_max_connections;
    long cache_ttl_prediction;
    long cache_ttl_query;
    long cache_ttl_model;
    long rate_limit_rps;
    long rate_limit_burst;
    long max_body_bytes;
    long request_timeout_ms;
    char *cors_allowed_origins;
    char *log_level;
    char *log_format;
} api_settings;

extern const cw_setting api_settings_table[];
extern const size_t api_settings_count;
extern const char *const api_usage;

/* settings_load: defaults, environment, argv; returns 0, 1 after --help, -1 with err filled */
int settings_load(api_settings *s, int argc, char **argv, char *err, size_t errlen);
void settings_free(api_settings *s);

#endif /* API_SETTINGS_H */
