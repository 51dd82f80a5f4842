/* bench/api/ceiling.c — the ceiling for bench-api: a minimal civetweb server answering every
 * request with a fixed body
 *
 * Same library, same options (threads, keep-alive, tcp_nodelay) and the same one-write response
 * helper as chainwatch-api, but no routing, auth, cache or database: what this HTTP stack can do
 * on this machine. Usage: api-ceiling PORT THREADS BODY_BYTES; stops on SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <civetweb.h>

#include "http.h"

static volatile sig_atomic_t stop;
static char *body;
static size_t body_len;

static void on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

/* fixed_handler sends the fixed body */
static int fixed_handler(struct mg_connection *conn, void *cbdata)
{
    (void) cbdata;
    return cw_http_send(conn, 200, "application/json", body, body_len, "X-Cache: HIT\r\n");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: api-ceiling PORT THREADS BODY_BYTES\n");
        return 2;
    }
    body_len = (size_t) atol(argv[3]);
    body = malloc(body_len + 1);
    if (!body)
        return 1;
    memset(body, 'x', body_len);
    const char *options[] = {
        "listening_ports",       argv[1], "num_threads", argv[2], "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "60000", "tcp_nodelay", "1",     "listen_backlog",    "1024",
        "request_timeout_ms",    "10000", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    mg_init_library(0);
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (!ctx) {
        fprintf(stderr, "api-ceiling: cannot listen on %s\n", argv[1]);
        return 1;
    }
    cw_http_no_file_auth(ctx);
    mg_set_request_handler(ctx, "/", fixed_handler, NULL);
    while (!stop)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    mg_stop(ctx);
    mg_exit_library();
    free(body);
    return 0;
}
