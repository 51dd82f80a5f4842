/* common/src/txdecode.h — a Kafka message or request body to transaction rows; pure, no I/O */
#ifndef CW_TXDECODE_H
#define CW_TXDECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wei.h"

#define CW_TX_MAX_MESSAGE_BYTES_DEFAULT (1024 * 1024)
#define CW_TX_MAX_ITEMS                 10000

/* one decoded transaction; strings are NUL-terminated, addresses and hash lower-case */
typedef struct cw_tx {
    char hash[67];
    char from[43]; /* "" when absent */
    char to[43];   /* "" when absent or a contract creation */
    char value[CW_WEI_DEC_MAX];
    char gas[CW_WEI_DEC_MAX];
    char gas_price[CW_WEI_DEC_MAX];
    double f_value, f_gas, f_gas_price; /* the same amounts as doubles (features) */
    int64_t block_number;               /* -1 when absent */
    int64_t timestamp;                  /* unix seconds, -1 when absent */
} cw_tx;

/* CW_TX_TIME_MAX: 9999-12-31 23:59:59 UTC, the latest time a transaction is stored with */
#define CW_TX_TIME_MAX INT64_C(253402300799)

/* cw_tx_time_known: whether a timestamp is stored as the transaction's tx_time (a time beyond
 * CW_TX_TIME_MAX, or none, is stored as NULL), and so counts in its features */
static inline bool cw_tx_time_known(int64_t unix_seconds)
{
    return unix_seconds >= 0 && unix_seconds <= CW_TX_TIME_MAX;
}

/* why a message was refused; the name is the dead-letter reason and a metric label */
typedef enum cw_decode_reason {
    CW_DECODE_OK = 0,
    CW_DECODE_TOO_LARGE,
    CW_DECODE_INVALID_UTF8,
    CW_DECODE_INVALID_JSON,
    CW_DECODE_NOT_OBJECT,
    CW_DECODE_MISSING_FIELD,
    CW_DECODE_INVALID_FIELD,
    CW_DECODE_NEGATIVE_AMOUNT,
    CW_DECODE_TOO_MANY,
    CW_DECODE_REASONS /* count */
} cw_decode_reason;

typedef struct cw_decode_error {
    cw_decode_reason reason;
    char message[200];
} cw_decode_error;

const char *cw_decode_reason_name(cw_decode_reason r);

/*
 * cw_tx_decode decodes one message: a JSON object (Etherscan txlist, Ethereum JSON-RPC, or the
 * legacy {hash, value, gas, gasPrice, from, to, timestamp, blockNumber}) or a JSON array of
 * them. On success *out is a malloc'd array of *n_out transactions (caller frees). On failure
 * returns -1, *out is NULL and err says why: the whole message is refused, so a partly bad
 * array goes to the dead-letter table intact.
 */
int cw_tx_decode(const char *payload, size_t len, size_t max_bytes, cw_tx **out, size_t *n_out,
                 cw_decode_error *err);

/* cw_utf8_valid: strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF) */
bool cw_utf8_valid(const char *s, size_t n);

#endif /* CW_TXDECODE_H */
