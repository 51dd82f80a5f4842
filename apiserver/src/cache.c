/* apiserver/src/cache.c — Redis cache-aside with a connection pool, circuit breaker and recompute
 * locks
 *
 * Design. Correctness never depends on Redis: every caller can compute its answer from Postgres,
 * and any Redis trouble turns into BYPASS, never an error. What keeps cached answers correct is
 * the key (generations, model ids: see listener.c and the handlers) plus TTL caps; this file only
 * stores and fetches bytes.
 *
 * Connections. A redisContext is not thread-safe, so contexts live in a pool of at most
 * REDIS_MAX_CONNECTIONS; a request borrows one per operation. A context that saw an error is
 * freed, never returned, and all idle ones are dropped too (after a Redis restart they are all
 * dead). Every connect and command has a short timeout (REDIS_TIMEOUT_MS), so a slow Redis costs
 * a request at most that much before the breaker takes it out of the path.
 *
 * Circuit breaker. After BREAKER_FAILURES consecutive failures the circuit opens for
 * BREAKER_COOLDOWN_MS: lookups return BYPASS without touching Redis. After the cool-down exactly
 * one request probes (half-open); its success closes the circuit, its failure reopens it.
 *
 * Stampede protection. On a miss the request tries SET lock:KEY TOKEN NX PX LOCK_MS, TOKEN being
 * 128 random bits of its own. The winner recomputes and stores; the others poll the key for up
 * to LOCK_WAIT_MS and are served the winner's value, or recompute themselves if it does not come
 * (the lock only bounds the herd, it is never needed for correctness). cache_put and
 * cache_abandon release the lock by compare-and-delete (UNLOCK_SCRIPT, atomic in Redis): a
 * winner slower than LOCK_MS finds its lock expired and maybe taken by another request (of this
 * or another replica), and a plain DEL would drop that one's lock and let the herd in.
 *
 * TTL jitter: a value lives ttl - random(0 .. ttl/10), so entries written together do not
 * expire together; jitter only shortens, so the per-class TTL and any cap remain upper bounds.
 *
 * Deadlines travel with values. Every stored value starts with "<unix ms>:", the absolute time it
 * stops being valid; a reader refuses a value past its deadline even if Redis still has it.
 *
 * A small in-process tier (L1) sits in front of Redis: LOCAL_SLOTS direct-mapped entries, at most
 * LOCAL_MAX_BYTES in total, each living until min(its deadline, LOCAL_TTL_MS from now). It is
 * safe because no key is ever updated in place: everything that changes an answer (a generation,
 * a model id, the registry generation) is part of its key, and the deadline bounds the rest. It
 * saves the Redis round trip and the copy of large list pages, which is what lets a cached GET
 * run near the speed of the HTTP stack itself. It is used only while Redis is enabled.
 */
#include "cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "monoclock.h"
#include "metrics.h"

#define REDIS_TIMEOUT_MS    100
#define BREAKER_FAILURES    3
#define BREAKER_COOLDOWN_MS 2000
#define LOCK_MS             3000 /* the recompute lock's lifetime */
#define LOCK_WAIT_MS        100
#define LOCK_POLL_MS        5
#define KEY_PREFIX          "cw:"
#define LOCAL_SLOTS         1024
#define LOCAL_TTL_MS        30000
#define LOCAL_MAX_BYTES     (64L * 1024 * 1024)
#define LOCAL_MAX_VALUE     (1024L * 1024)

enum { OP_GET, OP_SET, OP_LOCK, OP_UNLOCK, OP_PING, OP_CONNECT, OPS };
static const char *const OP_NAMES[OPS] = {"get", "set", "lock", "unlock", "ping", "connect"};
static const char *const CLASS_NAMES[CACHE_CLASSES] = {"prediction", "query", "model"};
static const char *const RESULT_NAMES[3] = {"hit", "miss", "bypass"};
/* deletes KEYS[1] only while it still holds ARGV[1]; replies 1 (deleted) or 0 */
static const char UNLOCK_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/* a value handed to callers: shared (refcounted) between the local tier and readers, so a local
 * hit costs no copy; callers see only data and give it back with cache_release */
typedef struct blob {
    _Atomic int refs;
    size_t len;
    char data[];
} blob;

typedef struct local_entry {
    char *key;          /* NULL: empty */
    blob *value;        /* without the deadline prefix */
    long long until_ms; /* wall clock */
} local_entry;

struct cache {
    bool enabled;
    char *host;
    int port;
    int db;
    char *password; /* never logged */
    long ttl_s[CACHE_CLASSES];
    int max_conns;

    pthread_mutex_t mu; /* protects idle, n_idle, n_open */
    redisContext **idle;
    int n_idle;
    int n_open;

    _Atomic int failures;
    _Atomic long long open_until_ns;
    atomic_bool probing;
    atomic_bool last_ok;

    pthread_rwlock_t local_lock; /* protects local[] and local_bytes */
    local_entry local[LOCAL_SLOTS];
    long local_bytes;
    _Atomic unsigned long long local_hits;

    _Atomic unsigned long long lookups[CACHE_CLASSES][3];
    _Atomic unsigned long long ops[OPS][2]; /* [op][0 ok, 1 error] */
};

static blob *blob_new(const char *data, size_t len)
{
    blob *b = malloc(sizeof(blob) + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, data, len);
    b->data[len] = '\0';
    return b;
}

static void blob_unref(blob *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

void cache_release(char *value)
{
    if (value)
        blob_unref((blob *) (value - offsetof(blob, data)));
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

const char *cache_result_name(cache_result r)
{
    return r == CACHE_HIT ? "HIT" : r == CACHE_MISS ? "MISS" : "BYPASS";
}

cache *cache_create(const api_settings *cfg, char *err, size_t errlen)
{
    cache *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->enabled = cfg->redis_enabled;
    c->port = (int) cfg->redis_port;
    c->db = (int) cfg->redis_db;
    c->max_conns = (int) cfg->redis_max_connections;
    c->ttl_s[CACHE_PREDICTION] = cfg->cache_ttl_prediction;
    c->ttl_s[CACHE_QUERY] = cfg->cache_ttl_query;
    c->ttl_s[CACHE_MODEL] = cfg->cache_ttl_model;
    c->host = strdup(cfg->redis_host ? cfg->redis_host : "127.0.0.1");
    c->password = cfg->redis_password && *cfg->redis_password ? strdup(cfg->redis_password) : NULL;
    c->idle = calloc((size_t) c->max_conns, sizeof(redisContext *));
    if (!c->host || !c->idle || (cfg->redis_password && *cfg->redis_password && !c->password)) {
        cache_destroy(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_rwlock_init(&c->local_lock, NULL);
    atomic_store(&c->last_ok, true);
    return c;
}

void cache_destroy(cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_idle; i++)
        redisFree(c->idle[i]);
    for (int i = 0; i < LOCAL_SLOTS; i++) {
        free(c->local[i].key);
        blob_unref(c->local[i].value);
    }
    pthread_rwlock_destroy(&c->local_lock);
    free(c->idle);
    free(c->host);
    free(c->password);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

bool cache_enabled(const cache *c)
{
    return c->enabled;
}

void cache_count(cache *c, cache_class cls, cache_result r)
{
    atomic_fetch_add_explicit(&c->lookups[cls][r], 1, memory_order_relaxed);
}

/* ---- circuit breaker --------------------------------------------------------------------- */

/* breaker_allow: may this request use Redis now? (half-open admits one probe) */
static bool breaker_allow(cache *c)
{
    if (atomic_load(&c->failures) < BREAKER_FAILURES)
        return true;
    if (cw_mono_ns() < atomic_load(&c->open_until_ns))
        return false;
    bool expected = false;
    return atomic_compare_exchange_strong(&c->probing, &expected, true);
}

static void breaker_success(cache *c)
{
    if (atomic_exchange(&c->failures, 0) >= BREAKER_FAILURES)
        log_info("cache: Redis is back; circuit closed");
    atomic_store(&c->probing, false);
    atomic_store(&c->last_ok, true);
}

static void breaker_failure(cache *c, const char *what)
{
    int n = atomic_fetch_add(&c->failures, 1) + 1;
    atomic_store(&c->last_ok, false);
    if (n >= BREAKER_FAILURES) {
        atomic_store(&c->open_until_ns, cw_mono_ns() + BREAKER_COOLDOWN_MS * 1000000LL);
        if (n == BREAKER_FAILURES || atomic_load(&c->probing))
            log_warn("cache: Redis failing (%s); circuit open, retrying in %d ms", what,
                     BREAKER_COOLDOWN_MS);
    }
    atomic_store(&c->probing, false);
}

/* ---- connections ------------------------------------------------------------------------- */

/* conn_open connects, authenticates and selects the database; NULL (breaker notified) on error */
static redisContext *conn_open(cache *c)
{
    struct timeval tv = {0, REDIS_TIMEOUT_MS * 1000};
    redisContext *rc = redisConnectWithTimeout(c->host, c->port, tv);
    redisReply *r;

    if (!rc || rc->err) {
        atomic_fetch_add(&c->ops[OP_CONNECT][1], 1);
        breaker_failure(c, rc ? rc->errstr : "out of memory");
        if (rc)
            redisFree(rc);
        return NULL;
    }
    if (redisSetTimeout(rc, tv) != REDIS_OK)
        goto fail;
    if (c->password) {
        r = redisCommand(rc, "AUTH %s", c->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (c->db != 0) {
        r = redisCommand(rc, "SELECT %d", c->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    atomic_fetch_add(&c->ops[OP_CONNECT][0], 1);
    return rc;
fail:
    atomic_fetch_add(&c->ops[OP_CONNECT][1], 1);
    breaker_failure(c, rc->err ? rc->errstr : "AUTH or SELECT refused");
    redisFree(rc);
    return NULL;
}

/* conn_get borrows a context: an idle one, a new one while under the limit, else NULL */
static redisContext *conn_get(cache *c)
{
    redisContext *rc = NULL;
    bool may_open = false;

    pthread_mutex_lock(&c->mu);
    if (c->n_idle > 0)
        rc = c->idle[--c->n_idle];
    else if (c->n_open < c->max_conns) {
        c->n_open++;
        may_open = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc || !may_open)
        return rc;
    rc = conn_open(c);
    if (!rc) {
        pthread_mutex_lock(&c->mu);
        c->n_open--;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* conn_put returns a context; broken ones are freed along with every idle one */
static void conn_put(cache *c, redisContext *rc, bool broken)
{
    redisContext *drop[64];
    int n_drop = 0;

    pthread_mutex_lock(&c->mu);
    if (!broken) {
        c->idle[c->n_idle++] = rc;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->n_open--;
    while (c->n_idle > 0 && n_drop < 64) {
        drop[n_drop++] = c->idle[--c->n_idle];
        c->n_open--;
    }
    pthread_mutex_unlock(&c->mu);
    redisFree(rc);
    for (int i = 0; i < n_drop; i++)
        redisFree(drop[i]);
}

/*
 * command runs one Redis command with argv-style arguments through the breaker and the pool.
 * Returns the reply (caller frees) or NULL when Redis was skipped or failed.
 */
static redisReply *command(cache *c, int op, int argc, const char **argv, const size_t *lens)
{
    redisContext *rc;
    redisReply *r;

    if (!breaker_allow(c))
        return NULL;
    rc = conn_get(c);
    if (!rc) {
        atomic_store(&c->probing, false);
        return NULL;
    }
    r = redisCommandArgv(rc, argc, argv, lens);
    if (!r || rc->err || r->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add(&c->ops[op][1], 1);
        if (!r || rc->err) {
            breaker_failure(c, rc->err ? rc->errstr : "no reply");
            conn_put(c, rc, true);
        } else {
            log_warn("cache: Redis %s error: %s", OP_NAMES[op], r->str);
            conn_put(c, rc, false);
        }
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    atomic_fetch_add(&c->ops[op][0], 1);
    breaker_success(c);
    conn_put(c, rc, false);
    return r;
}

/* ---- the in-process tier ------------------------------------------------------------------- */

static unsigned local_slot(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char) *p) * 1099511628211ULL;
    return (unsigned) (h % LOCAL_SLOTS);
}

/* local_get copies a live local entry for key; true when found */
static bool local_get(cache *c, const char *key, char **value, size_t *len)
{
    const local_entry *e = &c->local[local_slot(key)];
    bool found = false;

    pthread_rwlock_rdlock(&c->local_lock);
    if (e->key && !strcmp(e->key, key) && e->until_ms > wall_ms()) {
        atomic_fetch_add(&e->value->refs, 1);
        *value = e->value->data;
        *len = e->value->len;
        found = true;
    }
    pthread_rwlock_unlock(&c->local_lock);
    if (found)
        atomic_fetch_add_explicit(&c->local_hits, 1, memory_order_relaxed);
    return found;
}

static void local_clear(cache *c, local_entry *e)
{
    c->local_bytes -= e->key ? (long) e->value->len : 0;
    free(e->key);
    blob_unref(e->value);
    memset(e, 0, sizeof(*e));
}

/* local_put shares blob v (taking a reference) until min(deadline, LOCAL_TTL_MS) */
static void local_put(cache *c, const char *key, blob *v, long long deadline_ms)
{
    long long until = wall_ms() + LOCAL_TTL_MS;
    size_t len = v->len;
    if ((long) len > LOCAL_MAX_VALUE)
        return;
    char *k = strdup(key);
    if (!k)
        return;
    atomic_fetch_add(&v->refs, 1);
    pthread_rwlock_wrlock(&c->local_lock);
    local_entry *e = &c->local[local_slot(key)];
    local_clear(c, e);
    if (c->local_bytes + (long) len > LOCAL_MAX_BYTES) {
        long long now = wall_ms();
        for (int i = 0; i < LOCAL_SLOTS; i++)
            if (c->local[i].key && c->local[i].until_ms <= now)
                local_clear(c, &c->local[i]);
    }
    if (c->local_bytes + (long) len <= LOCAL_MAX_BYTES) {
        e->key = k;
        e->value = v;
        e->until_ms = deadline_ms < until ? deadline_ms : until;
        c->local_bytes += (long) len;
        k = NULL;
        v = NULL;
    }
    pthread_rwlock_unlock(&c->local_lock);
    free(k);
    blob_unref(v);
}

/* ---- cache-aside ------------------------------------------------------------------------- */

/* new_token writes 32 random hex digits (128 bits from getrandom) and a NUL; 0, or -1 when the
 * kernel gave no randomness */
static int new_token(char token[33])
{
    static const char HEX[] = "0123456789abcdef";
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw))
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++) {
        token[2 * i] = HEX[raw[i] >> 4];
        token[2 * i + 1] = HEX[raw[i] & 15];
    }
    token[32] = '\0';
    return 0;
}

/* get_value: 1 found and not past its deadline (value copied, also kept locally), 0 absent,
 * -1 Redis unavailable */
static int get_value(cache *c, const char *key, char **value, size_t *len)
{
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, strlen(key)};
    redisReply *r = command(c, OP_GET, 2, argv, lens);
    char *end;

    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return 0;
    }
    long long deadline = strtoll(r->str, &end, 10);
    if (end == r->str || *end != ':' || deadline <= wall_ms()) {
        freeReplyObject(r);
        return 0;
    }
    size_t off = (size_t) (end + 1 - r->str);
    blob *b = blob_new(r->str + off, r->len - off);
    freeReplyObject(r);
    if (!b)
        return -1;
    local_put(c, key, b, deadline);
    *value = b->data;
    *len = b->len;
    return 1;
}

cache_result cache_get(cache *c, cache_class cls, const char *key, char **value, size_t *len,
                       cache_fill *fill)
{
    char full[sizeof(fill->key)], lock[sizeof(fill->key) + 8];
    cache_result res;
    int found;

    memset(fill, 0, sizeof(*fill));
    *value = NULL;
    *len = 0;
    if (!c->enabled || snprintf(full, sizeof(full), KEY_PREFIX "%s", key) >= (int) sizeof(full)) {
        cache_count(c, cls, CACHE_BYPASS);
        return CACHE_BYPASS;
    }
    if (local_get(c, full, value, len)) {
        cache_count(c, cls, CACHE_HIT);
        return CACHE_HIT;
    }
    found = get_value(c, full, value, len);
    if (found != 0) {
        res = found > 0 ? CACHE_HIT : CACHE_BYPASS;
        cache_count(c, cls, res);
        return res;
    }
    /* absent: take the recompute lock, or wait for whoever has it */
    fill->active = true;
    fill->cls = cls;
    memcpy(fill->key, full, sizeof(full));
    if (new_token(fill->token) != 0) {
        cache_count(c, cls, CACHE_MISS); /* no token, no lock: recompute unprotected */
        return CACHE_MISS;
    }
    char px[24];
    snprintf(lock, sizeof(lock), "lock:%s", full);
    snprintf(px, sizeof(px), "%d", LOCK_MS);
    const char *argv[6] = {"SET", lock, fill->token, "NX", "PX", px};
    size_t lens[6] = {3, strlen(lock), strlen(fill->token), 2, 2, strlen(px)};
    redisReply *r = command(c, OP_LOCK, 6, argv, lens);
    if (r && r->type == REDIS_REPLY_STATUS) {
        fill->locked = true; /* "OK"; a lock held by another is a nil reply */
    } else if (r && r->type == REDIS_REPLY_NIL) {
        for (int waited = 0; waited < LOCK_WAIT_MS; waited += LOCK_POLL_MS) {
            nanosleep(&(struct timespec){0, LOCK_POLL_MS * 1000000L}, NULL);
            found = get_value(c, full, value, len);
            if (found > 0) {
                freeReplyObject(r);
                fill->active = false;
                cache_count(c, cls, CACHE_HIT);
                return CACHE_HIT;
            }
            if (found < 0)
                break;
        }
    }
    if (r)
        freeReplyObject(r);
    cache_count(c, cls, CACHE_MISS);
    return CACHE_MISS;
}

/*
 * unlock releases fill's recompute lock if it still holds this request's token (UNLOCK_SCRIPT);
 * a lock that expired, and perhaps was taken by another request, is left alone. Failures are
 * counted (and logged by command()); the lock then expires by itself within LOCK_MS.
 */
static void unlock(cache *c, cache_fill *fill)
{
    char lock[sizeof(fill->key) + 8];
    snprintf(lock, sizeof(lock), "lock:%s", fill->key);
    const char *argv[5] = {"EVAL", UNLOCK_SCRIPT, "1", lock, fill->token};
    size_t lens[5] = {4, sizeof(UNLOCK_SCRIPT) - 1, 1, strlen(lock), strlen(fill->token)};
    redisReply *r = command(c, OP_UNLOCK, 5, argv, lens);
    if (r) {
        if (r->type != REDIS_REPLY_INTEGER)
            log_warn("cache: unexpected reply type %d to the unlock script", r->type);
        freeReplyObject(r);
    }
    fill->locked = false;
}

void cache_put(cache *c, cache_fill *fill, const char *value, size_t len, long long cap_ms)
{
    static _Thread_local unsigned seed;
    long long ttl_ms;
    char px[32];

    if (!fill->active)
        return;
    if (!seed)
        seed = (unsigned) cw_mono_ns() ^ (unsigned) (uintptr_t) &seed;
    ttl_ms = c->ttl_s[fill->cls] * 1000LL;
    ttl_ms -= (long long) (rand_r(&seed) % (unsigned) (ttl_ms / 10 + 1));
    if (cap_ms >= 0 && cap_ms < ttl_ms)
        ttl_ms = cap_ms;
    if (ttl_ms > 0) {
        long long deadline = wall_ms() + ttl_ms;
        char head[24];
        int hlen = snprintf(head, sizeof(head), "%lld:", deadline);
        char *stored = malloc((size_t) hlen + len);
        if (stored) {
            memcpy(stored, head, (size_t) hlen);
            memcpy(stored + hlen, value, len);
            snprintf(px, sizeof(px), "%lld", ttl_ms);
            const char *argv[5] = {"SET", fill->key, stored, "PX", px};
            size_t lens[5] = {3, strlen(fill->key), (size_t) hlen + len, 2, strlen(px)};
            redisReply *r = command(c, OP_SET, 5, argv, lens);
            bool stored_ok = r && r->type == REDIS_REPLY_STATUS; /* "OK" */
            if (r)
                freeReplyObject(r);
            if (stored_ok) {
                blob *b = blob_new(value, len);
                if (b) {
                    local_put(c, fill->key, b, deadline);
                    blob_unref(b);
                }
            }
            free(stored);
        }
    }
    if (fill->locked)
        unlock(c, fill);
    fill->active = false;
}

void cache_abandon(cache *c, cache_fill *fill)
{
    if (fill->active && fill->locked)
        unlock(c, fill);
    fill->active = false;
}

int cache_ping(cache *c, double *latency_ms)
{
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    long long t0 = cw_mono_ns();
    redisReply *r;

    *latency_ms = 0;
    if (!c->enabled)
        return -1;
    r = command(c, OP_PING, 1, argv, lens);
    *latency_ms = (double) (cw_mono_ns() - t0) / 1e6;
    if (!r)
        return -1;
    bool pong = r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
    freeReplyObject(r);
    return pong ? 0 : -1;
}

bool cache_up(cache *c)
{
    return c->enabled && atomic_load(&c->failures) < BREAKER_FAILURES && atomic_load(&c->last_ok);
}

void cache_render_metrics(cache *c, cw_strbuf *b)
{
    char labels[96];
    unsigned long long hits = 0, misses = 0;

    cw_metric_header(b, "chainwatch_cache_requests_total", "counter",
                     "Cache lookups by class (prediction, query, model) and result.");
    for (int k = 0; k < CACHE_CLASSES; k++)
        for (int r = 0; r < 3; r++) {
            unsigned long long v = atomic_load(&c->lookups[k][r]);
            snprintf(labels, sizeof(labels), "class=\"%s\",result=\"%s\"", CLASS_NAMES[k],
                     RESULT_NAMES[r]);
            cw_metric_sample(b, "chainwatch_cache_requests_total", labels, (double) v);
            if (r == CACHE_HIT)
                hits += v;
            else if (r == CACHE_MISS)
                misses += v;
        }
    cw_metric_header(b, "chainwatch_cache_hit_ratio", "gauge",
                     "Hits / (hits + misses) since start (bypasses excluded).");
    cw_metric_sample(b, "chainwatch_cache_hit_ratio", NULL,
                     hits + misses ? (double) hits / (double) (hits + misses) : 0);
    cw_metric_header(b, "chainwatch_cache_local_hits_total", "counter",
                     "Hits served by the in-process tier without a Redis round trip.");
    cw_metric_sample(b, "chainwatch_cache_local_hits_total", NULL,
                     (double) atomic_load(&c->local_hits));
    cw_metric_header(b, "chainwatch_cache_operations_total", "counter",
                     "Redis operations by kind and outcome.");
    for (int o = 0; o < OPS; o++)
        for (int e = 0; e < 2; e++) {
            snprintf(labels, sizeof(labels), "op=\"%s\",result=\"%s\"", OP_NAMES[o],
                     e ? "error" : "ok");
            cw_metric_sample(b, "chainwatch_cache_operations_total", labels,
                             (double) atomic_load(&c->ops[o][e]));
        }
    cw_metric_header(
        b, "chainwatch_redis_up", "gauge",
        "1 when Redis is enabled, its circuit closed and the last operation succeeded.");
    cw_metric_sample(b, "chainwatch_redis_up", NULL, cache_up(c) ? 1 : 0);
    cw_metric_header(b, "chainwatch_redis_circuit_open", "gauge",
                     "1 while the circuit breaker skips Redis.");
    cw_metric_sample(b, "chainwatch_redis_circuit_open", NULL,
                     c->enabled && atomic_load(&c->failures) >= BREAKER_FAILURES ? 1 : 0);
    pthread_mutex_lock(&c->mu);
    int open = c->n_open;
    pthread_mutex_unlock(&c->mu);
    cw_metric_header(b, "chainwatch_redis_connections", "gauge", "Open Redis connections.");
    cw_metric_sample(b, "chainwatch_redis_connections", NULL, open);
}
