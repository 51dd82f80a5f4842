/* common/src/base64.h — base64url without padding (RFC 4648 §5) for opaque tokens such as cursors;
 * pure */
#ifndef CW_BASE64_H
#define CW_BASE64_H

#include <stddef.h>

/* cw_base64url_encoded_len: characters needed for n bytes, without the NUL */
size_t cw_base64url_encoded_len(size_t n);
/* cw_base64url_encode writes the encoding of src[0..n) and a NUL into out (encoded_len + 1 bytes)
 */
void cw_base64url_encode(const void *src, size_t n, char *out);
/*
 * cw_base64url_decode decodes src[0..n) (no padding, no whitespace) into out (room for n*3/4
 * bytes); returns the decoded length, or -1 if src is not canonical base64url.
 */
long cw_base64url_decode(const char *src, size_t n, unsigned char *out);

#endif /* CW_BASE64_H */
