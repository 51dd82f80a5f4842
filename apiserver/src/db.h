/* apiserver/src/db.h — a fixed pool of PostgreSQL connections with prepared statements */
#ifndef API_DB_H
#define API_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "sql.h"

typedef enum db_status {
    DB_OK = 0,
    DB_UNAVAILABLE,  /* cannot connect, or the connection broke: 503 */
    DB_BUSY,         /* no pooled connection freed up within the request timeout: 503 */
    DB_NO_EXTENSION, /* connected, but no chainwatch extension at API_MIN_EXTENSION or later: 503 */
    DB_TIMEOUT,      /* statement_timeout (57014): 504 */
    DB_NOT_FOUND,    /* 42704 (unknown model) */
    DB_CONFLICT,     /* 55000 (no active model, nothing to roll back), 23505 */
    DB_INVALID,      /* class 22 (bad value) or 2201x: 400 */
    DB_FAILED,       /* anything else: 500 */
} db_status;

typedef struct db_error {
    db_status status;
    char sqlstate[6];
    char message[256];
} db_error;

typedef struct db_pool db_pool;

/* a pooled connection: one thread at a time, between db_acquire and db_release */
typedef struct db_conn {
    PGconn *pg;
    bool prepared; /* every statement of sql.h is prepared on this connection */
    long long retry_at_ns;
    int index;
} db_conn;

/*
 * db_pool_create makes a pool of size connections to conninfo. Connections are opened lazily
 * and reopened after a failure, so the API starts (and answers 503) while Postgres is down.
 * statement_timeout_ms is set on every connection. Returns NULL (err filled) on allocation failure.
 */
db_pool *db_pool_create(const char *conninfo, int size, long statement_timeout_ms, char *err,
                        size_t errlen);
void db_pool_destroy(db_pool *p);

/*
 * db_acquire takes a connection, waiting up to wait_ms for one to be released, and makes sure it
 * is connected (need_prepared: and its statements prepared). NULL with e filled when none could
 * be had. The caller must db_release what it got.
 */
db_conn *db_acquire(db_pool *p, long wait_ms, bool need_prepared, db_error *e);
void db_release(db_pool *p, db_conn *c);

/*
 * db_exec runs prepared statement id with text parameters (NULL = SQL NULL). Returns the result
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK; caller PQclear's it) or NULL with e filled. When
 * retry_safe and the connection turns out to be broken (Postgres restarted), it reconnects once
 * and runs the statement again.
 */
PGresult *db_exec(db_pool *p, db_conn *c, sql_stmt id, int nparams, const char *const *values,
                  bool retry_safe, db_error *e);
/* db_query runs an unprepared, parameterless statement (health checks); same contract */
PGresult *db_query(db_pool *p, db_conn *c, const char *sql, db_error *e);

/* connections currently handed out, and the pool size (metrics) */
int db_pool_in_use(const db_pool *p);
int db_pool_size(const db_pool *p);

#endif /* API_DB_H */
