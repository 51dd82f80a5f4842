/* common/src/jscan.h — a validating JSON scanner that reports object members without building a
 * tree */
#ifndef CW_JSCAN_H
#define CW_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#define JS_MAX_DEPTH 1000 /* deeper nesting is refused, as cJSON's CJSON_NESTING_LIMIT */

typedef enum js_type {
    JS_ABSENT = 0, /* never produced by the scanner: a member that was not there */
    JS_NULL,
    JS_FALSE,
    JS_TRUE,
    JS_NUMBER,
    JS_STRING,
    JS_ARRAY,
    JS_OBJECT,
} js_type;

/*
 * One value, pointing into the scanned text. A string's p/n are its contents between the
 * quotes, escapes not decoded (escaped says whether there are any; js_string decodes); a
 * number's are its text; an array's or object's are the whole container, already validated.
 */
typedef struct js_value {
    js_type type;
    bool escaped;
    const char *p;
    size_t n;
} js_value;

/*
 * What js_scan reports. item is called for the document's value when it is not an array, and
 * for each element of a top-level array, before the members of that value (when it is an
 * object) are passed to member, in text order. Either may be NULL.
 */
typedef struct js_handler {
    void (*item)(void *ctx, js_type type);
    void (*member)(void *ctx, const js_value *key, const js_value *value);
    void *ctx;
} js_handler;

/*
 * js_scan checks that text[0..n) is exactly one JSON value (RFC 8259; whitespace around it) and
 * reports it to h as described above. Returns 0, or -1 when the text is not valid JSON (the
 * handler may have seen part of it). *top_is_array says whether the value is an array.
 */
int js_scan(const char *text, size_t n, const js_handler *h, bool *top_is_array);

/*
 * js_string copies a string value's contents into buf (cap bytes with the terminating NUL),
 * decoding escapes to UTF-8. Returns the length, or -1 when it does not fit or v is no string.
 * An escaped NUL (\u0000) is copied as a NUL byte: callers that care must look for it.
 */
long js_string(const js_value *v, char *buf, size_t cap);

#endif /* CW_JSCAN_H */
