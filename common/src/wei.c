/* common/src/wei.c — 256-bit decimal/hex amount parsing without loss; pure, no allocation */
#include "wei.h"
#include "hexdigit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char UINT256_MAX_DEC[] =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

const char *cw_wei_status_text(cw_wei_status st)
{
    switch (st) {
    case CW_WEI_OK:
        return "ok";
    case CW_WEI_EMPTY:
        return "empty amount";
    case CW_WEI_INVALID:
        return "not an unsigned integer";
    case CW_WEI_NEGATIVE:
        return "negative amount";
    case CW_WEI_OVERFLOW:
        return "amount above 2^256-1";
    case CW_WEI_FRACTION:
        return "not an integer";
    }
    return "unknown";
}

/* hex_to_dec converts up to 64 hex digits to decimal by repeated division of 32-bit limbs. */
static void hex_to_dec(const char *h, size_t n, char dec[CW_WEI_DEC_MAX])
{
    uint32_t limbs[8] = {0}; /* little-endian 32-bit limbs */
    char rev[CW_WEI_DEC_MAX];
    size_t nd = 0;

    for (size_t i = 0; i < n; i++) {
        int v = cw_hexdigit((unsigned char) h[i]);
        /* shift left by 4 and add v */
        uint32_t carry = (uint32_t) v;
        for (int k = 0; k < 8; k++) {
            uint64_t x = ((uint64_t) limbs[k] << 4) | carry;
            limbs[k] = (uint32_t) x;
            carry = (uint32_t) (x >> 32);
        }
    }
    for (;;) {
        bool zero = true;
        uint64_t rem = 0;
        for (int k = 7; k >= 0; k--) {
            uint64_t cur = (rem << 32) | limbs[k];
            limbs[k] = (uint32_t) (cur / 10);
            rem = cur % 10;
            if (limbs[k])
                zero = false;
        }
        rev[nd++] = (char) ('0' + rem);
        if (zero)
            break;
    }
    for (size_t i = 0; i < nd; i++)
        dec[i] = rev[nd - 1 - i];
    dec[nd] = '\0';
}

/*
 * approx_of is strtod(dec) for a canonical decimal: below 10^19 the value fits a uint64_t, whose
 * conversion to double rounds to nearest-even exactly as strtod does, without strtod's cost.
 */
static double approx_of(const char *dec)
{
    size_t n = strlen(dec);
    if (n > 19)
        return strtod(dec, NULL);
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
        u = u * 10 + (uint64_t) (dec[i] - '0');
    return (double) u;
}

cw_wei_status cw_wei_parse(const char *s, size_t n, char dec[CW_WEI_DEC_MAX], double *approx)
{
    if (n == 0)
        return CW_WEI_EMPTY;
    if (s[0] == '-')
        return CW_WEI_NEGATIVE;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
        if (n == 0)
            return CW_WEI_EMPTY;
        for (size_t i = 0; i < n; i++)
            if (cw_hexdigit((unsigned char) s[i]) < 0)
                return CW_WEI_INVALID;
        while (n > 1 && s[0] == '0') {
            s++;
            n--;
        }
        if (n > 64)
            return CW_WEI_OVERFLOW;
        hex_to_dec(s, n, dec);
    } else {
        for (size_t i = 0; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return CW_WEI_INVALID;
        while (n > 1 && s[0] == '0') {
            s++;
            n--;
        }
        if (n > 78 || (n == 78 && memcmp(s, UINT256_MAX_DEC, 78) > 0))
            return CW_WEI_OVERFLOW;
        memcpy(dec, s, n);
        dec[n] = '\0';
    }
    if (approx)
        *approx = approx_of(dec);
    return CW_WEI_OK;
}

/* json_digit is digit i of the virtual concatenation of the integer part (ip, ni) and the
 * fraction's digits (fp, nf) of a JSON number */
static char json_digit(const char *ip, size_t ni, const char *fp, size_t i)
{
    return i < ni ? ip[i] : fp[i - ni];
}

cw_wei_status cw_wei_from_json_number(const char *s, size_t n, char dec[CW_WEI_DEC_MAX],
                                      double *approx)
{
    const char *end = s + n, *ip, *fp = NULL;
    size_t ni = 0, nf = 0;
    bool negative = false;
    long exp = 0; /* saturates far beyond any meaningful shift */

    if (n == 0)
        return CW_WEI_EMPTY;
    if (*s == '-') {
        negative = true;
        s++;
    }
    ip = s;
    while (s < end && *s >= '0' && *s <= '9')
        s++;
    ni = (size_t) (s - ip);
    if (ni == 0)
        return CW_WEI_INVALID;
    if (s < end && *s == '.') {
        fp = ++s;
        while (s < end && *s >= '0' && *s <= '9')
            s++;
        nf = (size_t) (s - fp);
        if (nf == 0)
            return CW_WEI_INVALID;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        bool eneg = false;
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        if (s == end)
            return CW_WEI_INVALID;
        for (; s < end && *s >= '0' && *s <= '9'; s++)
            if (exp < 1000000)
                exp = exp * 10 + (*s - '0');
        if (eneg)
            exp = -exp;
    }
    if (s != end)
        return CW_WEI_INVALID;

    /* value = digits(ip ++ fp) * 10^(exp - nf); find the significant digits */
    size_t total = ni + nf, lead = 0;
    while (lead < total && json_digit(ip, ni, fp, lead) == '0')
        lead++;
    if (lead == total) { /* zero, whatever the sign and exponent */
        dec[0] = '0';
        dec[1] = '\0';
        if (approx)
            *approx = 0.0;
        return CW_WEI_OK;
    }
    size_t sig = total - lead;
    long shift = exp - (long) nf;
    if (shift < 0) {
        /* the last -shift digits fall behind the point: all must be zeros */
        size_t cut = (size_t) -shift;
        if (cut > sig)
            return negative ? CW_WEI_NEGATIVE : CW_WEI_FRACTION;
        for (size_t i = total - cut; i < total; i++)
            if (json_digit(ip, ni, fp, i) != '0')
                return negative ? CW_WEI_NEGATIVE : CW_WEI_FRACTION;
        sig -= cut;
        shift = 0;
    }
    if (negative)
        return CW_WEI_NEGATIVE;
    if ((long) sig + shift > 78)
        return CW_WEI_OVERFLOW;
    char text[CW_WEI_DEC_MAX];
    size_t k = 0;
    for (size_t i = 0; i < sig; i++)
        text[k++] = json_digit(ip, ni, fp, lead + i);
    for (long z = 0; z < shift; z++)
        text[k++] = '0';
    return cw_wei_parse(text, k, dec, approx);
}
