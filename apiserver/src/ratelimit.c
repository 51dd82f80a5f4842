/* apiserver/src/ratelimit.c — token buckets per client in a bounded, sharded, set-associative table
 *
 * Design. A client is identified by a 64-bit hash of its id (API key digest or IP address). The
 * table has SHARDS shards, each a mutex and SETS x WAYS entries; a client lives in one set of
 * WAYS entries and, when its set is full, replaces the least recently used entry there. So memory
 * is fixed (SHARDS * SETS * WAYS buckets), lookups touch WAYS entries under one of SHARDS locks,
 * and eviction hurts nobody in practice: the victim is the client idle longest in its set, which
 * has usually refilled to a full bucket anyway, exactly what a new entry starts with.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64
#define SETS   128
#define WAYS   8

int64_t tb_take(token_bucket *b, int64_t now_ns, double rps, double burst)
{
    if (b->last_ns == 0) {
        b->tokens = burst;
        b->last_ns = now_ns;
    } else if (now_ns > b->last_ns) {
        b->tokens += (double) (now_ns - b->last_ns) * rps / 1e9;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ns = now_ns;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t) ((1.0 - b->tokens) * 1e9 / rps);
    return wait > 0 ? wait : 1;
}

typedef struct entry {
    uint64_t id; /* 0: empty */
    token_bucket b;
} entry;

typedef struct shard {
    pthread_mutex_t mu;
    entry e[SETS][WAYS];
} shard;

struct ratelimit {
    double rps, burst;
    _Atomic uint64_t refused;
    shard shards[SHARDS];
};

/* fnv1a64 hashes a client id; never 0 (0 marks an empty entry) */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

ratelimit *ratelimit_create(double rps, double burst)
{
    ratelimit *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->rps = rps;
    r->burst = burst < 1 ? 1 : burst;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&r->shards[i].mu, NULL);
    return r;
}

void ratelimit_destroy(ratelimit *r)
{
    if (!r)
        return;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&r->shards[i].mu);
    free(r);
}

int ratelimit_check(ratelimit *r, const char *client, int64_t now_ns)
{
    uint64_t id = fnv1a64(client);
    shard *s = &r->shards[id % SHARDS];
    entry *set = s->e[(id / SHARDS) % SETS];
    entry *hit = NULL, *victim = &set[0];
    int64_t wait;

    pthread_mutex_lock(&s->mu);
    for (int w = 0; w < WAYS; w++) {
        if (set[w].id == id) {
            hit = &set[w];
            break;
        }
        if (set[w].id == 0 || (victim->id != 0 && set[w].b.last_ns < victim->b.last_ns))
            victim = &set[w];
    }
    if (!hit) {
        hit = victim;
        hit->id = id;
        memset(&hit->b, 0, sizeof(hit->b));
    }
    wait = tb_take(&hit->b, now_ns, r->rps, r->burst);
    pthread_mutex_unlock(&s->mu);
    if (wait == 0)
        return 0;
    atomic_fetch_add_explicit(&r->refused, 1, memory_order_relaxed);
    return (int) ((wait + 999999999LL) / 1000000000LL);
}

uint64_t ratelimit_refused(ratelimit *r)
{
    return atomic_load(&r->refused);
}
