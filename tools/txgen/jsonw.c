/* tools/txgen/jsonw.c — decimal and hex digit writers (no snprintf, no allocation) */
#include "jsonw.h"

static const char hexdigits[] = "0123456789abcdef";

/* Two decimal digits per table entry: halves the divisions in jw_dec_u64. */
static const char dec_pairs[201] = "00010203040506070809"
                                   "10111213141516171819"
                                   "20212223242526272829"
                                   "30313233343536373839"
                                   "40414243444546474849"
                                   "50515253545556575859"
                                   "60616263646566676869"
                                   "70717273747576777879"
                                   "80818283848586878889"
                                   "90919293949596979899";

/* jw_dec_u64 fills a 20-byte scratch from the right, two digits at a time, then copies. */
char *jw_dec_u64(char *p, uint64_t v)
{
    char tmp[20];
    char *t = tmp + sizeof(tmp);

    while (v >= 100) {
        unsigned d = (unsigned) (v % 100);
        v /= 100;
        t -= 2;
        memcpy(t, dec_pairs + 2 * d, 2);
    }
    if (v >= 10) {
        t -= 2;
        memcpy(t, dec_pairs + 2 * v, 2);
    } else {
        *--t = (char) ('0' + v);
    }
    return jw_raw(p, t, (size_t) (tmp + sizeof(tmp) - t));
}

/* jw_dec_19 writes exactly 19 digits of v < 10^19, zero-padded on the left. */
static char *jw_dec_19(char *p, uint64_t v)
{
    for (int i = 18; i >= 0; i--) {
        p[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    return p + 19;
}

/* jw_dec_u128 splits v into base-10^19 limbs (at most three) and prints them high to low. */
char *jw_dec_u128(char *p, u128 v)
{
    const uint64_t base = 10000000000000000000ULL; /* 10^19 */
    uint64_t limbs[3];
    int n = 0;

    if (v <= UINT64_MAX)
        return jw_dec_u64(p, (uint64_t) v);
    while (v >= base) {
        limbs[n++] = (uint64_t) (v % base);
        v /= base;
    }
    p = jw_dec_u64(p, (uint64_t) v);
    while (n > 0)
        p = jw_dec_19(p, limbs[--n]);
    return p;
}

/* jw_hexq_u64 counts significant nibbles with clz, then writes them high to low. */
char *jw_hexq_u64(char *p, uint64_t v)
{
    int nibbles;

    *p++ = '0';
    *p++ = 'x';
    if (v == 0) {
        *p++ = '0';
        return p;
    }
    nibbles = (64 - __builtin_clzll(v) + 3) / 4;
    for (int i = nibbles - 1; i >= 0; i--)
        *p++ = hexdigits[(v >> (4 * i)) & 0xf];
    return p;
}

/* jw_hexq_u128 writes the high word as a quantity and the low word as 16 padded nibbles. */
char *jw_hexq_u128(char *p, u128 v)
{
    uint64_t hi = (uint64_t) (v >> 64), lo = (uint64_t) v;

    if (hi == 0)
        return jw_hexq_u64(p, lo);
    p = jw_hexq_u64(p, hi);
    for (int i = 15; i >= 0; i--)
        *p++ = hexdigits[(lo >> (4 * i)) & 0xf];
    return p;
}

/* jw_hexq_be skips leading zero bytes and a leading zero nibble; all-zero input gives "0x0". */
char *jw_hexq_be(char *p, const uint8_t *b, size_t n)
{
    size_t i = 0;

    while (i < n && b[i] == 0)
        i++;
    *p++ = '0';
    *p++ = 'x';
    if (i == n) {
        *p++ = '0';
        return p;
    }
    if (b[i] < 16)
        *p++ = hexdigits[b[i++]];
    for (; i < n; i++) {
        *p++ = hexdigits[b[i] >> 4];
        *p++ = hexdigits[b[i] & 0xf];
    }
    return p;
}

/* jw_hexdata writes every byte as two nibbles. */
char *jw_hexdata(char *p, const uint8_t *b, size_t n)
{
    *p++ = '0';
    *p++ = 'x';
    for (size_t i = 0; i < n; i++) {
        *p++ = hexdigits[b[i] >> 4];
        *p++ = hexdigits[b[i] & 0xf];
    }
    return p;
}
