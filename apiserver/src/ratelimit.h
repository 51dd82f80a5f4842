/* apiserver/src/ratelimit.h — per-client token buckets (RATE_LIMIT_RPS refill, RATE_LIMIT_BURST
 * size) */
#ifndef API_RATELIMIT_H
#define API_RATELIMIT_H

#include <stdint.h>

/* one token bucket; pure state, see tb_take */
typedef struct token_bucket {
    double tokens;
    int64_t last_ns; /* 0: never used (starts full) */
} token_bucket;

/*
 * tb_take refills b at rps tokens per second (up to burst) for the time since its last use and
 * takes one token. Returns 0 when the request may pass, else the nanoseconds until a token will
 * be available (nothing is taken). Pure: the caller supplies the clock and the locking.
 */
int64_t tb_take(token_bucket *b, int64_t now_ns, double rps, double burst);

typedef struct ratelimit ratelimit;

ratelimit *ratelimit_create(double rps, double burst);
void ratelimit_destroy(ratelimit *r);
/*
 * ratelimit_check charges one request to client (any string: "key:<sha256>" or "ip:<addr>").
 * 0: allowed; else the seconds the client should wait (Retry-After, at least 1). The table holds
 * a bounded number of clients; an evicted client starts again with a full bucket.
 */
int ratelimit_check(ratelimit *r, const char *client, int64_t now_ns);
/* requests refused so far */
uint64_t ratelimit_refused(ratelimit *r);

#endif /* API_RATELIMIT_H */
