/* fuzz/fuzz_forest_bin.c — libFuzzer target: the binary model format the ingestor reads from
 * Postgres */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "forest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * LLVMFuzzerTestOneInput tries the input as is, then with its checksum recomputed (so the
 * structural checks behind the checksum are reached too); an accepted model must round-trip.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    forest_error err;
    for (int pass = 0; pass < 2; pass++) {
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        if (pass == 1 && size >= 8) {
            uint32_t crc = cw_crc32c(buf, size - 4);
            for (int i = 0; i < 4; i++)
                buf[size - 4 + i] = (uint8_t) (crc >> (8 * i));
        }
        forest *f = forest_deserialize(buf, size, &err);
        if (f) {
            size_t n = forest_serialized_size(f);
            uint8_t *out = malloc(n);
            if (out) {
                forest_serialize(f, out);
                forest *g = forest_deserialize(out, n, &err);
                if (!g)
                    abort();
                forest_free(g);
                free(out);
            }
            forest_free(f);
        }
        free(buf);
    }
    return 0;
}
