/* apiserver/src/api_metrics.c — Prometheus metrics of chainwatch-api and the GET /metrics handler
 *
 * Label values are bounded by construction: route is a pattern from the route table (or
 * "unmatched"), method one of a fixed list (or "OTHER"), status one of the codes the API sends (or
 * "other"). Counters are C11 atomics in fixed arrays, so observing never locks or allocates.
 * No secret (API key, password, URL) ever appears on the page.
 */
#include "api_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "listener.h"
#include "metrics.h"
#include "ratelimit.h"
#include "routes.h"

#define MAX_ROUTES 32
static const char *const METHODS[] = {"GET",   "POST", "PUT",     "DELETE",
                                      "PATCH", "HEAD", "OPTIONS", "OTHER"};
#define N_METHODS 8
static const int STATUSES[] = {200, 201, 204, 400, 401, 403, 404, 405, 408,
                               409, 413, 415, 422, 429, 500, 503, 504, 0};
#define N_STATUSES 18 /* the last one (0) is "other" */

struct api_metrics {
    _Atomic unsigned long long requests[MAX_ROUTES + 1][N_METHODS][N_STATUSES];
    cw_histogram latency[MAX_ROUTES + 1];
    _Atomic unsigned long long total;
};

api_metrics *api_metrics_create(void)
{
    api_metrics *m = calloc(1, sizeof(*m));
    if (!m || api_routes_count > MAX_ROUTES) {
        free(m);
        return NULL;
    }
    for (int i = 0; i <= MAX_ROUTES; i++)
        cw_histogram_init(&m->latency[i], cw_latency_buckets, cw_latency_buckets_n);
    return m;
}

void api_metrics_destroy(api_metrics *m)
{
    free(m);
}

static int method_index(const char *method)
{
    for (int i = 0; i < N_METHODS - 1; i++)
        if (!strcmp(method, METHODS[i]))
            return i;
    return N_METHODS - 1;
}

static int status_index(int status)
{
    for (int i = 0; i < N_STATUSES - 1; i++)
        if (STATUSES[i] == status)
            return i;
    return N_STATUSES - 1;
}

void api_metrics_observe(api_metrics *m, int route, const char *method, int status, double seconds)
{
    int r = route < 0 ? api_routes_count : route;
    atomic_fetch_add_explicit(&m->requests[r][method_index(method)][status_index(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->total, 1, memory_order_relaxed);
    cw_histogram_observe(&m->latency[r], seconds);
}

unsigned long long api_metrics_requests(api_metrics *m)
{
    return atomic_load(&m->total);
}

static const char *route_label(int r)
{
    return r < api_routes_count ? api_routes[r].pattern : "unmatched";
}

int metrics_get(api_request *req)
{
    api_app *app = req->app;
    api_metrics *m = app->metrics;
    cw_strbuf b = CW_STRBUF_INIT;
    char labels[192];

    cw_metric_header(&b, "chainwatch_http_requests_total", "counter",
                     "HTTP requests by method, route (pattern, never the raw path) and status.");
    for (int r = 0; r <= api_routes_count; r++)
        for (int me = 0; me < N_METHODS; me++)
            for (int s = 0; s < N_STATUSES; s++) {
                unsigned long long v = atomic_load(&m->requests[r][me][s]);
                if (!v)
                    continue;
                char status[8];
                if (STATUSES[s])
                    snprintf(status, sizeof(status), "%d", STATUSES[s]);
                else
                    snprintf(status, sizeof(status), "other");
                snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\",status=\"%s\"",
                         METHODS[me], route_label(r), status);
                cw_metric_sample(&b, "chainwatch_http_requests_total", labels, (double) v);
            }
    cw_metric_header(&b, "chainwatch_http_request_duration_seconds", "histogram",
                     "Time from routing to the response being written, by route.");
    for (int r = 0; r <= api_routes_count; r++) {
        if (!atomic_load(&m->latency[r].count))
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_label(r));
        cw_histogram_render(&b, "chainwatch_http_request_duration_seconds", labels, &m->latency[r]);
    }
    cache_render_metrics(app->cache, &b);
    cw_metric_header(&b, "chainwatch_db_pool_in_use", "gauge",
                     "PostgreSQL pool connections handed out right now.");
    cw_metric_sample(&b, "chainwatch_db_pool_in_use", NULL, db_pool_in_use(app->db));
    cw_metric_header(&b, "chainwatch_db_pool_size", "gauge",
                     "PostgreSQL pool size (DB_POOL_SIZE).");
    cw_metric_sample(&b, "chainwatch_db_pool_size", NULL, db_pool_size(app->db));
    cw_metric_header(&b, "chainwatch_rate_limited_total", "counter",
                     "Requests refused with 429 by the per-client token bucket.");
    cw_metric_sample(&b, "chainwatch_rate_limited_total", NULL,
                     (double) ratelimit_refused(app->ratelimit));
    listener_state ls;
    listener_get(app->listener, &ls);
    cw_metric_header(&b, "chainwatch_api_listener_up", "gauge",
                     "1 while the LISTEN connection (cache generations) is up.");
    cw_metric_sample(&b, "chainwatch_api_listener_up", NULL, ls.valid ? 1 : 0);
    cw_metric_header(&b, "chainwatch_api_anomaly_generation", "gauge",
                     "Anomaly generation last notified by the ingest path.");
    cw_metric_sample(&b, "chainwatch_api_anomaly_generation", NULL, (double) ls.anomaly_generation);
    if (b.oom) {
        cw_strbuf_free(&b);
        return api_error(req, 500, "internal", "out of memory");
    }
    int st = api_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}
