/* tools/txgen/jsonw.h — hand-rolled JSON number/hex writers for the generator's hot loop */
#ifndef TXGEN_JSONW_H
#define TXGEN_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Every writer takes a cursor, writes without bounds checks and returns the advanced cursor.
 * The caller guarantees room: a transaction's JSON has a fixed upper size (see TX_JSON_MAX in
 * format.h), so the check happens once per message, not per field. No locale, no snprintf.
 */

typedef unsigned __int128 u128;

/* jw_raw copies n bytes. */
static inline char *jw_raw(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* JW_LIT writes a string literal (its length is known at compile time). */
#define JW_LIT(p, lit) jw_raw((p), (lit), sizeof(lit) - 1)

/* jw_dec_u64 writes v in decimal. */
char *jw_dec_u64(char *p, uint64_t v);

/* jw_dec_u128 writes v in decimal (exact, up to 39 digits). */
char *jw_dec_u128(char *p, u128 v);

/* jw_hexq_u64 writes v as an Ethereum hex quantity: "0x" + lowercase hex, no leading zeros,
 * "0x0" for zero. */
char *jw_hexq_u64(char *p, uint64_t v);

/* jw_hexq_u128 writes v as an Ethereum hex quantity. */
char *jw_hexq_u128(char *p, u128 v);

/* jw_hexq_be writes the big-endian byte string b[0..n) as a hex quantity (leading zero nibbles
 * stripped). */
char *jw_hexq_be(char *p, const uint8_t *b, size_t n);

/* jw_hexdata writes "0x" + two lowercase hex digits per byte (hashes, addresses, calldata). */
char *jw_hexdata(char *p, const uint8_t *b, size_t n);

#endif /* TXGEN_JSONW_H */
