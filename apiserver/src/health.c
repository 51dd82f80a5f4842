/* apiserver/src/health.c — /health/live, /health/ready and /health (per-dependency status with
 * latency)
 *
 * live: the process answers (no dependency is touched, so a slow database never gets the pod
 * killed). ready: Postgres answers, the chainwatch extension is installed at API_MIN_EXTENSION or
 * later (the statements in sql.c read what that version added) and a model is active — what every
 * data endpoint needs. /health: each dependency with its latency; overall "unhealthy" (503) when
 * Postgres is down or the extension missing or too old, "degraded" (200) when Redis is down (the
 * API still answers correctly from Postgres), no model is active or the listener is disconnected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "listener.h"
#include "monoclock.h"
#include "strbuf.h"

#define HEALTH_WAIT_MS 1000

bool api_extension_version_ok(const char *have)
{
    const char *need = API_MIN_EXTENSION;
    for (;;) {
        char *eh, *en;
        if (*have < '0' || *have > '9')
            return false; /* every component starts with a digit */
        unsigned long h = strtoul(have, &eh, 10), n = strtoul(need, &en, 10);
        if (h != n)
            return h > n;
        if (*en == '\0')
            return true; /* equal in every component of need */
        if (*eh != '.')
            return false; /* fewer components: "0.7" is not "0.7.0" */
        have = eh + 1;
        need = en + 1;
    }
}

typedef struct pg_check {
    bool up;
    double latency_ms;
    char ext_version[32]; /* "" when the extension is missing */
    int active_model;     /* 0: none */
    bool has_ingest;
    double ingest_lag_s;
    char error[256];
} pg_check;

/* pg_check_failed records a failed check: /health is unauthenticated, so it says what failed and
 * the log says why */
static void pg_check_failed(pg_check *ck, const db_error *e)
{
    snprintf(ck->error, sizeof(ck->error), "%s",
             e->status == DB_BUSY ? "no free database connection" : "unreachable");
    if (e->status != DB_BUSY)
        api_log_db_detail(e);
}

/* check_postgres fills ck from one pooled connection (no prepared statements needed) */
static void check_postgres(api_app *app, pg_check *ck)
{
    db_error e = {0};
    long long t0 = cw_mono_ns();
    db_conn *c = db_acquire(app->db, HEALTH_WAIT_MS, false, &e);
    PGresult *r;

    memset(ck, 0, sizeof(*ck));
    if (!c) {
        pg_check_failed(ck, &e);
        return;
    }
    r = db_query(
        app->db, c,
        "SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'chainwatch'", &e);
    if (!r) {
        db_release(app->db, c);
        pg_check_failed(ck, &e);
        return;
    }
    ck->up = true;
    ck->latency_ms = (double) (cw_mono_ns() - t0) / 1e6;
    if (PQntuples(r) == 1)
        snprintf(ck->ext_version, sizeof(ck->ext_version), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (ck->ext_version[0]) {
        r = db_query(app->db, c,
                     "SELECT coalesce((SELECT m.id FROM chainwatch.models m WHERE m.is_active), 0),"
                     " extract(epoch FROM now() - i.last_ingest_at)::float8"
                     " FROM chainwatch.ingest_state i",
                     &e);
        if (r && PQntuples(r) == 1) {
            ck->active_model = atoi(PQgetvalue(r, 0, 0));
            ck->has_ingest = !PQgetisnull(r, 0, 1);
            ck->ingest_lag_s = ck->has_ingest ? strtod(PQgetvalue(r, 0, 1), NULL) : 0;
        }
        if (r)
            PQclear(r);
    }
    db_release(app->db, c);
}

int health_live(api_request *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    return api_json(req, 200, body, sizeof(body) - 1);
}

int health_ready(api_request *req)
{
    pg_check ck;
    cw_strbuf b = CW_STRBUF_INIT;
    const char *reason = NULL;

    check_postgres(req->app, &ck);
    if (httpx_draining())
        reason = "shutting down";
    else if (!ck.up)
        reason = "postgres unreachable";
    else if (!ck.ext_version[0])
        reason = "chainwatch extension not installed";
    else if (!api_extension_version_ok(ck.ext_version))
        reason = "chainwatch extension older than " API_MIN_EXTENSION
                 ", which this API needs: update it (sql/bootstrap.sql)";
    else if (ck.active_model == 0)
        reason = "no active model";
    cw_strbuf_printf(&b, "{\"ready\":%s,\"postgres\":%s,\"extension\":", reason ? "false" : "true",
                     ck.up ? "true" : "false");
    if (ck.ext_version[0])
        cw_strbuf_json_string(&b, ck.ext_version, strlen(ck.ext_version));
    else
        cw_strbuf_puts(&b, "null");
    if (ck.active_model)
        cw_strbuf_printf(&b, ",\"active_model_id\":%d", ck.active_model);
    else
        cw_strbuf_puts(&b, ",\"active_model_id\":null");
    if (reason) {
        cw_strbuf_puts(&b, ",\"reason\":");
        cw_strbuf_json_string(&b, reason, strlen(reason));
    }
    cw_strbuf_putc(&b, '}');
    int st = b.oom ? api_error(req, 500, "internal", "out of memory")
                   : api_json(req, reason ? 503 : 200, b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}

int health_full(api_request *req)
{
    api_app *app = req->app;
    pg_check ck;
    cw_strbuf b = CW_STRBUF_INIT;
    double redis_ms = 0;
    const char *redis;
    bool listener_up = listener_connected(app->listener);

    check_postgres(app, &ck);
    if (!cache_enabled(app->cache))
        redis = "disabled";
    else
        redis = cache_ping(app->cache, &redis_ms) == 0 ? "ok" : "down";
    const char *overall = "ok";
    bool ext_ok = ck.ext_version[0] && api_extension_version_ok(ck.ext_version);
    if (!ck.up || !ext_ok)
        overall = "unhealthy";
    else if (!strcmp(redis, "down") || ck.active_model == 0 || !listener_up)
        overall = "degraded";

    cw_strbuf_printf(&b, "{\"status\":\"%s\",\"checks\":{", overall);
    cw_strbuf_printf(&b, "\"postgres\":{\"status\":\"%s\",\"latency_ms\":%.3f",
                     !ck.up              ? "down"
                     : ext_ok            ? "ok"
                     : ck.ext_version[0] ? "extension_outdated"
                                         : "extension_missing",
                     ck.latency_ms);
    if (ck.ext_version[0]) {
        cw_strbuf_puts(&b, ",\"extension_version\":");
        cw_strbuf_json_string(&b, ck.ext_version, strlen(ck.ext_version));
    }
    if (!ck.up) {
        cw_strbuf_puts(&b, ",\"error\":");
        cw_strbuf_json_string(&b, ck.error, strlen(ck.error));
    }
    cw_strbuf_printf(&b, "},\"redis\":{\"status\":\"%s\",\"latency_ms\":%.3f}", redis, redis_ms);
    if (ck.active_model)
        cw_strbuf_printf(&b, ",\"model\":{\"status\":\"ok\",\"active_model_id\":%d}",
                         ck.active_model);
    else
        cw_strbuf_printf(&b, ",\"model\":{\"status\":\"%s\",\"active_model_id\":null}",
                         ck.up ? "none_active" : "unknown");
    if (ck.has_ingest)
        cw_strbuf_printf(&b, ",\"ingest\":{\"status\":\"ok\",\"lag_seconds\":%.3f}",
                         ck.ingest_lag_s);
    else
        cw_strbuf_printf(&b, ",\"ingest\":{\"status\":\"%s\",\"lag_seconds\":null}",
                         ck.up ? "idle" : "unknown");
    cw_strbuf_printf(&b, ",\"listener\":{\"status\":\"%s\"}}}", listener_up ? "ok" : "down");
    int st = b.oom ? api_error(req, 500, "internal", "out of memory")
                   : api_json(req, strcmp(overall, "unhealthy") ? 200 : 503, b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}
