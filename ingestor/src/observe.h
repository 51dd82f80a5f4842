/* ingestor/src/observe.h — /metrics, /health/live, /health/ready and the periodic stats line */
#ifndef INGESTOR_OBSERVE_H
#define INGESTOR_OBSERVE_H

#include <stddef.h>

#include "maintenance.h"
#include "partitions.h"
#include "poller.h"
#include "settings.h"
#include "stats.h"
#include "writer.h"

/* what the pages read; every pointer outlives the HTTP listener (observe_stop comes first) */
typedef struct observe_sources {
    const ingestor_settings *cfg;
    ingest_stats *stats;
    partitions *parts;
    writer_pool *writers;
    poller *poller;
    maintenance *maint;
} observe_sources;

/* observe_start starts the HTTP listener on METRICS_BIND:METRICS_PORT (none when the port is 0);
 * src is copied */
int observe_start(const observe_sources *src, char *err, size_t errlen);
/* observe_stop stops the listener, waiting for requests in progress */
void observe_stop(void);
/* observe_log_stats logs one line of rates since the previous call (every 10 s from main) */
void observe_log_stats(const observe_sources *src);

#endif /* INGESTOR_OBSERVE_H */
