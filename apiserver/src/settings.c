/* apiserver/src/settings.c — the settings table of chainwatch-api; --help and docs/api.md come from
 * it */
#include "settings.h"

#include <stddef.h>

#define S(field) offsetof(api_settings, field)

const char *const api_usage =
    "Usage: chainwatch-api [--flag VALUE ...]\n\n"
    "chainwatch REST API: anomalies, transactions, scoring, stats and the model registry over\n"
    "PostgreSQL (the chainwatch extension), with a Redis cache-aside layer. API keys are managed\n"
    "in SQL: SELECT chainwatch.create_api_key('name', 'reader'|'admin').";

/* clang-format off */
const cw_setting api_settings_table[] = {
    {"API_PORT", CW_CFG_INT, "8000", 1, 65535, S(api_port), 0,
     "TCP port to listen on (all interfaces)"},
    {"API_THREADS", CW_CFG_INT, "128", 2, 4096, S(api_threads), 0,
     "HTTP worker threads; one per keep-alive connection, so it must exceed the client concurrency"},
    {"DATABASE_URL", CW_CFG_STRING, "postgresql:///chainwatch", 0, 0, S(database_url), CW_CFG_SECRET,
     "libpq connection string or URL of the database holding the chainwatch extension"},
    {"DB_POOL_SIZE", CW_CFG_INT, "8", 1, 512, S(db_pool_size), 0,
     "PostgreSQL connections in the fixed pool (each with its prepared statements)"},
    {"REDIS_ENABLED", CW_CFG_BOOL, "true", 0, 0, S(redis_enabled), 0,
     "use the Redis cache (false: every response is X-Cache: BYPASS)"},
    {"REDIS_HOST", CW_CFG_STRING, "127.0.0.1", 0, 0, S(redis_host), 0, "Redis host"},
    {"REDIS_PORT", CW_CFG_INT, "6379", 1, 65535, S(redis_port), 0, "Redis port"},
    {"REDIS_DB", CW_CFG_INT, "0", 0, 15, S(redis_db), 0, "Redis database number"},
    {"REDIS_PASSWORD", CW_CFG_STRING, NULL, 0, 0, S(redis_password), CW_CFG_SECRET,
     "Redis password (AUTH); unset: none"},
    {"REDIS_MAX_CONNECTIONS", CW_CFG_INT, "50", 1, 10000, S(redis_max_connections), 0,
     "Redis connections in the pool at most"},
    {"CACHE_TTL_PREDICTION", CW_CFG_INT, "7200", 1, 31536000, S(cache_ttl_prediction), 0,
     "seconds a cached prediction lives (keyed by transaction hash, features and model id)"},
    {"CACHE_TTL_QUERY", CW_CFG_INT, "300", 1, 31536000, S(cache_ttl_query), 0,
     "seconds a cached query result lives at most (lists also end when their oldest row expires)"},
    {"CACHE_TTL_MODEL", CW_CFG_INT, "86400", 1, 31536000, S(cache_ttl_model), 0,
     "seconds cached model metadata lives (keyed by the registry generation)"},
    {"RATE_LIMIT_RPS", CW_CFG_INT, "100", 1, 100000000, S(rate_limit_rps), 0,
     "requests per second per client (API key, or IP address when anonymous): token refill rate"},
    {"RATE_LIMIT_BURST", CW_CFG_INT, "200", 1, 100000000, S(rate_limit_burst), 0,
     "token bucket size: requests a client may send at once"},
    {"MAX_BODY_BYTES", CW_CFG_INT, "1048576", 1024, 1073741824, S(max_body_bytes), 0,
     "largest request body accepted (larger: 413)"},
    {"REQUEST_TIMEOUT_MS", CW_CFG_INT, "10000", 100, 3600000, S(request_timeout_ms), 0,
     "time a request may take: socket I/O, waiting for a pooled connection, statement_timeout"},
    {"CORS_ALLOWED_ORIGINS", CW_CFG_STRING, "", 0, 0, S(cors_allowed_origins), 0,
     "comma-separated origins allowed by CORS, or *; empty: no CORS headers"},
    {"LOG_LEVEL", CW_CFG_STRING, "info", 0, 0, S(log_level), 0, "debug, info, warn or error"},
    {"LOG_FORMAT", CW_CFG_STRING, "text", 0, 0, S(log_format), 0, "text or json"},
};
/* clang-format on */
const size_t api_settings_count = sizeof(api_settings_table) / sizeof(api_settings_table[0]);

int settings_load(api_settings *s, int argc, char **argv, char *err, size_t errlen)
{
    return cw_config_load(api_settings_table, api_settings_count, s, argc, argv, api_usage, err,
                          errlen);
}

void settings_free(api_settings *s)
{
    cw_config_free(api_settings_table, api_settings_count, s);
}
