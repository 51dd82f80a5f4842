/* tests/unit/test_txdecode.c — cmocka tests of txdecode.c (all formats, refusals) and wei.c */

/*
 * Expected numbers never come from the code under test: every decimal/hex pair below was
 * computed with Python's arbitrary-precision integers and is written down as a literal. Each
 * payload handed to cw_tx_decode is a malloc'd copy of exactly its length (no terminating NUL),
 * so the ASan build (SANITIZE=1) catches any read past the end of a message. A failing check
 * prints the expected and actual reason names, the decoder's message and the payload.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jscan.h"
#include "txdecode.h"
#include "wei.h"

#define HASH_A "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ADDR_1 "0x1111111111111111111111111111111111111111"
#define ADDR_2 "0x2222222222222222222222222222222222222222"

#define U64_PLUS_1_DEC "18446744073709551616"
#define U64_PLUS_1_HEX "0x10000000000000000"
#define U256_MAX_DEC                                                                               \
    "115792089237316195423570985008687907853269984665640564039457584007913129639935"
#define U256_MAX_HEX "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
#define U256_DEC     "115792089237316195423570985008687907853269984665640564039457584007913129639936"
#define U256_HEX     "0x10000000000000000000000000000000000000000000000000000000000000000"

/* decode runs cw_tx_decode on a malloc'd copy of exactly len bytes of s */
static int decode_n(const char *s, size_t len, size_t max_bytes, cw_tx **out, size_t *n,
                    cw_decode_error *err)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = cw_tx_decode(copy, len, max_bytes, out, n, err);
    free(copy);
    return rc;
}

/* decode_ok decodes s (a C string) and fails the test, printing the error, unless it decodes
 * into exactly want_n rows; returns the rows (caller frees). */
#define decode_ok(s, want_n) decode_ok_at((s), strlen(s), (want_n), __FILE__, __LINE__)
static cw_tx *decode_ok_at(const char *s, size_t len, size_t want_n, const char *file, int line)
{
    cw_tx *txs = NULL;
    size_t n = 0;
    cw_decode_error err;
    if (decode_n(s, len, 0, &txs, &n, &err) != 0) {
        print_error("%s:%d: expected the message to decode, got %s (%s)\n  payload: %.300s\n", file,
                    line, cw_decode_reason_name(err.reason), err.message, s);
        _fail(file, line);
    }
    if (n != want_n) {
        print_error("%s:%d: expected %zu row(s), got %zu\n  payload: %.300s\n", file, line, want_n,
                    n, s);
        free(txs);
        _fail(file, line);
    }
    return txs;
}

/* decode_fails checks that the payload is refused with reason want; prints what differed */
#define decode_fails(s, len, max, want)                                                            \
    decode_fails_at((s), (len), (max), (want), __FILE__, __LINE__)
#define refused(s, want) decode_fails_at((s), strlen(s), 0, (want), __FILE__, __LINE__)
static void decode_fails_at(const char *s, size_t len, size_t max_bytes, cw_decode_reason want,
                            const char *file, int line)
{
    cw_tx *txs = (cw_tx *) 0x1;
    size_t n = 99;
    cw_decode_error err;
    int rc = decode_n(s, len, max_bytes, &txs, &n, &err);
    if (rc == 0) {
        print_error("%s:%d: expected refusal (%s), but %zu row(s) decoded\n  payload: %.300s\n",
                    file, line, cw_decode_reason_name(want), n, s);
        free(txs);
        _fail(file, line);
    }
    if (err.reason != want) {
        print_error("%s:%d: expected reason %s, got %s (%s)\n  payload: %.300s\n", file, line,
                    cw_decode_reason_name(want), cw_decode_reason_name(err.reason), err.message, s);
        _fail(file, line);
    }
    if (txs != NULL || n != 0 || err.message[0] == '\0') {
        print_error("%s:%d: a refusal must leave out NULL, n 0 and an error message "
                    "(out %p, n %zu, message \"%s\")\n",
                    file, line, (void *) txs, n, err.message);
        _fail(file, line);
    }
}

/* one message with the given JSON amount texts spliced in (legacy-style object) */
static char *tx_with(const char *value, const char *gas, const char *gas_price)
{
    char *s = malloc(1024);
    assert_non_null(s);
    snprintf(s, 1024, "{\"hash\":\"" HASH_A "\",\"value\":%s,\"gas\":%s,\"gasPrice\":%s}", value,
             gas, gas_price);
    return s;
}

/* ---- the four formats ---------------------------------------------------------------------- */

static void etherscan_txlist_object(void **state)
{
    (void) state;
    const char *msg =
        "{\"blockNumber\":\"19000000\",\"timeStamp\":\"1704067200\","
        "\"hash\":\"0xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
        "\"nonce\":\"7\",\"blockHash\":\"0x01\",\"transactionIndex\":\"3\","
        "\"from\":\"" ADDR_1 "\",\"to\":\"0xABCDEFabcdef0000000000000000000000000001\","
        "\"value\":\"1000000000000000000\",\"gas\":\"21000\",\"gasPrice\":\"30000000000\","
        "\"isError\":\"0\",\"txreceipt_status\":\"1\",\"input\":\"0x\",\"contractAddress\":\"\","
        "\"cumulativeGasUsed\":\"21000\",\"gasUsed\":\"21000\",\"confirmations\":\"5\","
        "\"methodId\":\"0x\",\"functionName\":\"\"}";
    cw_tx *t = decode_ok(msg, 1);
    assert_string_equal(t->hash, HASH_A); /* lower-cased */
    assert_string_equal(t->from, ADDR_1);
    assert_string_equal(t->to, "0xabcdefabcdef0000000000000000000000000001");
    assert_string_equal(t->value, "1000000000000000000");
    assert_string_equal(t->gas, "21000");
    assert_string_equal(t->gas_price, "30000000000");
    assert_true(t->f_value == 1e18);
    assert_true(t->f_gas == 21000.0);
    assert_true(t->f_gas_price == 3e10);
    assert_int_equal(t->block_number, 19000000);
    assert_int_equal(t->timestamp, 1704067200);
    free(t);
}

static void etherscan_contract_creation_empty_to(void **state)
{
    (void) state;
    cw_tx *t = decode_ok("{\"hash\":\"" HASH_A "\",\"from\":\"" ADDR_1 "\",\"to\":\"\","
                         "\"value\":\"0\",\"gas\":\"500000\",\"gasPrice\":\"1\"}",
                         1);
    assert_string_equal(t->to, "");
    assert_string_equal(t->value, "0");
    assert_int_equal(t->block_number, -1); /* absent */
    assert_int_equal(t->timestamp, -1);
    free(t);
}

static void jsonrpc_hex_quantities_and_null_to(void **state)
{
    (void) state;
    const char *msg =
        "{\"blockHash\":\"0x01\",\"blockNumber\":\"0x121eac0\","
        "\"hash\":\"" HASH_B "\",\"from\":\"" ADDR_2 "\",\"to\":null,"
        "\"value\":\"0xde0b6b3a7640000\",\"gas\":\"0x5208\",\"gasPrice\":\"0x6fc23ac00\","
        "\"nonce\":\"0x1\",\"input\":\"0x60806040\",\"type\":\"0x0\",\"v\":\"0x25\"}";
    cw_tx *t = decode_ok(msg, 1);
    assert_string_equal(t->hash, HASH_B);
    assert_string_equal(t->from, ADDR_2);
    assert_string_equal(t->to, "");
    assert_string_equal(t->value, "1000000000000000000");
    assert_string_equal(t->gas, "21000");
    assert_string_equal(t->gas_price, "30000000000");
    assert_int_equal(t->block_number, 19000000);
    assert_int_equal(t->timestamp, -1); /* JSON-RPC objects carry no timestamp */
    free(t);
}

static void jsonrpc_eip1559_max_fee_without_gas_price(void **state)
{
    (void) state;
    cw_tx *t = decode_ok("{\"hash\":\"" HASH_A "\",\"to\":\"" ADDR_1 "\",\"value\":\"0x0\","
                         "\"gas\":\"0x5208\",\"type\":\"0x2\",\"maxFeePerGas\":\"0x3b9aca00\","
                         "\"maxPriorityFeePerGas\":\"0x1\"}",
                         1);
    assert_string_equal(t->gas_price, "1000000000");
    free(t);
    /* gasPrice null counts as absent: maxFeePerGas is used */
    t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"0x0\",\"gas\":\"0x1\","
                  "\"gasPrice\":null,\"maxFeePerGas\":\"0x10\"}",
                  1);
    assert_string_equal(t->gas_price, "16");
    free(t);
    /* both present: gasPrice (what was paid) wins */
    t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"0x0\",\"gas\":\"0x1\","
                  "\"gasPrice\":\"0x5\",\"maxFeePerGas\":\"0x10\"}",
                  1);
    assert_string_equal(t->gas_price, "5");
    free(t);
}

/*
 * ethereum-etl (`ethereumetl stream --output kafka`, transaction_mapper.transaction_to_dict, the
 * columns of its docs/schema.md): snake_case names, every quantity a JSON number written from a
 * Python int (value far above 2^53), block_timestamp in unix seconds, to_address null for a
 * creation, max_fee_per_gas null for a type-0 transaction; the stream adds item_id,
 * item_timestamp and the receipt_* fields of the enriched item.
 */
static void ethereum_etl_transaction(void **state)
{
    (void) state;
    const char *msg =
        "{\"type\":\"transaction\",\"hash\":\"" HASH_A "\",\"nonce\":7,"
        "\"block_hash\":\"0x01\",\"block_number\":19000000,\"block_timestamp\":1704067200,"
        "\"transaction_index\":3,\"from_address\":\"" ADDR_1 "\",\"to_address\":\"" ADDR_2 "\","
        "\"value\":123456789012345678901234567890,\"gas\":21000,\"gas_price\":30000000000,"
        "\"input\":\"0x\",\"max_fee_per_gas\":40000000000,\"max_priority_fee_per_gas\":1000000000,"
        "\"transaction_type\":2,\"receipt_cumulative_gas_used\":21000,\"receipt_gas_used\":21000,"
        "\"receipt_contract_address\":null,\"receipt_root\":null,\"receipt_status\":1,"
        "\"receipt_effective_gas_price\":30000000000,\"item_id\":\"transaction_" HASH_A "\","
        "\"item_timestamp\":\"2024-01-01T00:00:00Z\"}";
    cw_tx *t = decode_ok(msg, 1);
    assert_string_equal(t->hash, HASH_A);
    assert_string_equal(t->from, ADDR_1);
    assert_string_equal(t->to, ADDR_2);
    assert_string_equal(t->value, "123456789012345678901234567890"); /* not 1.2345678901234568e29 */
    assert_true(t->f_value == 123456789012345678901234567890.0);
    assert_string_equal(t->gas, "21000");
    assert_string_equal(t->gas_price, "30000000000"); /* gas_price (paid) before max_fee_per_gas */
    assert_int_equal(t->block_number, 19000000);
    assert_int_equal(t->timestamp, 1704067200);
    free(t);
}

static void ethereum_etl_creation_and_null_gas_price(void **state)
{
    (void) state;
    /* a type-0 creation: to_address null, max fees null */
    cw_tx *t =
        decode_ok("{\"type\":\"transaction\",\"hash\":\"" HASH_B "\",\"from_address\":\"" ADDR_1
                  "\",\"to_address\":null,\"value\":0,\"gas\":1000000,"
                  "\"gas_price\":12000000000,\"max_fee_per_gas\":null,"
                  "\"max_priority_fee_per_gas\":null,\"transaction_type\":0,"
                  "\"block_number\":1,\"block_timestamp\":1438269988}",
                  1);
    assert_string_equal(t->to, "");
    assert_string_equal(t->value, "0");
    assert_string_equal(t->gas_price, "12000000000");
    assert_int_equal(t->timestamp, 1438269988);
    free(t);
    /* gas_price null: max_fee_per_gas is the price, as for JSON-RPC */
    t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":" U64_PLUS_1_DEC ",\"gas\":21000,"
                  "\"gas_price\":null,\"max_fee_per_gas\":" U256_MAX_DEC "}",
                  1);
    assert_string_equal(t->value, U64_PLUS_1_DEC);
    assert_string_equal(t->gas_price, U256_MAX_DEC);
    free(t);
}

/* JSON-RPC transaction objects of Erigon, Otterscan and recent nodes carry blockTimestamp */
static void jsonrpc_block_timestamp(void **state)
{
    (void) state;
    cw_tx *t = decode_ok("{\"blockHash\":\"0x01\",\"blockNumber\":\"0x121eac0\",\"blockTimestamp\":"
                         "\"0x65920080\",\"hash\":\"" HASH_B "\",\"from\":\"" ADDR_2 "\","
                         "\"to\":\"" ADDR_1 "\",\"value\":\"0x1\",\"gas\":\"0x5208\","
                         "\"gasPrice\":\"0x6fc23ac00\",\"type\":\"0x2\"}",
                         1);
    assert_int_equal(t->timestamp, 1704067200);
    assert_int_equal(t->block_number, 19000000);
    free(t);
    /* a bad blockTimestamp is a bad timestamp, not ignored */
    refused("{\"hash\":\"" HASH_B "\",\"value\":\"0x1\",\"gas\":\"0x1\",\"gasPrice\":\"0x1\","
            "\"blockTimestamp\":\"0xzz\"}",
            CW_DECODE_INVALID_FIELD);
}

/* one field under two names: the first occurrence wins, as for a name given twice */
static void first_spelling_wins(void **state)
{
    (void) state;
    cw_tx *t =
        decode_ok("{\"hash\":\"" HASH_A "\",\"from_address\":\"" ADDR_2 "\",\"from\":\"" ADDR_1
                  "\",\"value\":1,\"gas\":1,\"gas_price\":7,\"gasPrice\":9}",
                  1);
    assert_string_equal(t->from, ADDR_2);
    assert_string_equal(t->gas_price, "7");
    free(t);
    /* Etherscan's timeStamp is read before any other spelling of the time */
    t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":1,\"gas\":1,\"gasPrice\":1,"
                  "\"block_timestamp\":5,\"timeStamp\":\"6\"}",
                  1);
    assert_int_equal(t->timestamp, 6);
    free(t);
}

static void legacy_numeric_gas_and_gas_price(void **state)
{
    (void) state;
    cw_tx *t = decode_ok("{\"hash\":\"" HASH_A "\",\"from\":\"" ADDR_1 "\",\"to\":\"" ADDR_2 "\","
                         "\"value\":\"123456789012345678901234567890\",\"gas\":21000,"
                         "\"gasPrice\":20000000000,\"timestamp\":1704067212,"
                         "\"blockNumber\":19000001}",
                         1);
    assert_string_equal(t->value, "123456789012345678901234567890");
    assert_string_equal(t->gas, "21000");
    assert_string_equal(t->gas_price, "20000000000");
    assert_int_equal(t->timestamp, 1704067212);
    assert_int_equal(t->block_number, 19000001);
    free(t);
}

static void valid_non_ascii_utf8_is_accepted(void **state)
{
    (void) state;
    /* 2-, 3- and 4-byte sequences, incl. U+10FFFF and the code points around the surrogates */
    cw_tx *t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
                         "\"note\":\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf "
                         "\xee\x80\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"}",
                         1);
    free(t);
}

static void array_of_objects_in_mixed_formats(void **state)
{
    (void) state;
    const char *msg =
        "[ {\"hash\":\"" HASH_A "\",\"value\":\"5\",\"gas\":\"21000\",\"gasPrice\":\"7\","
        "\"timeStamp\":\"1704067200\"},\n"
        "  {\"hash\":\"" HASH_B "\",\"value\":\"0x5\",\"gas\":\"0x5208\","
        "\"maxFeePerGas\":\"0x7\",\"to\":null},\n"
        "  {\"hash\":\"" HASH_A "\",\"value\":\"6\",\"gas\":21000,\"gasPrice\":8,"
        "\"blockNumber\":1} ]\n";
    cw_tx *t = decode_ok(msg, 3);
    assert_string_equal(t[0].value, "5");
    assert_int_equal(t[0].timestamp, 1704067200);
    assert_string_equal(t[1].hash, HASH_B);
    assert_string_equal(t[1].value, "5");
    assert_string_equal(t[1].gas_price, "7");
    assert_string_equal(t[2].value, "6");
    assert_string_equal(t[2].gas_price, "8");
    assert_int_equal(t[2].block_number, 1);
    free(t);
}

static void whitespace_around_the_value_is_fine(void **state)
{
    (void) state;
    free(decode_ok("  \n\t{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}\r\n ",
                   1));
}

/* ---- boundary numbers ---------------------------------------------------------------------- */

/* amount_is decodes a message whose value is the JSON text json and checks the decimal */
#define amount_is(json, want) amount_is_at((json), (want), __FILE__, __LINE__)
static void amount_is_at(const char *json, const char *want, const char *file, int line)
{
    char *msg = tx_with(json, "1", "1");
    cw_tx *t = decode_ok_at(msg, strlen(msg), 1, file, line);
    if (strcmp(t->value, want) != 0) {
        print_error("%s:%d: value %s decoded as \"%s\", expected \"%s\"\n", file, line, json,
                    t->value, want);
        free(t);
        free(msg);
        _fail(file, line);
    }
    /* the feature is the nearest double of the exact value (what float8(numeric) gives) */
    double want_f = strtod(want, NULL);
    if (t->f_value != want_f) {
        print_error("%s:%d: f_value %.17g, expected %.17g\n", file, line, t->f_value, want_f);
        free(t);
        free(msg);
        _fail(file, line);
    }
    free(t);
    free(msg);
}

static void zero_in_every_spelling(void **state)
{
    (void) state;
    amount_is("\"0\"", "0");
    amount_is("\"0x0\"", "0");
    amount_is("\"0X00\"", "0");
    amount_is("\"000\"", "0");
    amount_is("0", "0");
}

static void two_to_the_64(void **state)
{
    (void) state;
    amount_is("\"" U64_PLUS_1_DEC "\"", U64_PLUS_1_DEC);
    amount_is("\"" U64_PLUS_1_HEX "\"", U64_PLUS_1_DEC);
    amount_is("\"18446744073709551615\"", "18446744073709551615");
    amount_is("\"0xffffffffffffffff\"", "18446744073709551615");
}

static void two_to_the_256_minus_1_is_the_largest(void **state)
{
    (void) state;
    amount_is("\"" U256_MAX_DEC "\"", U256_MAX_DEC);
    amount_is("\"" U256_MAX_HEX "\"", U256_MAX_DEC);
    amount_is("\"0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\"",
              U256_MAX_DEC);
}

static void two_to_the_256_is_refused(void **state)
{
    (void) state;
    const char *over[] = {
        "\"" U256_DEC "\"",
        "\"" U256_HEX "\"",
        "\"999999999999999999999999999999999999999999999999999999999999999999999999999999\"",
        "\"1000000000000000000000000000000000000000000000000000000000000000000000000000000\"",
    };
    for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
        char *msg = tx_with(over[i], "1", "1");
        refused(msg, CW_DECODE_INVALID_FIELD);
        free(msg);
    }
}

static void hex_to_decimal_is_exact(void **state)
{
    (void) state;
    /* pairs computed with Python int(h, 16) */
    amount_is("\"0xa6a3a4506513270e269e0d37f2a74de4\"", "221501524372946351836437432738253327844");
    amount_is("\"0x6892f902bd23f0824\"", "120565742667244177444");
    amount_is("\"0x81e74ef5e8e25d940ed904759531985d\"", "172671433541498775036893316945271691357");
    amount_is("\"0x65920080\"", "1704067200");
}

static void leading_zeros_are_dropped(void **state)
{
    (void) state;
    amount_is("\"000123\"", "123");
    amount_is("\"0x000ff\"", "255");
    /* 80 digits with leading zeros still fit: the limit is on the value, not the text */
    amount_is("\"00" U256_MAX_DEC "\"", U256_MAX_DEC);
    amount_is("\"0x0000"
              "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"",
              U256_MAX_DEC);
}

/* JSON numbers are read exactly from their digits at any size; the value must be an integer */
static void json_numbers_of_any_size_are_exact(void **state)
{
    (void) state;
    amount_is("9007199254740991", "9007199254740991");
    amount_is("9007199254740993", "9007199254740993"); /* 2^53 + 1: no double holds it */
    amount_is(U64_PLUS_1_DEC, U64_PLUS_1_DEC);
    amount_is(U256_MAX_DEC, U256_MAX_DEC);
    amount_is("1e3", "1000"); /* an exact integer, however written */
    amount_is("1000.000", "1000");
    amount_is("1.10e1", "11");
    amount_is("12300e-2", "123");
    amount_is("1E+2", "100");
    amount_is("1e77", "100000000000000000000000000000000000000000000000000000000000000000000000000"
                      "000");
    amount_is("-0", "0");
    amount_is("0.0e999999", "0");
    amount_is("0e-5", "0");
    const char *fractions[] = {"1.5", "1e-1", "0.1", "10.01e1", "123e-2", "1e-999999"};
    for (size_t i = 0; i < sizeof(fractions) / sizeof(fractions[0]); i++) {
        char *msg = tx_with(fractions[i], "1", "1");
        refused(msg, CW_DECODE_INVALID_FIELD);
        free(msg);
    }
    const char *too_big[] = {U256_DEC, "1e78", "2e77", "1e300", "1e999999999999"};
    for (size_t i = 0; i < sizeof(too_big) / sizeof(too_big[0]); i++) {
        char *msg = tx_with("\"1\"", too_big[i], "1");
        refused(msg, CW_DECODE_INVALID_FIELD);
        free(msg);
    }
    const char *negative[] = {"-1", "-1.5", "-1e300", "-" U256_DEC};
    for (size_t i = 0; i < sizeof(negative) / sizeof(negative[0]); i++) {
        char *msg = tx_with(negative[i], "1", "1");
        refused(msg, CW_DECODE_NEGATIVE_AMOUNT);
        free(msg);
    }
    /* block numbers and times are int64: a huge JSON integer there is out of range */
    refused("{\"hash\":\"" HASH_A "\",\"value\":1,\"gas\":1,\"gasPrice\":1,"
            "\"block_number\":" U64_PLUS_1_DEC "}",
            CW_DECODE_INVALID_FIELD);
}

/* wei.c's JSON number reader on its own: statuses and the nearest double */
static void wei_from_json_number_directly(void **state)
{
    (void) state;
    char dec[CW_WEI_DEC_MAX];
    double approx = -1;
    assert_int_equal(cw_wei_from_json_number("123456789012345678901234567890", 30, dec, &approx),
                     CW_WEI_OK);
    assert_string_equal(dec, "123456789012345678901234567890");
    assert_true(approx == 123456789012345678901234567890.0);
    assert_int_equal(cw_wei_from_json_number("25e-1", 5, dec, NULL), CW_WEI_FRACTION);
    assert_int_equal(cw_wei_from_json_number("-2", 2, dec, NULL), CW_WEI_NEGATIVE);
    assert_int_equal(cw_wei_from_json_number("", 0, dec, NULL), CW_WEI_EMPTY);
    assert_int_equal(cw_wei_from_json_number("1.", 2, dec, NULL), CW_WEI_INVALID);
    assert_int_equal(cw_wei_from_json_number("1e", 2, dec, NULL), CW_WEI_INVALID);
    assert_int_equal(cw_wei_from_json_number("x", 1, dec, NULL), CW_WEI_INVALID);
    assert_int_equal(cw_wei_from_json_number("1e78", 4, dec, NULL), CW_WEI_OVERFLOW);
    /* n bounds the input */
    assert_int_equal(cw_wei_from_json_number("12345", 2, dec, NULL), CW_WEI_OK);
    assert_string_equal(dec, "12");
}

static void wei_parse_directly(void **state)
{
    (void) state;
    char dec[CW_WEI_DEC_MAX];
    double approx = -1;
    assert_int_equal(cw_wei_parse(U256_MAX_HEX, strlen(U256_MAX_HEX), dec, &approx), CW_WEI_OK);
    assert_string_equal(dec, U256_MAX_DEC);
    assert_true(approx == 0x1p256); /* nearest double of 2^256-1 is 2^256 */
    assert_int_equal(cw_wei_parse(U256_HEX, strlen(U256_HEX), dec, NULL), CW_WEI_OVERFLOW);
    assert_int_equal(cw_wei_parse(U256_DEC, strlen(U256_DEC), dec, NULL), CW_WEI_OVERFLOW);
    assert_int_equal(cw_wei_parse("", 0, dec, NULL), CW_WEI_EMPTY);
    assert_int_equal(cw_wei_parse("0x", 2, dec, NULL), CW_WEI_EMPTY);
    assert_int_equal(cw_wei_parse("-5", 2, dec, NULL), CW_WEI_NEGATIVE);
    assert_int_equal(cw_wei_parse("-0x5", 4, dec, NULL), CW_WEI_NEGATIVE);
    assert_int_equal(cw_wei_parse("+5", 2, dec, NULL), CW_WEI_INVALID);
    assert_int_equal(cw_wei_parse("0xg", 3, dec, NULL), CW_WEI_INVALID);
    assert_int_equal(cw_wei_parse("1.5", 3, dec, NULL), CW_WEI_INVALID);
    assert_int_equal(cw_wei_parse(" 1", 2, dec, NULL), CW_WEI_INVALID);
    /* n bounds the input: the digits after it are not read */
    assert_int_equal(cw_wei_parse("12345", 3, dec, NULL), CW_WEI_OK);
    assert_string_equal(dec, "123");
    for (int st = CW_WEI_OK; st <= CW_WEI_OVERFLOW; st++)
        assert_string_not_equal(cw_wei_status_text((cw_wei_status) st), "unknown");
}

/* ---- malformed messages: each refused whole, with the right reason -------------------------- */

static void invalid_json(void **state)
{
    (void) state;
    refused("{", CW_DECODE_INVALID_JSON);
    refused("not json", CW_DECODE_INVALID_JSON);
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",}", CW_DECODE_INVALID_JSON);
    refused("{'hash':'x'}", CW_DECODE_INVALID_JSON);
    decode_fails("", 0, 0, CW_DECODE_INVALID_JSON);
    decode_fails("   ", 3, 0, CW_DECODE_INVALID_JSON);
}

/* a message that would be valid but for the bytes spliced into an ignored string field */
static void refused_utf8(const char *bytes)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg),
                     "{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
                     "\"input\":\"%s\"}",
                     bytes);
    decode_fails(msg, (size_t) n, 0, CW_DECODE_INVALID_UTF8);
}

static void invalid_utf8(void **state)
{
    (void) state;
    refused_utf8("\xc0\xaf");         /* overlong '/' (2 bytes) */
    refused_utf8("\xc1\xbf");         /* overlong, 2 bytes */
    refused_utf8("\xe0\x80\xaf");     /* overlong, 3 bytes */
    refused_utf8("\xf0\x80\x80\xaf"); /* overlong, 4 bytes */
    refused_utf8("\xed\xa0\x80");     /* U+D800, a surrogate */
    refused_utf8("\xed\xbf\xbf");     /* U+DFFF */
    refused_utf8("\xf4\x90\x80\x80"); /* U+110000, beyond Unicode */
    refused_utf8("\xe2\x82");         /* truncated 3-byte sequence */
    refused_utf8("\xe2\x28\xa1");     /* bad continuation byte */
    refused_utf8("\x80");             /* lone continuation byte */
    refused_utf8("\xff");             /* never valid */
    /* truncated at the very end of the message */
    const char tail[] = "{\"hash\":\"" HASH_A "\"}\xf0\x9f\x98";
    decode_fails(tail, sizeof(tail) - 1, 0, CW_DECODE_INVALID_UTF8);
    /* and the validator alone */
    assert_false(cw_utf8_valid("\xf0\x9f\x98", 3));
    assert_true(cw_utf8_valid("\xf0\x9f\x98\x80", 4));
    assert_true(cw_utf8_valid("", 0));
}

static void missing_required_fields(void **state)
{
    (void) state;
    refused("{\"value\":\"1\",\"gas\":1,\"gasPrice\":1}", CW_DECODE_MISSING_FIELD);
    refused("{\"hash\":\"" HASH_A "\",\"gas\":1,\"gasPrice\":1}", CW_DECODE_MISSING_FIELD);
    refused("{\"hash\":\"" HASH_A "\",\"value\":null,\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_MISSING_FIELD);
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gasPrice\":1}", CW_DECODE_MISSING_FIELD);
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1}", CW_DECODE_MISSING_FIELD);
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":null}",
            CW_DECODE_MISSING_FIELD);
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"maxPriorityFeePerGas\":\"0x1\"}",
            CW_DECODE_MISSING_FIELD);
    refused("{}", CW_DECODE_MISSING_FIELD);
    /* field names are case-sensitive */
    refused("{\"Hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_MISSING_FIELD);
}

static void bad_hash(void **state)
{
    (void) state;
    /* 63 and 65 hex digits, no 0x, a non-hex digit, not a string */
    refused("{\"hash\":\"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
            "\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    refused("{\"hash\":\"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
            "\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    refused("{\"hash\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
            "\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    refused("{\"hash\":\"0xgaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
            "\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    refused("{\"hash\":12,\"value\":\"1\",\"gas\":1,\"gasPrice\":1}", CW_DECODE_INVALID_FIELD);
    refused("{\"hash\":null,\"value\":\"1\",\"gas\":1,\"gasPrice\":1}", CW_DECODE_INVALID_FIELD);
}

static void bad_address(void **state)
{
    (void) state;
    const char *bad[] = {
        "\"from\":\"0x111111111111111111111111111111111111111\"",   /* 39 digits */
        "\"from\":\"0x11111111111111111111111111111111111111111\"", /* 41 digits */
        "\"to\":\"1111111111111111111111111111111111111111\"",      /* no 0x */
        "\"to\":\"0xz111111111111111111111111111111111111111\"",    /* not hex */
        "\"from\":42",
        "\"to\":[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "{\"hash\":\"" HASH_A "\",%s,\"value\":\"1\",\"gas\":1,\"gasPrice\":1}", bad[i]);
        refused(msg, CW_DECODE_INVALID_FIELD);
    }
}

static void negative_amounts(void **state)
{
    (void) state;
    const char *cases[][3] = {
        {"\"-1\"", "1", "1"},     {"-1", "1", "1"},        {"\"1\"", "-21000", "1"},
        {"\"1\"", "1", "\"-5\""}, {"\"-0x10\"", "1", "1"}, {"\"1\"", "1", "-0.5"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *msg = tx_with(cases[i][0], cases[i][1], cases[i][2]);
        refused(msg, CW_DECODE_NEGATIVE_AMOUNT);
        free(msg);
    }
}

static void non_numeric_and_non_integer_amounts(void **state)
{
    (void) state;
    const char *cases[][3] = {
        {"1.5", "1", "1"},        {"\"1.5\"", "1", "1"},  {"\"abc\"", "1", "1"},
        {"\"\"", "1", "1"},       {"\"0x\"", "1", "1"},   {"\"0xzz\"", "1", "1"},
        {"true", "1", "1"},       {"{}", "1", "1"},       {"\"1\"", "[1]", "1"},
        {"\"1\"", "1", "\"+1\""}, {"\"1e18\"", "1", "1"}, {"\"1\"", "\" 21000\"", "1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *msg = tx_with(cases[i][0], cases[i][1], cases[i][2]);
        refused(msg, CW_DECODE_INVALID_FIELD);
        free(msg);
    }
}

static void bad_optional_integers(void **state)
{
    (void) state;
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
            "\"blockNumber\":\"0x"
            "ffffffffffffffffffff\"}",
            CW_DECODE_INVALID_FIELD); /* beyond int64 */
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
            "\"timeStamp\":\"yesterday\"}",
            CW_DECODE_INVALID_FIELD);
    /* null optional fields are absent */
    cw_tx *t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
                         "\"blockNumber\":null,\"timestamp\":null,\"from\":null}",
                         1);
    assert_int_equal(t->block_number, -1);
    assert_int_equal(t->timestamp, -1);
    assert_string_equal(t->from, "");
    free(t);
}

static void not_an_object(void **state)
{
    (void) state;
    refused("[]", CW_DECODE_NOT_OBJECT); /* empty array */
    refused("[ ]", CW_DECODE_NOT_OBJECT);
    refused("\"x\"", CW_DECODE_NOT_OBJECT);
    refused("42", CW_DECODE_NOT_OBJECT);
    refused("null", CW_DECODE_NOT_OBJECT);
    refused("[1]", CW_DECODE_NOT_OBJECT);
    refused("[[{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}]]",
            CW_DECODE_NOT_OBJECT);
}

static void array_with_one_bad_item_is_refused_whole(void **state)
{
    (void) state;
    const char *msg = "[{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1},"
                      "{\"hash\":\"" HASH_B "\",\"gas\":1,\"gasPrice\":1},"
                      "{\"hash\":\"" HASH_A "\",\"value\":\"2\",\"gas\":1,\"gasPrice\":1}]";
    refused(msg, CW_DECODE_MISSING_FIELD);
    cw_tx *txs;
    size_t n;
    cw_decode_error err;
    assert_int_equal(decode_n(msg, strlen(msg), 0, &txs, &n, &err), -1);
    /* the message names the item (0-based) so the dead letter says which one */
    if (strncmp(err.message, "item 1:", 7) != 0) {
        print_error("error message \"%s\" does not start with \"item 1:\"\n", err.message);
        fail();
    }
    refused("[{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1},"
            "{\"hash\":\"" HASH_B "\",\"value\":\"-1\",\"gas\":1,\"gasPrice\":1}]",
            CW_DECODE_NEGATIVE_AMOUNT);
}

static void too_large(void **state)
{
    (void) state;
    const char *msg = "{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}";
    size_t len = strlen(msg);
    decode_fails(msg, len, len - 1, CW_DECODE_TOO_LARGE);
    cw_tx *txs;
    size_t n;
    cw_decode_error err;
    assert_int_equal(decode_n(msg, len, len, &txs, &n, &err), 0); /* exactly the limit is fine */
    free(txs);
    /* the default limit (max_bytes 0) is 1 MiB: even garbage over it is too_large, not invalid */
    size_t big = CW_TX_MAX_MESSAGE_BYTES_DEFAULT + 1;
    char *junk = malloc(big);
    assert_non_null(junk);
    memset(junk, 'x', big);
    decode_fails(junk, big, 0, CW_DECODE_TOO_LARGE);
    free(junk);
}

static void too_many_items(void **state)
{
    (void) state;
    const char item[] = "{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}";
    size_t per = sizeof(item); /* item + ',' */
    for (int count = CW_TX_MAX_ITEMS; count <= CW_TX_MAX_ITEMS + 1; count++) {
        char *msg = malloc(per * (size_t) count + 2);
        assert_non_null(msg);
        size_t len = 0;
        msg[len++] = '[';
        for (int i = 0; i < count; i++) {
            memcpy(msg + len, item, per - 1);
            len += per - 1;
            msg[len++] = i + 1 < count ? ',' : ']';
        }
        if (count == CW_TX_MAX_ITEMS) {
            cw_tx *txs;
            size_t n;
            cw_decode_error err;
            int rc = decode_n(msg, len, 100u << 20, &txs, &n, &err);
            if (rc != 0)
                print_error("%d items refused: %s\n", count, err.message);
            assert_int_equal(rc, 0);
            assert_int_equal(n, CW_TX_MAX_ITEMS);
            free(txs);
        } else {
            decode_fails(msg, len, 100u << 20, CW_DECODE_TOO_MANY);
        }
        free(msg);
    }
}

static void trailing_garbage(void **state)
{
    (void) state;
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1} x",
            CW_DECODE_INVALID_JSON);
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}"
            "{\"hash\":\"" HASH_B "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_JSON);
    refused("[{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}]]",
            CW_DECODE_INVALID_JSON);
}

static void nul_byte(void **state)
{
    (void) state;
    const char at_end[] = "{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}";
    decode_fails(at_end, sizeof(at_end), 0, CW_DECODE_INVALID_JSON); /* includes the NUL */
    const char inside[] = "{\"hash\":\"" HASH_A "\",\"value\":\"1\0\",\"gas\":1,\"gasPrice\":1}";
    decode_fails(inside, sizeof(inside) - 1, 0, CW_DECODE_INVALID_JSON);
}

/* an escaped NUL (\u0000) inside an amount must not cut the number short: "1\u00009" is not 1 */
static void escaped_nul_inside_an_amount(void **state)
{
    (void) state;
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\\u00009\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    refused("{\"hash\":\"" HASH_A "\\u0000\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    /* three backslashes: an escaped backslash, then the escape of a NUL */
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
            "\"note\":\"a\\\\\\u0000\"}",
            CW_DECODE_INVALID_FIELD);
    /* two backslashes: an escaped backslash followed by the text u0000, which is no NUL */
    free(decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
                   "\"note\":\"\\\\u0000\\\\\"}",
                   1));
    /* a backslash too close to the end to start an escape, after a long message with many */
    free(decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"1\",\"gas\":1,\"gasPrice\":1,"
                   "\"note\":\"\\\\ \\\\ \\\\ \\u0041\\\\\"}",
                   1));
}

/* the double of an amount is strtod's (correctly rounded) for every length, including the
 * 19-digit ones above 2^63 that take the integer path and the ties around 2^53 */
static void amount_doubles_match_strtod(void **state)
{
    (void) state;
    const char *fixed[] = {"0",
                           "1",
                           "9007199254740992",
                           "9007199254740993",
                           "9007199254740995",
                           "9223372036854775807",
                           "9223372036854775808",
                           "9999999999999999999",
                           "18446744073709551615",
                           "18446744073709551617",
                           U256_MAX_DEC};
    char dec[CW_WEI_DEC_MAX], digits[80];
    double got;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        assert_int_equal(cw_wei_parse(fixed[i], strlen(fixed[i]), dec, &got), CW_WEI_OK);
        assert_true(got == strtod(fixed[i], NULL));
    }
    uint64_t x = 88172645463325252u; /* xorshift64 */
    for (int i = 0; i < 200000; i++) {
        size_t n = 1 + (size_t) (i % 24);
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            digits[k] = (char) ('0' + (k == 0 ? 1 + x % 9 : x % 10));
        }
        digits[n] = '\0';
        assert_int_equal(cw_wei_parse(digits, n, dec, &got), CW_WEI_OK);
        if (got != strtod(digits, NULL))
            fail_msg("%s: %.17g, strtod %.17g", digits, got, strtod(digits, NULL));
    }
}

/* ---- the JSON grammar (jscan.c): RFC 8259, escapes decoded in names and values ----------------
 */

#define TX_REST "\"value\":\"1\",\"gas\":1,\"gasPrice\":1"

static void json_grammar_is_rfc_8259(void **state)
{
    (void) state;
    const char *bad[] = {
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":01}",          /* leading zero */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":1.}",          /* no fraction digits */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":.5}",          /* no integer part */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":+1}",          /* plus sign */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":1e}",          /* empty exponent */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":-}",           /* a lone minus */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"a\tb\"}",    /* raw control character */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"\\x\"}",     /* unknown escape */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"\\u12g4\"}", /* bad \u digits */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"\\ud800\"}", /* lone high surrogate */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"\\udc00\"}", /* lone low surrogate */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"\\ud800\\u0041\"}", /* high, then no low */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":tru}",                /* truncated literal */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":[1,]}",    /* trailing comma in array */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":{\"a\"}}", /* member without a value */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":{1:2}}",   /* non-string name */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":[1 2]}",   /* missing comma */
        "{\"hash\":\"" HASH_A "\"," TX_REST "\f}",             /* form feed is no whitespace */
        "{\"hash\":\"" HASH_A "\"," TX_REST ",\"n\":\"unterminated}",
        "[{\"hash\":\"" HASH_A "\"," TX_REST "},]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(bad[i], CW_DECODE_INVALID_JSON);

    /* a control character or an escape at every offset of a long string (the scanner reads
     * strings eight bytes at a time) */
    for (int at = 0; at < 24; at++) {
        char msg[512], note[40];
        memset(note, 'x', 30);
        note[30] = '\0';
        note[at] = '\x1f';
        snprintf(msg, sizeof(msg), "{\"hash\":\"" HASH_A "\"," TX_REST ",\"note\":\"%s\"}", note);
        refused(msg, CW_DECODE_INVALID_JSON);
        note[at] = '\\';
        note[at + 1] = '"';
        snprintf(msg, sizeof(msg), "{\"hash\":\"" HASH_A "\"," TX_REST ",\"note\":\"%s\"}", note);
        free(decode_ok(msg, 1));
        note[at] = '"';
        note[at + 1] = 'x';
        snprintf(msg, sizeof(msg), "{\"hash\":\"" HASH_A "\"," TX_REST ",\"note\":\"%s\"}", note);
        refused(msg, CW_DECODE_INVALID_JSON);
    }

    /* whatever nests inside an ignored member is validated and skipped */
    cw_tx *t =
        decode_ok("{\"input\":{\"a\":[1,-2.5e+3,true,false,null,{\"b\":[[]]},\"\\ud83d\\ude00\"]},"
                  "\"hash\":\"" HASH_A "\"," TX_REST ",\"logs\":[]}",
                  1);
    assert_string_equal(t->hash, HASH_A);
    free(t);

    /* nesting: JS_MAX_DEPTH levels are fine, one more is not */
    for (int depth = JS_MAX_DEPTH - 1; depth <= JS_MAX_DEPTH; depth++) {
        char *msg = malloc(2 * (size_t) depth + 256);
        assert_non_null(msg);
        int n = sprintf(msg, "{\"hash\":\"" HASH_A "\"," TX_REST ",\"deep\":");
        for (int i = 0; i < depth; i++)
            msg[n++] = '[';
        for (int i = 0; i < depth; i++)
            msg[n++] = ']';
        msg[n++] = '}';
        msg[n] = '\0';
        if (depth < JS_MAX_DEPTH)
            free(decode_ok(msg, 1));
        else
            refused(msg, CW_DECODE_INVALID_JSON);
        free(msg);
    }
}

#define A64    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ONES40 "1111111111111111111111111111111111111111"

static void escapes_in_names_and_values_are_decoded(void **state)
{
    (void) state;
    /* "h\u0061sh" is the name hash; "\u0030x..." and "\/"-free hex decode to the plain value */
    cw_tx *t = decode_ok("{\"h\\u0061sh\":\"\\u0030x" A64 "\",\"from\":\"\\u0030X" ONES40
                         "\",\"v\\u0061lue\":\"\\u0031\\u0032\",\"gas\":\"0x\\u0031\\u0030\","
                         "\"gasPrice\":1}",
                         1);
    assert_string_equal(t->hash, HASH_A);
    assert_string_equal(t->from, ADDR_1);
    assert_string_equal(t->value, "12");
    assert_string_equal(t->gas, "16");
    free(t);
    /* an escape that decodes to something invalid is refused like the plain text would be */
    refused("{\"hash\":\"" HASH_A "\",\"value\":\"1\\n\",\"gas\":1,\"gasPrice\":1}",
            CW_DECODE_INVALID_FIELD);
    /* the first of two members with one name wins, also when the second is spelled escaped */
    t = decode_ok("{\"hash\":\"" HASH_A "\",\"value\":\"7\",\"v\\u0061lue\":\"8\",\"value\":\"9\","
                  "\"gas\":1,\"gasPrice\":1}",
                  1);
    assert_string_equal(t->value, "7");
    free(t);
    /* a name longer than any we read, and an escaped one, are ignored */
    free(decode_ok("{\"hash\":\"" HASH_A "\"," TX_REST ",\"a\\u00e9aaaaaaaaaaaaaaaaaaaaaaaaaa\":1}",
                   1));
    /* an amount string too long for any amount, with escapes, is an invalid field */
    char msg[1024];
    char digits[600];
    memset(digits, '1', sizeof(digits) - 1);
    digits[sizeof(digits) - 1] = '\0';
    snprintf(msg, sizeof(msg),
             "{\"hash\":\"" HASH_A "\",\"value\":\"\\u0031%s\",\"gas\":1,\"gasPrice\":1}", digits);
    refused(msg, CW_DECODE_INVALID_FIELD);
    /* a JSON number of 599 digits is above 2^256 - 1 */
    snprintf(msg, sizeof(msg), "{\"hash\":\"" HASH_A "\",\"value\":%s,\"gas\":1,\"gasPrice\":1}",
             digits);
    refused(msg, CW_DECODE_INVALID_FIELD);
}

static void reason_names_are_the_documented_labels(void **state)
{
    (void) state;
    const char *want[CW_DECODE_REASONS] = {
        "ok",         "too_large",     "invalid_utf8",  "invalid_json",
        "not_object", "missing_field", "invalid_field", "negative_amount",
        "too_many"};
    for (int r = 0; r < CW_DECODE_REASONS; r++)
        assert_string_equal(cw_decode_reason_name((cw_decode_reason) r), want[r]);
    assert_string_equal(cw_decode_reason_name(CW_DECODE_REASONS), "unknown");
    assert_string_equal(cw_decode_reason_name((cw_decode_reason) -1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(etherscan_txlist_object),
        cmocka_unit_test(etherscan_contract_creation_empty_to),
        cmocka_unit_test(jsonrpc_hex_quantities_and_null_to),
        cmocka_unit_test(jsonrpc_eip1559_max_fee_without_gas_price),
        cmocka_unit_test(ethereum_etl_transaction),
        cmocka_unit_test(ethereum_etl_creation_and_null_gas_price),
        cmocka_unit_test(jsonrpc_block_timestamp),
        cmocka_unit_test(first_spelling_wins),
        cmocka_unit_test(legacy_numeric_gas_and_gas_price),
        cmocka_unit_test(valid_non_ascii_utf8_is_accepted),
        cmocka_unit_test(array_of_objects_in_mixed_formats),
        cmocka_unit_test(whitespace_around_the_value_is_fine),
        cmocka_unit_test(zero_in_every_spelling),
        cmocka_unit_test(two_to_the_64),
        cmocka_unit_test(two_to_the_256_minus_1_is_the_largest),
        cmocka_unit_test(two_to_the_256_is_refused),
        cmocka_unit_test(hex_to_decimal_is_exact),
        cmocka_unit_test(leading_zeros_are_dropped),
        cmocka_unit_test(json_numbers_of_any_size_are_exact),
        cmocka_unit_test(wei_from_json_number_directly),
        cmocka_unit_test(wei_parse_directly),
        cmocka_unit_test(invalid_json),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(missing_required_fields),
        cmocka_unit_test(bad_hash),
        cmocka_unit_test(bad_address),
        cmocka_unit_test(negative_amounts),
        cmocka_unit_test(non_numeric_and_non_integer_amounts),
        cmocka_unit_test(bad_optional_integers),
        cmocka_unit_test(not_an_object),
        cmocka_unit_test(array_with_one_bad_item_is_refused_whole),
        cmocka_unit_test(too_large),
        cmocka_unit_test(too_many_items),
        cmocka_unit_test(trailing_garbage),
        cmocka_unit_test(nul_byte),
        cmocka_unit_test(escaped_nul_inside_an_amount),
        cmocka_unit_test(amount_doubles_match_strtod),
        cmocka_unit_test(json_grammar_is_rfc_8259),
        cmocka_unit_test(escapes_in_names_and_values_are_decoded),
        cmocka_unit_test(reason_names_are_the_documented_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
