/* common/src/pgconn.c — the daemons' one way to open a PostgreSQL connection (timeouts,
 * keepalives, TCP user timeout) */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

PGconn *cw_pg_connect(const cw_pg_params *p, char *err, size_t errlen)
{
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", p->connect_timeout_s > 0 ? p->connect_timeout_s : 5);

    /* the defaults come before dbname, so the URL's own parameters override them; the
     * application name and options come after it: they are the daemon's */
    const char *keys[] = {"connect_timeout",  "keepalives",
                          "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout",
                          "dbname",           "application_name",
                          "options",          NULL};
    const char *vals[] = {timeout,
                          "1",
                          CW_PG_KEEPALIVES_IDLE_S,
                          CW_PG_KEEPALIVES_INTERVAL_S,
                          CW_PG_KEEPALIVES_COUNT,
                          CW_PG_TCP_USER_TIMEOUT_MS,
                          p->url,
                          p->application_name,
                          p->options,
                          NULL};
    if (!p->options)
        keys[8] = NULL; /* no options: end the list there */

    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(err, errlen, "%.*s", (int) strcspn(msg, "\n"), msg);
    PQfinish(conn);
    return NULL;
}
