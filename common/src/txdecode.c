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
 *
 * Allocation. cJSON makes a node and a string or two per member: ~30 malloc/free pairs per
 * message, which were a fifth of the ingestor's decoding time (perf, make bench-ingest). So a
 * message's tree is carved from a buffer on cw_tx_decode's stack instead. cJSON's hooks are
 * process-wide (cJSON_InitHooks), so they check a thread-local pointer: outside a decode on this
 * thread, or once the buffer is used up (a large array), they are plain malloc and free. Every
 * tree built during a decode is deleted before it returns.
 */
#include "txdecode.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const reason_names[CW_DECODE_REASONS] = {
    "ok",         "too_large",     "invalid_utf8",  "invalid_json",
    "not_object", "missing_field", "invalid_field", "negative_amount",
    "too_many",
};

const char *cw_decode_reason_name(cw_decode_reason r)
{
    return (r >= 0 && r < CW_DECODE_REASONS) ? reason_names[r] : "unknown";
}

#define ARENA_BYTES 8192 /* a single transaction's tree takes ~2-3 KiB */

typedef struct arena {
    char *base;
    size_t used, cap;
} arena;

static __thread arena *current_arena; /* set only inside cw_tx_decode */

static void *arena_malloc(size_t n)
{
    arena *a = current_arena;
    size_t need = (n + 15) & ~(size_t) 15;
    if (a && need >= n && need <= a->cap - a->used) {
        void *p = a->base + a->used;
        a->used += need;
        return p;
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    arena *a = current_arena;
    uintptr_t u = (uintptr_t) p;
    if (a && u >= (uintptr_t) a->base && u < (uintptr_t) a->base + a->cap)
        return; /* the whole buffer goes when the decode returns */
    free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    cJSON_Hooks hooks = {.malloc_fn = arena_malloc, .free_fn = arena_free};
    cJSON_InitHooks(&hooks);
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

/* hex_lower maps a hex digit to its lower-case form, anything else to 0 (no locale lookups) */
static char hex_lower(char c)
{
    unsigned char u = (unsigned char) c;
    if ((unsigned) (u - '0') < 10u)
        return c;
    u |= 0x20; /* 'A'-'F' to 'a'-'f'; only those and 'a'-'f' themselves land in 'a'-'f' */
    if ((unsigned) (u - 'a') < 6u)
        return (char) u;
    return 0;
}

/* hex_fixed copies a 0x-prefixed hex string of exactly `digits` digits, lower-cased. */
static bool hex_fixed(const char *s, size_t digits, char *out)
{
    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < digits; i++) {
        char c = hex_lower(s[2 + i]); /* stops at the NUL: hex_lower('\0') == 0 */
        if (!c)
            return false;
        out[2 + i] = c;
    }
    if (s[2 + digits] != '\0')
        return false;
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
        return fail(err, CW_DECODE_INVALID_FIELD, "%s is not a 0x-prefixed 20-byte address", name);
    return 0;
}

/* the fields we read, found in one pass over the object's members */
typedef struct tx_fields {
    const cJSON *hash, *from, *to, *value, *gas, *gas_price, *max_fee, *timestamp, *time_stamp,
        *block_number;
} tx_fields;

/* find_fields walks the members once; the first occurrence of a name wins, as with cJSON lookups */
static void find_fields(const cJSON *obj, tx_fields *f)
{
    const cJSON *it;
    memset(f, 0, sizeof(*f));
    for (it = obj->child; it; it = it->next) {
        const char *k = it->string;
        const cJSON **slot = NULL;
        if (!k)
            continue;
        switch (k[0]) {
        case 'h':
            if (!strcmp(k, "hash"))
                slot = &f->hash;
            break;
        case 'f':
            if (!strcmp(k, "from"))
                slot = &f->from;
            break;
        case 't':
            if (!strcmp(k, "to"))
                slot = &f->to;
            else if (!strcmp(k, "timeStamp"))
                slot = &f->time_stamp;
            else if (!strcmp(k, "timestamp"))
                slot = &f->timestamp;
            break;
        case 'v':
            if (!strcmp(k, "value"))
                slot = &f->value;
            break;
        case 'g':
            if (!strcmp(k, "gas"))
                slot = &f->gas;
            else if (!strcmp(k, "gasPrice"))
                slot = &f->gas_price;
            break;
        case 'm':
            if (!strcmp(k, "maxFeePerGas"))
                slot = &f->max_fee;
            break;
        case 'b':
            if (!strcmp(k, "blockNumber"))
                slot = &f->block_number;
            break;
        default:
            break;
        }
        if (slot && !*slot)
            *slot = it;
    }
}

/* decode_object fills tx from one JSON object in any of the accepted formats. */
static int decode_object(const cJSON *obj, cw_tx *tx, cw_decode_error *err)
{
    tx_fields f;
    const cJSON *gp;
    const char *gp_name = "gasPrice";

    if (!cJSON_IsObject(obj))
        return fail(err, CW_DECODE_NOT_OBJECT, "a transaction must be a JSON object");
    find_fields(obj, &f);

    if (!f.hash)
        return fail(err, CW_DECODE_MISSING_FIELD, "hash is missing");
    if (!cJSON_IsString(f.hash) || !hex_fixed(f.hash->valuestring, 64, tx->hash))
        return fail(err, CW_DECODE_INVALID_FIELD, "hash is not a 0x-prefixed 32-byte hex string");

    if (read_address(f.from, "from", tx->from, err) || read_address(f.to, "to", tx->to, err))
        return -1;

    if (!f.value || cJSON_IsNull(f.value))
        return fail(err, CW_DECODE_MISSING_FIELD, "value is missing");
    if (read_amount(f.value, "value", tx->value, &tx->f_value, err) != 0)
        return -1;
    if (!f.gas || cJSON_IsNull(f.gas))
        return fail(err, CW_DECODE_MISSING_FIELD, "gas is missing");
    if (read_amount(f.gas, "gas", tx->gas, &tx->f_gas, err) != 0)
        return -1;
    gp = f.gas_price;
    if (!gp || cJSON_IsNull(gp)) {
        gp = f.max_fee;
        gp_name = "maxFeePerGas";
    }
    if (!gp || cJSON_IsNull(gp))
        return fail(err, CW_DECODE_MISSING_FIELD, "gasPrice (or maxFeePerGas) is missing");
    if (read_amount(gp, gp_name, tx->gas_price, &tx->f_gas_price, err) != 0)
        return -1;

    if (read_int64(f.time_stamp ? f.time_stamp : f.timestamp, "timestamp", &tx->timestamp, err) ||
        read_int64(f.block_number, "blockNumber", &tx->block_number, err))
        return -1;
    return 0;
}

static int decode(const char *payload, size_t len, size_t max_bytes, cw_tx **out, size_t *n_out,
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

    if (has_escaped_nul(payload, len))
        return fail(err, CW_DECODE_INVALID_FIELD,
                    "message contains an escaped NUL character (\\u0000)");

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

int cw_tx_decode(const char *payload, size_t len, size_t max_bytes, cw_tx **out, size_t *n_out,
                 cw_decode_error *err)
{
    _Alignas(16) char buf[ARENA_BYTES];
    arena a = {buf, 0, sizeof(buf)};
    pthread_once(&hooks_once, install_hooks);
    current_arena = &a;
    int rc = decode(payload, len, max_bytes, out, n_out, err);
    current_arena = NULL;
    return rc;
}
