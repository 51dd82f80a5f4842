/* common/src/crc32c.c — table-driven CRC-32C, used to detect corrupted serialized models */
#include "crc32c.h"

static uint32_t crc_table[256];
static int crc_table_ready;

/* build_table computes the reflected CRC-32C table (polynomial 0x82F63B78) once. */
static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    __atomic_store_n(&crc_table_ready, 1, __ATOMIC_RELEASE);
}

/* cw_crc32c returns the CRC-32C of len bytes at data (thread-safe: the table is idempotent). */
uint32_t cw_crc32c(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t crc = 0xFFFFFFFFu;

    if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE))
        build_table();
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}
