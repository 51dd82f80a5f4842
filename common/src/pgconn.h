/* common/src/pgconn.h — the daemons' one way to open a PostgreSQL connection */
#ifndef CW_PGCONN_H
#define CW_PGCONN_H

#include <stddef.h>

#include <libpq-fe.h>

/*
 * Defaults every daemon connection gets unless the URL says otherwise (a URL parameter such as
 * ?keepalives_idle=60 or ?tcp_user_timeout=0 wins, because libpq keeps the last value it reads
 * and the URL is read after these):
 *   keepalives on, first probe after 10 s idle, then every 5 s, 3 lost probes end the connection:
 *     a session waiting for an answer from a host that vanished ends within ~25 s;
 *   tcp_user_timeout 30 s: data sent and not acknowledged for that long ends the connection (a
 *     COPY into a host that vanished mid-stream would otherwise wait for TCP's ~15 minutes).
 * A live server that is merely slow answers the probes, so neither ends a long statement.
 */
#define CW_PG_KEEPALIVES_IDLE_S     "10"
#define CW_PG_KEEPALIVES_INTERVAL_S "5"
#define CW_PG_KEEPALIVES_COUNT      "3"
#define CW_PG_TCP_USER_TIMEOUT_MS   "30000"

typedef struct cw_pg_params {
    const char *url;              /* a postgres:// URL or key=value conninfo (required) */
    const char *application_name; /* shown in pg_stat_activity (required) */
    const char *options;          /* libpq "options" (-c name=value ...), or NULL */
    int connect_timeout_s;        /* 0: 5 s */
} cw_pg_params;

/*
 * cw_pg_connect opens a connection with the defaults above. Returns a connection in
 * CONNECTION_OK that the caller owns (PQfinish), or NULL with err holding libpq's reason: its
 * first line only, which names host, port and user and never the password.
 */
PGconn *cw_pg_connect(const cw_pg_params *p, char *err, size_t errlen);

#endif /* CW_PGCONN_H */
