/* apiserver/src/cache.h — Redis cache-aside: pooled connections, per-class TTLs, circuit breaker,
 * stampede lock */
#ifndef API_CACHE_H
#define API_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "settings.h"
#include "strbuf.h"

typedef enum cache_class {
    CACHE_PREDICTION = 0, /* CACHE_TTL_PREDICTION */
    CACHE_QUERY,          /* CACHE_TTL_QUERY */
    CACHE_MODEL,          /* CACHE_TTL_MODEL */
    CACHE_CLASSES
} cache_class;

typedef enum cache_result { CACHE_HIT = 0, CACHE_MISS, CACHE_BYPASS } cache_result;

/* what a MISS hands the caller so that it can store the value it computed */
typedef struct cache_fill {
    bool active; /* false after a BYPASS: cache_put does nothing */
    bool locked; /* this request holds the recompute lock for key */
    cache_class cls;
    char key[192];
    char token[33]; /* the lock's value: random, so only this request's release deletes it */
} cache_fill;

typedef struct cache cache;

/* cache_create: a disabled cache (every lookup BYPASS) when cfg->redis_enabled is false. Never
 * connects here: connections are made on demand, so a missing Redis only means BYPASS. */
cache *cache_create(const api_settings *cfg, char *err, size_t errlen);
void cache_destroy(cache *c);

/*
 * cache_get looks key up. HIT: *value is the NUL-terminated value (shared: the caller must give
 * it back with cache_release, never free), *len its length.
 * MISS: fill is armed; the caller computes the value and calls cache_put (or cache_abandon on
 * failure). If another request is already recomputing the key, cache_get waits up to ~100 ms for
 * its result (and returns HIT) before giving up and returning MISS. BYPASS: Redis is disabled,
 * failing or its circuit is open; compute and do not store. Never blocks longer than the Redis
 * timeouts, never fails the request.
 */
cache_result cache_get(cache *c, cache_class cls, const char *key, char **value, size_t *len,
                       cache_fill *fill);
void cache_release(char *value);
/* cache_put stores value for the class TTL (minus up to 10% jitter), but no longer than
 * cap_ms when cap_ms >= 0 (0: do not store); releases the recompute lock */
void cache_put(cache *c, cache_fill *fill, const char *value, size_t len, long long cap_ms);
void cache_abandon(cache *c, cache_fill *fill);
/* cache_count records a lookup result for the metrics (cache_get does it itself; for BYPASS
 * decided by the caller, e.g. while generations are unknown) */
void cache_count(cache *c, cache_class cls, cache_result r);

bool cache_enabled(const cache *c);
/* cache_ping checks Redis (through the circuit breaker); 0 and the latency, or -1 */
int cache_ping(cache *c, double *latency_ms);
/* cache_up: enabled, circuit closed and the last operation succeeded */
bool cache_up(cache *c);
void cache_render_metrics(cache *c, cw_strbuf *b);

const char *cache_result_name(cache_result r);

#endif /* API_CACHE_H */
