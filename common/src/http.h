/* common/src/http.h — civetweb response helpers shared by the API server and the ingestor's metrics
 * port */
#ifndef CW_HTTP_H
#define CW_HTTP_H

#include <stddef.h>

struct mg_connection;
struct mg_context;

/* cw_http_reason: the reason phrase of a status code */
const char *cw_http_reason(int status);

/*
 * cw_http_send writes status line, headers and body with a single write (civetweb otherwise
 * leaves the body to a second segment and delayed ACK adds ~40 ms). extra_headers are complete
 * "Name: value\r\n" lines or NULL. Returns status, so handlers can `return cw_http_send(...)`.
 */
int cw_http_send(struct mg_connection *conn, int status, const char *content_type, const char *body,
                 size_t len, const char *extra_headers);

/* cw_http_json_error sends {"error": {"code": code, "message": message}} */
int cw_http_json_error(struct mg_connection *conn, int status, const char *code,
                       const char *message, const char *extra_headers);

/*
 * cw_http_no_file_auth turns off civetweb's file-based HTTP authentication for every URI.
 * Without an authorization handler civetweb looks for a .htpasswd file on each request (a stat
 * of "/.htpasswd" when no document root is set) and would demand HTTP Basic credentials if such
 * a file ever appeared. Our servers authenticate in their handlers (API keys) or need none.
 */
void cw_http_no_file_auth(struct mg_context *ctx);

#endif /* CW_HTTP_H */
