/* common/src/config.h — one table describes every daemon setting: env name, flag, type, default,
 * range, help */
#ifndef CW_CONFIG_H
#define CW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum cw_cfg_type {
    CW_CFG_INT,    /* long */
    CW_CFG_STRING, /* char * (malloc'd, owned by the config struct; NULL when unset) */
    CW_CFG_BOOL,   /* bool; as a flag it takes no value */
} cw_cfg_type;

#define CW_CFG_SECRET   1u /* never printed (passwords, URLs with credentials) */
#define CW_CFG_REQUIRED 2u /* must be set */

/*
 * A setting is read from its environment variable, then from its flag, so a flag wins. The
 * flag is the env name in lower case with '-' for '_' (BATCH_SIZE → --batch-size).
 */
typedef struct cw_setting {
    const char *env;
    cw_cfg_type type;
    const char *def; /* default as text; NULL: unset */
    long min, max;   /* inclusive range of an integer */
    size_t offset;   /* offsetof(the config struct, field) */
    unsigned flags;
    const char *help;
} cw_setting;

/*
 * cw_config_load fills cfg from defaults, the environment and argv. Returns 0, 1 when --help
 * (or --help-markdown) was printed to stdout (the caller exits 0), or -1 with err naming the
 * setting at fault.
 */
int cw_config_load(const cw_setting *table, size_t n, void *cfg, int argc, char **argv,
                   const char *usage, char *err, size_t errlen);
void cw_config_help(FILE *out, const char *usage, const cw_setting *table, size_t n);
/* cw_config_markdown prints the settings as a markdown table (--help-markdown:
 * docs/configuration.md is generated from it by tools/configuration_doc.py) */
void cw_config_markdown(FILE *out, const cw_setting *table, size_t n);
void cw_config_free(const cw_setting *table, size_t n, void *cfg);
/* cw_config_parse_int parses a whole decimal integer in [min, max]; -1 if invalid */
int cw_config_parse_int(const char *s, long min, long max, long *out);

#endif /* CW_CONFIG_H */
