/* apiserver/src/main.c — chainwatch-api: settings, start-up, the main loop and the shutdown
 * sequence
 *
 * Shutdown is designed, not assumed: SIGTERM/SIGINT handlers only count signals. The main loop
 * sees the first one within 100 ms and drains: new requests are refused with 503 (Connection:
 * close; /health/ready turns false) while the requests in flight finish — civetweb's mg_stop()
 * would cut them off, since it refuses writes once stopping. When none is left, a stopper thread
 * runs mg_stop() (closes the listening socket and the idle keep-alive connections); when it is
 * done the modules are torn down and the process exits 0. A second signal, or SHUTDOWN_GRACE_S
 * without the stopper finishing, exits at once with status 1. The main loop also writes one stats
 * line a minute.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>

#include "api_metrics.h"
#include "app.h"
#include "auth.h"
#include "cache.h"
#include "db.h"
#include "generation.h"
#include "http.h"
#include "httpx.h"
#include "listener.h"
#include "log.h"
#include "ratelimit.h"
#include "routes.h"
#include "settings.h"

#define SHUTDOWN_GRACE_S 30
#define STATS_EVERY_S    60

static volatile sig_atomic_t signals_received;
static atomic_bool stopper_done;

static void on_signal(int sig)
{
    (void) sig;
    signals_received++;
}

static void *stopper(void *ctx)
{
    mg_stop(ctx);
    atomic_store(&stopper_done, true);
    return NULL;
}

/* start_http starts civetweb with cfg; NULL (err filled) on failure */
static struct mg_context *start_http(api_app *app, char *err, size_t errlen)
{
    char port[16], threads[16], timeout[24];
    struct mg_callbacks cb;
    struct mg_init_data init;
    struct mg_error_data error = {0};
    char msg[256] = "";

    snprintf(port, sizeof(port), "%ld", app->cfg->api_port);
    snprintf(threads, sizeof(threads), "%ld", app->cfg->api_threads);
    snprintf(timeout, sizeof(timeout), "%ld", app->cfg->request_timeout_ms);
    const char *options[] = {"listening_ports", port, "num_threads", threads, "request_timeout_ms",
                             timeout, "enable_keep_alive", "yes", "keep_alive_timeout_ms", "60000",
                             "tcp_nodelay", "1", "listen_backlog", "1024",
                             /* request line + headers at most 16 KiB (larger: 400); the path
                              * stays percent-encoded for httpx.c to decode and check */
                             "max_request_size", "16384", "decode_url", "no",
                             /* CORS is ours (CORS_ALLOWED_ORIGINS): civetweb must not answer
                              * preflights or add its own Access-Control-* headers */
                             "access_control_allow_origin", "", "access_control_allow_methods", "",
                             NULL};
    memset(&cb, 0, sizeof(cb));
    memset(&init, 0, sizeof(init));
    cb.http_error = httpx_http_error;
    init.callbacks = &cb;
    init.user_data = app;
    init.configuration_options = options;
    error.text = msg;
    error.text_buffer_size = sizeof(msg);
    struct mg_context *ctx = mg_start2(&init, &error);
    if (!ctx) {
        snprintf(err, errlen, "cannot start the HTTP server on port %s: %s", port,
                 msg[0] ? msg : "unknown error");
        return NULL;
    }
    cw_http_no_file_auth(ctx);
    mg_set_request_handler(ctx, "/", httpx_handler, app);
    return ctx;
}

int main(int argc, char **argv)
{
    api_settings cfg;
    api_app app;
    char err[512];
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    memset(&app, 0, sizeof(app));
    rc = settings_load(&cfg, argc, argv, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "chainwatch-api: %s\n", err);
        settings_free(&cfg);
        return rc == 1 ? 0 : 2;
    }
    if (cw_log_init("chainwatch-api", cfg.log_level, cfg.log_format) != 0) {
        fprintf(stderr, "chainwatch-api: invalid LOG_LEVEL or LOG_FORMAT\n");
        settings_free(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    mg_init_library(0);
    app.cfg = &cfg;
    rc = 1;
    if (!(app.metrics = api_metrics_create(api_routes_count))) {
        log_error("cannot allocate the metrics (%d routes, at most %d)", api_routes_count,
                  API_METRICS_MAX_ROUTES);
        goto out;
    }
    if (!(app.listener = listener_start(cfg.database_url, err, sizeof(err))) ||
        !(app.db = db_pool_create(cfg.database_url, (int) cfg.db_pool_size, cfg.request_timeout_ms,
                                  err, sizeof(err))) ||
        !(app.cache = cache_create(&cfg, err, sizeof(err)))) {
        log_error("start-up failed: %s", err);
        goto out;
    }
    if (!(app.auth = auth_create(app.listener)) ||
        !(app.generation = generation_create(cfg.database_url, cfg.request_timeout_ms / 2)) ||
        !(app.ratelimit =
              ratelimit_create((double) cfg.rate_limit_rps, (double) cfg.rate_limit_burst))) {
        log_error("start-up failed: out of memory");
        goto out;
    }
    struct mg_context *ctx = start_http(&app, err, sizeof(err));
    if (!ctx) {
        log_error("%s", err);
        goto out;
    }
    log_info("listening on port %ld (%ld threads, %ld database connections, Redis %s:%ld %s)",
             cfg.api_port, cfg.api_threads, cfg.db_pool_size, cfg.redis_host, cfg.redis_port,
             cfg.redis_enabled ? "enabled" : "disabled");

    time_t next_stats = time(NULL) + STATS_EVERY_S, stop_started = 0;
    pthread_t stop_thread;
    while (!atomic_load(&stopper_done)) {
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
        if (signals_received >= 1 && !stop_started) {
            log_info("shutting down: refusing new requests, finishing %d in flight",
                     httpx_in_flight());
            stop_started = time(NULL);
            httpx_begin_drain();
            while (httpx_in_flight() > 0 && signals_received < 2 &&
                   time(NULL) - stop_started <= SHUTDOWN_GRACE_S)
                nanosleep(&(struct timespec){0, 10000000L}, NULL);
            if (pthread_create(&stop_thread, NULL, stopper, ctx) != 0) {
                log_error("cannot start the shutdown thread; exiting now");
                _exit(1);
            }
        }
        if (stop_started &&
            (signals_received >= 2 || time(NULL) - stop_started > SHUTDOWN_GRACE_S)) {
            log_warn("shutdown not finished (%s); exiting now",
                     signals_received >= 2 ? "second signal" : "grace period over");
            _exit(1);
        }
        if (!stop_started && time(NULL) >= next_stats) {
            next_stats += STATS_EVERY_S;
            log_info("stats: requests=%llu db_pool_in_use=%d redis_up=%d rate_limited=%llu "
                     "listener=%s",
                     api_metrics_requests(app.metrics), db_pool_in_use(app.db),
                     cache_up(app.cache) ? 1 : 0,
                     (unsigned long long) ratelimit_refused(app.ratelimit),
                     listener_connected(app.listener) ? "up" : "down");
        }
    }
    pthread_join(stop_thread, NULL);
    log_info("stopped after %llu requests", api_metrics_requests(app.metrics));
    rc = 0;
out:
    listener_stop(app.listener);
    generation_destroy(app.generation);
    db_pool_destroy(app.db);
    cache_destroy(app.cache);
    auth_destroy(app.auth);
    ratelimit_destroy(app.ratelimit);
    api_metrics_destroy(app.metrics);
    mg_exit_library();
    settings_free(&cfg);
    return rc;
}
