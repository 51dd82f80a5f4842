/* tools/txgen/format.h — one transaction as Etherscan, JSON-RPC, ethereum-etl or legacy JSON */
#ifndef TXGEN_FORMAT_H
#define TXGEN_FORMAT_H

#include <stddef.h>

#include "chain.h"

/* Upper bound of one formatted transaction (the longest is JSON-RPC with TX_INPUT_MAX bytes of
 * input: ~2 KiB of hex plus ~1 KiB of fields). Sinks reserve this much per message. */
#define TX_JSON_MAX 4096

enum tx_format {
    FORMAT_ETHERSCAN = 0,
    FORMAT_JSONRPC,
    FORMAT_LEGACY,
    FORMAT_ETHEREUM_ETL,
};

/* format_parse maps "etherscan" / "jsonrpc" / "legacy" / "ethereum-etl" to *out; returns 0 or -1.
 */
int format_parse(const char *name, enum tx_format *out);

/* format_tx writes tx as one JSON object (no newline) at buf, which must have TX_JSON_MAX bytes
 * of room; returns the length written. Pure: no I/O, no allocation. */
size_t format_tx(enum tx_format fmt, const struct tx *tx, char *buf);

#endif /* TXGEN_FORMAT_H */
