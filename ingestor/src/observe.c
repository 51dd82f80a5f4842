/* ingestor/src/observe.c — /metrics, /health/live, /health/ready on METRICS_PORT and the periodic
 * stats line */
#include "observe.h"

#include <stdio.h>
#include <string.h>

#include <civetweb.h>

#include "http.h"
#include "log.h"
#include "model.h"
#include "monoclock.h"

static struct mg_context *http_ctx;
static observe_sources sources; /* copied by observe_start, read by the handlers */

/* threads_active: the running poll and writer threads */
static int threads_active(const observe_sources *src)
{
    return (atomic_load(&src->poller->running) ? 1 : 0) + atomic_load(&src->writers->running);
}

/* metrics_handler renders the Prometheus page (names documented in docs/ingestor.md) */
static int metrics_handler(struct mg_connection *conn, void *data)
{
    const observe_sources *src = data;
    ingest_stats *st = src->stats;
    cw_strbuf b = CW_STRBUF_INIT;
    char labels[128];

    cw_metric_header(&b, "chainwatch_ingest_messages_total", "counter",
                     "Kafka messages handled, by outcome");
    cw_metric_sample(&b, "chainwatch_ingest_messages_total", "status=\"ok\"",
                     (double) atomic_load(&st->messages_ok));
    cw_metric_sample(&b, "chainwatch_ingest_messages_total", "status=\"dead_letter\"",
                     (double) atomic_load(&st->messages_dead));
    cw_metric_sample(&b, "chainwatch_ingest_messages_total", "status=\"skipped\"",
                     (double) atomic_load(&st->messages_skipped));
    cw_metric_sample(&b, "chainwatch_ingest_messages_total", "status=\"dropped\"",
                     (double) atomic_load(&st->messages_dropped));
    cw_metric_header(&b, "chainwatch_ingest_rows_total", "counter",
                     "Transactions stored in chainwatch.transactions");
    cw_metric_sample(&b, "chainwatch_ingest_rows_total", NULL, (double) atomic_load(&st->rows));
    cw_metric_header(&b, "chainwatch_ingest_unscored_rows_total", "counter",
                     "Transactions stored with a NULL score, by reason");
    cw_metric_sample(&b, "chainwatch_ingest_unscored_rows_total", "reason=\"no_model\"",
                     (double) atomic_load(&st->unscored_rows[UNSCORED_NO_MODEL]));
    cw_metric_sample(&b, "chainwatch_ingest_unscored_rows_total", "reason=\"unusable_model\"",
                     (double) atomic_load(&st->unscored_rows[UNSCORED_UNUSABLE_MODEL]));
    cw_metric_header(
        &b, "chainwatch_ingest_model_usable", "gauge",
        "0 while the active model cannot be used by the ingestor (rows stored unscored), "
        "else 1");
    cw_metric_sample(&b, "chainwatch_ingest_model_usable", NULL,
                     atomic_load(&st->unusable_model) ? 0 : 1);
    cw_metric_header(&b, "chainwatch_anomalies_detected_total", "counter",
                     "Anomalies stored, by severity");
    for (int s = 0; s < N_SEVERITIES; s++) {
        snprintf(labels, sizeof(labels), "severity=\"%s\"", severity_names[s]);
        cw_metric_sample(&b, "chainwatch_anomalies_detected_total", labels,
                         (double) atomic_load(&st->anomalies[s]));
    }
    cw_metric_header(&b, "chainwatch_dead_letters_total", "counter",
                     "Messages stored in chainwatch.dead_letters, by reason");
    for (int r = 1; r < N_DEAD_REASONS; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"",
                 r == DEAD_REASON_DB_REJECTED ? "db_rejected"
                                              : cw_decode_reason_name((cw_decode_reason) r));
        cw_metric_sample(&b, "chainwatch_dead_letters_total", labels,
                         (double) atomic_load(&st->dead_letters[r]));
    }
    cw_metric_header(&b, "chainwatch_ingest_batch_duration_seconds", "histogram",
                     "Time from a batch's first attempt to its commit");
    cw_histogram_render(&b, "chainwatch_ingest_batch_duration_seconds", NULL, &st->batch_duration);
    cw_metric_header(&b, "chainwatch_ingest_db_errors_total", "counter",
                     "Failed database attempts (retried)");
    cw_metric_sample(&b, "chainwatch_ingest_db_errors_total", NULL,
                     (double) atomic_load(&st->db_errors));
    cw_metric_header(&b, "chainwatch_ingest_fetch_nudges_total", "counter",
                     "Times librdkafka's stalled fetchers were woken after the prefetch drained");
    cw_metric_sample(&b, "chainwatch_ingest_fetch_nudges_total", NULL,
                     (double) poller_nudges(src->poller));
    cw_metric_header(&b, "chainwatch_kafka_consumer_lag", "gauge",
                     "Messages in the partition not yet stored in Postgres");
    int32_t limit = partitions_limit(src->parts);
    for (int32_t p = 0; p < limit; p++) {
        int64_t lag;
        if (!partitions_lag(src->parts, p, &lag))
            continue;
        snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", src->cfg->kafka_topic, p);
        cw_metric_sample(&b, "chainwatch_kafka_consumer_lag", labels, (double) lag);
    }
    cw_metric_header(&b, "chainwatch_ingest_queue_messages", "gauge",
                     "Messages queued between the poll thread and the writers");
    cw_metric_sample(&b, "chainwatch_ingest_queue_messages", NULL,
                     (double) writers_queued(src->writers));
    cw_metric_header(&b, "chainwatch_ingest_threads_active", "gauge",
                     "Running poll and writer threads");
    cw_metric_sample(&b, "chainwatch_ingest_threads_active", NULL, (double) threads_active(src));
    cw_metric_header(&b, "chainwatch_ingest_partitions_assigned", "gauge",
                     "Partitions this member owns");
    cw_metric_sample(&b, "chainwatch_ingest_partitions_assigned", NULL,
                     (double) partitions_owned_count(src->parts));
    cw_metric_header(
        &b, "chainwatch_store_rows", "gauge",
        "Rows in a managed table (chainwatch.status(), refreshed every maintenance tick)");
    const maintenance *mt = src->maint;
    int n_store = atomic_load(&mt->n_store);
    for (int i = 0; i < n_store; i++) {
        snprintf(labels, sizeof(labels), "table=\"%s\"", mt->store[i].table);
        cw_metric_sample(&b, "chainwatch_store_rows", labels,
                         (double) atomic_load(&mt->store[i].rows));
    }
    cw_metric_header(&b, "chainwatch_store_max_rows", "gauge", "Row bound of a managed table");
    for (int i = 0; i < n_store; i++) {
        snprintf(labels, sizeof(labels), "table=\"%s\"", mt->store[i].table);
        cw_metric_sample(&b, "chainwatch_store_max_rows", labels,
                         (double) atomic_load(&mt->store[i].max_rows));
    }
    cw_metric_header(&b, "chainwatch_store_evictions_total", "counter",
                     "Rows evicted from a managed table, by reason (ttl, size)");
    for (int i = 0; i < n_store; i++) {
        snprintf(labels, sizeof(labels), "table=\"%s\",reason=\"ttl\"", mt->store[i].table);
        cw_metric_sample(&b, "chainwatch_store_evictions_total", labels,
                         (double) atomic_load(&mt->store[i].evicted_ttl));
        snprintf(labels, sizeof(labels), "table=\"%s\",reason=\"size\"", mt->store[i].table);
        cw_metric_sample(&b, "chainwatch_store_evictions_total", labels,
                         (double) atomic_load(&mt->store[i].evicted_size));
    }
    cw_metric_header(&b, "chainwatch_db_up", "gauge", "1 when the last database attempt worked");
    cw_metric_sample(&b, "chainwatch_db_up", NULL, atomic_load(&st->db_up) ? 1 : 0);

    if (b.oom)
        return cw_http_send(conn, 500, "text/plain", "out of memory\n", 14, NULL);
    cw_http_send(conn, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
    cw_strbuf_free(&b);
    return 200;
}

static int live_handler(struct mg_connection *conn, void *data)
{
    const observe_sources *src = data;
    bool alive = cw_mono_ms() - atomic_load(&src->stats->heartbeat_ms) < 5000;
    const char *body = alive ? "{\"status\":\"ok\"}" : "{\"status\":\"stalled\"}";
    return cw_http_send(conn, alive ? 200 : 503, "application/json", body, strlen(body), NULL);
}

/*
 * ready_handler: ready when consuming (assigned or waiting for an assignment), Postgres reachable,
 * not stopping, and the active model usable. While the active model cannot be used by the ingestor
 * the rows are still stored (unscored, see docs/ingestor.md), but nothing is scored, which an
 * operator must fix: readiness says so with "reason" and the model's id. With no model active at
 * all (a cold start) rows are stored unscored too and the ingestor is ready: that is the normal
 * first state.
 */
static int ready_handler(struct mg_connection *conn, void *data)
{
    const observe_sources *src = data;
    bool consumer = atomic_load(&src->poller->running);
    bool db = atomic_load(&src->stats->db_up);
    bool stopping = atomic_load(&src->stats->shutting_down);
    int unusable = atomic_load(&src->stats->unusable_model);
    bool ready = consumer && db && !stopping && !unusable;
    const char *reason = stopping    ? "shutting down"
                         : !consumer ? "the Kafka consumer is not running"
                         : !db       ? "Postgres is unreachable"
                         : unusable  ? "the active model cannot be used: rows are stored unscored"
                                     : "";
    char body[448], model[64];
    if (unusable)
        snprintf(model, sizeof(model), "\"unusable\",\"unusable_model_id\":%d", unusable);
    else
        snprintf(model, sizeof(model), "\"ok\"");
    int n = snprintf(body, sizeof(body),
                     "{\"ready\":%s,\"consumer\":%s,\"postgres\":%s,\"shutting_down\":%s,"
                     "\"partitions\":%d,\"model\":%s%s%s%s}",
                     ready ? "true" : "false", consumer ? "true" : "false", db ? "true" : "false",
                     stopping ? "true" : "false", partitions_owned_count(src->parts), model,
                     *reason ? ",\"reason\":\"" : "", reason, *reason ? "\"" : "");
    return cw_http_send(conn, ready ? 200 : 503, "application/json", body, (size_t) n, NULL);
}

int observe_start(const observe_sources *src, char *err, size_t errlen)
{
    char ports[128];
    struct mg_callbacks callbacks;

    sources = *src;
    if (src->cfg->metrics_port == 0)
        return 0;
    snprintf(ports, sizeof(ports), "%s:%ld", src->cfg->metrics_bind, src->cfg->metrics_port);
    const char *options[] = {
        "listening_ports",    ports,   "num_threads", "4", "enable_keep_alive", "yes",
        "request_timeout_ms", "10000", NULL};
    memset(&callbacks, 0, sizeof(callbacks));
    mg_init_library(0);
    http_ctx = mg_start(&callbacks, NULL, options);
    if (!http_ctx) {
        snprintf(err, errlen, "cannot listen on %s for metrics (METRICS_PORT)", ports);
        return -1;
    }
    cw_http_no_file_auth(http_ctx);
    mg_set_request_handler(http_ctx, "/metrics$", metrics_handler, &sources);
    mg_set_request_handler(http_ctx, "/health/live$", live_handler, &sources);
    mg_set_request_handler(http_ctx, "/health/ready$", ready_handler, &sources);
    return 0;
}

void observe_stop(void)
{
    if (http_ctx) {
        mg_stop(http_ctx);
        http_ctx = NULL;
        mg_exit_library();
    }
}

/* observe_log_stats logs one line of rates since the previous call (every 10 s from main) */
void observe_log_stats(const observe_sources *src)
{
    static uint64_t last_msgs, last_rows;
    static int64_t last_ms;
    ingest_stats *st = src->stats;
    uint64_t msgs = atomic_load(&st->messages_ok) + atomic_load(&st->messages_dead);
    uint64_t rows = atomic_load(&st->rows);
    uint64_t anomalies = 0;
    int64_t t = cw_mono_ms(), lag = 0;
    double secs = last_ms ? (double) (t - last_ms) / 1000.0 : 0;

    for (int s = 0; s < N_SEVERITIES; s++)
        anomalies += atomic_load(&st->anomalies[s]);
    int32_t limit = partitions_limit(src->parts);
    for (int32_t p = 0; p < limit; p++) {
        int64_t one;
        if (partitions_lag(src->parts, p, &one))
            lag += one;
    }
    log_info("stats: %.0f msg/s, %.0f rows/s, %llu messages (%llu dead letters, %llu skipped, "
             "%llu given up), %llu anomalies, lag %lld, queue %zu, partitions %d, db %s, db errors "
             "%llu",
             secs > 0 ? (double) (msgs - last_msgs) / secs : 0,
             secs > 0 ? (double) (rows - last_rows) / secs : 0, (unsigned long long) msgs,
             (unsigned long long) atomic_load(&st->messages_dead),
             (unsigned long long) atomic_load(&st->messages_skipped),
             (unsigned long long) atomic_load(&st->messages_dropped),
             (unsigned long long) anomalies, (long long) lag, writers_queued(src->writers),
             partitions_owned_count(src->parts), atomic_load(&st->db_up) ? "up" : "down",
             (unsigned long long) atomic_load(&st->db_errors));
    last_msgs = msgs;
    last_rows = rows;
    last_ms = t;
}
