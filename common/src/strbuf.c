/* common/src/strbuf.c — growable buffer used for log lines, metrics pages, JSON and COPY data */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* reserve makes room for n more bytes plus a NUL; false (and oom set) when it cannot. */
static bool reserve(cw_strbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void cw_strbuf_append(cw_strbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cw_strbuf_puts(cw_strbuf *b, const char *s)
{
    cw_strbuf_append(b, s, strlen(s));
}

void cw_strbuf_putc(cw_strbuf *b, char c)
{
    cw_strbuf_append(b, &c, 1);
}

void cw_strbuf_printf(cw_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t) n < sizeof(small)) {
        cw_strbuf_append(b, small, (size_t) n);
        return;
    }
    if (!reserve(b, (size_t) n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

void cw_strbuf_json_string(cw_strbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    cw_strbuf_putc(b, '"');
    /* append runs of ordinary bytes whole; escape quotes, backslashes and control characters */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char esc[6] = {'\\', 0, '0', '0', hex[c >> 4], hex[c & 15]};
        size_t len = 2;
        if (c == '"' || c == '\\')
            esc[1] = (char) c;
        else if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else
            esc[1] = 'u', len = 6;
        cw_strbuf_append(b, s + start, i - start);
        cw_strbuf_append(b, esc, len);
        start = i + 1;
    }
    cw_strbuf_append(b, s + start, n - start);
    cw_strbuf_putc(b, '"');
}

void cw_strbuf_copy_text(cw_strbuf *b, const char *s, size_t n)
{
    size_t start = 0;
    /* append runs of ordinary bytes whole; escape only backslash and the delimiters */
    for (size_t i = 0; i < n; i++) {
        const char *esc;
        switch (s[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            continue;
        }
        cw_strbuf_append(b, s + start, i - start);
        cw_strbuf_append(b, esc, 2);
        start = i + 1;
    }
    cw_strbuf_append(b, s + start, n - start);
}

void cw_strbuf_put_int(cw_strbuf *b, long long v)
{
    char buf[24], *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;
    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    cw_strbuf_append(b, p, (size_t) (buf + sizeof(buf) - p));
}

void cw_strbuf_reset(cw_strbuf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cw_strbuf_free(cw_strbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
