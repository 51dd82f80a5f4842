/* apiserver/src/params.h — query-string and path parameter parsing and validation; pure, no I/O */
#ifndef API_PARAMS_H
#define API_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARAMS_LIMIT_DEFAULT 100
#define PARAMS_LIMIT_MAX     1000

/* a refused parameter: its name and why (for the 400 body) */
typedef struct param_error {
    char param[64];
    char message[160];
} param_error;

/* GET /api/v1/anomalies, parsed and normalised */
typedef struct anomaly_query {
    unsigned severities; /* bit i: severity i (low, medium, high, critical); 0: any */
    bool has_since, has_until, has_min_score, has_cursor;
    int64_t since_us, until_us; /* microseconds since the epoch */
    char address[43];           /* lower-case 0x + 40 hex digits, "" when absent */
    double min_score;
    int64_t cursor_us, cursor_id;
    int limit;
} anomaly_query;

extern const char *const params_severity_names[4];

/*
 * params_next iterates over "a=1&b=2": on each call copies the next (URL-decoded) name and value
 * into the buffers and advances *q. Returns false at the end; -1 style errors are reported as a
 * value that does not fit (*too_long set).
 */
bool params_next(const char **q, char *name, size_t name_len, char *value, size_t value_len,
                 bool *too_long);

/* params_parse_anomaly_query: 0, or -1 with err naming the parameter (unknown ones included) */
int params_parse_anomaly_query(const char *query, anomaly_query *out, param_error *err);
/* params_anomaly_query_key writes a canonical text of q (equal queries, equal text) */
void params_anomaly_query_key(const anomaly_query *q, char *buf, size_t len);
/* params_severity_array writes the SQL array literal of q's severities ("{high,critical}") */
void params_severity_array(unsigned severities, char *buf, size_t len);

/* params_parse_time: RFC 3339 ("2024-05-01T12:00:00Z", fraction and offset allowed) to
 * microseconds since the epoch; -1 if invalid */
int params_parse_time(const char *s, int64_t *us);
/* params_parse_window: seconds from "3600", "90s", "15m", "1h" or "7d"; -1 if invalid */
int params_parse_window(const char *s, long *seconds);

/* cursors are opaque base64url tokens of "<us>.<id>" */
void params_encode_cursor(int64_t us, int64_t id, char *buf, size_t len);
int params_decode_cursor(const char *s, int64_t *us, int64_t *id);

/* a 0x-prefixed hex string of exactly digits hex digits, lower-cased into out (digits + 3) */
bool params_hex_id(const char *s, int digits, char *out);
/* a positive decimal int32 ("12" → 12); false otherwise */
bool params_positive_int(const char *s, int *out);
/* params_only: 0 when every parameter of query is in the NULL-terminated allowed list */
int params_only(const char *query, const char *const *allowed, param_error *err);

/* params_decode_path URL-decodes a request path into out (len bytes); '+' stays '+'. 0, -1 when
 * it would not fit, -2 when it holds an encoded NUL (%00), which would cut the path short */
int params_decode_path(const char *raw, char *out, size_t len);
/* params_utf8_valid: s is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code
 * points above U+10FFFF) */
bool params_utf8_valid(const char *s);
/* params_utf8_scrub copies s into out (len bytes, always NUL-terminated, cut at a character
 * boundary), replacing each byte that does not start a well-formed sequence with U+FFFD */
void params_utf8_scrub(const char *s, char *out, size_t len);

#endif /* API_PARAMS_H */
