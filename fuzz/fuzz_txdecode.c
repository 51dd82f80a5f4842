/* fuzz/fuzz_txdecode.c — libFuzzer target: the transaction decoder on arbitrary bytes (all formats)
 */
#include <stdint.h>
#include <stdlib.h>

#include "txdecode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput decodes one message; on success every row must be well formed. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cw_tx *txs = NULL;
    size_t n = 0;
    cw_decode_error err;

    if (cw_tx_decode((const char *) data, size, 64 * 1024, &txs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (txs[i].hash[0] != '0' || txs[i].hash[1] != 'x' || txs[i].value[0] == '\0' ||
                !(txs[i].f_value >= 0) || !(txs[i].f_gas >= 0) || !(txs[i].f_gas_price >= 0))
                abort();
        }
        free(txs);
    } else if (txs != NULL || err.reason == CW_DECODE_OK) {
        abort();
    }
    return 0;
}
