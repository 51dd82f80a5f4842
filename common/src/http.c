/* common/src/http.c — one-write HTTP responses and JSON errors over civetweb */
#include "http.h"

#include <string.h>

#include <civetweb.h>

#include "strbuf.h"

const char *cw_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int cw_http_send(struct mg_connection *conn, int status, const char *content_type, const char *body,
                 size_t len, const char *extra_headers)
{
    cw_strbuf out = CW_STRBUF_INIT;

    cw_strbuf_printf(&out,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
                     status, cw_http_reason(status), content_type, len,
                     extra_headers ? extra_headers : "");
    cw_strbuf_append(&out, body ? body : "", body ? len : 0);
    if (!out.oom)
        mg_write(conn, out.data, out.len);
    cw_strbuf_free(&out);
    return status;
}

int cw_http_json_error(struct mg_connection *conn, int status, const char *code,
                       const char *message, const char *extra_headers)
{
    cw_strbuf body = CW_STRBUF_INIT;
    cw_strbuf_puts(&body, "{\"error\":{\"code\":");
    cw_strbuf_json_string(&body, code, strlen(code));
    cw_strbuf_puts(&body, ",\"message\":");
    cw_strbuf_json_string(&body, message, strlen(message));
    cw_strbuf_puts(&body, "}}");
    if (body.oom)
        cw_http_send(conn, 500, "application/json", NULL, 0, extra_headers);
    else
        cw_http_send(conn, status, "application/json", body.data, body.len, extra_headers);
    cw_strbuf_free(&body);
    return status;
}

/* grant_all is the authorization handler installed by cw_http_no_file_auth */
static int grant_all(struct mg_connection *conn, void *cbdata)
{
    (void) conn;
    (void) cbdata;
    return 1;
}

void cw_http_no_file_auth(struct mg_context *ctx)
{
    mg_set_auth_handler(ctx, "/", grant_all, NULL);
}
