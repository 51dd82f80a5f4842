/* tools/txgen/options.h — chainwatch-txgen command line: one table, parsing and --help */
#ifndef TXGEN_OPTIONS_H
#define TXGEN_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "format.h"
#include "sink.h"

struct txgen_options {
    uint64_t count; /* 0 = until a signal */
    double rate;    /* messages per second, 0 = as fast as possible */
    uint64_t seed;
    enum tx_format format;
    double anomaly_rate;
    uint64_t start_block;
    const char *labels;  /* NULL = no labels file */
    const char *brokers; /* NULL = stdout */
    const char *topic;
    const char *kafka_conf[SINK_MAX_CONF];
    int kafka_conf_cnt;
};

#define OPTIONS_OK   0
#define OPTIONS_HELP 1 /* --help was printed: exit 0 */
#define OPTIONS_ERR  (-1)

/* options_parse fills o from argv (defaults first). Returns OPTIONS_OK, OPTIONS_HELP, or
 * OPTIONS_ERR with errbuf naming the offending option. */
int options_parse(int argc, char **argv, struct txgen_options *o, char *errbuf, size_t errlen);

/* options_usage prints --help, generated from the option table. */
void options_usage(FILE *fp);

#endif /* TXGEN_OPTIONS_H */
