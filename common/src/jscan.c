/* common/src/jscan.c — a validating JSON scanner that reports object members without building a
 * tree */

/*
 * Design. The ingestor decodes every Kafka message, and a transaction is a flat object of a
 * dozen members of which it reads at most ten. cJSON built a tree for it: a node and a copied
 * string or two per member, three strncmp calls per value (it tries null, false and true before
 * anything else) and a strtod per number; profiled under `make bench-ingest` that was a third
 * of the ingestor's CPU. This scanner walks the text once, checks the grammar and hands each
 * member of the objects that matter to a callback as spans into the text. Nested values are
 * validated and skipped; nothing is allocated, nothing is copied until a caller asks
 * (js_string).
 *
 * Grammar: RFC 8259 exactly. Whitespace is space, tab, CR and LF; strings hold no raw control
 * characters and only the two-character escapes of the RFC plus four-hex-digit code units, where
 * a surrogate code unit is accepted only as a high-low pair; numbers are
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; nesting deeper than JS_MAX_DEPTH is refused.
 * (cJSON was laxer: it let control characters into strings, read numbers with strtod, so "01" and
 * "1." passed, and skipped any byte up to 32 as whitespace.) The caller checks UTF-8 beforehand;
 * the scanner treats bytes >= 0x80 as string content.
 */
#include "jscan.h"
#include "hexdigit.h"

#include <stdint.h>
#include <string.h>

typedef struct scan {
    const unsigned char *p, *end;
    int depth;
} scan;

static int value(scan *s, js_value *v);

static inline void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static inline bool is_digit(unsigned char c)
{
    return (unsigned) (c - '0') < 10u;
}

/* hex4 reads four hex digits; -1 when one is not */
static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = cw_hexdigit(p[i]);
        if (d < 0)
            return -1;
        v = (v << 4) | d;
    }
    return v;
}

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/*
 * special_bytes flags the bytes of w (eight bytes of a string, little-endian) that string() must
 * look at: a quote, a backslash or a byte below 0x20. The classic bit trick: (x - ONES) & ~x &
 * HIGHS sets the high bit of the first zero byte of x, and (x - ONES * 0x20) & ~x & HIGHS that of
 * the first byte below 0x20 (UTF-8 bytes, 0x80 and up, never count: ~x clears their high bit).
 * Bytes after the first flagged one may be flagged wrongly (a borrow runs through them), so only
 * the lowest flag is exact: it is all string() uses.
 */
static inline uint64_t special_bytes(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    uint64_t zero_q = (quote - ONES) & ~quote, zero_b = (backslash - ONES) & ~backslash;
    uint64_t control = (w - ONES * 0x20) & ~w;
    return (zero_q | zero_b | control) & HIGHS;
}

/* string scans a string starting at its opening quote */
static int string(scan *s, js_value *v)
{
    const unsigned char *p = s->p + 1, *start = p, *end = s->end;
    bool escaped = false;

    for (;;) {
        /* eight bytes at a time, straight to the first quote, backslash or control character
         * (the lowest flag is the first byte in memory only on a little-endian machine) */
        while (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t special = special_bytes(w);
            if (special) {
                p += __builtin_ctzll(special) >> 3;
                break;
            }
            p += 8;
        }
        if (p >= end)
            return -1;
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            p++;
            continue;
        }
        escaped = true;
        if (end - p < 2)
            return -1;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;
        case 'u': {
            int u = end - p >= 6 ? hex4(p + 2) : -1;
            if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
                return -1;
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                int lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                p += 6;
            }
            continue;
        }
        default:
            return -1;
        }
    }
    v->type = JS_STRING;
    v->escaped = escaped;
    v->p = (const char *) start;
    v->n = (size_t) (p - start);
    s->p = p + 1;
    return 0;
}

/* number scans a number by the RFC's grammar (its value is the caller's business) */
static int number(scan *s, js_value *v)
{
    const unsigned char *p = s->p, *end = s->end, *start = p;

    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return -1;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < end && is_digit(*p))
            p++;
    else
        return -1;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return -1;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return -1;
        while (p < end && is_digit(*p))
            p++;
    }
    v->type = JS_NUMBER;
    v->escaped = false;
    v->p = (const char *) start;
    v->n = (size_t) (p - start);
    s->p = p;
    return 0;
}

static int literal(scan *s, const char *word, size_t len, js_type type, js_value *v)
{
    if ((size_t) (s->end - s->p) < len || memcmp(s->p, word, len) != 0)
        return -1;
    v->type = type;
    v->escaped = false;
    v->p = (const char *) s->p;
    v->n = len;
    s->p += len;
    return 0;
}

/* open_container steps over a container's opening character: 1 when items follow, 0 when the
 * closing character follows at once (the container is done), -1 when nested too deep */
static int open_container(scan *s, unsigned char close)
{
    if (++s->depth > JS_MAX_DEPTH)
        return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    return 1;
}

/* after_item reads what follows a container's item: 1 after a ',' (more to come), 0 after the
 * closing character (the container is done), -1 otherwise */
static int after_item(scan *s, unsigned char close)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        skip_ws(s);
        return 1;
    }
    if (s->p >= s->end || *s->p != close)
        return -1;
    s->p++;
    s->depth--;
    return 0;
}

/* object scans an object from its '{', passing each member to h->member when h is not NULL */
static int object(scan *s, const js_handler *h)
{
    int more = open_container(s, '}');
    if (more <= 0)
        return more;
    for (;;) {
        js_value k, v;
        if (s->p >= s->end || *s->p != '"' || string(s, &k) != 0)
            return -1;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return -1;
        s->p++;
        skip_ws(s);
        if (value(s, &v) != 0)
            return -1;
        if (h && h->member)
            h->member(h->ctx, &k, &v);
        more = after_item(s, '}');
        if (more <= 0)
            return more;
    }
}

/* array scans an array from its '['; with h, each element is reported (objects with members) */
static int array(scan *s, const js_handler *h)
{
    int more = open_container(s, ']');
    if (more <= 0)
        return more;
    for (;;) {
        if (h && s->p < s->end && *s->p == '{') {
            if (h->item)
                h->item(h->ctx, JS_OBJECT);
            if (object(s, h) != 0)
                return -1;
        } else {
            js_value v;
            if (value(s, &v) != 0)
                return -1;
            if (h && h->item)
                h->item(h->ctx, v.type);
        }
        more = after_item(s, ']');
        if (more <= 0)
            return more;
    }
}

/* value scans any value at s->p (no leading whitespace); containers are validated and skipped */
static int value(scan *s, js_value *v)
{
    const unsigned char *start = s->p;

    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '"':
        return string(s, v);
    case '{':
    case '[':
        if ((*s->p == '{' ? object(s, NULL) : array(s, NULL)) != 0)
            return -1;
        v->type = *start == '{' ? JS_OBJECT : JS_ARRAY;
        v->escaped = false;
        v->p = (const char *) start;
        v->n = (size_t) (s->p - start);
        return 0;
    case 't':
        return literal(s, "true", 4, JS_TRUE, v);
    case 'f':
        return literal(s, "false", 5, JS_FALSE, v);
    case 'n':
        return literal(s, "null", 4, JS_NULL, v);
    default:
        return number(s, v);
    }
}

int js_scan(const char *text, size_t n, const js_handler *h, bool *top_is_array)
{
    scan s = {(const unsigned char *) text, (const unsigned char *) text + n, 0};
    int rc;

    *top_is_array = false;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '[') {
        *top_is_array = true;
        rc = array(&s, h);
    } else if (s.p < s.end && *s.p == '{') {
        if (h && h->item)
            h->item(h->ctx, JS_OBJECT);
        rc = object(&s, h);
    } else {
        js_value v;
        rc = value(&s, &v);
        if (rc == 0 && h && h->item)
            h->item(h->ctx, v.type);
    }
    if (rc != 0)
        return -1;
    skip_ws(&s);
    return s.p == s.end ? 0 : -1;
}

/* put_utf8 appends code point cp; false when it does not fit before the NUL */
static bool put_utf8(uint32_t cp, char *buf, size_t cap, size_t *len)
{
    unsigned char out[4];
    size_t k;
    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        k = 1;
    } else if (cp < 0x800) {
        out[0] = (unsigned char) (0xC0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        out[0] = (unsigned char) (0xE0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char) (0x80 | (cp & 0x3F));
        k = 3;
    } else {
        out[0] = (unsigned char) (0xF0 | (cp >> 18));
        out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char) (0x80 | (cp & 0x3F));
        k = 4;
    }
    if (*len + k >= cap)
        return false;
    memcpy(buf + *len, out, k);
    *len += k;
    return true;
}

long js_string(const js_value *v, char *buf, size_t cap)
{
    size_t len = 0;

    if (v->type != JS_STRING || cap == 0)
        return -1;
    if (!v->escaped) {
        if (v->n >= cap)
            return -1;
        memcpy(buf, v->p, v->n);
        buf[v->n] = '\0';
        return (long) v->n;
    }
    /* the scanner validated every escape, so this loop need not */
    const unsigned char *p = (const unsigned char *) v->p, *end = p + v->n;
    while (p < end) {
        uint32_t cp;
        if (*p != '\\') {
            if (len + 1 >= cap)
                return -1;
            buf[len++] = (char) *p++;
            continue;
        }
        switch (p[1]) {
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            cp = (uint32_t) hex4(p + 2);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                cp = 0x10000 + (((cp & 0x3FF) << 10) | ((uint32_t) hex4(p + 8) & 0x3FF));
                p += 6;
            }
            p += 4;
            break;
        default: /* " \ / */
            cp = p[1];
            break;
        }
        p += 2;
        if (!put_utf8(cp, buf, cap, &len))
            return -1;
    }
    buf[len] = '\0';
    return (long) len;
}
