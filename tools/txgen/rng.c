/* tools/txgen/rng.c — bulk random bytes from the shared generator */
#include "rng.h"

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
