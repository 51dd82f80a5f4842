/* apiserver/src/params.c — query parameters: URL decoding, validation with the parameter's name,
 * cursors
 *
 * Every parameter a handler accepts is validated here before it reaches SQL (where it is still
 * only ever a $n parameter): a bad or unknown parameter is a 400 that names it. Values are
 * normalised (times to microseconds, addresses to lower case, severities to a bit set) so that the
 * canonical query text used in cache keys is the same for equivalent requests.
 */
#include "params.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "hexdigit.h"

#define PARAMS_US_MIN ((-62167219200LL - 86400) * 1000000LL)          /* 0000-01-01 - 1 day */
#define PARAMS_US_MAX ((253402300799LL + 86400) * 1000000LL + 999999) /* 9999-12-31 + 1 day */

const char *const params_severity_names[4] = {"low", "medium", "high", "critical"};

static void set_err(param_error *err, const char *param, const char *msg)
{
    snprintf(err->param, sizeof(err->param), "%s", param);
    snprintf(err->message, sizeof(err->message), "%s", msg);
}

/* decode URL-decodes s[0..n) into out (len bytes); false if it does not fit */
static bool decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+')
            c = ' ';
        else if (c == '%' && i + 2 < n && cw_hexdigit((unsigned char) s[i + 1]) >= 0 &&
                 cw_hexdigit((unsigned char) s[i + 2]) >= 0) {
            c = (char) (cw_hexdigit((unsigned char) s[i + 1]) * 16 +
                        cw_hexdigit((unsigned char) s[i + 2]));
            i += 2;
        }
        if (o + 1 >= len)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

bool params_next(const char **q, char *name, size_t name_len, char *value, size_t value_len,
                 bool *too_long)
{
    const char *s = *q;
    *too_long = false;
    while (s && *s == '&')
        s++;
    if (!s || !*s)
        return false;
    const char *end = strchr(s, '&');
    size_t n = end ? (size_t) (end - s) : strlen(s);
    const char *eq = memchr(s, '=', n);
    size_t nlen = eq ? (size_t) (eq - s) : n;
    if (!decode(s, nlen, name, name_len)) {
        *too_long = true;
        snprintf(name, name_len, "%.*s", (int) (name_len - 1), s);
    }
    if (!decode(eq ? eq + 1 : s + n, eq ? n - nlen - 1 : 0, value, value_len))
        *too_long = true;
    *q = s + n;
    return true;
}

bool params_hex_id(const char *s, int digits, char *out)
{
    if (strlen(s) != (size_t) digits + 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    out[0] = '0';
    out[1] = 'x';
    for (int i = 0; i < digits; i++) {
        if (cw_hexdigit((unsigned char) s[i + 2]) < 0)
            return false;
        out[i + 2] = (char) tolower((unsigned char) s[i + 2]);
    }
    out[digits + 2] = '\0';
    return true;
}

bool params_positive_int(const char *s, int *out)
{
    long v = 0;
    if (!*s || strlen(s) > 9)
        return false;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char) *p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v <= 0)
        return false;
    *out = (int) v;
    return true;
}

/* days_from_civil: days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

/* digits reads exactly n decimal digits at *s */
static bool digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char) (*s)[i]))
            return false;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return true;
}

int params_parse_time(const char *s, int64_t *us)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, frac = 0, fdigits = 0, oh = 0, om = 0, sign = 0;

    if (!digits(&s, 4, &y) || *s++ != '-' || !digits(&s, 2, &mo) || *s++ != '-' ||
        !digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' '))
        return -1;
    s++;
    if (!digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi) || *s++ != ':' ||
        !digits(&s, 2, &sec))
        return -1;
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char) *s)) {
            if (fdigits < 6) {
                frac = frac * 10 + (*s - '0');
                fdigits++;
            }
            s++;
        }
        if (fdigits == 0)
            return -1;
        while (fdigits < 6) {
            frac *= 10;
            fdigits++;
        }
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
        if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) || oh > 23 || om > 59)
            return -1;
    } else
        return -1;
    if (*s || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -1;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    int64_t secs = days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400 + h * 3600 + mi * 60 +
                   (sec == 60 ? 59 : sec) - sign * (oh * 3600 + om * 60);
    *us = secs * 1000000 + frac;
    return 0;
}

int params_parse_window(const char *s, long *seconds)
{
    char *end;
    long mult = 1;
    errno = 0;
    if (!isdigit((unsigned char) *s))
        return -1;
    long v = strtol(s, &end, 10);
    if (errno || v <= 0)
        return -1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mult = 60, end++;
    else if (*end == 'h')
        mult = 3600, end++;
    else if (*end == 'd')
        mult = 86400, end++;
    if (*end || v > 365L * 86400 / mult)
        return -1;
    *seconds = v * mult;
    return 0;
}

void params_encode_cursor(int64_t us, int64_t id, char *buf, size_t len)
{
    char raw[48];
    int n = snprintf(raw, sizeof(raw), "%lld.%lld", (long long) us, (long long) id);
    if (cw_base64url_encoded_len((size_t) n) + 1 > len) {
        buf[0] = '\0';
        return;
    }
    cw_base64url_encode(raw, (size_t) n, buf);
}

int params_decode_cursor(const char *s, int64_t *us, int64_t *id)
{
    unsigned char raw[64];
    size_t n = strlen(s);
    long m;
    char *end;

    if (n == 0 || n > 80 || (m = cw_base64url_decode(s, n, raw)) <= 0)
        return -1;
    raw[m] = '\0';
    for (long i = 0; i < m; i++)
        if (!isdigit(raw[i]) && raw[i] != '.' && raw[i] != '-')
            return -1;
    errno = 0;
    *us = strtoll((char *) raw, &end, 10);
    if (errno || *end != '.')
        return -1;
    *id = strtoll(end + 1, &end, 10);
    if (errno || *end || *id < 0)
        return -1;
    /* the times params_parse_time accepts (years 0000-9999, a day of slack for offsets): a
     * forged cursor outside Postgres' timestamp range must not reach the query */
    if (*us < PARAMS_US_MIN || *us > PARAMS_US_MAX)
        return -1;
    return 0;
}

int params_only(const char *query, const char *const *allowed, param_error *err)
{
    char name[64], value[512];
    bool too_long;
    const char *q = query;

    while (params_next(&q, name, sizeof(name), value, sizeof(value), &too_long)) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(name, *a);
        if (!ok) {
            set_err(err, name, "unknown parameter");
            return -1;
        }
    }
    return 0;
}

int params_decode_path(const char *raw, char *out, size_t len)
{
    size_t o = 0;
    for (const char *s = raw; *s; s++) {
        char c = *s;
        if (c == '%' && cw_hexdigit((unsigned char) s[1]) >= 0 &&
            cw_hexdigit((unsigned char) s[2]) >= 0) {
            c = (char) (cw_hexdigit((unsigned char) s[1]) * 16 + cw_hexdigit((unsigned char) s[2]));
            s += 2;
            if (c == '\0')
                return -2;
        }
        if (o + 1 >= len)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* utf8_len: the length of the well-formed UTF-8 sequence starting at p, 0 if there is none (a
 * NUL byte never continues a sequence, so this never reads past the end of the string) */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

bool params_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t n;
    while (*p) {
        if (!(n = utf8_len(p)))
            return false;
        p += n;
    }
    return true;
}

void params_utf8_scrub(const char *s, char *out, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t o = 0;
    if (len == 0)
        return;
    while (*p) {
        size_t n = utf8_len(p);
        const char *from = n ? (const char *) p : "\xEF\xBF\xBD";
        size_t w = n ? n : 3;
        if (o + w >= len)
            break;
        memcpy(out + o, from, w);
        o += w;
        p += n ? n : 1;
    }
    out[o] = '\0';
}

int params_parse_anomaly_query(const char *query, anomaly_query *out, param_error *err)
{
    char name[64], value[512];
    bool too_long;
    const char *q = query;

    memset(out, 0, sizeof(*out));
    out->limit = PARAMS_LIMIT_DEFAULT;
    while (params_next(&q, name, sizeof(name), value, sizeof(value), &too_long)) {
        if (too_long) {
            set_err(err, name, "value too long");
            return -1;
        }
        if (!strcmp(name, "severity")) {
            /* severity=high&severity=critical or severity=high,critical */
            char *save = NULL;
            if (!*value) {
                set_err(err, name, "empty; expected low, medium, high or critical");
                return -1;
            }
            for (char *tok = strtok_r(value, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int i;
                for (i = 0; i < 4 && strcmp(tok, params_severity_names[i]); i++)
                    ;
                if (i == 4) {
                    set_err(err, name, "expected low, medium, high or critical (comma-separated)");
                    return -1;
                }
                out->severities |= 1u << i;
            }
        } else if (!strcmp(name, "since") || !strcmp(name, "until")) {
            int64_t us;
            if (params_parse_time(value, &us) != 0) {
                set_err(err, name, "expected an RFC 3339 time such as 2024-05-01T12:00:00Z");
                return -1;
            }
            if (name[0] == 's')
                out->has_since = true, out->since_us = us;
            else
                out->has_until = true, out->until_us = us;
        } else if (!strcmp(name, "address")) {
            if (!params_hex_id(value, 40, out->address)) {
                set_err(err, name, "expected a 0x-prefixed 20-byte hex address");
                return -1;
            }
        } else if (!strcmp(name, "min_score")) {
            char *end;
            errno = 0;
            double v = strtod(value, &end);
            if (!*value || *end || errno || !isfinite(v) || v < 0 || v > 1) {
                set_err(err, name, "expected a number between 0 and 1");
                return -1;
            }
            out->has_min_score = true;
            out->min_score = v;
        } else if (!strcmp(name, "limit")) {
            if (!params_positive_int(value, &out->limit) || out->limit > PARAMS_LIMIT_MAX) {
                set_err(err, name, "expected an integer between 1 and 1000");
                return -1;
            }
        } else if (!strcmp(name, "cursor")) {
            if (params_decode_cursor(value, &out->cursor_us, &out->cursor_id) != 0) {
                set_err(err, name, "not a cursor returned as next_cursor by this endpoint");
                return -1;
            }
            out->has_cursor = true;
        } else {
            set_err(err, name, "unknown parameter");
            return -1;
        }
    }
    if (out->has_since && out->has_until && out->since_us >= out->until_us) {
        set_err(err, "until", "must be later than since");
        return -1;
    }
    return 0;
}

void params_anomaly_query_key(const anomaly_query *q, char *buf, size_t len)
{
    char since[24] = "", until[24] = "", score[32] = "", cursor[48] = "";
    if (q->has_since)
        snprintf(since, sizeof(since), "%lld", (long long) q->since_us);
    if (q->has_until)
        snprintf(until, sizeof(until), "%lld", (long long) q->until_us);
    if (q->has_min_score)
        snprintf(score, sizeof(score), "%.17g", q->min_score);
    if (q->has_cursor)
        snprintf(cursor, sizeof(cursor), "%lld.%lld", (long long) q->cursor_us,
                 (long long) q->cursor_id);
    snprintf(buf, len, "s%x:a%s:b%s:d%s:m%s:c%s:l%d", q->severities, since, until, q->address,
             score, cursor, q->limit);
}

void params_severity_array(unsigned severities, char *buf, size_t len)
{
    size_t o = 0;
    buf[o++] = '{';
    for (int i = 0; i < 4; i++) {
        if (!(severities & (1u << i)))
            continue;
        o +=
            (size_t) snprintf(buf + o, len - o, "%s%s", o > 1 ? "," : "", params_severity_names[i]);
    }
    snprintf(buf + o, len - o, "}");
}
