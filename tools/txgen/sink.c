/* tools/txgen/sink.c — where generated messages go: stdout JSON lines or a Kafka topic */

/*
 * Design
 *
 * Both sinks let the formatter write straight into sink-owned memory, so the hot loop never
 * allocates: stdout appends to one 1 MiB buffer and write(2)s it when it cannot hold another
 * TX_JSON_MAX bytes; Kafka formats into one scratch buffer that rd_kafka_produce copies
 * (RD_KAFKA_MSG_F_COPY), so the buffer is reusable as soon as produce returns.
 *
 * Kafka: messages are keyed by sender address, so one sender's transactions stay in one
 * partition in nonce order. The producer batches hard (linger.ms 10, 10000 messages per batch,
 * a 1M-message local queue, no compression). When the local queue is full we serve delivery
 * reports (rd_kafka_poll 100 ms) and retry the same message; a second SIGINT/SIGTERM gives up.
 * Delivery reports arrive on the thread that polls, which is always the main thread, so the
 * counters are plain integers. message.timeout.ms defaults to 30 s (not librdkafka's 300 s) so
 * an unreachable broker fails the run in reasonable time. --kafka-conf properties are applied
 * after our defaults and may override them.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "format.h"
#include "monoclock.h"
#include "sink.h"

#define PROG               "chainwatch-txgen"
#define STDOUT_BUF_SIZE    (1024 * 1024)
#define POLL_EVERY         1024 /* serve delivery reports every this many produce calls */
#define MAX_LOGGED_FAILURE 5

enum sink_kind {
    SINK_STDOUT,
    SINK_KAFKA,
};

struct sink {
    enum sink_kind kind;
    struct sink_stats stats;
    /* stdout */
    char *buf;
    size_t used;
    int closed; /* EPIPE seen */
    /* kafka */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    volatile sig_atomic_t *interrupts;
    uint64_t logged_failures;
    char scratch[TX_JSON_MAX];
};

/* sink_open_stdout allocates the line buffer once. */
struct sink *sink_open_stdout(char *errbuf, size_t errlen)
{
    struct sink *s = calloc(1, sizeof(*s));

    if (s)
        s->buf = malloc(STDOUT_BUF_SIZE);
    if (!s || !s->buf) {
        free(s);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->kind = SINK_STDOUT;
    return s;
}

/* stdout_flush writes the whole buffer, retrying short writes and EINTR. */
static int stdout_flush(struct sink *s, char *errbuf, size_t errlen)
{
    size_t off = 0;

    if (s->closed)
        return SINK_CLOSED;
    while (off < s->used) {
        ssize_t n = write(STDOUT_FILENO, s->buf + off, s->used - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE) {
                s->closed = 1;
                return SINK_CLOSED;
            }
            snprintf(errbuf, errlen, "stdout: %s", strerror(errno));
            return SINK_ERR;
        }
        off += (size_t) n;
    }
    s->used = 0;
    return SINK_OK;
}

/* kafka_dr_cb counts each delivery report; it runs inside rd_kafka_poll/flush on main. */
static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct sink *s = opaque;

    (void) rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->stats.delivered++;
        return;
    }
    s->stats.failed++;
    if (s->logged_failures++ < MAX_LOGGED_FAILURE)
        fprintf(stderr, PROG ": delivery failed: %s\n", rd_kafka_err2str(m->err));
}

/* kafka_error_cb logs client-level errors (broker down, fatal errors); librdkafka retries. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void) rk;
    (void) opaque;
    fprintf(stderr, PROG ": kafka: %s: %s\n", rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
}

/* kafka_set sets one property; returns 0 or -1 with errbuf naming the property. */
static int kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                     size_t errlen)
{
    char why[256];

    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "%s=%s: %s", key, value, why);
        return -1;
    }
    return 0;
}

/* sink_open_kafka builds the producer config (our defaults, then --kafka-conf), the producer
 * and the topic handle. */
struct sink *sink_open_kafka(const struct sink_kafka_config *kc, int *bad_conf, char *errbuf,
                             size_t errlen)
{
    static const char *const defaults[][2] = {
        {"client.id", PROG},
        {"linger.ms", "10"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"compression.codec", "none"},
        {"message.timeout.ms", "30000"},
    };
    struct sink *s = calloc(1, sizeof(*s));
    rd_kafka_conf_t *conf;
    char why[512];

    *bad_conf = 0;
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->kind = SINK_KAFKA;
    s->interrupts = kc->interrupts;

    conf = rd_kafka_conf_new();
    if (kafka_set(conf, "bootstrap.servers", kc->brokers, errbuf, errlen) != 0)
        goto fail_conf;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (kafka_set(conf, defaults[i][0], defaults[i][1], errbuf, errlen) != 0)
            goto fail_conf;
    }
    for (int i = 0; i < kc->conf_cnt; i++) {
        char key[256];
        const char *eq = strchr(kc->conf[i], '=');
        size_t klen = eq ? (size_t) (eq - kc->conf[i]) : 0;

        if (!eq || klen == 0 || klen >= sizeof(key)) {
            snprintf(errbuf, errlen, "--kafka-conf '%s': expected KEY=VALUE", kc->conf[i]);
            *bad_conf = 1;
            goto fail_conf;
        }
        memcpy(key, kc->conf[i], klen);
        key[klen] = '\0';
        if (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            snprintf(errbuf, errlen, "--kafka-conf '%s': %s", kc->conf[i], why);
            *bad_conf = 1;
            goto fail_conf;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    rd_kafka_conf_set_opaque(conf, s);

    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!s->rk) {
        snprintf(errbuf, errlen, "cannot create producer: %s", why);
        goto fail_conf;
    }
    /* rd_kafka_new now owns conf. */
    s->rkt = rd_kafka_topic_new(s->rk, kc->topic, NULL);
    if (!s->rkt) {
        snprintf(errbuf, errlen, "topic %s: %s", kc->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(s->rk);
        free(s);
        return NULL;
    }
    return s;

fail_conf:
    rd_kafka_conf_destroy(conf);
    free(s);
    return NULL;
}

/* sink_buffer: stdout flushes when the next message might not fit; Kafka reuses scratch. */
char *sink_buffer(struct sink *s, int *rc, char *errbuf, size_t errlen)
{
    *rc = SINK_OK;
    if (s->kind == SINK_KAFKA)
        return s->scratch;
    if (STDOUT_BUF_SIZE - s->used < TX_JSON_MAX + 1) {
        *rc = stdout_flush(s, errbuf, errlen);
        if (*rc != SINK_OK)
            return NULL;
    }
    return s->buf + s->used;
}

/* kafka_produce copies the message into librdkafka's queue, waiting out QUEUE_FULL. */
static int kafka_produce(struct sink *s, size_t len, const char *key, size_t keylen, char *errbuf,
                         size_t errlen)
{
    for (;;) {
        rd_kafka_resp_err_t err;

        if (rd_kafka_produce(s->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, s->scratch, len,
                             key, keylen, NULL) == 0)
            break;
        err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(errbuf, errlen, "produce: %s", rd_kafka_err2str(err));
            return SINK_ERR;
        }
        if (s->interrupts && *s->interrupts >= 2) {
            snprintf(errbuf, errlen, "produce: local queue full and interrupted twice");
            return SINK_ERR;
        }
        rd_kafka_poll(s->rk, 100);
    }
    if (++s->stats.emitted % POLL_EVERY == 0)
        rd_kafka_poll(s->rk, 0);
    return SINK_OK;
}

/* sink_emit finishes the message the caller formatted into the sink_buffer area. */
int sink_emit(struct sink *s, size_t len, const char *key, size_t keylen, char *errbuf,
              size_t errlen)
{
    if (s->kind == SINK_KAFKA)
        return kafka_produce(s, len, key, keylen, errbuf, errlen);
    s->used += len;
    s->buf[s->used++] = '\n';
    s->stats.emitted++;
    s->stats.delivered++;
    return SINK_OK;
}

/* sink_idle flushes stdout or serves Kafka callbacks before the pacer sleeps. */
int sink_idle(struct sink *s, char *errbuf, size_t errlen)
{
    if (s->kind == SINK_KAFKA) {
        rd_kafka_poll(s->rk, 0);
        return SINK_OK;
    }
    return stdout_flush(s, errbuf, errlen);
}

/* kafka_close flushes in 100 ms steps so a second signal is noticed, then counts whatever is
 * still queued as failed and destroys the producer. */
static int kafka_close(struct sink *s, int flush_timeout_ms, char *errbuf, size_t errlen)
{
    int64_t deadline = cw_mono_ms() + flush_timeout_ms;
    int left;

    while (rd_kafka_outq_len(s->rk) > 0 && cw_mono_ms() < deadline &&
           !(s->interrupts && *s->interrupts >= 2))
        rd_kafka_flush(s->rk, 100);
    left = rd_kafka_outq_len(s->rk);
    rd_kafka_topic_destroy(s->rkt);
    rd_kafka_destroy(s->rk);
    if (left > 0) {
        s->stats.failed += (uint64_t) left;
        snprintf(errbuf, errlen, "%d messages still undelivered at exit", left);
        return SINK_ERR;
    }
    if (s->stats.failed > 0) {
        snprintf(errbuf, errlen, "%llu messages failed delivery",
                 (unsigned long long) s->stats.failed);
        return SINK_ERR;
    }
    return SINK_OK;
}

/* sink_close flushes, reports and frees; the sink is gone afterwards whatever the result. */
int sink_close(struct sink *s, int flush_timeout_ms, struct sink_stats *st, char *errbuf,
               size_t errlen)
{
    int rc;

    if (s->kind == SINK_KAFKA) {
        rc = kafka_close(s, flush_timeout_ms, errbuf, errlen);
    } else {
        rc = stdout_flush(s, errbuf, errlen);
        if (rc == SINK_CLOSED)
            rc = SINK_OK;
        free(s->buf);
    }
    *st = s->stats;
    free(s);
    return rc;
}
