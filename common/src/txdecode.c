/* common/src/txdecode.c — decoding transaction JSON in the four accepted formats; pure, no I/O */

/*
 * The four formats differ only in how a field is spelled and written, so one decoder reads
 * them all: amounts may be decimal strings (Etherscan, legacy value), 0x-hex strings (JSON-RPC)
 * or JSON numbers (ethereum-etl, legacy gas, gasPrice, timestamp, blockNumber). A JSON number
 * is read exactly at any size from its text (wei.c), never through a double: ethereum-etl
 * writes Python ints, so values far above 2^53 arrive as plain JSON integers. It must still be
 * an integer (1.5 is refused; 1e3 is 1000) and at most 2^256 - 1.
 * Field names, camelCase (Etherscan, JSON-RPC) or snake_case (ethereum-etl): hash;
 * from / from_address; to / to_address (null or "" for a contract creation); value; gas;
 * gasPrice / gas_price, or maxFeePerGas / max_fee_per_gas when the price is absent or null;
 * the time as timeStamp (Etherscan), timestamp (legacy), blockTimestamp (JSON-RPC objects of
 * Erigon, Otterscan and recent nodes) or block_timestamp (ethereum-etl); blockNumber /
 * block_number. Unknown fields are ignored; when a field occurs twice, under one name or two,
 * the first wins (timeStamp before the others). The payload is checked for size and strict
 * UTF-8 first.
 *
 * Parsing. jscan.c validates the whole message and reports each member of the transaction
 * objects as a span of the payload; only the members named above are kept (tx_fields), and a
 * string is copied only when it is read (escapes decoded then). A message is refused whole:
 * the grammar is checked to the end, then the array's size, then each transaction in order.
 */
#include "txdecode.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

static const char *const reason_names[CW_DECODE_REASONS] = {
    "ok",         "too_large",     "invalid_utf8",  "invalid_json",
    "not_object", "missing_field", "invalid_field", "negative_amount",
    "too_many",
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
        /* ASCII fast path: eight bytes at a time while no high bit is set */
        while (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i >= n)
            break;
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

/*
 * has_escaped_nul finds a \u0000 escape (preceded by an odd number of backslashes): cJSON keeps
 * strings NUL-terminated, so "1\u00009" would silently read as "1". No field may hold a NUL.
 */
static bool has_escaped_nul(const char *s, size_t n)
{
    /* most messages hold no backslash at all: let memchr skip to each one */
    for (const char *p = s, *end = s + n; (p = memchr(p, '\\', (size_t) (end - p))) != NULL; p++) {
        if (end - p < 6)
            return false;
        if (memcmp(p + 1, "u0000", 5) != 0)
            continue;
        size_t backslashes = 0;
        while (p - backslashes > s && p[-1 - (ptrdiff_t) backslashes] == '\\')
            backslashes++;
        if (backslashes % 2 == 0)
            return true;
    }
    return false;
}

/* HEX_LOWER maps a hex digit to its lower-case form and anything else to 0 (no locale lookups) */
#define HEX_ROW(c) ['0' + (c)] = '0' + (c)
#define HEX_AF(c)  ['a' + (c)] = 'a' + (c), ['A' + (c)] = 'a' + (c)
static const char HEX_LOWER[256] = {
    HEX_ROW(0), HEX_ROW(1), HEX_ROW(2), HEX_ROW(3), HEX_ROW(4), HEX_ROW(5), HEX_ROW(6), HEX_ROW(7),
    HEX_ROW(8), HEX_ROW(9), HEX_AF(0),  HEX_AF(1),  HEX_AF(2),  HEX_AF(3),  HEX_AF(4),  HEX_AF(5),
};
#undef HEX_ROW
#undef HEX_AF

/* hex_fixed copies s[0..n), a 0x-prefixed hex string of exactly `digits` digits, lower-cased */
static bool hex_fixed(const char *s, size_t n, size_t digits, char *out)
{
    if (n != digits + 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    bool bad = false;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < digits; i++) {
        char c = HEX_LOWER[(unsigned char) s[2 + i]];
        bad |= !c;
        out[2 + i] = c;
    }
    if (bad)
        return false;
    out[2 + digits] = '\0';
    return true;
}

#define FIELD_TEXT_MAX 256 /* longer than any valid hash, address or amount */

/*
 * field_text gives a string member's contents: the span in the payload itself, or, when it has
 * escapes, decoded into buf. Returns false when the decoded text does not fit buf (no valid
 * field is that long).
 */
static bool field_text(const js_value *v, char buf[FIELD_TEXT_MAX], const char **s, size_t *n)
{
    if (!v->escaped) {
        *s = v->p;
        *n = v->n;
        return true;
    }
    long len = js_string(v, buf, FIELD_TEXT_MAX);
    if (len < 0)
        return false;
    *s = buf;
    *n = (size_t) len;
    return true;
}

static bool is_null(const js_value *v)
{
    return v->type == JS_ABSENT || v->type == JS_NULL;
}

/* read_amount decodes an amount field given as a string (decimal or 0x-hex) or an exact JSON
 * integer into dec/approx. Returns 0, or -1 with err filled. */
static int read_amount(const js_value *item, const char *name, char dec[CW_WEI_DEC_MAX],
                       double *approx, cw_decode_error *err)
{
    cw_wei_status st;

    if (item->type == JS_STRING) {
        char buf[FIELD_TEXT_MAX];
        const char *s;
        size_t n;
        if (!field_text(item, buf, &s, &n))
            return fail(err, CW_DECODE_INVALID_FIELD, "%s is too long", name);
        st = cw_wei_parse(s, n, dec, approx);
    } else if (item->type == JS_NUMBER) {
        /* exact at any size: the digits as text, never a double (ethereum-etl writes wei so) */
        st = cw_wei_from_json_number(item->p, item->n, dec, approx);
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
static int read_int64(const js_value *item, const char *name, int64_t *out, cw_decode_error *err)
{
    char dec[CW_WEI_DEC_MAX];

    *out = -1;
    if (is_null(item))
        return 0;
    if (read_amount(item, name, dec, NULL, err) != 0)
        return -1;
    if (strlen(dec) > 18)
        return fail(err, CW_DECODE_INVALID_FIELD, "%s is out of range", name);
    *out = strtoll(dec, NULL, 10);
    return 0;
}

/* read_address reads an optional address: absent, null or "" give "", else 0x + 40 hex. */
static int read_address(const js_value *item, const char *name, char out[43], cw_decode_error *err)
{
    char buf[FIELD_TEXT_MAX];
    const char *s;
    size_t n;

    out[0] = '\0';
    if (is_null(item))
        return 0;
    if (item->type != JS_STRING)
        return fail(err, CW_DECODE_INVALID_FIELD, "%s must be a string or null", name);
    if (item->n == 0)
        return 0;
    if (!field_text(item, buf, &s, &n) || !hex_fixed(s, n, 40, out))
        return fail(err, CW_DECODE_INVALID_FIELD, "%s is not a 0x-prefixed 20-byte address", name);
    return 0;
}

/* the members we read of one transaction object (JS_ABSENT when missing) */
typedef struct tx_fields {
    js_type type; /* of the item itself: only a JS_OBJECT has members */
    js_value hash, from, to, value, gas, gas_price, max_fee, timestamp, time_stamp, block_number;
} tx_fields;

/* field_slot maps a member name to its slot, or NULL for a member we ignore */
static js_value *field_slot(tx_fields *f, const char *k, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)
    switch (n ? k[0] : 0) {
    case 'h':
        return IS("hash") ? &f->hash : NULL;
    case 'f':
        return IS("from") || IS("from_address") ? &f->from : NULL;
    case 't':
        return IS("to") || IS("to_address") ? &f->to
               : IS("timeStamp")            ? &f->time_stamp
               : IS("timestamp")            ? &f->timestamp
                                            : NULL;
    case 'v':
        return IS("value") ? &f->value : NULL;
    case 'g':
        return IS("gas") ? &f->gas : IS("gasPrice") || IS("gas_price") ? &f->gas_price : NULL;
    case 'm':
        return IS("maxFeePerGas") || IS("max_fee_per_gas") ? &f->max_fee : NULL;
    case 'b':
        return IS("blockNumber") || IS("block_number")         ? &f->block_number
               : IS("blockTimestamp") || IS("block_timestamp") ? &f->timestamp
                                                               : NULL;
    default:
        return NULL;
    }
#undef IS
}

/*
 * The scan's collector: one tx_fields per item, the first inline (most messages are one
 * object), more in a growing array; items past CW_TX_MAX_ITEMS are counted, not kept.
 */
typedef struct collector {
    tx_fields first, *items; /* items: first, or a malloc'd array (cap > 1) */
    size_t count, cap;
    tx_fields *cur; /* the item whose members arrive; NULL when it is not kept */
    bool oom;
} collector;

static void on_item(void *ctx, js_type type)
{
    collector *c = ctx;
    c->cur = NULL;
    if (++c->count > CW_TX_MAX_ITEMS || c->oom)
        return;
    if (c->count > c->cap) {
        size_t cap = c->cap < 16 ? 16 : c->cap * 2;
        tx_fields *grown = malloc(cap * sizeof(*grown));
        if (!grown) {
            c->oom = true;
            return;
        }
        memcpy(grown, c->items, (c->count - 1) * sizeof(*grown));
        if (c->items != &c->first)
            free(c->items);
        c->items = grown;
        c->cap = cap;
    }
    c->cur = &c->items[c->count - 1];
    memset(c->cur, 0, sizeof(*c->cur));
    c->cur->type = type;
}

static void on_member(void *ctx, const js_value *key, const js_value *value)
{
    collector *c = ctx;
    js_value *slot;
    if (!c->cur)
        return;
    if (key->escaped) {
        char name[32]; /* longer than any name we read */
        long n = js_string(key, name, sizeof(name));
        slot = n < 0 ? NULL : field_slot(c->cur, name, (size_t) n);
    } else {
        slot = field_slot(c->cur, key->p, key->n);
    }
    if (slot && slot->type == JS_ABSENT)
        *slot = *value;
}

/* decode_object fills tx from one JSON object in any of the accepted formats. */
static int decode_object(const tx_fields *f, cw_tx *tx, cw_decode_error *err)
{
    char buf[FIELD_TEXT_MAX];
    const char *s;
    size_t n;
    const js_value *gp;
    const char *gp_name = "gasPrice";

    if (f->type != JS_OBJECT)
        return fail(err, CW_DECODE_NOT_OBJECT, "a transaction must be a JSON object");

    if (f->hash.type == JS_ABSENT)
        return fail(err, CW_DECODE_MISSING_FIELD, "hash is missing");
    if (f->hash.type != JS_STRING || !field_text(&f->hash, buf, &s, &n) ||
        !hex_fixed(s, n, 64, tx->hash))
        return fail(err, CW_DECODE_INVALID_FIELD, "hash is not a 0x-prefixed 32-byte hex string");

    if (read_address(&f->from, "from", tx->from, err) || read_address(&f->to, "to", tx->to, err))
        return -1;

    if (is_null(&f->value))
        return fail(err, CW_DECODE_MISSING_FIELD, "value is missing");
    if (read_amount(&f->value, "value", tx->value, &tx->f_value, err) != 0)
        return -1;
    if (is_null(&f->gas))
        return fail(err, CW_DECODE_MISSING_FIELD, "gas is missing");
    if (read_amount(&f->gas, "gas", tx->gas, &tx->f_gas, err) != 0)
        return -1;
    gp = &f->gas_price;
    if (is_null(gp)) {
        gp = &f->max_fee;
        gp_name = "maxFeePerGas";
    }
    if (is_null(gp))
        return fail(err, CW_DECODE_MISSING_FIELD, "gasPrice (or maxFeePerGas) is missing");
    if (read_amount(gp, gp_name, tx->gas_price, &tx->f_gas_price, err) != 0)
        return -1;

    if (read_int64(f->time_stamp.type != JS_ABSENT ? &f->time_stamp : &f->timestamp, "timestamp",
                   &tx->timestamp, err) ||
        read_int64(&f->block_number, "blockNumber", &tx->block_number, err))
        return -1;
    return 0;
}

/* decode_items turns the collected items into transactions; the message is refused whole */
static int decode_items(const collector *c, bool is_array, cw_tx **out, size_t *n_out,
                        cw_decode_error *err)
{
    if (is_array && c->count == 0)
        return fail(err, CW_DECODE_NOT_OBJECT, "empty array");
    if (c->count > CW_TX_MAX_ITEMS)
        return fail(err, CW_DECODE_TOO_MANY, "array of %zu transactions exceeds %d", c->count,
                    CW_TX_MAX_ITEMS);
    if (c->oom)
        return fail(err, CW_DECODE_TOO_LARGE, "out of memory");
    cw_tx *txs = calloc(c->count, sizeof(cw_tx));
    if (!txs)
        return fail(err, CW_DECODE_TOO_LARGE, "out of memory");
    for (size_t i = 0; i < c->count; i++) {
        if (decode_object(&c->items[i], &txs[i], err) != 0) {
            if (is_array) {
                char msg[sizeof(err->message)];
                snprintf(msg, sizeof(msg), "item %zu: %.170s", i, err->message);
                memcpy(err->message, msg, sizeof(msg));
            }
            free(txs);
            return -1;
        }
    }
    *out = txs;
    *n_out = c->count;
    return 0;
}

int cw_tx_decode(const char *payload, size_t len, size_t max_bytes, cw_tx **out, size_t *n_out,
                 cw_decode_error *err)
{
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
    if (has_escaped_nul(payload, len))
        return fail(err, CW_DECODE_INVALID_FIELD,
                    "message contains an escaped NUL character (\\u0000)");

    collector c = {.cap = 1};
    c.items = &c.first;
    js_handler h = {on_item, on_member, &c};
    bool is_array;
    int rc;
    if (js_scan(payload, len, &h, &is_array) != 0)
        rc = fail(err, CW_DECODE_INVALID_JSON, "message is not valid JSON");
    else
        rc = decode_items(&c, is_array, out, n_out, err);
    if (c.items != &c.first)
        free(c.items);
    return rc;
}
