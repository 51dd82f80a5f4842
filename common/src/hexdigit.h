/* common/src/hexdigit.h — the value of one hexadecimal digit, shared by every parser that reads hex
 */
#ifndef CW_HEXDIGIT_H
#define CW_HEXDIGIT_H

/*
 * Amounts (wei.c), JSON \u escapes (jscan.c) and URL percent-escapes (the API's params.c) all read
 * hexadecimal digits; they share this one definition. ASCII only, no locale: isxdigit() would
 * depend on the C library's locale tables.
 */

/* cw_hexdigit is the value (0-15) of the hex digit c, or -1 when c is not one */
static inline int cw_hexdigit(unsigned char c)
{
    if ((unsigned) (c - '0') < 10u)
        return c - '0';
    if ((unsigned) ((c | 0x20) - 'a') < 6u)
        return (c | 0x20) - 'a' + 10;
    return -1;
}

#endif
