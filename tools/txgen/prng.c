/* tools/txgen/prng.c — seeding and bulk bytes for the xoshiro256** generator */
#include "prng.h"

/* splitmix64 advances *state and returns the next output; used only to expand seeds. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* rng_seed expands seed into four state words; splitmix64 never yields an all-zero state. */
void rng_seed(struct txg_rng *r, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&st);
}

/* rng_bytes fills buf from successive words, low byte first, so the stream does not depend on
 * the host's byte order. */
void rng_bytes(struct txg_rng *r, uint8_t *buf, size_t n)
{
    while (n > 0) {
        uint64_t v = rng_next(r);
        size_t k = n < 8 ? n : 8;
        for (size_t i = 0; i < k; i++)
            buf[i] = (uint8_t) (v >> (8 * i));
        buf += k;
        n -= k;
    }
}
