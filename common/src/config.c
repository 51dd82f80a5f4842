/* common/src/config.c — settings from defaults, environment and flags through one table; --help
 * from it */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cw_config_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
             !strcasecmp(s, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

/* flag_name writes the --flag form of an env name into buf */
static void flag_name(const char *env, char *buf, size_t len)
{
    size_t i = 0;
    for (; env[i] && i + 1 < len; i++)
        buf[i] = env[i] == '_' ? '-' : (char) tolower((unsigned char) env[i]);
    buf[i] = '\0';
}

/* apply stores text as setting s into cfg; -1 (err filled) when invalid */
static int apply(const cw_setting *s, void *cfg, const char *text, const char *source, char *err,
                 size_t errlen)
{
    char *field = (char *) cfg + s->offset;

    switch (s->type) {
    case CW_CFG_INT:
        if (cw_config_parse_int(text, s->min, s->max, (long *) field) != 0) {
            snprintf(err, errlen, "invalid %s from %s: \"%s\" is not an integer in [%ld, %ld]",
                     s->env, source, text, s->min, s->max);
            return -1;
        }
        return 0;
    case CW_CFG_BOOL:
        if (parse_bool(text, (bool *) field) != 0) {
            snprintf(err, errlen, "invalid %s from %s: \"%s\" is not true/false", s->env, source,
                     text);
            return -1;
        }
        return 0;
    case CW_CFG_STRING: {
        char *copy = strdup(text);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **) field);
        *(char **) field = copy;
        return 0;
    }
    }
    return -1;
}

int cw_config_load(const cw_setting *table, size_t n, void *cfg, int argc, char **argv,
                   const char *usage, char *err, size_t errlen)
{
    bool *seen = calloc(n ? n : 1, sizeof(bool));
    int rc = -1;

    if (!seen) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *env = getenv(table[i].env);
        if (table[i].type == CW_CFG_STRING)
            *(char **) ((char *) cfg + table[i].offset) = NULL;
        if (table[i].def && apply(&table[i], cfg, table[i].def, "default", err, errlen) != 0)
            goto done;
        if (env && *env) {
            if (apply(&table[i], cfg, env, "the environment", err, errlen) != 0)
                goto done;
            seen[i] = true;
        }
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            cw_config_help(stdout, usage, table, n);
            rc = 1;
            goto done;
        }
        if (!strcmp(arg, "--help-markdown")) {
            cw_config_markdown(stdout, table, n);
            rc = 1;
            goto done;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
            goto done;
        }
        const char *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t) (eq - arg - 2) : strlen(arg + 2);
        size_t i;
        char flag[128];
        for (i = 0; i < n; i++) {
            flag_name(table[i].env, flag, sizeof(flag));
            if (strlen(flag) == namelen && strncmp(flag, arg + 2, namelen) == 0)
                break;
        }
        if (i == n) {
            snprintf(err, errlen, "unknown option \"%s\" (see --help)", arg);
            goto done;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && table[i].type == CW_CFG_BOOL)
            value = "true";
        if (!value) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "option --%s needs a value", flag);
                goto done;
            }
            value = argv[++a];
        }
        if (apply(&table[i], cfg, value, "the command line", err, errlen) != 0)
            goto done;
        seen[i] = true;
    }
    for (size_t i = 0; i < n; i++) {
        if ((table[i].flags & CW_CFG_REQUIRED) && !seen[i] && !table[i].def) {
            snprintf(err, errlen, "%s is required (see --help)", table[i].env);
            goto done;
        }
    }
    rc = 0;
done:
    free(seen);
    return rc;
}

void cw_config_help(FILE *out, const char *usage, const cw_setting *table, size_t n)
{
    fprintf(out, "%s\n\nSettings (environment variable, or the flag; a flag wins):\n", usage);
    for (size_t i = 0; i < n; i++) {
        char flag[128];
        const cw_setting *s = &table[i];
        flag_name(s->env, flag, sizeof(flag));
        fprintf(out, "  %-28s --%s%s\n      %s", s->env, flag,
                s->type == CW_CFG_BOOL ? "" : (s->type == CW_CFG_INT ? " N" : " VALUE"), s->help);
        if (s->flags & CW_CFG_REQUIRED)
            fprintf(out, " (required)");
        else if (s->def && !(s->flags & CW_CFG_SECRET))
            fprintf(out, " (default %s)", *s->def ? s->def : "empty");
        if (s->type == CW_CFG_INT)
            fprintf(out, " [%ld..%ld]", s->min, s->max);
        fputc('\n', out);
    }
}

/* md_cell writes text as one markdown table cell: '|' escaped, newlines as spaces */
static void md_cell(FILE *out, const char *text)
{
    for (const char *c = text; *c; c++) {
        if (*c == '|')
            fputs("\\|", out);
        else
            fputc(*c == '\n' ? ' ' : *c, out);
    }
}

void cw_config_markdown(FILE *out, const cw_setting *table, size_t n)
{
    fprintf(out, "| Variable | Flag | Type | Default | Range | Description |\n");
    fprintf(out, "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        char flag[128];
        const cw_setting *s = &table[i];
        flag_name(s->env, flag, sizeof(flag));
        fprintf(out, "| `%s` | `--%s` | %s | ", s->env, flag,
                s->type == CW_CFG_BOOL  ? "boolean"
                : s->type == CW_CFG_INT ? "integer"
                                        : "string");
        if (s->flags & CW_CFG_REQUIRED)
            fputs("required", out);
        else if (s->flags & CW_CFG_SECRET)
            fputs("(secret)", out);
        else if (s->def && *s->def) {
            fputc('`', out);
            md_cell(out, s->def);
            fputc('`', out);
        } else
            fputs(s->def ? "empty" : "unset", out);
        fputs(" | ", out);
        if (s->type == CW_CFG_INT)
            fprintf(out, "%ld..%ld", s->min, s->max);
        fputs(" | ", out);
        md_cell(out, s->help);
        fputs(" |\n", out);
    }
}

void cw_config_free(const cw_setting *table, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == CW_CFG_STRING) {
            char **field = (char **) ((char *) cfg + table[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}
