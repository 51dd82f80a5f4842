/* apiserver/src/api_metrics.h — request counters and latency histograms by route, method and
 * status; no HTTP layer, no route table (the /metrics page is metrics_page.c) */
#ifndef API_METRICS_H
#define API_METRICS_H

#include "strbuf.h"

#define API_METRICS_MAX_ROUTES 32

typedef struct api_metrics api_metrics;

/* api_metrics_route_label: the label value of route r (0 .. n_routes-1) */
typedef const char *(*api_metrics_route_label)(int r);

/* api_metrics_create: counters for n_routes routes plus one "unmatched"; NULL when out of memory
 * or n_routes is not 0 .. API_METRICS_MAX_ROUTES. The caller owns it (api_metrics_destroy). */
api_metrics *api_metrics_create(int n_routes);
void api_metrics_destroy(api_metrics *m);
/* api_metrics_observe counts one request (route -1 or out of range: "unmatched"); lock-free, any
 * thread */
void api_metrics_observe(api_metrics *m, int route, const char *method, int status, double seconds);
/* api_metrics_requests: requests counted so far (the periodic stats line) */
unsigned long long api_metrics_requests(api_metrics *m);
/* api_metrics_render appends chainwatch_http_requests_total and
 * chainwatch_http_request_duration_seconds to b in Prometheus text, naming route r by label(r) */
void api_metrics_render(api_metrics *m, cw_strbuf *b, api_metrics_route_label label);

#endif /* API_METRICS_H */
