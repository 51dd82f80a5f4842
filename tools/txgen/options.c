/* tools/txgen/options.c — chainwatch-txgen command line: one table, parsing and --help */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "options.h"

#define PROG "chainwatch-txgen"

/* The option table: getopt_long, validation messages and --help all come from it. */
static const struct txgen_option {
    const char *name;
    int has_arg;
    int val;
    const char *metavar;
    const char *help;
} txgen_options[] = {
    {"count", required_argument, 'n', "N", "messages to generate; 0 = until SIGINT/SIGTERM (1000)"},
    {"rate", required_argument, 'r', "R", "messages per second, paced smoothly; 0 = max (0)"},
    {"seed", required_argument, 's', "S", "PRNG seed; same seed + options = same bytes (1)"},
    {"format", required_argument, 'f', "FMT",
     "etherscan | jsonrpc | ethereum-etl | legacy (etherscan)"},
    {"anomaly-rate", required_argument, 'a', "R",
     "fraction of labelled anomalous transactions, 0..1 (0.01)"},
    {"labels", required_argument, 'l', "FILE", "write anomaly labels as CSV 'hash,kind'"},
    {"start-block", required_argument, 'b', "N", "number of the first block (19000000)"},
    {"brokers", required_argument, 'B', "LIST", "produce to Kafka at LIST instead of stdout"},
    {"topic", required_argument, 't', "NAME", "Kafka topic (required with --brokers)"},
    {"kafka-conf", required_argument, 'X', "KEY=VALUE",
     "extra librdkafka producer property (repeatable)"},
    {"help", no_argument, 'h', NULL, "show this help and exit"},
};

#define N_OPTIONS (sizeof(txgen_options) / sizeof(txgen_options[0]))

/* options_usage prints the table plus the things a user must know about the output. */
void options_usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROG " [OPTION]...\n"
                "Generate realistic Ethereum transactions with labelled anomalies, as JSON lines "
                "on stdout\nor as Kafka messages keyed by sender address.\n\nOptions:\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[64];
        const struct txgen_option *o = &txgen_options[i];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(fp, "  %-26s %s\n", left, o->help);
    }
    fprintf(fp,
            "\nFormats:\n"
            "  etherscan  Etherscan txlist objects, every value a string (decimal numbers,\n"
            "             timeStamp in unix seconds, to \"\" for contract creation)\n"
            "  jsonrpc    eth_getTransactionByHash objects, \"0x\" hex quantities, to null for\n"
            "             creation, type 0x2 (maxFeePerGas, maxPriorityFeePerGas) or 0x0; no "
            "timestamp\n"
            "  legacy     {hash, from, to, value, gas, gasPrice, timestamp, blockNumber}: value a\n"
            "             decimal string, the rest JSON numbers\n"
            "\nAnomaly kinds (labels file, only anomalous transactions are listed):\n"
            "%s"
            "\nThe chain starts at 2024-01-01T00:00:00Z (unix %llu) with ~150 transactions per\n"
            "12 s block; output never depends on the wall clock. With --brokers, delivery is\n"
            "reported on stderr and any failed delivery makes the exit status 1.\n"
            "Exit status: 0 ok, 1 runtime error, 2 invalid arguments.\n",
            chain_kinds_help(), (unsigned long long) CHAIN_GENESIS_TIME);
}

/* parse_u64 accepts a whole decimal (or 0x hex) unsigned integer in [lo, hi]. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* parse_double accepts a whole finite number in [lo, hi]. */
static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* valid_topic_name follows Kafka's rule: 1..249 chars of [A-Za-z0-9._-], not "." or "..". */
static int valid_topic_name(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* options_parse: defaults, then each option validated as it is seen, then cross-checks. */
int options_parse(int argc, char **argv, struct txgen_options *o, char *errbuf, size_t errlen)
{
    struct option longopts[N_OPTIONS + 1];
    int c;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        longopts[i] = (struct option){txgen_options[i].name, txgen_options[i].has_arg, NULL,
                                      txgen_options[i].val};
    }
    longopts[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};

    memset(o, 0, sizeof(*o));
    o->count = 1000;
    o->seed = 1;
    o->format = FORMAT_ETHERSCAN;
    o->anomaly_rate = 0.01;
    o->start_block = CHAIN_DEFAULT_BLOCK;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_u64(optarg, 0, UINT64_MAX, &o->count) != 0) {
                snprintf(errbuf, errlen, "--count '%s': expected a non-negative integer", optarg);
                return OPTIONS_ERR;
            }
            break;
        case 'r':
            if (parse_double(optarg, 0.0, 1e9, &o->rate) != 0) {
                snprintf(errbuf, errlen, "--rate '%s': expected a number in 0..1e9 (msgs/s)",
                         optarg);
                return OPTIONS_ERR;
            }
            break;
        case 's':
            if (parse_u64(optarg, 0, UINT64_MAX, &o->seed) != 0) {
                snprintf(errbuf, errlen, "--seed '%s': expected an unsigned 64-bit integer",
                         optarg);
                return OPTIONS_ERR;
            }
            break;
        case 'f':
            if (format_parse(optarg, &o->format) != 0) {
                snprintf(errbuf, errlen,
                         "--format '%s': expected one of etherscan, jsonrpc, ethereum-etl, legacy",
                         optarg);
                return OPTIONS_ERR;
            }
            break;
        case 'a':
            if (parse_double(optarg, 0.0, 1.0, &o->anomaly_rate) != 0) {
                snprintf(errbuf, errlen, "--anomaly-rate '%s': expected a fraction in 0..1",
                         optarg);
                return OPTIONS_ERR;
            }
            break;
        case 'l':
            if (*optarg == '\0') {
                snprintf(errbuf, errlen, "--labels: empty path");
                return OPTIONS_ERR;
            }
            o->labels = optarg;
            break;
        case 'b':
            if (parse_u64(optarg, 0, 1000000000000ULL, &o->start_block) != 0) {
                snprintf(errbuf, errlen, "--start-block '%s': expected an integer in 0..10^12",
                         optarg);
                return OPTIONS_ERR;
            }
            break;
        case 'B':
            if (*optarg == '\0') {
                snprintf(errbuf, errlen, "--brokers: empty broker list");
                return OPTIONS_ERR;
            }
            o->brokers = optarg;
            break;
        case 't':
            if (!valid_topic_name(optarg)) {
                snprintf(errbuf, errlen,
                         "--topic '%s': invalid topic name (1..249 chars of A-Z a-z 0-9 . _ -)",
                         optarg);
                return OPTIONS_ERR;
            }
            o->topic = optarg;
            break;
        case 'X':
            if (o->kafka_conf_cnt == SINK_MAX_CONF) {
                snprintf(errbuf, errlen, "--kafka-conf: at most %d properties", SINK_MAX_CONF);
                return OPTIONS_ERR;
            }
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                snprintf(errbuf, errlen, "--kafka-conf '%s': expected KEY=VALUE", optarg);
                return OPTIONS_ERR;
            }
            o->kafka_conf[o->kafka_conf_cnt++] = optarg;
            break;
        case 'h':
            options_usage(stdout);
            return OPTIONS_HELP;
        case ':':
            snprintf(errbuf, errlen, "option '%s' requires an argument", argv[optind - 1]);
            return OPTIONS_ERR;
        default:
            snprintf(errbuf, errlen, "unknown option '%s'", argv[optind - 1]);
            return OPTIONS_ERR;
        }
    }
    if (optind < argc) {
        snprintf(errbuf, errlen, "unexpected argument '%s'", argv[optind]);
        return OPTIONS_ERR;
    }
    if (o->brokers && !o->topic) {
        snprintf(errbuf, errlen, "--brokers needs --topic");
        return OPTIONS_ERR;
    }
    if (o->topic && !o->brokers) {
        snprintf(errbuf, errlen, "--topic needs --brokers");
        return OPTIONS_ERR;
    }
    if (o->kafka_conf_cnt > 0 && !o->brokers) {
        snprintf(errbuf, errlen, "--kafka-conf needs --brokers");
        return OPTIONS_ERR;
    }
    return OPTIONS_OK;
}
