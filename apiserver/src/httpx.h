/* apiserver/src/httpx.h — the HTTP glue: request context, dispatch (routing, limits, auth,
 * metrics), replies */
#ifndef API_HTTPX_H
#define API_HTTPX_H

#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "router.h"
#include "sql.h"

struct mg_connection;
struct mg_request_info;

/* what a handler gets; owned by the dispatcher, valid for one request */
typedef struct api_request {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    api_app *app;
    const api_route *route;
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
    int n_params;
    const char *query; /* the raw query string, "" when none */
    char *body;        /* POST body (malloc'd, NUL-terminated), NULL otherwise */
    size_t body_len;
    api_role role;       /* role of the authenticated key (ROLE_NONE: anonymous) */
    const char *x_cache; /* "HIT", "MISS" or "BYPASS" (the default) */
    char extra[512];     /* additional response header lines set by a handler */
    const char *origin;  /* the Origin header when CORS allows it, else NULL */
} api_request;

/* httpx_handler is the civetweb request handler for every path; cbdata is the api_app */
/* httpx_begin_drain: from now on new requests get 503 (Connection: close) and /health/ready is
 * false; httpx_in_flight counts the requests still being served (shutdown waits for 0) */
void httpx_begin_drain(void);
int httpx_in_flight(void);
bool httpx_draining(void);

int httpx_handler(struct mg_connection *conn, void *cbdata);
/* httpx_http_error is civetweb's http_error callback: the errors civetweb answers by itself get
 * our JSON error body (with a fixed message) and close the connection */
int httpx_http_error(struct mg_connection *conn, int status, const char *errmsg);

/* api_reply sends a complete response (one write) with X-Cache, CORS and the extra headers */
int api_reply(api_request *req, int status, const char *content_type, const char *body, size_t len);
/* api_json sends a JSON body with status */
int api_json(api_request *req, int status, const char *body, size_t len);
/* api_error sends {"error": {"code": code, "message": printf(fmt, ...)}} */
int api_error(api_request *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
struct db_error;

/* api_log_db_detail logs a database failure's full reason (libpq's message names host, port and
 * role, so clients only get a generic text), at most once every ten seconds */
void api_log_db_detail(const struct db_error *e);

/* api_db_error maps a database failure (see db.h) to the right status and error body */
int api_db_error(api_request *req, const struct db_error *e);

struct pg_result;

/* api_query runs one prepared statement on a pooled connection for a read request; NULL when it
 * failed, after sending the error response whose status is in *status */
struct pg_result *api_query(api_request *req, sql_stmt stmt, int nparams, const char *const *values,
                            int *status);

/* api_serve_hit sends a body taken from the cache (X-Cache: HIT) and gives it back to the cache */
int api_serve_hit(api_request *req, char *val, size_t len);

#endif /* API_HTTPX_H */
