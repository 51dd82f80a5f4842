/* common/src/crc32c.h — CRC-32C (Castagnoli) checksum of a byte buffer */
#ifndef CW_CRC32C_H
#define CW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t cw_crc32c(const void *data, size_t len);

#endif /* CW_CRC32C_H */
