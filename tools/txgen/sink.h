/* tools/txgen/sink.h — where generated messages go: stdout JSON lines or a Kafka topic */
#ifndef TXGEN_SINK_H
#define TXGEN_SINK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes of the sink calls. */
#define SINK_OK     0
#define SINK_ERR    (-1)
#define SINK_CLOSED 1 /* stdout reader went away (EPIPE): stop quietly */

#define SINK_MAX_CONF 32

struct sink_kafka_config {
    const char *brokers;
    const char *topic;
    const char *conf[SINK_MAX_CONF]; /* extra KEY=VALUE librdkafka properties, applied last */
    int conf_cnt;
    /* Count of SIGINT/SIGTERM seen; a second one abandons queue-full waits and the final
     * flush. Owned by main, read only here. */
    volatile sig_atomic_t *interrupts;
};

struct sink_stats {
    uint64_t emitted;   /* messages handed to the sink */
    uint64_t delivered; /* written to stdout, or acknowledged by the broker */
    uint64_t failed;    /* Kafka delivery failures, including messages still queued at exit */
};

struct sink; /* opaque; see sink.c */

/* sink_open_stdout returns a sink writing JSON lines to fd 1, or NULL with errbuf filled. */
struct sink *sink_open_stdout(char *errbuf, size_t errlen);

/* sink_open_kafka returns a producer sink, or NULL with errbuf filled; *bad_conf is set when
 * the failure is an invalid --kafka-conf property (a usage error). */
struct sink *sink_open_kafka(const struct sink_kafka_config *kc, int *bad_conf, char *errbuf,
                             size_t errlen);

/* sink_buffer returns a buffer with TX_JSON_MAX bytes of room for the next message. It may
 * flush (stdout) first, so it can fail: NULL with *rc set to SINK_ERR or SINK_CLOSED. */
char *sink_buffer(struct sink *s, int *rc, char *errbuf, size_t errlen);

/* sink_emit hands over the len bytes written into the sink_buffer area, keyed by key (Kafka).
 * Returns SINK_OK or SINK_ERR with errbuf filled. */
int sink_emit(struct sink *s, size_t len, const char *key, size_t keylen, char *errbuf,
              size_t errlen);

/* sink_idle is called before the pacer sleeps: stdout flushes what it holds so readers see
 * messages on time, Kafka serves delivery reports. Returns SINK_OK/SINK_ERR/SINK_CLOSED. */
int sink_idle(struct sink *s, char *errbuf, size_t errlen);

/* sink_close flushes (Kafka: waits for every delivery report, at most flush_timeout_ms or
 * until a second signal), fills *st and frees the sink. Returns SINK_OK, or SINK_ERR with
 * errbuf filled if anything could not be written or delivered. */
int sink_close(struct sink *s, int flush_timeout_ms, struct sink_stats *st, char *errbuf,
               size_t errlen);

#endif /* TXGEN_SINK_H */
