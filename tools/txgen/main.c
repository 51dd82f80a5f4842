/* tools/txgen/main.c — chainwatch-txgen: the generate / format / emit loop, pacing and shutdown */

/*
 * Design
 *
 * One thread does everything: chain_next builds a transaction, format_tx writes it into memory
 * the sink owns, sink_emit hands it on, and an anomalous one gets a line in the labels file.
 * Nothing in the loop allocates.
 *
 * Pacing (--rate R): message i is due at start + i/R. We only sleep when we are at least 1 ms
 * ahead, sleeping to an absolute deadline, so the long-run rate is exact and the short-run
 * jitter stays under a millisecond without a syscall per message. Before sleeping, the sink
 * flushes stdout (readers see messages on time) or serves Kafka delivery reports.
 *
 * Shutdown: SIGINT/SIGTERM only bump a counter. The loop stops at the next message, the sink
 * flushes (Kafka waits up to 30 s for delivery reports) and the summary goes to stderr; a
 * second signal abandons the flush. The exit status is 1 if anything failed to be written or
 * delivered, 0 otherwise (also when a stdout reader went away early: EPIPE ends the run).
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "format.h"
#include "jsonw.h"
#include "monoclock.h"
#include "options.h"
#include "sink.h"

#define PROG             "chainwatch-txgen"
#define EXIT_USAGE       2
#define FLUSH_TIMEOUT_MS 30000
#define PACE_SLACK_NS    1000000LL /* sleep only when at least 1 ms ahead */
#define LABELS_BUF_SIZE  (256 * 1024)

/* SIGINT/SIGTERM count; written by the handler, read by the loop and the Kafka sink. */
static volatile sig_atomic_t interrupts = 0;

/* on_signal records the signal; everything else happens in the main loop. */
static void on_signal(int sig)
{
    (void) sig;
    if (interrupts < 100)
        interrupts++;
}

/* sleep_until sleeps to an absolute CLOCK_MONOTONIC time; a signal cuts it short. */
static void sleep_until(int64_t deadline_ns)
{
    struct timespec ts = {(time_t) (deadline_ns / 1000000000LL),
                          (long) (deadline_ns % 1000000000LL)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* open_labels creates the labels file with its header; returns NULL with errbuf filled. */
static FILE *open_labels(const char *path, char *errbuf, size_t errlen)
{
    FILE *fp = fopen(path, "w");

    if (!fp) {
        snprintf(errbuf, errlen, "--labels %s: %s", path, strerror(errno));
        return NULL;
    }
    setvbuf(fp, NULL, _IOFBF, LABELS_BUF_SIZE);
    fputs("hash,kind\n", fp);
    return fp;
}

/* write_label appends "0x<hash>,<kind>\n" (hand-formatted, like the messages). */
static void write_label(FILE *fp, const struct tx *tx)
{
    char line[128];
    char *p = jw_hexdata(line, tx->hash, sizeof(tx->hash));
    const char *kind = chain_anomaly_name(tx->anomaly);
    size_t klen = strlen(kind);

    *p++ = ',';
    memcpy(p, kind, klen);
    p += klen;
    *p++ = '\n';
    fwrite(line, 1, (size_t) (p - line), fp);
}

/* run_loop generates until --count or a signal; returns SINK_OK, SINK_CLOSED or SINK_ERR. */
static int run_loop(const struct txgen_options *o, struct chain *chain, struct sink *sink,
                    FILE *labels, uint64_t *anomalies, char *errbuf, size_t errlen)
{
    static struct tx tx; /* large (calldata); one instance reused for every message */
    double ns_per_msg = o->rate > 0 ? 1e9 / o->rate : 0;
    int64_t start = cw_mono_ns();
    char key[2 + 40];
    int rc;

    for (uint64_t i = 0; o->count == 0 || i < o->count; i++) {
        char *buf;
        size_t len;

        if (interrupts)
            return SINK_OK;
        if (ns_per_msg > 0) {
            int64_t due = start + (int64_t) ((double) i * ns_per_msg);
            if (due - cw_mono_ns() >= PACE_SLACK_NS) {
                rc = sink_idle(sink, errbuf, errlen);
                if (rc != SINK_OK)
                    return rc;
                sleep_until(due);
                if (interrupts)
                    return SINK_OK;
            }
        }
        chain_next(chain, &tx);
        buf = sink_buffer(sink, &rc, errbuf, errlen);
        if (!buf)
            return rc;
        len = format_tx(o->format, &tx, buf);
        jw_hexdata(key, tx.from, sizeof(tx.from));
        rc = sink_emit(sink, len, key, sizeof(key), errbuf, errlen);
        if (rc != SINK_OK)
            return rc;
        if (tx.anomaly != TX_NORMAL) {
            (*anomalies)++;
            if (labels)
                write_label(labels, &tx);
        }
    }
    return SINK_OK;
}

/* main wires options, chain, sink and labels together and decides the exit status. */
int main(int argc, char **argv)
{
    struct txgen_options opts;
    struct chain_config ccfg;
    struct sink_kafka_config kcfg;
    struct sink_stats stats;
    struct chain *chain;
    struct sink *sink;
    struct sigaction sa;
    FILE *labels = NULL;
    char errbuf[512];
    uint64_t anomalies = 0;
    int64_t t0;
    double secs;
    int rc, status = 0, bad_conf = 0;

    rc = options_parse(argc, argv, &opts, errbuf, sizeof(errbuf));
    if (rc == OPTIONS_HELP)
        return 0;
    if (rc != OPTIONS_OK) {
        fprintf(stderr, PROG ": %s\nTry '" PROG " --help'.\n", errbuf);
        return EXIT_USAGE;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* EPIPE is handled as "reader gone" */

    ccfg = (struct chain_config){opts.seed, opts.start_block, opts.anomaly_rate};
    chain = chain_new(&ccfg, errbuf, sizeof(errbuf));
    if (!chain) {
        fprintf(stderr, PROG ": %s\n", errbuf);
        return 1;
    }

    if (opts.brokers) {
        memset(&kcfg, 0, sizeof(kcfg));
        kcfg.brokers = opts.brokers;
        kcfg.topic = opts.topic;
        memcpy(kcfg.conf, opts.kafka_conf, sizeof(kcfg.conf));
        kcfg.conf_cnt = opts.kafka_conf_cnt;
        kcfg.interrupts = &interrupts;
        sink = sink_open_kafka(&kcfg, &bad_conf, errbuf, sizeof(errbuf));
    } else {
        sink = sink_open_stdout(errbuf, sizeof(errbuf));
    }
    if (!sink) {
        fprintf(stderr, PROG ": %s\n", errbuf);
        chain_free(chain);
        return bad_conf ? EXIT_USAGE : 1;
    }

    if (opts.labels) {
        labels = open_labels(opts.labels, errbuf, sizeof(errbuf));
        if (!labels) {
            fprintf(stderr, PROG ": %s\n", errbuf);
            sink_close(sink, 0, &stats, errbuf, sizeof(errbuf));
            chain_free(chain);
            return 1;
        }
    }

    t0 = cw_mono_ns();
    rc = run_loop(&opts, chain, sink, labels, &anomalies, errbuf, sizeof(errbuf));
    if (rc == SINK_ERR) {
        fprintf(stderr, PROG ": %s\n", errbuf);
        status = 1;
    }
    if (sink_close(sink, FLUSH_TIMEOUT_MS, &stats, errbuf, sizeof(errbuf)) != SINK_OK) {
        fprintf(stderr, PROG ": %s\n", errbuf);
        status = 1;
    }
    secs = (double) (cw_mono_ns() - t0) / 1e9;
    if (labels && fclose(labels) != 0) {
        fprintf(stderr, PROG ": --labels %s: %s\n", opts.labels, strerror(errno));
        status = 1;
    }
    chain_free(chain);

    if (opts.brokers)
        fprintf(stderr,
                PROG ": delivered %llu of %llu messages to topic %s (%llu failed, %llu "
                     "anomalies) in %.2f s (%.0f msg/s)\n",
                (unsigned long long) stats.delivered, (unsigned long long) stats.emitted,
                opts.topic, (unsigned long long) stats.failed, (unsigned long long) anomalies, secs,
                secs > 0 ? (double) stats.delivered / secs : 0.0);
    else
        fprintf(stderr, PROG ": wrote %llu messages (%llu anomalies) in %.2f s (%.0f msg/s)\n",
                (unsigned long long) stats.emitted, (unsigned long long) anomalies, secs,
                secs > 0 ? (double) stats.emitted / secs : 0.0);
    return status;
}
