/* common/src/prng.c — xoshiro256** generator seeded with splitmix64; portable and reproducible */
#include "prng.h"

/* cw_splitmix64 advances *state and returns the next splitmix64 output (used for seeding). */
uint64_t cw_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* cw_prng_seed fills the 256-bit state from one 64-bit seed (never all zero). */
void cw_prng_seed(cw_prng *rng, uint64_t seed)
{
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = cw_splitmix64(&sm);
}

double cw_prng_double(cw_prng *rng)
{
    return (double) (cw_prng_next(rng) >> 11) * 0x1.0p-53;
}

/*
 * cw_prng_below returns a uniform integer in [0, bound) using Lemire's multiply-and-reject
 * method, so there is no modulo bias and the result is identical on every platform.
 */
uint64_t cw_prng_below(cw_prng *rng, uint64_t bound)
{
    unsigned __int128 m = (unsigned __int128) cw_prng_next(rng) * bound;
    uint64_t low = (uint64_t) m;
    if (low < bound) {
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            m = (unsigned __int128) cw_prng_next(rng) * bound;
            low = (uint64_t) m;
        }
    }
    return (uint64_t) (m >> 64);
}
