/* apiserver/src/stats.c — GET /api/v1/stats: anomalies by severity over a window, the store, ingest
 * progress
 *
 * Not cached (X-Cache: BYPASS): the window slides with the clock and store sizes change with every
 * batch, so any cached copy would be wrong in a way no generation number captures.
 */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "handlers.h"
#include "params.h"

int stats_get(api_request *req)
{
    char name[64], value[64];
    bool too_long;
    long window = 3600;
    const char *q = req->query;

    while (params_next(&q, name, sizeof(name), value, sizeof(value), &too_long)) {
        if (strcmp(name, "window") != 0)
            return api_error(req, 400, "invalid_parameter", "%s: unknown parameter", name);
        if (too_long || params_parse_window(value, &window) != 0)
            return api_error(req, 400, "invalid_parameter",
                             "window: expected seconds or a duration such as 15m, 1h, 7d (at most "
                             "365d)");
    }
    char wtext[24];
    snprintf(wtext, sizeof(wtext), "%ld", window);
    int st;
    PGresult *r = api_query(req, SQL_STATS, 1, (const char *[]){wtext}, &st);
    if (!r)
        return st;
    st = api_json(req, 200, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    PQclear(r);
    return st;
}
