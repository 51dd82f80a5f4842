/* common/src/sha256.h — SHA-256 (FIPS 180-4) of a byte string, and its lower-case hex form; pure */
#ifndef CW_SHA256_H
#define CW_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CW_SHA256_LEN     32
#define CW_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

/* cw_sha256 writes the 32-byte digest of data[0..len) into out */
void cw_sha256(const void *data, size_t len, uint8_t out[CW_SHA256_LEN]);
/* cw_sha256_hex writes the digest as 64 lower-case hex digits and a NUL */
void cw_sha256_hex(const void *data, size_t len, char out[CW_SHA256_HEX_LEN]);

#endif /* CW_SHA256_H */
