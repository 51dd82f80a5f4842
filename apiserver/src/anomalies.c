/* apiserver/src/anomalies.c — GET /api/v1/anomalies (filtered, keyset-paginated list) and
 * /anomalies/{hash}
 *
 * Caching (correctness first). A list is cached under a key that contains the anomaly generation
 * (bumped by chainwatch.commit_batch() in every ingest transaction that commits anomalies), read
 * from Postgres after the request arrived (generation.c: one shared query for all concurrent
 * requests), so an anomaly committed before the request is never missing from its answer and a
 * new anomaly changes every list key at once instead of waiting for TTLs. A list entry also never
 * outlives its oldest row: its TTL is capped at the time until the oldest row matching the filter
 * leaves the anomaly TTL, so neither a row nor the total can be served after the row expired.
 * Size-based eviction happens only inside commit_batch(), which bumps the generation as well. When
 * the generation cannot be read, lookups are BYPASS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "generation.h"
#include "listener.h"
#include "params.h"
#include "pgbin.h"
#include "sha256.h"
#include "strbuf.h"

int anomalies_list(api_request *req)
{
    api_app *app = req->app;
    anomaly_query q;
    param_error pe;
    listener_state ls;
    cache_fill fill = {0};
    cache_result cr = CACHE_BYPASS;
    char key[160], canon[256], digest[CW_SHA256_HEX_LEN];
    char *val;
    size_t vlen;

    if (params_parse_anomaly_query(req->query, &q, &pe) != 0)
        return api_error(req, 400, "invalid_parameter", "%s: %s", pe.param, pe.message);
    listener_get(app->listener, &ls);
    int64_t gen;
    if (ls.valid && cache_enabled(app->cache) &&
        generation_fresh(app->generation, app->cfg->request_timeout_ms / 2, &gen) == 0) {
        params_anomaly_query_key(&q, canon, sizeof(canon));
        cw_sha256_hex(canon, strlen(canon), digest);
        snprintf(key, sizeof(key), "e%u:anomalies:g%lld:%.32s", ls.ext_oid, (long long) gen,
                 digest);
        cr = cache_get(app->cache, CACHE_QUERY, key, &val, &vlen, &fill);
        if (cr == CACHE_HIT)
            return api_serve_hit(req, val, vlen);
    } else {
        cache_count(app->cache, CACHE_QUERY, CACHE_BYPASS);
    }
    req->x_cache = cache_result_name(cr);

    char sev[64], since[24], until[24], score[32], cus[24], cid[24], limit[12];
    params_severity_array(q.severities, sev, sizeof(sev));
    snprintf(since, sizeof(since), "%lld", (long long) q.since_us);
    snprintf(until, sizeof(until), "%lld", (long long) q.until_us);
    snprintf(score, sizeof(score), "%.17g", q.min_score);
    snprintf(cus, sizeof(cus), "%lld", (long long) q.cursor_us);
    snprintf(cid, sizeof(cid), "%lld", (long long) q.cursor_id);
    snprintf(limit, sizeof(limit), "%d", q.limit);
    const char *values[8] = {q.severities ? sev : NULL,      q.has_since ? since : NULL,
                             q.has_until ? until : NULL,     q.address[0] ? q.address : NULL,
                             q.has_min_score ? score : NULL, q.has_cursor ? cus : NULL,
                             q.has_cursor ? cid : NULL,      limit};
    int st;
    bool filtered = q.severities || q.has_since || q.has_until || q.address[0] || q.has_min_score;
    PGresult *r = filtered ? api_query(req, SQL_ANOMALY_LIST, 8, values, &st)
                           : api_query(req, SQL_ANOMALY_LIST_ALL, 3, &values[5], &st);
    if (!r) {
        cache_abandon(app->cache, &fill);
        return st;
    }
    /* columns: total, expires_in, then document, detected_at, id (all NULL when the page is
     * empty); the documents are the rows' JSON objects, so the page is their comma-joined list */
    int rows = PQntuples(r) > 0 && !PQgetisnull(r, 0, 2) ? PQntuples(r) : 0;
    bool has_more = rows > q.limit, ok = PQntuples(r) > 0;
    if (has_more)
        rows = q.limit;
    cw_strbuf b = CW_STRBUF_INIT;
    cw_strbuf_puts(&b, "{\"data\":[");
    for (int i = 0; ok && i < rows; i++) {
        if (i)
            cw_strbuf_putc(&b, ',');
        cw_strbuf_append(&b, PQgetvalue(r, i, 2), (size_t) PQgetlength(r, i, 2));
    }
    cw_strbuf_puts(&b, "],\"total\":");
    cw_strbuf_put_int(&b, ok ? pgbin_int(r, 0, 0) : 0);
    cw_strbuf_printf(&b, ",\"limit\":%d,\"next_cursor\":", q.limit);
    int c_at = PQfnumber(r, "detected_at"), c_id = PQfnumber(r, "id");
    if (ok && has_more && c_at >= 0 && c_id >= 0) {
        char cursor[64];
        params_encode_cursor(pgbin_int(r, rows - 1, c_at) + PGBIN_EPOCH_OFFSET_US,
                             pgbin_int(r, rows - 1, c_id), cursor, sizeof(cursor));
        cw_strbuf_printf(&b, "\"%s\"}", cursor);
    } else {
        cw_strbuf_puts(&b, "null}");
    }
    /* empty result: valid until the next generation; else until the oldest row expires */
    long long cap_ms =
        !ok || PQgetisnull(r, 0, 1) ? -1 : (long long) (pgbin_float8(r, 0, 1) * 1000);
    if (cap_ms == 0)
        cap_ms = -2; /* expiring now: do not store */
    PQclear(r);
    if (!ok) {
        cache_abandon(app->cache, &fill);
        cw_strbuf_free(&b);
        return api_error(req, 500, "internal", "unexpected list result from the database");
    }
    if (b.oom) {
        cache_abandon(app->cache, &fill);
        cw_strbuf_free(&b);
        return api_error(req, 500, "internal", "out of memory");
    }
    if (cap_ms == -2)
        cache_abandon(app->cache, &fill);
    else
        cache_put(app->cache, &fill, b.data, b.len, cap_ms);
    st = api_json(req, 200, b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}

int anomalies_get(api_request *req)
{
    api_app *app = req->app;
    char hash[67], key[160];
    listener_state ls;
    cache_fill fill = {0};
    cache_result cr = CACHE_BYPASS;
    char *val;
    size_t vlen;
    param_error pe;

    if (!params_hex_id(req->params[0], 64, hash))
        return api_error(req, 400, "invalid_parameter",
                         "hash: expected a 0x-prefixed 32-byte hex transaction hash");
    if (params_only(req->query, (const char *const[]){NULL}, &pe) != 0)
        return api_error(req, 400, "invalid_parameter", "%s: %s", pe.param, pe.message);
    listener_get(app->listener, &ls);
    int64_t gen;
    if (ls.valid && cache_enabled(app->cache) &&
        generation_fresh(app->generation, app->cfg->request_timeout_ms / 2, &gen) == 0) {
        snprintf(key, sizeof(key), "e%u:anomaly:g%lld:%s", ls.ext_oid, (long long) gen, hash);
        cr = cache_get(app->cache, CACHE_QUERY, key, &val, &vlen, &fill);
        if (cr == CACHE_HIT)
            return api_serve_hit(req, val, vlen);
    } else {
        cache_count(app->cache, CACHE_QUERY, CACHE_BYPASS);
    }
    req->x_cache = cache_result_name(cr);
    int st;
    PGresult *r = api_query(req, SQL_ANOMALY_GET, 1, (const char *[]){hash}, &st);
    if (!r) {
        cache_abandon(app->cache, &fill);
        return st;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        cache_abandon(app->cache, &fill);
        return api_error(req, 404, "not_found", "no anomaly with hash %s within the TTL", hash);
    }
    const char *body = PQgetvalue(r, 0, 0);
    size_t len = strlen(body);
    long long cap_ms = (long long) (strtod(PQgetvalue(r, 0, 1), NULL) * 1000);
    if (cap_ms > 0)
        cache_put(app->cache, &fill, body, len, cap_ms);
    else
        cache_abandon(app->cache, &fill);
    st = api_json(req, 200, body, len);
    PQclear(r);
    return st;
}
