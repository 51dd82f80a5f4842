/* common/src/txdecode.c — decoding transaction JSON in the three accepted formats; pure, no I/O */

/*
 * The three formats differ only in how a field is spelled and written, so one decoder reads
 * them all: amounts may be decimal strings (Etherscan, legacy value), 0x-hex strings (JSON-RPC)
 * or JSON integers (legacy gas, gasPrice, timestamp, blockNumber); a JSON number is accepted
 * only while it is an exact integer (below 2^53), since wei amounts must be kept exactly.
 * Field names: hash; from; to (null or "" for a contract creation); value; gas; gasPrice, or
 * maxFeePerGas for EIP-1559 transactions without gasPrice; timeStamp (Etherscan) or timestamp;
 * blockNumber. Unknown fields are ignored. The payload is checked for size and strict UTF-8
 * before cJSON sees it.
 */
#include "txdecode.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const reason_names[CW_DECODE_REASONS] = {
    "ok",            "too_large",     "invalid_utf8",    "invalid_json", "not_object",
    "missing_field", "invalid_field", "negative_amount", "too_many",
};

const char *cw_decode_reason_name(cw_decode_reason r)
{
    return (r >= 0 && r < CW_DECODE_REASONS) ? reason_names[r] : "unknown";
}

static int fail(cw_decode_error *err, cw_decode_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(cw_decode_error *err, cw_decode_reason r, const char *fmt, ...)
{
    va_list ap;
    err->reason = r;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

bool cw_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *) str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += len;
    }
    return true;
}

/* hex_fixed copies a 0x-prefixed hex string of exactly `digits` digits, lower-cased. */
static bool hex_fixed(const char *s, size_t digits, char *out)
{
    if (strlen(s) != digits + 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < digits; i++) {
        char c = s[2 + i];
        if (!isxdigit((unsigned char) c))
            return false;
        out[2 + i] = (char) tolower((unsigned char) c);
    }
    out[2 + digits] = '\0';
    return true;
}

/* read_amount decodes an amount field given as a string (decimal or 0x-hex) or an exact JSON
 * integer into dec/approx. Returns 0, or -1 with err filled. */
static int read_amount(const cJSON *item, const char *name, char dec[CW_WEI_DEC_MAX],
                       double *approx, cw_decode_error *err)
{
    cw_wei_status st;

    if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        st = cw_wei_parse(s, strlen(s), dec, approx);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        if (d < 0)
            return fail(err, CW_DECODE_NEGATIVE_AMOUNT, "%s is negative", name);
        if (!isfinite(d) || d != floor(d) || d > 9007199254740991.0)
            return fail(err, CW_DECODE_INVALID_FIELD,
                        "%s must be an integer below 2^53 when given as a JSON number (use a "
                        "string for larger amounts)",
                        name);
        snprintf(dec, CW_WEI_DEC_MAX, "%.0f", d);
        st = cw_wei_parse(dec, strlen(dec), dec, approx);
    } else {
        return fail(err, CW_DECODE_INVALID_FIELD, "%s must be a string or an integer", name);
    }
    if (st == CW_WEI_NEGATIVE)
        return fail(err, CW_DECODE_NEGATIVE_AMOUNT, "%s is negative", name);
    if (st != CW_WEI_OK)
        return fail(err, CW_DECODE_INVALID_FIELD, "%s: %s", name, cw_wei_status_text(st));
    return 0;
}

/* read_int64 reads an optional integer field (block number, timestamp); -1 when absent/null. */
static int read_int64(const cJSON *item, const char *name, int64_t *out, cw_decode_error *err)
{
    char dec[CW_WEI_DEC_MAX];

    *out = -1;
    if (!item || cJSON_IsNull(item))
        return 0;
    if (read_amount(item, name, dec, NULL, err) != 0)
        return -1;
    if (strlen(dec) > 18)
        return fail(err, CW_DECODE_INVALID_FIELD, "%s is out of range", name);
    *out = strtoll(dec, NULL, 10);
    return 0;
}

/* read_address reads an optional address: absent, null or "" give "", else 0x + 40 hex. */
static int read_address(const cJSON *item, const char *name, char out[43], cw_decode_error *err)
{
    out[0] = '\0';
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsString(item))
        return fail(err, CW_DECODE_INVALID_FIELD, "%s must be a string or null", name);
    if (item->valuestring[0] == '\0')
        return 0;
    if (!hex_fixed(item->valuestring, 40, out))
        return fail(err, CW_DECODE_INVALID_FIELD, "%s is not a 0x-prefixed 20-byte address",
                    name);
    return 0;
}

/* decode_object fills tx from one JSON object in any of the accepted formats. */
static int decode_object(const cJSON *obj, cw_tx *tx, cw_decode_error *err)
{
    const cJSON *f;

    if (!cJSON_IsObject(obj))
        return fail(err, CW_DECODE_NOT_OBJECT, "a transaction must be a JSON object");

    f = cJSON_GetObjectItemCaseSensitive(obj, "hash");
    if (!f)
        return fail(err, CW_DECODE_MISSING_FIELD, "hash is missing");
    if (!cJSON_IsString(f) || !hex_fixed(f->valuestring, 64, tx->hash))
        return fail(err, CW_DECODE_INVALID_FIELD, "hash is not a 0x-prefixed 32-byte hex string");

    if (read_address(cJSON_GetObjectItemCaseSensitive(obj, "from"), "from", tx->from, err) ||
        read_address(cJSON_GetObjectItemCaseSensitive(obj, "to"), "to", tx->to, err))
        return -1;

    static const char *const required[2] = {"value", "gas"};
    char *decs[2] = {tx->value, tx->gas};
    double *approx[2] = {&tx->f_value, &tx->f_gas};
    for (int i = 0; i < 2; i++) {
        f = cJSON_GetObjectItemCaseSensitive(obj, required[i]);
        if (!f || cJSON_IsNull(f))
            return fail(err, CW_DECODE_MISSING_FIELD, "%s is missing", required[i]);
        if (read_amount(f, required[i], decs[i], approx[i], err) != 0)
            return -1;
    }
    f = cJSON_GetObjectItemCaseSensitive(obj, "gasPrice");
    const char *gp_name = "gasPrice";
    if (!f || cJSON_IsNull(f)) {
        f = cJSON_GetObjectItemCaseSensitive(obj, "maxFeePerGas");
        gp_name = "maxFeePerGas";
    }
    if (!f || cJSON_IsNull(f))
        return fail(err, CW_DECODE_MISSING_FIELD, "gasPrice (or maxFeePerGas) is missing");
    if (read_amount(f, gp_name, tx->gas_price, &tx->f_gas_price, err) != 0)
        return -1;

    f = cJSON_GetObjectItemCaseSensitive(obj, "timeStamp");
    if (!f)
        f = cJSON_GetObjectItemCaseSensitive(obj, "timestamp");
    if (read_int64(f, "timestamp", &tx->timestamp, err) ||
        read_int64(cJSON_GetObjectItemCaseSensitive(obj, "blockNumber"), "blockNumber",
                   &tx->block_number, err))
        return -1;
    return 0;
}

int cw_tx_decode(const char *payload, size_t len, size_t max_bytes, cw_tx **out, size_t *n_out,
                 cw_decode_error *err)
{
    cJSON *root;
    cw_tx *txs = NULL;
    size_t n = 0;
    const char *end = NULL;

    *out = NULL;
    *n_out = 0;
    err->reason = CW_DECODE_OK;
    err->message[0] = '\0';
    if (max_bytes == 0)
        max_bytes = CW_TX_MAX_MESSAGE_BYTES_DEFAULT;
    if (len > max_bytes)
        return fail(err, CW_DECODE_TOO_LARGE, "message of %zu bytes exceeds the %zu-byte limit",
                    len, max_bytes);
    if (!payload || len == 0)
        return fail(err, CW_DECODE_INVALID_JSON, "empty message");
    if (!cw_utf8_valid(payload, len))
        return fail(err, CW_DECODE_INVALID_UTF8, "message is not valid UTF-8");
    if (memchr(payload, '\0', len))
        return fail(err, CW_DECODE_INVALID_JSON, "message contains a NUL byte");

    root = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
    if (!root)
        return fail(err, CW_DECODE_INVALID_JSON, "message is not valid JSON");
    while (end && end < payload + len && isspace((unsigned char) *end))
        end++;
    if (end != payload + len) {
        cJSON_Delete(root);
        return fail(err, CW_DECODE_INVALID_JSON, "trailing data after the JSON value");
    }

    if (cJSON_IsArray(root)) {
        int count = cJSON_GetArraySize(root);
        if (count == 0) {
            cJSON_Delete(root);
            return fail(err, CW_DECODE_NOT_OBJECT, "empty array");
        }
        if (count > CW_TX_MAX_ITEMS) {
            cJSON_Delete(root);
            return fail(err, CW_DECODE_TOO_MANY, "array of %d transactions exceeds %d", count,
                        CW_TX_MAX_ITEMS);
        }
        txs = calloc((size_t) count, sizeof(cw_tx));
        if (!txs) {
            cJSON_Delete(root);
            return fail(err, CW_DECODE_TOO_LARGE, "out of memory");
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, root)
        {
            if (decode_object(item, &txs[n], err) != 0) {
                char msg[sizeof(err->message)];
                snprintf(msg, sizeof(msg), "item %zu: %.170s", n, err->message);
                memcpy(err->message, msg, sizeof(msg));
                free(txs);
                cJSON_Delete(root);
                return -1;
            }
            n++;
        }
    } else {
        txs = calloc(1, sizeof(cw_tx));
        if (!txs) {
            cJSON_Delete(root);
            return fail(err, CW_DECODE_TOO_LARGE, "out of memory");
        }
        if (decode_object(root, &txs[0], err) != 0) {
            free(txs);
            cJSON_Delete(root);
            return -1;
        }
        n = 1;
    }
    cJSON_Delete(root);
    *out = txs;
    *n_out = n;
    return 0;
}
