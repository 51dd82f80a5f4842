/* ingestor/src/settings.c — every ingestor setting: env name, default, range, help (also --help) */
#include "settings.h"

#include <stddef.h>
#include <string.h>

#include "config.h"

#define S(field) offsetof(ingestor_settings, field)

static const cw_setting settings_table[] = {
    {"KAFKA_BOOTSTRAP_SERVERS", CW_CFG_STRING, NULL, 0, 0, S(kafka_bootstrap_servers),
     CW_CFG_REQUIRED, "Kafka bootstrap servers, host:port[,host:port...]"},
    {"KAFKA_TOPIC", CW_CFG_STRING, "blockchain-transactions", 0, 0, S(kafka_topic), 0,
     "Topic to consume"},
    {"KAFKA_GROUP_ID", CW_CFG_STRING, "anomaly-detection-group", 0, 0, S(kafka_group_id), 0,
     "Consumer group; offsets are kept per group in chainwatch.kafka_offsets"},
    {"KAFKA_NUM_WORKER_THREADS", CW_CFG_INT, "4", 1, 64, S(kafka_num_worker_threads), 0,
     "Writer threads, each with its own Postgres connection; partitions are routed by number"},
    {"KAFKA_MAX_QUEUE_SIZE", CW_CFG_INT, "10000", 1, 10000000, S(kafka_max_queue_size), 0,
     "Most messages queued between the poll thread and the writers; partitions pause when full"},
    {"KAFKA_SESSION_TIMEOUT_MS", CW_CFG_INT, "30000", 1000, 3600000, S(kafka_session_timeout_ms), 0,
     "Consumer group session timeout"},
    {"KAFKA_MAX_POLL_INTERVAL_MS", CW_CFG_INT, "300000", 1000, 86400000,
     S(kafka_max_poll_interval_ms), 0, "Consumer max.poll.interval.ms"},
    {"KAFKA_AUTO_OFFSET_RESET", CW_CFG_STRING, "earliest", 0, 0, S(kafka_auto_offset_reset), 0,
     "Where to start a partition with no offset in chainwatch.kafka_offsets (earliest|latest)"},
    {"DATABASE_URL", CW_CFG_STRING, NULL, 0, 0, S(database_url), CW_CFG_REQUIRED | CW_CFG_SECRET,
     "libpq connection string or postgresql:// URL"},
    {"BATCH_SIZE", CW_CFG_INT, "5000", 1, 1000000, S(batch_size), 0,
     "Most messages per database transaction"},
    {"BATCH_FLUSH_MS", CW_CFG_INT, "200", 1, 600000, S(batch_flush_ms), 0,
     "Longest a message waits in a partial batch"},
    {"COPY_CONCURRENCY", CW_CFG_INT, "2", 0, 64, S(copy_concurrency), 0,
     "Most writers loading rows into Postgres at once (0 = all): concurrent loads queue on the "
     "transactions hash index's metapage"},
    {"MAX_MESSAGE_BYTES", CW_CFG_INT, "1048576", 64, 104857600, S(max_message_bytes), 0,
     "Larger messages go to chainwatch.dead_letters (reason too_large)"},
    {"METRICS_PORT", CW_CFG_INT, "9090", 0, 65535, S(metrics_port), 0,
     "Port of /metrics, /health/live and /health/ready (0 = no HTTP listener)"},
    {"METRICS_BIND", CW_CFG_STRING, "0.0.0.0", 0, 0, S(metrics_bind), 0,
     "Address the metrics listener binds"},
    {"LOG_LEVEL", CW_CFG_STRING, "info", 0, 0, S(log_level), 0, "debug, info, warn or error"},
    {"LOG_FORMAT", CW_CFG_STRING, "text", 0, 0, S(log_format), 0, "text or json"},
    {"LOG_FILE", CW_CFG_STRING, NULL, 0, 0, S(log_file), 0,
     "Log to this file instead of stderr (SIGHUP reopens it)"},
    {"SHUTDOWN_TIMEOUT_MS", CW_CFG_INT, "30000", 100, 3600000, S(shutdown_timeout_ms), 0,
     "On SIGTERM, time to flush and commit in-flight batches before exiting anyway"},
    {"MAINTENANCE_INTERVAL_MS", CW_CFG_INT, "10000", 0, 86400000, S(maintenance_interval_ms), 0,
     "Period of the maintenance thread's chainwatch.maintain() (0 = never, whatever "
     "MAINTENANCE_MODE) and of the store gauges"},
    {"MAINTENANCE_MODE", CW_CFG_STRING, "auto", 0, 0, S(maintenance_mode), 0,
     "Who runs chainwatch.maintain(): auto (this ingestor's maintenance thread while no chainwatch "
     "maintenance worker runs in the database), thread (always this ingestor), off (never)"},
    {"DRAIN", CW_CFG_BOOL, "false", 0, 0, S(drain), 0,
     "Consume until every assigned partition is at its end, commit, exit 0 (--drain)"},
};

static const char usage[] =
    "Usage: chainwatch-ingestor [--setting value ...]\n\n"
    "Consumes blockchain transactions from Kafka as a consumer-group member, scores them with the\n"
    "active chainwatch model and loads them into PostgreSQL exactly once (rows and offsets in one\n"
    "transaction). Extra librdkafka properties: KAFKA_CONFIG_<PROPERTY>, e.g.\n"
    "KAFKA_CONFIG_SECURITY_PROTOCOL=SASL_SSL sets security.protocol.\n"
    "Signals: SIGTERM/SIGINT drain and exit (a second one exits at once), SIGHUP reopens the log.";

int settings_load(ingestor_settings *s, int argc, char **argv, char *err, size_t errlen)
{
    int rc;
    memset(s, 0, sizeof(*s));
    rc = cw_config_load(settings_table, sizeof(settings_table) / sizeof(settings_table[0]), s, argc,
                        argv, usage, err, errlen);
    if (rc != 0)
        return rc;
    if (strcmp(s->kafka_auto_offset_reset, "earliest") != 0 &&
        strcmp(s->kafka_auto_offset_reset, "latest") != 0) {
        snprintf(err, errlen, "invalid KAFKA_AUTO_OFFSET_RESET \"%s\": earliest or latest",
                 s->kafka_auto_offset_reset);
        return -1;
    }
    if (strcmp(s->maintenance_mode, "auto") == 0)
        s->maintenance = MAINTENANCE_AUTO;
    else if (strcmp(s->maintenance_mode, "thread") == 0)
        s->maintenance = MAINTENANCE_THREAD;
    else if (strcmp(s->maintenance_mode, "off") == 0)
        s->maintenance = MAINTENANCE_OFF;
    else {
        snprintf(err, errlen, "invalid MAINTENANCE_MODE \"%s\": auto, thread or off",
                 s->maintenance_mode);
        return -1;
    }
    return 0;
}

void settings_free(ingestor_settings *s)
{
    cw_config_free(settings_table, sizeof(settings_table) / sizeof(settings_table[0]), s);
}
