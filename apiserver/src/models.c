/* apiserver/src/models.c — the model registry: list, get (cached), train, activate, roll back
 * (admin)
 *
 * Model metadata is cached under the registry generation (chainwatch.registry_state, bumped by a
 * trigger in the same transaction as every change to chainwatch.models and notified on
 * chainwatch_models), so a cached list or model never predates a committed training or
 * activation, however long CACHE_TTL_MODEL is.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "listener.h"
#include "params.h"
#include "strbuf.h"

/* fetch runs one read of the registry (cached under key when the generation is known) and sends
 * the first column of its first row, wrapped as {"data": ...} when wrap */
static int fetch(api_request *req, sql_stmt stmt, const char *param, const char *what, bool wrap)
{
    api_app *app = req->app;
    listener_state ls;
    cache_fill fill = {0};
    cache_result cr = CACHE_BYPASS;
    char key[128], *val;
    size_t vlen;

    listener_get(app->listener, &ls);
    if (ls.valid) {
        snprintf(key, sizeof(key), "e%u:models:r%lld:%s", ls.ext_oid,
                 (long long) ls.registry_generation, param ? param : "all");
        cr = cache_get(app->cache, CACHE_MODEL, key, &val, &vlen, &fill);
        if (cr == CACHE_HIT)
            return api_serve_hit(req, val, vlen);
    } else {
        cache_count(app->cache, CACHE_MODEL, CACHE_BYPASS);
    }
    req->x_cache = cache_result_name(cr);
    int st;
    PGresult *r = api_query(req, stmt, param ? 1 : 0, (const char *[]){param}, &st);
    if (!r) {
        cache_abandon(app->cache, &fill);
        return st;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        cache_abandon(app->cache, &fill);
        return api_error(req, 404, "not_found", "no model %s", what);
    }
    cw_strbuf b = CW_STRBUF_INIT;
    if (wrap)
        cw_strbuf_printf(&b, "{\"data\":%s}", PQgetvalue(r, 0, 0));
    else
        cw_strbuf_puts(&b, PQgetvalue(r, 0, 0));
    PQclear(r);
    if (b.oom) {
        cache_abandon(app->cache, &fill);
        cw_strbuf_free(&b);
        return api_error(req, 500, "internal", "out of memory");
    }
    cache_put(app->cache, &fill, b.data, b.len, -1);
    st = api_json(req, 200, b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}

int models_list(api_request *req)
{
    param_error pe;
    if (params_only(req->query, (const char *const[]){NULL}, &pe) != 0)
        return api_error(req, 400, "invalid_parameter", "%s: %s", pe.param, pe.message);
    return fetch(req, SQL_MODEL_LIST, NULL, "", true);
}

int models_get(api_request *req)
{
    int id;
    if (!params_positive_int(req->params[0], &id))
        return api_error(req, 400, "invalid_parameter", "id: expected a positive integer model id");
    return fetch(req, SQL_MODEL_GET, req->params[0], req->params[0], false);
}

/* run_write runs a registry change and then sends the model it names (status on success); when
 * activates, that model is now the active one and predictions switch to it at once */
static int run_write(api_request *req, sql_stmt stmt, int nparams, const char *const *values,
                     int status, bool activates)
{
    api_app *app = req->app;
    db_error e = {0};
    db_conn *c = db_acquire(app->db, app->cfg->request_timeout_ms / 2, true, &e);
    if (!c)
        return api_db_error(req, &e);
    PGresult *r = db_exec(app->db, c, stmt, nparams, values, false, &e);
    if (!r) {
        db_release(app->db, c);
        return api_db_error(req, &e);
    }
    char id[16];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = db_exec(app->db, c, SQL_MODEL_GET, 1, (const char *[]){id}, true, &e);
    db_release(app->db, c);
    if (!r)
        return api_db_error(req, &e);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_error(req, 500, "internal", "model %s vanished", id);
    }
    /* our own change is visible to our next request even before its notification arrives */
    listener_raise_registry(app->listener, strtoll(PQgetvalue(r, 0, 1), NULL, 10));
    if (activates)
        listener_set_active_model(app->listener, atoi(id));
    int st = api_json(req, status, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    PQclear(r);
    return st;
}

int models_activate(api_request *req)
{
    int id;
    if (!params_positive_int(req->params[0], &id))
        return api_error(req, 400, "invalid_parameter", "id: expected a positive integer model id");
    return run_write(req, SQL_MODEL_ACTIVATE, 1, (const char *[]){req->params[0]}, 200, true);
}

int models_rollback(api_request *req)
{
    return run_write(req, SQL_MODEL_ROLLBACK, 0, NULL, 200, true);
}

/* int_field reads an optional integer member in [lo, hi]; false (400 sent) when invalid */
static bool int_field(api_request *req, const cJSON *o, const char *name, long lo, long hi,
                      long *out, int *st)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!f)
        return true;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) || f->valuedouble < lo ||
        f->valuedouble > hi) {
        *st = api_error(req, 400, "invalid_parameter", "%s: expected an integer in [%ld, %ld]",
                        name, lo, hi);
        return false;
    }
    *out = (long) f->valuedouble;
    return true;
}

int models_train(api_request *req)
{
    static const char *const known[] = {"name",          "n_trees",  "sample_size",
                                        "contamination", "seed",     "transform",
                                        "window",        "activate", NULL};
    long n_trees = 100, sample_size = 256, seed = 42, window = 0;
    double contamination = 0.01;
    const char *transform = "log1p";
    bool activate = false;
    int st = 0;
    cJSON *o = req->body ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;

    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return api_error(req, 400, "invalid_body", "body: a JSON object is required");
    }
    /* cJSON passes bytes through: refuse what Postgres would refuse, in our words */
    if (strlen(req->body) != req->body_len || !params_utf8_valid(req->body)) {
        cJSON_Delete(o);
        return api_error(req, 400, "invalid_body", "body: not valid UTF-8 text");
    }
    for (const cJSON *f = o->child; f; f = f->next) {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok |= f->string && !strcmp(f->string, *k);
        if (!ok) {
            st = api_error(req, 400, "invalid_parameter", "%s: unknown field",
                           f->string ? f->string : "?");
            goto done;
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(name) || !*name->valuestring || strlen(name->valuestring) > 200) {
        st = api_error(req, 400, "invalid_parameter", "name: a non-empty string is required");
        goto done;
    }
    if (!int_field(req, o, "n_trees", 1, 1000, &n_trees, &st) ||
        !int_field(req, o, "sample_size", 2, 1000000, &sample_size, &st) ||
        !int_field(req, o, "seed", 0, 2147483647L, &seed, &st))
        goto done;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "contamination");
    if (f) {
        if (!cJSON_IsNumber(f) || !(f->valuedouble > 0 && f->valuedouble <= 0.5)) {
            st = api_error(req, 400, "invalid_parameter", "contamination: expected (0, 0.5]");
            goto done;
        }
        contamination = f->valuedouble;
    }
    f = cJSON_GetObjectItemCaseSensitive(o, "transform");
    if (f) {
        if (!cJSON_IsString(f) ||
            (strcmp(f->valuestring, "log1p") && strcmp(f->valuestring, "identity"))) {
            st = api_error(req, 400, "invalid_parameter", "transform: expected log1p or identity");
            goto done;
        }
        transform = f->valuestring;
    }
    f = cJSON_GetObjectItemCaseSensitive(o, "window");
    if (f && !(cJSON_IsString(f) && params_parse_window(f->valuestring, &window) == 0) &&
        !int_field(req, o, "window", 1, 365L * 86400, &window, &st))
        goto done;
    f = cJSON_GetObjectItemCaseSensitive(o, "activate");
    if (f) {
        if (!cJSON_IsBool(f)) {
            st = api_error(req, 400, "invalid_parameter", "activate: expected true or false");
            goto done;
        }
        activate = cJSON_IsTrue(f);
    }
    char a[5][32];
    snprintf(a[0], sizeof(a[0]), "%ld", n_trees);
    snprintf(a[1], sizeof(a[1]), "%ld", sample_size);
    snprintf(a[2], sizeof(a[2]), "%.17g", contamination);
    snprintf(a[3], sizeof(a[3]), "%ld", seed);
    snprintf(a[4], sizeof(a[4]), "%ld", window);
    const char *values[8] = {
        name->valuestring,          a[0], a[1], a[2], a[3], transform, window ? a[4] : NULL,
        activate ? "true" : "false"};
    st = run_write(req, SQL_MODEL_TRAIN, 8, values, 201, activate);
done:
    cJSON_Delete(o);
    return st;
}
