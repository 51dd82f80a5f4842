/* fuzz/fuzz_config.c — libFuzzer target: the daemons' settings parser (flags from arbitrary argv)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_cfg {
    long n;
    char *s;
    bool b;
} fuzz_cfg;

static const cw_setting table[] = {
    {"FUZZ_NUMBER", CW_CFG_INT, "5", 1, 1000, offsetof(fuzz_cfg, n), 0, "a number"},
    {"FUZZ_TEXT", CW_CFG_STRING, "x", 0, 0, offsetof(fuzz_cfg, s), 0, "a string"},
    {"FUZZ_FLAG", CW_CFG_BOOL, "false", 0, 0, offsetof(fuzz_cfg, b), 0, "a switch"},
};

/* LLVMFuzzerTestOneInput splits the input at NULs into argv and loads the settings from it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char *argv[64];
    int argc = 1;
    fuzz_cfg cfg;
    char err[256];

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[0] = "fuzz";
    for (size_t i = 0; i <= size && argc < 63;) {
        argv[argc++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    argv[argc] = NULL;
    memset(&cfg, 0, sizeof(cfg));
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w"); /* --help prints */
    int rc = cw_config_load(table, 3, &cfg, argc, argv, "fuzz", err, sizeof(err));
    fclose(stdout);
    stdout = saved;
    if (rc == 0 && (cfg.n < 1 || cfg.n > 1000 || !cfg.s))
        abort();
    cw_config_free(table, 3, &cfg);
    free(copy);
    return 0;
}
