/* common/src/metrics.c — Prometheus text format rendering and the atomic histogram */
#include "metrics.h"

#include <math.h>
#include <string.h>

const double cw_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
const int cw_latency_buckets_n = (int) (sizeof(cw_latency_buckets) / sizeof(double));

void cw_histogram_init(cw_histogram *h, const double *bounds, int n)
{
    memset(h, 0, sizeof(*h));
    h->n_bounds = n > CW_HIST_MAX_BUCKETS ? CW_HIST_MAX_BUCKETS : n;
    memcpy(h->bounds, bounds, sizeof(double) * (size_t) h->n_bounds);
}

void cw_histogram_observe(cw_histogram *h, double seconds)
{
    int i = 0;
    while (i < h->n_bounds && seconds > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&h->sum_ns, (uint64_t) llround(seconds * 1e9),
                                  memory_order_relaxed);
}

void cw_metric_header(cw_strbuf *b, const char *name, const char *type, const char *help)
{
    cw_strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void cw_metric_sample(cw_strbuf *b, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        cw_strbuf_printf(b, "%s{%s} %.17g\n", name, labels, value);
    else
        cw_strbuf_printf(b, "%s %.17g\n", name, value);
}

/* cw_histogram_render writes cumulative _bucket lines, _sum and _count. */
void cw_histogram_render(cw_strbuf *b, const char *name, const char *labels, cw_histogram *h)
{
    uint64_t cumulative = 0;
    const char *sep = labels && *labels ? "," : "";
    const char *lab = labels ? labels : "";

    for (int i = 0; i <= h->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n_bounds)
            cw_strbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep, h->bounds[i],
                             (unsigned long long) cumulative);
        else
            cw_strbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
                             (unsigned long long) cumulative);
    }
    if (labels && *labels) {
        cw_strbuf_printf(b, "%s_sum{%s} %.9f\n", name, labels,
                         (double) atomic_load(&h->sum_ns) / 1e9);
        cw_strbuf_printf(b, "%s_count{%s} %llu\n", name, labels,
                         (unsigned long long) atomic_load(&h->count));
    } else {
        cw_strbuf_printf(b, "%s_sum %.9f\n", name, (double) atomic_load(&h->sum_ns) / 1e9);
        cw_strbuf_printf(b, "%s_count %llu\n", name, (unsigned long long) atomic_load(&h->count));
    }
}
