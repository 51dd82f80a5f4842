/* ingestor/src/settings.h — the ingestor's configuration (one table in settings.c) */
#ifndef INGESTOR_SETTINGS_H
#define INGESTOR_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

/* who runs chainwatch.maintain() (MAINTENANCE_MODE; see maintenance.c) */
typedef enum maintenance_mode {
    MAINTENANCE_AUTO, /* the maintenance thread, while no `chainwatch maintenance` worker is seen */
    MAINTENANCE_THREAD, /* the maintenance thread, always */
    MAINTENANCE_OFF,    /* never this process (the server's worker or pg_cron does) */
} maintenance_mode;

typedef struct ingestor_settings {
    char *kafka_bootstrap_servers;
    char *kafka_topic;
    char *kafka_group_id;
    long kafka_num_worker_threads;
    long kafka_max_queue_size;
    long kafka_session_timeout_ms;
    long kafka_max_poll_interval_ms;
    char *kafka_auto_offset_reset;
    char *database_url;
    long batch_size;
    long batch_flush_ms;
    long copy_concurrency;
    long max_message_bytes;
    long metrics_port;
    char *metrics_bind;
    char *log_level;
    char *log_format;
    char *log_file;
    long shutdown_timeout_ms;
    long maintenance_interval_ms;
    char *maintenance_mode;       /* as given */
    maintenance_mode maintenance; /* parsed by settings_load */
    bool drain;
} ingestor_settings;

/* settings_load reads defaults, env and argv; 0 ok, 1 --help printed, -1 error (err filled) */
int settings_load(ingestor_settings *s, int argc, char **argv, char *err, size_t errlen);
void settings_free(ingestor_settings *s);

#endif /* INGESTOR_SETTINGS_H */
