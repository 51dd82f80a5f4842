/* apiserver/src/db.c — the fixed PostgreSQL connection pool: lazy connect, prepared statements,
 * reconnect
 *
 * Design. DB_POOL_SIZE slots are allocated once; a slot's PGconn belongs to whichever thread holds
 * the slot between db_acquire and db_release (a PGconn is not thread-safe). Free slots are handed
 * out first come, first served (slotq.c: a released connection goes straight to the longest
 * waiter, so under load no request is overtaken again and again). Waiting is bounded by the
 * request timeout, after which the request gets 503 "busy" rather than queueing without end.
 *
 * Connections are opened on first use, not at start, so the API comes up (and reports not ready)
 * while Postgres is down, and recovers by itself: a slot whose connection broke is closed and
 * reopened by the next acquirer. To keep a dead database from costing every request a connect
 * timeout, a slot that failed to connect is not retried for DB_RETRY_MS; requests meanwhile get
 * 503 at once. When a statement fails because the server went away (a restart), a retry-safe
 * statement (every read) is run once more on a fresh connection, so a Postgres restart is
 * invisible to readers as soon as the server accepts connections again.
 *
 * Every statement of sql.c is prepared right after connecting (one round trip each, once per
 * connection lifetime); preparing fails when the chainwatch extension is missing or older than
 * API_MIN_EXTENSION (sql.h), which is reported as DB_NO_EXTENSION and retried like a failed
 * connect.
 */
#include "db.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monoclock.h"
#include "pgconn.h"
#include "slotq.h"

#define DB_RETRY_MS          500
#define DB_CONNECT_TIMEOUT_S 3

struct db_pool {
    slotq *free; /* the slots nobody holds */
    db_conn *slots;
    int size;
    _Atomic int in_use;
    char *conninfo;
    char options[128];
};

static void set_error(db_error *e, db_status st, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(db_error *e, db_status st, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    e->status = st;
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate ? sqlstate : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    /* libpq messages end with a newline */
    size_t n = strlen(e->message);
    while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
        e->message[--n] = '\0';
}

db_pool *db_pool_create(const char *conninfo, int size, long statement_timeout_ms, char *err,
                        size_t errlen)
{
    db_pool *p = calloc(1, sizeof(*p));
    if (!p || !(p->slots = calloc((size_t) size, sizeof(db_conn))) ||
        !(p->free = slotq_create(size)) || !(p->conninfo = strdup(conninfo))) {
        snprintf(err, errlen, "out of memory");
        if (p) {
            free(p->slots);
            slotq_destroy(p->free);
            free(p);
        }
        return NULL;
    }
    p->size = size;
    for (int i = 0; i < size; i++)
        p->slots[i].index = i;
    /* force_generic_plan: planning the list query costs more than running it; its generic plan
     * walks the (detected_at, id) index and evaluates the optional "$n IS NULL OR ..." filters */
    snprintf(p->options, sizeof(p->options),
             "-c statement_timeout=%ld -c TimeZone=UTC -c plan_cache_mode=force_generic_plan",
             statement_timeout_ms);
    return p;
}

void db_pool_destroy(db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++)
        if (p->slots[i].pg)
            PQfinish(p->slots[i].pg);
    slotq_destroy(p->free);
    free(p->slots);
    free(p->conninfo);
    free(p);
}

int db_pool_in_use(const db_pool *p)
{
    return atomic_load(&((db_pool *) p)->in_use);
}

int db_pool_size(const db_pool *p)
{
    return p->size;
}

/* classify maps a failed result's SQLSTATE to a db_status and fills e */
static void classify(PGconn *pg, const PGresult *res, db_error *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    db_status st = DB_FAILED;

    if (!msg)
        msg = PQerrorMessage(pg);
    if (PQstatus(pg) == CONNECTION_BAD || !state)
        st = DB_UNAVAILABLE;
    else if (!strcmp(state, "57014"))
        st = DB_TIMEOUT;
    else if (!strcmp(state, "42704"))
        st = DB_NOT_FOUND;
    else if (!strcmp(state, "55000") || !strcmp(state, "23505") || !strcmp(state, "55006"))
        st = DB_CONFLICT;
    else if (!strncmp(state, "22", 2))
        st = DB_INVALID;
    else if (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
             !strcmp(state, "57P03"))
        st = DB_UNAVAILABLE;
    else if (!strcmp(state, "42883") || !strcmp(state, "3F000") || !strcmp(state, "42P01"))
        st = DB_NO_EXTENSION;
    set_error(e, st, state, "%s", msg);
}

/* prepare_all prepares every statement of sql.c on c; 0, or -1 with e filled */
static int prepare_all(db_conn *c, db_error *e)
{
    for (int i = 0; i < SQL_STMT_COUNT; i++) {
        const sql_def *d = &sql_statements[i];
        PGresult *r = PQprepare(c->pg, d->name, d->text, d->nparams, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            classify(c->pg, r, e);
            if (e->status != DB_UNAVAILABLE) {
                /* the statements reference API_MIN_EXTENSION objects: anything but a lost
                 * connection means the extension is missing or too old (copies: set_error
                 * writes e->sqlstate and e->message) */
                char msg[sizeof(e->message)], state[sizeof(e->sqlstate)];
                snprintf(msg, sizeof(msg), "%s", e->message);
                snprintf(state, sizeof(state), "%s", e->sqlstate);
                set_error(e, DB_NO_EXTENSION, state,
                          "the chainwatch extension is missing or older than " API_MIN_EXTENSION
                          ": %s",
                          msg);
            }
            PQclear(r);
            return -1;
        }
        PQclear(r);
    }
    c->prepared = true;
    return 0;
}

/* connect_slot (re)opens c's connection; 0, or -1 with e filled and the retry time set */
static int connect_slot(db_pool *p, db_conn *c, db_error *e)
{
    const cw_pg_params params = {.url = p->conninfo,
                                 .application_name = "chainwatch-api",
                                 .options = p->options,
                                 .connect_timeout_s = DB_CONNECT_TIMEOUT_S};
    char why[sizeof(e->message)];

    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->prepared = false;
    c->pg = cw_pg_connect(&params, why, sizeof(why));
    if (!c->pg) {
        set_error(e, DB_UNAVAILABLE, "08006", "cannot connect to PostgreSQL: %s", why);
        c->retry_at_ns = cw_mono_ns() + DB_RETRY_MS * 1000000LL;
        return -1;
    }
    return 0;
}

/* ensure_ready connects and prepares c as needed, honouring the retry back-off */
static int ensure_ready(db_pool *p, db_conn *c, bool need_prepared, db_error *e)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && (c->prepared || !need_prepared))
        return 0;
    if (cw_mono_ns() < c->retry_at_ns) {
        if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
            set_error(e, DB_NO_EXTENSION, "",
                      "the chainwatch extension is missing or older than " API_MIN_EXTENSION);
        else
            set_error(e, DB_UNAVAILABLE, "08006", "PostgreSQL is unreachable (retrying)");
        return -1;
    }
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        if (connect_slot(p, c, e) != 0)
            return -1;
    }
    if (need_prepared && !c->prepared && prepare_all(c, e) != 0) {
        c->retry_at_ns = cw_mono_ns() + DB_RETRY_MS * 1000000LL;
        return -1;
    }
    c->retry_at_ns = 0;
    return 0;
}

db_conn *db_acquire(db_pool *p, long wait_ms, bool need_prepared, db_error *e)
{
    int slot = slotq_take(p->free, wait_ms);
    if (slot < 0) {
        set_error(e, DB_BUSY, "", "all %d database connections stayed busy for %ld ms", p->size,
                  wait_ms);
        return NULL;
    }
    db_conn *c = &p->slots[slot];
    atomic_fetch_add(&p->in_use, 1);
    if (ensure_ready(p, c, need_prepared, e) != 0) {
        db_release(p, c);
        return NULL;
    }
    return c;
}

void db_release(db_pool *p, db_conn *c)
{
    if (!c)
        return;
    /* a connection left inside a transaction (a failed multi-statement request) is unusable */
    if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->prepared = false;
    }
    atomic_fetch_sub(&p->in_use, 1);
    slotq_give(p->free, c->index);
}

/* result_ok checks r; on failure fills e, clears r and returns false */
static bool result_ok(PGconn *pg, PGresult *r, db_error *e)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return true;
    classify(pg, r, e);
    PQclear(r);
    return false;
}

PGresult *db_exec(db_pool *p, db_conn *c, sql_stmt id, int nparams, const char *const *values,
                  bool retry_safe, db_error *e)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *r = PQexecPrepared(c->pg, sql_statements[id].name, nparams, values, NULL, NULL,
                                     sql_statements[id].binary ? 1 : 0);
        if (result_ok(c->pg, r, e))
            return r;
        if (e->status != DB_UNAVAILABLE || PQstatus(c->pg) != CONNECTION_BAD)
            return NULL;
        log_warn("database connection %d lost (%s); reconnecting", c->index, e->message);
        c->retry_at_ns = 0;
        if (!retry_safe) {
            /* the statement may or may not have run: reconnect for the next user only */
            ensure_ready(p, c, true, &(db_error){0});
            return NULL;
        }
        if (ensure_ready(p, c, true, e) != 0)
            return NULL;
    }
    return NULL;
}

PGresult *db_query(db_pool *p, db_conn *c, const char *sql, db_error *e)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *r = PQexec(c->pg, sql);
        if (result_ok(c->pg, r, e))
            return r;
        if (e->status != DB_UNAVAILABLE || PQstatus(c->pg) != CONNECTION_BAD)
            return NULL;
        c->retry_at_ns = 0;
        if (ensure_ready(p, c, false, e) != 0)
            return NULL;
    }
    return NULL;
}
