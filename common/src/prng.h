/* common/src/prng.h — deterministic pseudo-random numbers (xoshiro256**, seeded by splitmix64) */
#ifndef CW_PRNG_H
#define CW_PRNG_H

#include <stdint.h>

/*
 * cw_prng is plain data: copy it to fork a stream, keep one per thread. The same seed gives
 * the same sequence on every platform (only 64-bit integer arithmetic, no libc rand()).
 */
typedef struct cw_prng {
    uint64_t s[4];
} cw_prng;

uint64_t cw_splitmix64(uint64_t *state);
void cw_prng_seed(cw_prng *rng, uint64_t seed);

/* cw_prng_next returns 64 random bits (xoshiro256**); inline: generators call it in hot loops */
static inline uint64_t cw_prng_next(cw_prng *rng)
{
    uint64_t *s = rng->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
double cw_prng_double(cw_prng *rng);
/* uniform in [0, bound), unbiased; bound must be > 0 */
uint64_t cw_prng_below(cw_prng *rng, uint64_t bound);

#endif /* CW_PRNG_H */
