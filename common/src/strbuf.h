/* common/src/strbuf.h — a growable byte buffer with printf, JSON-string and COPY-text escaping */
#ifndef CW_STRBUF_H
#define CW_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* A cw_strbuf owns data (malloc'd, NUL-terminated when non-NULL). On allocation failure it
 * sets oom and ignores further appends, so callers check once at the end. */
typedef struct cw_strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} cw_strbuf;

#define CW_STRBUF_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

void cw_strbuf_append(cw_strbuf *b, const char *s, size_t n);
void cw_strbuf_puts(cw_strbuf *b, const char *s);
void cw_strbuf_putc(cw_strbuf *b, char c);
void cw_strbuf_printf(cw_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cw_strbuf_json_string appends s as a quoted JSON string (control characters escaped) */
void cw_strbuf_json_string(cw_strbuf *b, const char *s, size_t n);
/* cw_strbuf_copy_text appends s escaped for PostgreSQL COPY text format */
void cw_strbuf_copy_text(cw_strbuf *b, const char *s, size_t n);
/* cw_strbuf_put_int appends a decimal integer (no printf) */
void cw_strbuf_put_int(cw_strbuf *b, long long v);
void cw_strbuf_reset(cw_strbuf *b);
void cw_strbuf_free(cw_strbuf *b);

#endif /* CW_STRBUF_H */
