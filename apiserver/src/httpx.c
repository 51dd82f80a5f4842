/* apiserver/src/httpx.c — the HTTP glue: one civetweb handler that routes, limits, authenticates
 * and measures
 *
 * Order of checks for every request, and why:
 *   1. route (404, or 405 with Allow) and CORS preflight — cheap, no state;
 *   2. Content-Length above MAX_BODY_BYTES → 413 before anything is read or looked up;
 *   3. API key: missing → 401; a key seen valid recently is taken from the in-process cache,
 *      an unknown one is first charged to the caller's IP bucket (so guessing keys is rate
 *      limited) and then verified by Postgres → 401 if invalid, 503 if Postgres cannot answer;
 *   4. rate limit per client: the key's digest, or the IP for anonymous routes → 429 + Retry-After
 *      (health and metrics are exempt: probes and scrapes must always get through);
 *   5. role → 403;
 *   6. the body is read (bounded in size, chunked bodies too, and in time: REQUEST_TIMEOUT_MS
 *      for the whole body, checked between reads of at most BODY_READ_PIECE bytes — civetweb
 *      ends a read only when the piece is complete or the data stops for REQUEST_TIMEOUT_MS)
 *      and the handler runs.
 * Before routing, requests civetweb parsed but we refuse to trust get a 4xx: 64 header lines
 * (civetweb keeps the first 64 and silently drops the rest, Content-Length included), ambiguous
 * body framing (framing_error), and an encoded NUL in the path or query (it would cut the text
 * short: /health/live%00.json). civetweb leaves the path encoded (decode_url=no) so that we see it;
 * the errors civetweb answers itself (malformed or oversized header, bad Content-Length, HTTP
 * version) go through httpx_http_error and use our JSON error format too. Every refusal that leaves
 * unread request bytes on the socket closes the connection (mg_disable_connection_keep_alive):
 * civetweb would otherwise read and discard the rest of a lying Content-Length for as long as the
 * client keeps sending. Every response is one write (cw_http_send) carrying X-Cache (BYPASS unless
 * the handler served or filled the cache) and the CORS headers when the Origin is allowed. Metrics
 * are labelled with the route pattern, never the raw path.
 */
#include "httpx.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "api_metrics.h"
#include "auth.h"
#include "cache.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "monoclock.h"
#include "params.h"
#include "ratelimit.h"
#include "routes.h"

#define BODY_READ_PIECE 16384 /* bytes per mg_read of a request body */
#define LINGER_MS       1000 /* after a 413 on a chunked body: how long to read and discard the rest */
#define LINGER_FACTOR   4    /* ... and at most this many times MAX_BODY_BYTES of it */

/* how often api_log_db_detail repeats itself while the database stays away */
#define DB_DETAIL_EVERY_NS (10 * 1000000000LL)

static atomic_bool draining;
static atomic_int in_flight;

void httpx_begin_drain(void)
{
    atomic_store(&draining, true);
}

int httpx_in_flight(void)
{
    return atomic_load(&in_flight);
}

bool httpx_draining(void)
{
    return atomic_load(&draining);
}

/* headers builds the common response headers into buf */
static void headers(api_request *req, char *buf, size_t len)
{
    int n = snprintf(buf, len, "X-Cache: %s\r\n", req->x_cache);
    if (req->origin && n < (int) len)
        n += snprintf(buf + n, len - (size_t) n,
                      "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
                      "Access-Control-Expose-Headers: X-Cache, Retry-After\r\n",
                      req->origin);
    if (n < (int) len)
        snprintf(buf + n, len - (size_t) n, "%s", req->extra);
}

int api_reply(api_request *req, int status, const char *content_type, const char *body, size_t len)
{
    char h[1024];
    headers(req, h, sizeof(h));
    return cw_http_send(req->conn, status, content_type, body, len, h);
}

int api_json(api_request *req, int status, const char *body, size_t len)
{
    return api_reply(req, status, "application/json", body, len);
}

int api_error(api_request *req, int status, const char *code, const char *fmt, ...)
{
    char msg[512], text[3 * sizeof(msg)], h[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* messages may quote the request (a parameter name): keep the body valid UTF-8 */
    params_utf8_scrub(msg, text, sizeof(text));
    headers(req, h, sizeof(h));
    return cw_http_json_error(req->conn, status, code, text, h);
}

/* close_after makes the response say Connection: close and civetweb close the connection after
 * it instead of reading (and discarding) what is left of the request */
static void close_after(api_request *req)
{
    size_t n = strlen(req->extra);
    snprintf(req->extra + n, sizeof(req->extra) - n, "Connection: close\r\n");
    mg_disable_connection_keep_alive(req->conn);
}

int httpx_http_error(struct mg_connection *conn, int status, const char *errmsg)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *code = status >= 500 ? "internal" : "bad_request";
    const char *msg =
        status >= 500 ? "the server could not process the request" : "malformed HTTP request";

    (void) errmsg; /* civetweb's text may quote the request; the client gets a fixed message */
    switch (status) {
    case 404:
        code = "not_found", msg = "no such endpoint";
        break;
    case 405:
        code = "method_not_allowed", msg = "method not allowed";
        break;
    case 408:
        code = "request_timeout", msg = "the request did not arrive within REQUEST_TIMEOUT_MS";
        break;
    case 411:
        msg = "invalid Content-Length";
        break;
    case 413:
    case 414:
    case 431:
        code = "header_too_large", msg = "the request line or header is too large";
        break;
    case 505:
        code = "http_version_not_supported", msg = "only HTTP/1.0 and HTTP/1.1 are supported";
        break;
    }
    mg_disable_connection_keep_alive(conn);
    cw_http_json_error(conn, status, code, msg, "X-Cache: BYPASS\r\nConnection: close\r\n");
    if (ri && ri->user_data) {
        api_app *app = ri->user_data;
        api_metrics_observe(app->metrics, -1, ri->request_method ? ri->request_method : "", status,
                            0);
    }
    return 0;
}

void api_log_db_detail(const db_error *e)
{
    static _Atomic long long next_ns;
    long long now = cw_mono_ns(), due = atomic_load(&next_ns);

    if (now >= due && atomic_compare_exchange_strong(&next_ns, &due, now + DB_DETAIL_EVERY_NS))
        log_warn("database %s (SQLSTATE %s): %s",
                 e->status == DB_NO_EXTENSION ? "extension check failed" : "unavailable",
                 e->sqlstate[0] ? e->sqlstate : "none", e->message);
}

int api_db_error(api_request *req, const db_error *e)
{
    switch (e->status) {
    case DB_UNAVAILABLE:
        /* libpq's reason names the host, port and role: logged, never sent to a client */
        api_log_db_detail(e);
        snprintf(req->extra, sizeof(req->extra), "Retry-After: 1\r\n");
        return api_error(req, 503, "database_unavailable",
                         "PostgreSQL is unavailable; retry shortly");
    case DB_BUSY:
        snprintf(req->extra, sizeof(req->extra), "Retry-After: 1\r\n");
        return api_error(req, 503, "database_busy", "%s", e->message);
    case DB_NO_EXTENSION:
        api_log_db_detail(e);
        return api_error(req, 503, "extension_missing",
                         "the chainwatch extension is missing or not usable on the database");
    case DB_TIMEOUT:
        return api_error(req, 504, "timeout", "the query exceeded REQUEST_TIMEOUT_MS");
    case DB_NOT_FOUND:
        return api_error(req, 404, "not_found", "%s", e->message);
    case DB_CONFLICT:
        return api_error(req, 409, "conflict", "%s", e->message);
    case DB_INVALID:
        return api_error(req, 400, "invalid_value", "%s", e->message);
    case DB_OK:
    case DB_FAILED:
        break;
    }
    log_error("%s %s: database error %s: %s", req->ri->request_method, req->route->pattern,
              e->sqlstate, e->message);
    return api_error(req, 500, "database_error", "the database reported an error (SQLSTATE %s)",
                     e->sqlstate);
}

struct pg_result *api_query(api_request *req, sql_stmt stmt, int nparams, const char *const *values,
                            int *status)
{
    api_app *app = req->app;
    db_error e = {0};
    db_conn *c = db_acquire(app->db, app->cfg->request_timeout_ms / 2, true, &e);
    PGresult *r = NULL;

    if (c) {
        r = db_exec(app->db, c, stmt, nparams, values, true, &e);
        db_release(app->db, c);
    }
    if (!r)
        *status = api_db_error(req, &e);
    return r;
}

int api_serve_hit(api_request *req, char *val, size_t len)
{
    req->x_cache = "HIT";
    int st = api_json(req, 200, val, len);
    cache_release(val);
    return st;
}

/* cors_origin returns the request's Origin when CORS_ALLOWED_ORIGINS allows it */
static const char *cors_origin(const api_app *app, struct mg_connection *conn)
{
    const char *allowed = app->cfg->cors_allowed_origins;
    const char *origin;
    if (!allowed || !*allowed || !(origin = mg_get_header(conn, "Origin")) || !*origin)
        return NULL;
    size_t olen = strlen(origin);
    for (const char *p = allowed; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *e = end;
        while (e > p && e[-1] == ' ')
            e--;
        if ((e - p == 1 && *p == '*') || ((size_t) (e - p) == olen && !memcmp(p, origin, olen)))
            return strpbrk(origin, "\r\n") ? NULL : origin;
        p = end;
    }
    return NULL;
}

/* read_body reads the request body into req (at most max bytes, until deadline_ns on the
 * monotonic clock); 0, 413, 408 (too slow, or shorter than its Content-Length) or 400 */
static int read_body(api_request *req, long max, long long deadline_ns)
{
    long long declared = req->ri->content_length;
    size_t cap = declared >= 0 ? (size_t) declared + 1 : 4096, len = 0;
    char *buf;

    if (declared > max)
        return 413;
    buf = malloc(cap);
    if (!buf)
        return 500;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > (size_t) max + 1) {
                free(buf);
                return 413;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return 500;
            }
            buf = nb;
            cap *= 2;
        }
        if (cw_mono_ns() > deadline_ns) {
            free(buf);
            return 408;
        }
        /* civetweb returns from mg_read only when the piece asked for is complete or no byte
         * came for REQUEST_TIMEOUT_MS, so pieces are small enough for the deadline to be checked
         * regularly; EOF and that timeout both end the body, which must then be as long as its
         * Content-Length */
        size_t want = cap - len - 1;
        int n = mg_read(req->conn, buf + len, want < BODY_READ_PIECE ? want : BODY_READ_PIECE);
        if (n < 0) {
            free(buf);
            return 400;
        }
        if (n == 0) {
            if (declared >= 0 && (long long) len < declared) {
                free(buf);
                return 408;
            }
            break;
        }
        len += (size_t) n;
        if (len > (size_t) max) {
            free(buf);
            return 413;
        }
    }
    buf[len] = '\0';
    req->body = buf;
    req->body_len = len;
    return 0;
}

/*
 * linger_drain reads and discards the rest of a chunked body refused with 413, for at most
 * LINGER_MS (within the request deadline) and LINGER_FACTOR x MAX_BODY_BYTES, as a lingering
 * close does: HTTP libraries send the whole body before they read, and a socket closed with
 * their bytes still arriving answers them with a reset, so they would never see the 413 (the
 * hostile-HTTP suite saw `requests` get EPIPE under load). A body announced with a
 * Content-Length above the limit is not drained: the length may be a lie of 10 GB.
 */
static void linger_drain(api_request *req, long long deadline_ns)
{
    char buf[BODY_READ_PIECE];
    long long until = cw_mono_ns() + LINGER_MS * 1000000LL;
    size_t left = (size_t) req->app->cfg->max_body_bytes * LINGER_FACTOR;

    if (until > deadline_ns)
        until = deadline_ns;
    while (left > 0 && cw_mono_ns() < until) {
        int n = mg_read(req->conn, buf, left < sizeof(buf) ? left : sizeof(buf));
        if (n <= 0)
            break;
        left -= (size_t) n;
    }
}

/* rate_limited charges client; sends 429 and returns true when over the limit */
static bool rate_limited(api_request *req, const char *client, int *status)
{
    int wait = ratelimit_check(req->app->ratelimit, client, cw_mono_ns());
    if (wait == 0)
        return false;
    snprintf(req->extra, sizeof(req->extra), "Retry-After: %d\r\n", wait);
    *status =
        api_error(req, 429, "rate_limited",
                  "more than RATE_LIMIT_RPS=%ld requests per second (burst %ld); retry in %d s",
                  req->app->cfg->rate_limit_rps, req->app->cfg->rate_limit_burst, wait);
    return true;
}

/* authorize runs steps 3-5 of the design; returns 0 to go on, else the status already sent */
static int authorize(api_request *req)
{
    const api_app *app = req->app;
    char client[96], digest[CW_SHA256_HEX_LEN];
    int status = 0;

    if (req->route->role == ROLE_NONE) {
        snprintf(client, sizeof(client), "ip:%s", req->ri->remote_addr);
        if (req->route->rate_limited && rate_limited(req, client, &status))
            return status;
        return 0;
    }
    const char *key = auth_key_from_request(req->conn);
    if (!key) {
        snprintf(req->extra, sizeof(req->extra), "WWW-Authenticate: Bearer\r\n");
        return api_error(req, 401, "unauthorized",
                         "an API key is required (X-API-Key or Authorization: Bearer)");
    }
    cw_sha256_hex(key, strlen(key), digest);
    req->role = auth_cached(app->auth, digest);
    if (req->role == ROLE_NONE) {
        db_error e = {0};
        snprintf(client, sizeof(client), "ip:%s", req->ri->remote_addr);
        if (rate_limited(req, client, &status))
            return status;
        if (auth_verify(app->auth, app->db, app->cfg->request_timeout_ms / 2, key, digest,
                        &req->role, &e) != 0)
            return api_db_error(req, &e);
        if (req->role == ROLE_NONE) {
            snprintf(req->extra, sizeof(req->extra), "WWW-Authenticate: Bearer\r\n");
            return api_error(req, 401, "unauthorized",
                             "the API key is invalid, expired or revoked");
        }
    }
    snprintf(client, sizeof(client), "key:%s", digest);
    if (rate_limited(req, client, &status))
        return status;
    if (req->role < req->route->role)
        return api_error(req, 403, "forbidden", "this endpoint needs an admin key");
    return 0;
}

/* framing_error says why the body framing of ri cannot be trusted, or returns NULL. civetweb
 * reads the first Content-Length with strtoll ("12abc" is 12, "+12" too) and lets
 * Transfer-Encoding win over it; a proxy in front may have framed the same bytes otherwise
 * (request smuggling). So only one all-digits length (repeats must agree), or Transfer-Encoding
 * without any, is accepted. */
static const char *framing_error(const struct mg_request_info *ri)
{
    const char *length = NULL;
    bool chunked = false;
    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name, *value = ri->http_headers[i].value;
        if (!name || !value)
            continue;
        if (!mg_strcasecmp(name, "Transfer-Encoding")) {
            chunked = true;
        } else if (!mg_strcasecmp(name, "Content-Length")) {
            size_t digits = strspn(value, "0123456789");
            if (digits == 0 || value[digits + strspn(value + digits, " \t")] != '\0')
                return "Content-Length: expected a decimal number";
            if (length && strcmp(length, value) != 0)
                return "Content-Length: conflicting values";
            length = value;
        }
    }
    return chunked && length ? "Content-Length and Transfer-Encoding together" : NULL;
}

static int dispatch(struct mg_connection *conn, api_app *app);

/* httpx_handler counts the request as in flight (before looking at the drain flag, so shutdown
 * never misses it) and dispatches it */
int httpx_handler(struct mg_connection *conn, void *cbdata)
{
    atomic_fetch_add(&in_flight, 1);
    int status = dispatch(conn, cbdata);
    atomic_fetch_sub(&in_flight, 1);
    return status;
}

static int dispatch(struct mg_connection *conn, api_app *app)
{
    long long t0 = cw_mono_ns();
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *method = ri->request_method ? ri->request_method : "";
    const char *raw_path = ri->local_uri ? ri->local_uri : "/";
    api_request req;
    char allow[64], path[1024];
    bool path_known;
    int route, status, decoded;

    memset(&req, 0, sizeof(req));
    req.conn = conn;
    req.ri = ri;
    req.app = app;
    req.query = ri->query_string ? ri->query_string : "";
    req.x_cache = "BYPASS";
    req.origin = cors_origin(app, conn);

    /* refusals before routing: what civetweb parsed but we cannot trust (see the top) */
    status = 0;
    const char *framing = framing_error(ri);
    if (ri->num_headers >= MG_MAX_HEADERS) {
        close_after(&req);
        status = api_error(&req, 431, "header_too_large", "at most %d header lines are accepted",
                           MG_MAX_HEADERS - 1);
    } else if (framing) {
        close_after(&req);
        status = api_error(&req, 400, "bad_request", "%s", framing);
    } else if ((decoded = params_decode_path(raw_path, path, sizeof(path))) == -2 ||
               strstr(req.query, "%00")) {
        close_after(&req);
        status = api_error(&req, 400, "invalid_parameter",
                           "%s: an encoded NUL byte (%%00) is not allowed",
                           decoded == -2 ? "path" : "query");
    } else if (decoded != 0) {
        status = api_error(&req, 404, "not_found", "no such endpoint");
    }
    if (status) {
        api_metrics_observe(app->metrics, -1, method, status, (double) (cw_mono_ns() - t0) / 1e9);
        return status;
    }

    route = router_match(api_routes, api_routes_count, method, path, req.params, &req.n_params,
                         &path_known, allow, sizeof(allow));
    if (route < 0) {
        if (path_known && !strcmp(method, "OPTIONS")) {
            snprintf(req.extra, sizeof(req.extra),
                     "Allow: %s, OPTIONS\r\nAccess-Control-Allow-Methods: %s, OPTIONS\r\n"
                     "Access-Control-Allow-Headers: X-API-Key, Authorization, Content-Type\r\n"
                     "Access-Control-Max-Age: 600\r\n",
                     allow, allow);
            status = api_reply(&req, 204, "text/plain", NULL, 0);
        } else if (path_known) {
            snprintf(req.extra, sizeof(req.extra), "Allow: %s\r\n", allow);
            status = api_error(&req, 405, "method_not_allowed",
                               "%s is not allowed here (allowed: %s)", method, allow);
        } else {
            status = api_error(&req, 404, "not_found", "no such endpoint");
        }
        api_metrics_observe(app->metrics, -1, method, status, (double) (cw_mono_ns() - t0) / 1e9);
        return status;
    }
    req.route = &api_routes[route];

    if (atomic_load(&draining) && strcmp(req.route->pattern, "/health/live") != 0) {
        snprintf(req.extra, sizeof(req.extra), "Connection: close\r\nRetry-After: 1\r\n");
        status = api_error(&req, 503, "shutting_down", "the server is shutting down");
    } else if (ri->content_length > app->cfg->max_body_bytes) {
        close_after(&req);
        status = api_error(&req, 413, "payload_too_large", "the body exceeds MAX_BODY_BYTES=%ld",
                           app->cfg->max_body_bytes);
    } else if ((status = authorize(&req)) == 0) {
        long long deadline_ns = t0 + app->cfg->request_timeout_ms * 1000000LL;
        int rc = strcmp(method, "POST") == 0
                     ? read_body(&req, app->cfg->max_body_bytes, deadline_ns)
                     : 0;
        if (rc == 413) {
            if (ri->content_length < 0)
                linger_drain(&req, deadline_ns);
            close_after(&req);
            status = api_error(&req, 413, "payload_too_large",
                               "the body exceeds MAX_BODY_BYTES=%ld", app->cfg->max_body_bytes);
        } else if (rc == 408) {
            close_after(&req);
            status = api_error(&req, 408, "request_timeout",
                               "the body did not arrive within REQUEST_TIMEOUT_MS=%ld",
                               app->cfg->request_timeout_ms);
        } else if (rc != 0) {
            close_after(&req);
            status = api_error(&req, rc, rc == 400 ? "bad_request" : "internal",
                               "could not read the request body");
        } else {
            status = req.route->handler(&req);
        }
    }
    free(req.body);
    double secs = (double) (cw_mono_ns() - t0) / 1e9;
    api_metrics_observe(app->metrics, route, method, status, secs);
    if (cw_log_enabled(CW_LOG_DEBUG))
        log_debug("%s %s -> %d (%.3f ms, cache %s)", method, req.route->pattern, status, secs * 1e3,
                  req.x_cache);
    return status;
}
