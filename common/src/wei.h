/* common/src/wei.h — exact non-negative integer amounts up to 2^256 - 1 (wei) from decimal or hex
 * text */
#ifndef CW_WEI_H
#define CW_WEI_H

#include <stdbool.h>
#include <stddef.h>

#define CW_WEI_DEC_MAX 79 /* 78 digits + NUL */

typedef enum cw_wei_status {
    CW_WEI_OK = 0,
    CW_WEI_EMPTY,    /* no digits */
    CW_WEI_INVALID,  /* a character that is not a digit of the base, or a sign */
    CW_WEI_NEGATIVE, /* a leading '-' */
    CW_WEI_OVERFLOW, /* above 2^256 - 1 */
    CW_WEI_FRACTION, /* a JSON number whose value is not an integer (1.5, 15e-1) */
} cw_wei_status;

/*
 * cw_wei_parse reads an unsigned amount: decimal digits, or "0x"/"0X" followed by hex digits.
 * On success dec receives the canonical decimal form (no leading zeros, "0" for zero) and
 * *approx (optional) its value as the nearest double (strtod of dec, the same rounding as
 * PostgreSQL's float8(numeric)).
 */
cw_wei_status cw_wei_parse(const char *s, size_t n, char dec[CW_WEI_DEC_MAX], double *approx);

/*
 * cw_wei_from_json_number reads an amount written as a JSON number (RFC 8259 grammar, as jscan
 * has checked it: -?int frac? exp?) exactly, at any size: the digits are shifted by the exponent
 * as text and never pass through a double, so 123456789012345678901234567890 stays that. The
 * value must be an integer however it is written (1e3 and 1000.0 are 1000; 1.5 and 1e-1 give
 * CW_WEI_FRACTION), non-negative (-0 is 0; CW_WEI_NEGATIVE) and at most 2^256 - 1
 * (CW_WEI_OVERFLOW). dec and *approx as for cw_wei_parse.
 */
cw_wei_status cw_wei_from_json_number(const char *s, size_t n, char dec[CW_WEI_DEC_MAX],
                                      double *approx);
const char *cw_wei_status_text(cw_wei_status st);

#endif /* CW_WEI_H */
