/* tools/txgen/rng.h — txgen's random helpers on top of the shared cw_prng (common/src/prng.h) */
#ifndef TXGEN_RNG_H
#define TXGEN_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

/*
 * Reproducibility is the point: the same seed and options must give a byte-identical stream on
 * any run, so nothing here touches rand(), the clock or the environment. The floating-point
 * helpers are plain IEEE double arithmetic (no -ffast-math), deterministic for a given binary.
 */
struct txg_rng {
    cw_prng state;
};

/* rng_seed expands seed into a full generator state (cw_prng_seed) */
static inline void rng_seed(struct txg_rng *r, uint64_t seed)
{
    cw_prng_seed(&r->state, seed);
}

/* rng_bytes fills buf with n random bytes. */
void rng_bytes(struct txg_rng *r, uint8_t *buf, size_t n);

static inline uint64_t rng_next(struct txg_rng *r)
{
    return cw_prng_next(&r->state);
}

/* rng_below returns a uniform integer in [0, n) for n >= 1 */
static inline uint64_t rng_below(struct txg_rng *r, uint64_t n)
{
    return cw_prng_below(&r->state, n);
}

/* rng_range returns a uniform integer in [lo, hi] (inclusive, lo <= hi). */
static inline uint64_t rng_range(struct txg_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* rng_unit returns a uniform double in [0, 1). */
static inline double rng_unit(struct txg_rng *r)
{
    return cw_prng_double(&r->state);
}

/* rng_uniform returns a uniform double in [lo, hi). */
static inline double rng_uniform(struct txg_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * rng_unit(r);
}

#endif /* TXGEN_RNG_H */
