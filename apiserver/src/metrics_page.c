/* apiserver/src/metrics_page.c — GET /metrics: the request counters (api_metrics.c) and the cache,
 * pool, rate limiter and listener gauges as one Prometheus text page; no secret (API key,
 * password, URL) ever appears on it */
#include <stdio.h>

#include "api_metrics.h"
#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "listener.h"
#include "metrics.h"
#include "ratelimit.h"
#include "routes.h"

/* route_pattern: a route's metric label is its pattern, bounded by the route table */
static const char *route_pattern(int r)
{
    return api_routes[r].pattern;
}

/* metrics_get renders the page; 500 when the page cannot be allocated */
int metrics_get(api_request *req)
{
    api_app *app = req->app;
    cw_strbuf b = CW_STRBUF_INIT;

    api_metrics_render(app->metrics, &b, route_pattern);
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
