/* apiserver/src/api_metrics.h — HTTP request counters and latency histograms by route; the /metrics
 * page */
#ifndef API_METRICS_H
#define API_METRICS_H

typedef struct api_metrics api_metrics;

/* api_metrics_create: counters for the routes of routes.c plus one "unmatched" route */
api_metrics *api_metrics_create(void);
void api_metrics_destroy(api_metrics *m);
/* api_metrics_observe counts one request (route -1: no route matched); lock-free */
void api_metrics_observe(api_metrics *m, int route, const char *method, int status, double seconds);
/* requests served so far (the periodic stats line) */
unsigned long long api_metrics_requests(api_metrics *m);

#endif /* API_METRICS_H */
