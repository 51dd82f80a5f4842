/* apiserver/src/api_metrics.c — request counters and latency histograms of chainwatch-api
 *
 * Label values are bounded by construction: route is an index below the route count given at
 * creation (named by the caller's label function, the route table's patterns) or "unmatched",
 * method one of a fixed list (or "OTHER"), status one of the codes the API sends (or "other").
 * Counters are C11 atomics in fixed arrays, so observing never locks or allocates. This module
 * knows nothing of the HTTP layer or the route table: httpx.c observes, metrics_page.c renders.
 */
#include "api_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const char *const METHODS[] = {"GET",   "POST", "PUT",     "DELETE",
                                      "PATCH", "HEAD", "OPTIONS", "OTHER"};
#define N_METHODS 8
static const int STATUSES[] = {200, 201, 204, 400, 401, 403, 404, 405, 408,
                               409, 413, 415, 422, 429, 500, 503, 504, 0};
#define N_STATUSES 18 /* the last one (0) is "other" */

struct api_metrics {
    int n_routes; /* slot n_routes is "unmatched" */
    _Atomic unsigned long long requests[API_METRICS_MAX_ROUTES + 1][N_METHODS][N_STATUSES];
    cw_histogram latency[API_METRICS_MAX_ROUTES + 1];
    _Atomic unsigned long long total;
};

api_metrics *api_metrics_create(int n_routes)
{
    if (n_routes < 0 || n_routes > API_METRICS_MAX_ROUTES)
        return NULL;
    api_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->n_routes = n_routes;
    for (int i = 0; i <= API_METRICS_MAX_ROUTES; i++)
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
    int r = route < 0 || route >= m->n_routes ? m->n_routes : route;
    atomic_fetch_add_explicit(&m->requests[r][method_index(method)][status_index(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->total, 1, memory_order_relaxed);
    cw_histogram_observe(&m->latency[r], seconds);
}

unsigned long long api_metrics_requests(api_metrics *m)
{
    return atomic_load(&m->total);
}

void api_metrics_render(api_metrics *m, cw_strbuf *b, api_metrics_route_label label)
{
    char labels[192];

    cw_metric_header(b, "chainwatch_http_requests_total", "counter",
                     "HTTP requests by method, route (pattern, never the raw path) and status.");
    for (int r = 0; r <= m->n_routes; r++)
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
                         METHODS[me], r < m->n_routes ? label(r) : "unmatched", status);
                cw_metric_sample(b, "chainwatch_http_requests_total", labels, (double) v);
            }
    cw_metric_header(b, "chainwatch_http_request_duration_seconds", "histogram",
                     "Time from routing to the response being written, by route.");
    for (int r = 0; r <= m->n_routes; r++) {
        if (!atomic_load(&m->latency[r].count))
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\"", r < m->n_routes ? label(r) : "unmatched");
        cw_histogram_render(b, "chainwatch_http_request_duration_seconds", labels, &m->latency[r]);
    }
}
