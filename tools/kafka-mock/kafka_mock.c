/* tools/kafka-mock/kafka_mock.c — chainwatch-kafka-mock: a standalone in-memory Kafka broker */

/*
 * Design
 *
 * librdkafka ships a mock cluster (rdkafka_mock.h) that speaks enough of the Kafka protocol for
 * producers, consumers, consumer groups (eager and cooperative-sticky), offset commits and
 * metadata requests; kcat and every librdkafka-based client (including confluent_kafka) work
 * against it. The mock lives inside an rd_kafka_t handle: we create a producer handle that
 * never produces, hang the cluster off it and keep the process alive until SIGTERM/SIGINT.
 *
 * Invariants and limits worth knowing:
 *  - The listeners bind 127.0.0.1 on ephemeral ports chosen by the kernel; the only way to
 *    learn them is the bootstrap list, which we print on stdout (one flushed line) and, with
 *    --bootstrap-file, write atomically (tmp file + rename) so a poller never reads half a list.
 *  - Everything is in memory. Each partition keeps at most ~5 MiB (and 100000 record batches);
 *    older batches are dropped from the head of the log, so the log start offset moves and a
 *    late consumer silently misses them. Large runs need many partitions or paced producers.
 *  - Topics not created with --topic are auto-created (4 partitions) on a producer's metadata
 *    request; consumers with allow.auto.create.topics=false see them as unknown.
 *  - A consumer group join takes about 3 s (the mock's initial rebalance delay). When the
 *    last member of a group leaves, the group's rebalance stays armed for that member's
 *    session.timeout.ms - 1 s, and a new member's join completes only then (44 s with the
 *    librdkafka default of 45 s): tests use session.timeout.ms=6000.
 *  - There is no controller, so the admin API (CreateTopics) times out; use --topic.
 *
 * The signal handler only sets a flag; the main loop sleeps 100 ms between checks, then
 * destroys the cluster (closing every client connection), removes the bootstrap file and
 * exits 0.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PROG            "chainwatch-kafka-mock"
#define MAX_TOPICS      64
#define MAX_BROKERS     16
#define MAX_PARTITIONS  10000
#define MAX_TOPIC_NAME  249
#define DEFAULT_BROKERS 3
#define EXIT_USAGE      2

struct mock_topic {
    char name[MAX_TOPIC_NAME + 1];
    int partitions;
};

struct mock_config {
    int brokers;
    int topic_cnt;
    struct mock_topic topics[MAX_TOPICS];
    const char *bootstrap_file;
    int verbose;
};

/* Set by the signal handler, read by the main loop. */
static volatile sig_atomic_t stop_requested = 0;

/* The option table: getopt_long and --help are both built from it. */
static const struct mock_option {
    const char *name;
    int has_arg;
    int val;
    const char *metavar;
    const char *help;
} mock_options[] = {
    {"brokers", required_argument, 'b', "N", "number of mock brokers, 1..16 (default 3)"},
    {"topic", required_argument, 't', "NAME:PARTITIONS",
     "create a topic (repeatable); replication factor min(3, brokers)"},
    {"bootstrap-file", required_argument, 'f', "PATH",
     "also write the list to PATH (tmp file + rename); removed on exit"},
    {"verbose", no_argument, 'v', NULL, "log the mock cluster's protocol activity (debug=mock)"},
    {"help", no_argument, 'h', NULL, "show this help and exit"},
};

#define N_OPTIONS (sizeof(mock_options) / sizeof(mock_options[0]))

/* mock_usage prints the help text built from mock_options to fp. */
static void mock_usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROG " [OPTION]...\n"
                "Run an in-memory Kafka cluster (librdkafka mock) on 127.0.0.1 until SIGTERM or "
                "SIGINT.\n"
                "The bootstrap list (host:port,...) is printed on stdout as one line.\n\n"
                "Options:\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[64];
        const struct mock_option *o = &mock_options[i];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(fp, "  %-30s %s\n", left, o->help);
    }
    fprintf(fp,
            "\n"
            "Limitations (librdkafka mock cluster):\n"
            "  The broker keeps everything in memory and retains only ~5 MiB (at most 100000\n"
            "  record batches) per partition; older batches are silently dropped from the\n"
            "  head of the log. Large runs need many partitions or paced producers.\n"
            "  Topics not created with --topic are auto-created with 4 partitions.\n"
            "  A consumer group join takes about 3 s. After the last member of a group leaves,\n"
            "  the next join completes only after the departed member's session.timeout.ms\n"
            "  minus 1 s (use session.timeout.ms=6000 in tests). No admin API: create topics\n"
            "  with --topic.\n\n"
            "Exit status: 0 after a clean shutdown, 1 on a runtime error, 2 on invalid "
            "arguments.\n");
}

/* mock_usage_error reports an invalid argument and exits 2. */
static void mock_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" PROG " --help'.\n", stderr);
    exit(EXIT_USAGE);
}

/* parse_int parses a whole decimal string into [lo, hi]; returns 0 or -1. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int) v;
    return 0;
}

/* valid_topic_name follows Kafka's rule: 1..249 chars of [A-Za-z0-9._-], not "." or "..". */
static int valid_topic_name(const char *s, size_t len)
{
    if (len == 0 || len > MAX_TOPIC_NAME)
        return 0;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* parse_topic parses NAME:PARTITIONS into t; returns 0 or -1 with errbuf filled. */
static int parse_topic(const char *arg, struct mock_topic *t, char *errbuf, size_t errlen)
{
    const char *colon = strrchr(arg, ':');
    size_t len;

    if (!colon) {
        snprintf(errbuf, errlen, "--topic '%s': expected NAME:PARTITIONS", arg);
        return -1;
    }
    len = (size_t) (colon - arg);
    if (!valid_topic_name(arg, len)) {
        snprintf(errbuf, errlen,
                 "--topic '%s': invalid topic name (1..249 chars of A-Z a-z 0-9 . _ -)", arg);
        return -1;
    }
    if (parse_int(colon + 1, 1, MAX_PARTITIONS, &t->partitions) != 0) {
        snprintf(errbuf, errlen, "--topic '%s': partitions must be an integer in 1..%d", arg,
                 MAX_PARTITIONS);
        return -1;
    }
    memcpy(t->name, arg, len);
    t->name[len] = '\0';
    return 0;
}

/* mock_parse_args fills cfg from argv; exits 0 for --help and 2 for invalid arguments. */
static void mock_parse_args(int argc, char **argv, struct mock_config *cfg)
{
    struct option longopts[N_OPTIONS + 1];
    char errbuf[512];
    int c;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        longopts[i] = (struct option){mock_options[i].name, mock_options[i].has_arg, NULL,
                                      mock_options[i].val};
    }
    longopts[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};

    memset(cfg, 0, sizeof(*cfg));
    cfg->brokers = DEFAULT_BROKERS;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (parse_int(optarg, 1, MAX_BROKERS, &cfg->brokers) != 0)
                mock_usage_error("--brokers '%s': expected an integer in 1..%d", optarg,
                                 MAX_BROKERS);
            break;
        case 't':
            if (cfg->topic_cnt == MAX_TOPICS)
                mock_usage_error("--topic: at most %d topics", MAX_TOPICS);
            if (parse_topic(optarg, &cfg->topics[cfg->topic_cnt], errbuf, sizeof(errbuf)) != 0)
                mock_usage_error("%s", errbuf);
            for (int i = 0; i < cfg->topic_cnt; i++) {
                if (strcmp(cfg->topics[i].name, cfg->topics[cfg->topic_cnt].name) == 0)
                    mock_usage_error("--topic '%s': topic given twice", optarg);
            }
            cfg->topic_cnt++;
            break;
        case 'f':
            if (*optarg == '\0')
                mock_usage_error("--bootstrap-file: empty path");
            cfg->bootstrap_file = optarg;
            break;
        case 'v':
            cfg->verbose = 1;
            break;
        case 'h':
            mock_usage(stdout);
            exit(0);
        case ':':
            mock_usage_error("option '%s' requires an argument", argv[optind - 1]);
            break;
        default:
            mock_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        mock_usage_error("unexpected argument '%s'", argv[optind]);
}

/* on_signal records a shutdown request; the main loop acts on it. */
static void on_signal(int sig)
{
    (void) sig;
    stop_requested = 1;
}

/* mock_log_cb forwards librdkafka log lines (from any librdkafka thread) to stderr. */
static void mock_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void) rk;
    fprintf(stderr, PROG ": %d %s: %s\n", level, fac, buf);
}

/* write_bootstrap_file writes "list\n" to path via path.tmp.PID + rename, so readers see the
 * whole list or nothing. Returns 0 or -1 with errbuf filled. */
static int write_bootstrap_file(const char *path, const char *list, char *errbuf, size_t errlen)
{
    char tmp[PATH_MAX];
    FILE *fp;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long) getpid()) >= (int) sizeof(tmp)) {
        snprintf(errbuf, errlen, "%s: path too long", path);
        return -1;
    }
    fp = fopen(tmp, "w");
    if (!fp) {
        snprintf(errbuf, errlen, "%s (tmp file): %s", path, strerror(errno));
        return -1;
    }
    if (fprintf(fp, "%s\n", list) < 0 || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        snprintf(errbuf, errlen, "%s (tmp file): write: %s", path, strerror(errno));
        fclose(fp);
        unlink(tmp);
        return -1;
    }
    if (fclose(fp) != 0) {
        snprintf(errbuf, errlen, "%s (tmp file): close: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(errbuf, errlen, "%s: rename from tmp file: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* mock_new_host_handle creates the producer handle that hosts the mock cluster. It never
 * connects anywhere: the client side of the handle has no bootstrap servers. Returns the handle
 * or NULL with errbuf filled. */
static rd_kafka_t *mock_new_host_handle(int verbose, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    rd_kafka_conf_set_log_cb(conf, mock_log_cb);
    /* The host handle has no bootstrap.servers on purpose; that is logged at LOG_NOTICE, so
     * keep warnings and errors only unless --verbose. */
    if (rd_kafka_conf_set(conf, "log_level", verbose ? "7" : "4", errbuf, errlen) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", PROG, errbuf, errlen) != RD_KAFKA_CONF_OK ||
        (verbose && rd_kafka_conf_set(conf, "debug", "mock", errbuf, errlen) != RD_KAFKA_CONF_OK)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* rd_kafka_new now owns conf. */
    return rk;
}

/* mock_create_topics creates every --topic; returns 0 or -1 with errbuf filled. */
static int mock_create_topics(rd_kafka_mock_cluster_t *mcluster, const struct mock_config *cfg,
                              char *errbuf, size_t errlen)
{
    int replication = cfg->brokers < 3 ? cfg->brokers : 3;

    for (int i = 0; i < cfg->topic_cnt; i++) {
        const struct mock_topic *t = &cfg->topics[i];
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mcluster, t->name, t->partitions, replication);
        if (err) {
            snprintf(errbuf, errlen, "create topic %s (%d partitions, replication %d): %s", t->name,
                     t->partitions, replication, rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

/* main starts the cluster, publishes its bootstrap list and waits for a signal. */
int main(int argc, char **argv)
{
    struct mock_config cfg;
    char errbuf[512];
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    const char *bootstraps;
    struct sigaction sa;
    int rc = 0;

    mock_parse_args(argc, argv, &cfg);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rk = mock_new_host_handle(cfg.verbose, errbuf, sizeof(errbuf));
    if (!rk) {
        fprintf(stderr, PROG ": cannot create host handle: %s\n", errbuf);
        return 1;
    }
    mcluster = rd_kafka_mock_cluster_new(rk, cfg.brokers);
    if (!mcluster) {
        fprintf(stderr, PROG ": cannot create mock cluster with %d brokers\n", cfg.brokers);
        rd_kafka_destroy(rk);
        return 1;
    }
    if (mock_create_topics(mcluster, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, PROG ": %s\n", errbuf);
        rc = 1;
        goto out;
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
    if (cfg.bootstrap_file &&
        write_bootstrap_file(cfg.bootstrap_file, bootstraps, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, PROG ": bootstrap file: %s\n", errbuf);
        rc = 1;
        goto out;
    }
    printf("%s\n", bootstraps);
    fflush(stdout);

    while (!stop_requested) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }

    if (cfg.bootstrap_file && unlink(cfg.bootstrap_file) != 0 && errno != ENOENT)
        fprintf(stderr, PROG ": remove %s: %s\n", cfg.bootstrap_file, strerror(errno));

out:
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    return rc;
}
