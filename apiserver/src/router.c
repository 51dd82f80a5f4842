/* apiserver/src/router.c — the path matcher: a method and a decoded path against a route table;
 * pure (no I/O, no allocation, no reference to any handler)
 */
#include "router.h"

#include <stdio.h>
#include <string.h>

/*
 * match_pattern compares path with pattern segment by segment; "{x}" takes one non-empty segment.
 * A trailing slash is not the same path. Returns 1 and fills params on a match.
 */
static int match_pattern(const char *pattern, const char *path,
                         char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *n_params)
{
    const char *p = pattern, *s = path;
    int n = 0;

    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t plen = pe ? (size_t) (pe - p) : strlen(p);
        size_t slen = se ? (size_t) (se - s) : strlen(s);
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || slen >= ROUTE_PARAM_MAX || n >= ROUTE_MAX_PARAMS)
                return 0;
            memcpy(params[n], s, slen);
            params[n][slen] = '\0';
            n++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen, s += slen;
    }
    if (*p || *s)
        return 0;
    *n_params = n;
    return 1;
}

/*
 * router_match: see router.h. Two passes over the table, literal patterns first, so a literal
 * segment always beats a parameter whatever the table's order.
 */
int router_match(const api_route *table, int n, const char *method, const char *path,
                 char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *n_params, bool *path_known,
                 char *allow, int allow_len)
{
    char scratch[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
    int found = -1, np = 0, used = 0;

    *path_known = false;
    *n_params = 0;
    if (allow && allow_len > 0)
        allow[0] = '\0';
    /* literal segments win over parameters: /models/train is never /models/{id}, not even
     * for another method (GET /models/train is a 405, not model "train") */
    for (int pass = 0; pass < 2 && found < 0 && !*path_known; pass++) {
        for (int i = 0; i < n; i++) {
            bool has_param = strchr(table[i].pattern, '{') != NULL;
            if (has_param != (pass == 1))
                continue;
            if (!match_pattern(table[i].pattern, path, scratch, &np))
                continue;
            if (strcmp(table[i].method, method) == 0) {
                found = i;
                memcpy(params, scratch, sizeof(scratch));
                *n_params = np;
                break;
            }
            *path_known = true;
            if (allow && used < allow_len && !strstr(allow, table[i].method))
                used += snprintf(allow + used, (size_t) (allow_len - used), "%s%s",
                                 used ? ", " : "", table[i].method);
        }
    }
    if (found >= 0)
        *path_known = true;
    return found;
}
