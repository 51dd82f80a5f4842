/* tools/txgen/format.c — one transaction as Etherscan, JSON-RPC, ethereum-etl or legacy JSON; pure
 */

/*
 * The three shapes, field by field:
 *  - etherscan: an Etherscan `txlist` result object; every value is a string, numbers in
 *    decimal, `to` "" and `contractAddress` set for creations, `confirmations` fixed at 12
 *    (as if the stream were read a dozen blocks behind the head).
 *  - jsonrpc: eth_getTransactionByHash; quantities are "0x" hex without leading zeros, `to`
 *    null for creations, type "0x2" objects carry maxFeePerGas/maxPriorityFeePerGas/accessList
 *    and gasPrice = effective price, legacy "0x0" objects only gasPrice; v/r/s (and yParity for
 *    type 2) are present; no timestamp (it belongs to the block).
 *  - ethereum-etl: an enriched transaction item of `ethereumetl stream --output kafka`
 *    (transaction_to_dict joined with its receipt, in the stream's field order): snake_case
 *    names, every quantity a bare JSON number as Python prints an int (value far above 2^53),
 *    to_address null and receipt_contract_address set for creations, max fees null for type 0,
 *    receipt_effective_gas_price = gas_price, item_id "transaction_<hash>" and item_timestamp
 *    the block time as ISO 8601 UTC.
 *  - legacy: the old system's messages {hash, from, to, value, gas, gasPrice, timestamp,
 *    blockNumber}: value a decimal string, the rest JSON numbers, `to` null for creations.
 *
 * Keys are literals and values are written by jsonw; nothing needs escaping because every
 * string is hex or decimal.
 */

#include <string.h>

#include "format.h"
#include "jsonw.h"

#define CHAIN_ID                1
#define ETHERSCAN_CONFIRMATIONS 12

/* format_parse accepts the four documented names only. */
int format_parse(const char *name, enum tx_format *out)
{
    if (strcmp(name, "etherscan") == 0)
        *out = FORMAT_ETHERSCAN;
    else if (strcmp(name, "jsonrpc") == 0)
        *out = FORMAT_JSONRPC;
    else if (strcmp(name, "ethereum-etl") == 0)
        *out = FORMAT_ETHEREUM_ETL;
    else if (strcmp(name, "legacy") == 0)
        *out = FORMAT_LEGACY;
    else
        return -1;
    return 0;
}

/* quoted_dec writes "N" for a u64. */
static char *quoted_dec(char *p, uint64_t v)
{
    *p++ = '"';
    p = jw_dec_u64(p, v);
    *p++ = '"';
    return p;
}

/* quoted_hexq writes "0x.." for a u64 quantity. */
static char *quoted_hexq(char *p, uint64_t v)
{
    *p++ = '"';
    p = jw_hexq_u64(p, v);
    *p++ = '"';
    return p;
}

/* quoted_data writes "0x.." for a byte string. */
static char *quoted_data(char *p, const uint8_t *b, size_t n)
{
    *p++ = '"';
    p = jw_hexdata(p, b, n);
    *p++ = '"';
    return p;
}

/* format_etherscan writes the Etherscan txlist object. */
static char *format_etherscan(const struct tx *tx, char *p)
{
    p = JW_LIT(p, "{\"blockNumber\":");
    p = quoted_dec(p, tx->block_number);
    p = JW_LIT(p, ",\"timeStamp\":");
    p = quoted_dec(p, tx->timestamp);
    p = JW_LIT(p, ",\"hash\":");
    p = quoted_data(p, tx->hash, 32);
    p = JW_LIT(p, ",\"nonce\":");
    p = quoted_dec(p, tx->nonce);
    p = JW_LIT(p, ",\"blockHash\":");
    p = quoted_data(p, tx->block_hash, 32);
    p = JW_LIT(p, ",\"transactionIndex\":");
    p = quoted_dec(p, tx->tx_index);
    p = JW_LIT(p, ",\"from\":");
    p = quoted_data(p, tx->from, 20);
    p = JW_LIT(p, ",\"to\":");
    if (tx->is_create)
        p = JW_LIT(p, "\"\"");
    else
        p = quoted_data(p, tx->to, 20);
    p = JW_LIT(p, ",\"value\":\"");
    p = jw_dec_u128(p, tx->value);
    p = JW_LIT(p, "\",\"gas\":");
    p = quoted_dec(p, tx->gas);
    p = JW_LIT(p, ",\"gasPrice\":");
    p = quoted_dec(p, tx->gas_price);
    p = JW_LIT(p, ",\"isError\":\"0\",\"txreceipt_status\":\"1\",\"input\":");
    p = quoted_data(p, tx->input, tx->input_len);
    p = JW_LIT(p, ",\"contractAddress\":");
    if (tx->is_create)
        p = quoted_data(p, tx->contract_address, 20);
    else
        p = JW_LIT(p, "\"\"");
    p = JW_LIT(p, ",\"cumulativeGasUsed\":");
    p = quoted_dec(p, tx->cumulative_gas_used);
    p = JW_LIT(p, ",\"gasUsed\":");
    p = quoted_dec(p, tx->gas_used);
    p = JW_LIT(p, ",\"confirmations\":");
    p = quoted_dec(p, ETHERSCAN_CONFIRMATIONS);
    *p++ = '}';
    return p;
}

/* format_jsonrpc writes the eth_getTransactionByHash object. */
static char *format_jsonrpc(const struct tx *tx, char *p)
{
    p = JW_LIT(p, "{\"hash\":");
    p = quoted_data(p, tx->hash, 32);
    p = JW_LIT(p, ",\"nonce\":");
    p = quoted_hexq(p, tx->nonce);
    p = JW_LIT(p, ",\"blockHash\":");
    p = quoted_data(p, tx->block_hash, 32);
    p = JW_LIT(p, ",\"blockNumber\":");
    p = quoted_hexq(p, tx->block_number);
    p = JW_LIT(p, ",\"transactionIndex\":");
    p = quoted_hexq(p, tx->tx_index);
    p = JW_LIT(p, ",\"from\":");
    p = quoted_data(p, tx->from, 20);
    p = JW_LIT(p, ",\"to\":");
    if (tx->is_create)
        p = JW_LIT(p, "null");
    else
        p = quoted_data(p, tx->to, 20);
    p = JW_LIT(p, ",\"value\":\"");
    p = jw_hexq_u128(p, tx->value);
    p = JW_LIT(p, "\",\"gas\":");
    p = quoted_hexq(p, tx->gas);
    p = JW_LIT(p, ",\"gasPrice\":");
    p = quoted_hexq(p, tx->gas_price);
    if (tx->type == 2) {
        p = JW_LIT(p, ",\"maxFeePerGas\":");
        p = quoted_hexq(p, tx->max_fee);
        p = JW_LIT(p, ",\"maxPriorityFeePerGas\":");
        p = quoted_hexq(p, tx->max_priority);
    }
    p = JW_LIT(p, ",\"input\":");
    p = quoted_data(p, tx->input, tx->input_len);
    p = JW_LIT(p, ",\"type\":");
    p = quoted_hexq(p, (uint64_t) tx->type);
    p = JW_LIT(p, ",\"chainId\":");
    p = quoted_hexq(p, CHAIN_ID);
    if (tx->type == 2) {
        p = JW_LIT(p, ",\"accessList\":[],\"v\":");
        p = quoted_hexq(p, (uint64_t) tx->y_parity);
        p = JW_LIT(p, ",\"yParity\":");
        p = quoted_hexq(p, (uint64_t) tx->y_parity);
    } else {
        /* EIP-155: v = chainId * 2 + 35 + parity */
        p = JW_LIT(p, ",\"v\":");
        p = quoted_hexq(p, CHAIN_ID * 2 + 35 + (uint64_t) tx->y_parity);
    }
    p = JW_LIT(p, ",\"r\":\"");
    p = jw_hexq_be(p, tx->r, 32);
    p = JW_LIT(p, "\",\"s\":\"");
    p = jw_hexq_be(p, tx->s, 32);
    p = JW_LIT(p, "\"}");
    return p;
}

/* two_digits writes v (0..99) as two decimal digits. */
static char *two_digits(char *p, unsigned v)
{
    *p++ = (char) ('0' + v / 10);
    *p++ = (char) ('0' + v % 10);
    return p;
}

/* iso_utc writes unix time t as "YYYY-MM-DDTHH:MM:SSZ" (proleptic Gregorian, Hinnant's
 * days-to-civil; years 1970..9999, which every block time is). */
static char *iso_utc(char *p, uint64_t t)
{
    uint64_t days = t / 86400, sec = t % 86400;
    uint64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    unsigned day = (unsigned) (doy - (153 * mp + 2) / 5 + 1);
    unsigned month = (unsigned) (mp < 10 ? mp + 3 : mp - 9);
    uint64_t year = yoe + era * 400 + (month <= 2);

    p = two_digits(p, (unsigned) (year / 100 % 100));
    p = two_digits(p, (unsigned) (year % 100));
    *p++ = '-';
    p = two_digits(p, month);
    *p++ = '-';
    p = two_digits(p, day);
    *p++ = 'T';
    p = two_digits(p, (unsigned) (sec / 3600));
    *p++ = ':';
    p = two_digits(p, (unsigned) (sec / 60 % 60));
    *p++ = ':';
    p = two_digits(p, (unsigned) (sec % 60));
    *p++ = 'Z';
    return p;
}

/* format_ethereum_etl writes the enriched transaction item of ethereum-etl's stream. */
static char *format_ethereum_etl(const struct tx *tx, char *p)
{
    p = JW_LIT(p, "{\"type\":\"transaction\",\"hash\":");
    p = quoted_data(p, tx->hash, 32);
    p = JW_LIT(p, ",\"nonce\":");
    p = jw_dec_u64(p, tx->nonce);
    p = JW_LIT(p, ",\"transaction_index\":");
    p = jw_dec_u64(p, tx->tx_index);
    p = JW_LIT(p, ",\"from_address\":");
    p = quoted_data(p, tx->from, 20);
    p = JW_LIT(p, ",\"to_address\":");
    if (tx->is_create)
        p = JW_LIT(p, "null");
    else
        p = quoted_data(p, tx->to, 20);
    p = JW_LIT(p, ",\"value\":");
    p = jw_dec_u128(p, tx->value);
    p = JW_LIT(p, ",\"gas\":");
    p = jw_dec_u64(p, tx->gas);
    p = JW_LIT(p, ",\"gas_price\":");
    p = jw_dec_u64(p, tx->gas_price);
    p = JW_LIT(p, ",\"input\":");
    p = quoted_data(p, tx->input, tx->input_len);
    p = JW_LIT(p, ",\"block_timestamp\":");
    p = jw_dec_u64(p, tx->timestamp);
    p = JW_LIT(p, ",\"block_number\":");
    p = jw_dec_u64(p, tx->block_number);
    p = JW_LIT(p, ",\"block_hash\":");
    p = quoted_data(p, tx->block_hash, 32);
    if (tx->type == 2) {
        p = JW_LIT(p, ",\"max_fee_per_gas\":");
        p = jw_dec_u64(p, tx->max_fee);
        p = JW_LIT(p, ",\"max_priority_fee_per_gas\":");
        p = jw_dec_u64(p, tx->max_priority);
    } else {
        p = JW_LIT(p, ",\"max_fee_per_gas\":null,\"max_priority_fee_per_gas\":null");
    }
    p = JW_LIT(p, ",\"transaction_type\":");
    p = jw_dec_u64(p, (uint64_t) tx->type);
    p = JW_LIT(p, ",\"receipt_cumulative_gas_used\":");
    p = jw_dec_u64(p, tx->cumulative_gas_used);
    p = JW_LIT(p, ",\"receipt_gas_used\":");
    p = jw_dec_u64(p, tx->gas_used);
    p = JW_LIT(p, ",\"receipt_contract_address\":");
    if (tx->is_create)
        p = quoted_data(p, tx->contract_address, 20);
    else
        p = JW_LIT(p, "null");
    p = JW_LIT(p, ",\"receipt_root\":null,\"receipt_status\":1,\"receipt_effective_gas_price\":");
    p = jw_dec_u64(p, tx->gas_price);
    p = JW_LIT(p, ",\"item_id\":\"transaction_");
    p = jw_hexdata(p, tx->hash, 32);
    p = JW_LIT(p, "\",\"item_timestamp\":\"");
    p = iso_utc(p, tx->timestamp);
    p = JW_LIT(p, "\"}");
    return p;
}

/* format_legacy writes the old system's flat message. */
static char *format_legacy(const struct tx *tx, char *p)
{
    p = JW_LIT(p, "{\"hash\":");
    p = quoted_data(p, tx->hash, 32);
    p = JW_LIT(p, ",\"from\":");
    p = quoted_data(p, tx->from, 20);
    p = JW_LIT(p, ",\"to\":");
    if (tx->is_create)
        p = JW_LIT(p, "null");
    else
        p = quoted_data(p, tx->to, 20);
    p = JW_LIT(p, ",\"value\":\"");
    p = jw_dec_u128(p, tx->value);
    p = JW_LIT(p, "\",\"gas\":");
    p = jw_dec_u64(p, tx->gas);
    p = JW_LIT(p, ",\"gasPrice\":");
    p = jw_dec_u64(p, tx->gas_price);
    p = JW_LIT(p, ",\"timestamp\":");
    p = jw_dec_u64(p, tx->timestamp);
    p = JW_LIT(p, ",\"blockNumber\":");
    p = jw_dec_u64(p, tx->block_number);
    *p++ = '}';
    return p;
}

/* format_tx dispatches on fmt; see format.h for the buffer contract. */
size_t format_tx(enum tx_format fmt, const struct tx *tx, char *buf)
{
    char *end;

    switch (fmt) {
    case FORMAT_JSONRPC:
        end = format_jsonrpc(tx, buf);
        break;
    case FORMAT_LEGACY:
        end = format_legacy(tx, buf);
        break;
    case FORMAT_ETHEREUM_ETL:
        end = format_ethereum_etl(tx, buf);
        break;
    default:
        end = format_etherscan(tx, buf);
        break;
    }
    return (size_t) (end - buf);
}
