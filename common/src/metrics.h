/* common/src/metrics.h — Prometheus text exposition helpers and a lock-free histogram */
#ifndef CW_METRICS_H
#define CW_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "strbuf.h"

#define CW_HIST_MAX_BUCKETS 16

/* A histogram of seconds; observe() is lock-free and safe from any thread. */
typedef struct cw_histogram {
    int n_bounds;
    double bounds[CW_HIST_MAX_BUCKETS];
    _Atomic uint64_t counts[CW_HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
} cw_histogram;

/* default latency buckets: 0.5 ms .. 10 s */
extern const double cw_latency_buckets[];
extern const int cw_latency_buckets_n;

void cw_histogram_init(cw_histogram *h, const double *bounds, int n);
void cw_histogram_observe(cw_histogram *h, double seconds);

/* # HELP and # TYPE lines */
void cw_metric_header(cw_strbuf *b, const char *name, const char *type, const char *help);
/* one sample; labels is the inside of {} (e.g. "status=\"ok\"") or NULL */
void cw_metric_sample(cw_strbuf *b, const char *name, const char *labels, double value);
void cw_histogram_render(cw_strbuf *b, const char *name, const char *labels, cw_histogram *h);

#endif /* CW_METRICS_H */
