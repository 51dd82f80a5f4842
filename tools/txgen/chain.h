/* tools/txgen/chain.h — a synthetic Ethereum chain: accounts with habits, fees, labelled attacks */
#ifndef TXGEN_CHAIN_H
#define TXGEN_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"
#include "rng.h"

/* Calldata of contract calls is a selector plus a few words; creations carry init code. */
#define TX_INPUT_MAX 1024

/* Block timestamps: the first generated block has this time (2024-01-01T00:00:00Z). */
#define CHAIN_GENESIS_TIME  1704067200ULL
#define CHAIN_DEFAULT_BLOCK 19000000ULL

enum tx_anomaly {
    TX_NORMAL = 0,
    TX_HUGE_VALUE,
    TX_GAS_PRICE_SPIKE,
    TX_GAS_LIMIT_OUTLIER,
    TX_ADDRESS_BURST,
    TX_ADDRESS_POISONING,
    TX_DRAINER_SWEEP,
    TX_PEEL_CHAIN,
    TX_ANOMALY_KINDS /* number of labels, TX_NORMAL included */
};

/* One generated transaction; every field is already final (formatters only print). */
struct tx {
    uint8_t hash[32];
    uint8_t block_hash[32];
    uint8_t from[20];
    uint8_t to[20];
    uint8_t contract_address[20]; /* valid when is_create */
    uint8_t r[32], s[32];         /* signature parts, random */
    int is_create;                /* no recipient: contract creation */
    int type;                     /* 0 legacy, 2 EIP-1559 */
    int y_parity;
    uint64_t block_number;
    uint64_t timestamp;
    uint64_t tx_index;
    uint64_t nonce;
    u128 value; /* wei */
    uint64_t gas;
    uint64_t gas_used;
    uint64_t cumulative_gas_used;
    uint64_t gas_price;    /* wei; effective price for type 2 */
    uint64_t max_fee;      /* type 2 only */
    uint64_t max_priority; /* type 2 only */
    size_t input_len;
    uint8_t input[TX_INPUT_MAX];
    enum tx_anomaly anomaly;
};

struct chain_config {
    uint64_t seed;
    uint64_t start_block;
    double anomaly_rate; /* fraction of all transactions that carry a label */
};

struct chain; /* opaque; see chain.c */

/* chain_new allocates a chain positioned before its first transaction. Returns NULL with errbuf
 * filled on failure. The caller owns the result and frees it with chain_free. */
struct chain *chain_new(const struct chain_config *cfg, char *errbuf, size_t errlen);

/* chain_next fills tx with the next transaction of the stream. Never fails, never allocates. */
void chain_next(struct chain *c, struct tx *tx);

/* chain_free releases everything chain_new allocated; NULL is fine. */
void chain_free(struct chain *c);

/* chain_anomaly_name returns the label written to the labels file ("" for TX_NORMAL). */
const char *chain_anomaly_name(enum tx_anomaly a);

/* chain_kinds_help returns the --help lines that describe the anomaly kinds (each with its
 * share of the labels and its source), from the same table the generator uses. Static
 * storage, built on first use. */
const char *chain_kinds_help(void);

#endif /* TXGEN_CHAIN_H */
