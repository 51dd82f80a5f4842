/* tools/txgen/prng.h — xoshiro256** seeded by splitmix64: the only randomness txgen uses */
#ifndef TXGEN_PRNG_H
#define TXGEN_PRNG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reproducibility is the point: the same seed and options must give a byte-identical stream on
 * any run, so nothing here touches rand(), the clock or the environment. The floating-point
 * helpers are plain IEEE double arithmetic (no -ffast-math), deterministic for a given binary.
 */

struct txg_rng {
    uint64_t s[4];
};

/* rng_seed expands seed with splitmix64 into a full xoshiro256** state (never all zero). */
void rng_seed(struct txg_rng *r, uint64_t seed);

/* rng_bytes fills buf with n random bytes. */
void rng_bytes(struct txg_rng *r, uint8_t *buf, size_t n);

static inline uint64_t rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* rng_next returns 64 random bits (xoshiro256**). */
static inline uint64_t rng_next(struct txg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

/* rng_below returns a uniform integer in [0, n) for n >= 1 (Lemire's multiply-shift; the bias
 * of at most n/2^64 is irrelevant here). */
static inline uint64_t rng_below(struct txg_rng *r, uint64_t n)
{
    return (uint64_t) (((unsigned __int128) rng_next(r) * n) >> 64);
}

/* rng_range returns a uniform integer in [lo, hi] (inclusive, lo <= hi). */
static inline uint64_t rng_range(struct txg_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* rng_unit returns a uniform double in [0, 1). */
static inline double rng_unit(struct txg_rng *r)
{
    return (double) (rng_next(r) >> 11) * 0x1.0p-53;
}

/* rng_uniform returns a uniform double in [lo, hi). */
static inline double rng_uniform(struct txg_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * rng_unit(r);
}

#endif /* TXGEN_PRNG_H */
