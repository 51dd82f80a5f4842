/* apiserver/src/predict.c — POST /api/v1/predict and /predict/batch: score transactions with the
 * active model
 *
 * Bodies are decoded by cw_tx_decode, so every format the ingestor accepts is accepted here
 * (Etherscan txlist, JSON-RPC, the legacy shape), with exact wei amounts. Scoring is done by the
 * extension (chainwatch.score / score_batch, the reference implementation; for a model over
 * behaviour/1, chainwatch.features and score_vector, the code the ingestor runs) in one round trip
 * per request: a batch of up to 1000 goes as six array parameters.
 *
 * Caching: a single prediction is cached under the active model id, the transaction hash and a
 * digest of its amounts (a different body with the same hash is a different entry). Activating
 * another model changes the id in every key, which is how activation invalidates predictions
 * (the listener learns the new id from chainwatch_model at commit; this process also sets it
 * itself when it activates). A result computed with a model other than the one in the key is not
 * stored. Batches are not cached (BYPASS).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "listener.h"
#include "sha256.h"
#include "strbuf.h"
#include "txdecode.h"

#define BATCH_MAX 1000

/* json_number appends PG's float8 text, or null when it is not a JSON number */
static void json_number(cw_strbuf *b, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*v && !*end && isfinite(d))
        cw_strbuf_puts(b, v);
    else
        cw_strbuf_puts(b, "null");
}

/* result_json appends one prediction object from row i of r (columns of cw_predict) */
static void result_json(cw_strbuf *b, const cw_tx *tx, PGresult *r, int i)
{
    cw_strbuf_puts(b, "{\"hash\":");
    cw_strbuf_json_string(b, tx->hash, strlen(tx->hash));
    cw_strbuf_puts(b, ",\"score\":");
    json_number(b, PQgetvalue(r, i, 2));
    cw_strbuf_printf(b, ",\"is_anomaly\":%s,\"severity\":",
                     !strcmp(PQgetvalue(r, i, 3), "t") ? "true" : "false");
    if (PQgetisnull(r, i, 4))
        cw_strbuf_puts(b, "null");
    else
        cw_strbuf_printf(b, "\"%s\"", PQgetvalue(r, i, 4));
    cw_strbuf_puts(b, ",\"threshold\":");
    json_number(b, PQgetvalue(r, i, 1));
    cw_strbuf_printf(b, ",\"model_id\":%s,\"explanation\":", PQgetvalue(r, i, 0));
    /* jsonb's own text: valid JSON, as explain() built it */
    cw_strbuf_puts(b, PQgetisnull(r, i, 5) ? "null" : PQgetvalue(r, i, 5));
    cw_strbuf_putc(b, '}');
}

/* decode_body decodes the request body; returns 0 or the status of the error already sent */
static int decode_body(api_request *req, cw_tx **txs, size_t *n)
{
    cw_decode_error err = {0};
    if (!req->body || req->body_len == 0)
        return api_error(req, 400, "invalid_body", "body: a JSON transaction is required");
    if (cw_tx_decode(req->body, req->body_len, (size_t) req->app->cfg->max_body_bytes, txs, n,
                     &err) != 0)
        return api_error(req, 400, "invalid_transaction", "body: %s (%s)", err.message,
                         cw_decode_reason_name(err.reason));
    return 0;
}

static bool body_is_array(const api_request *req)
{
    const char *p = req->body;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return *p == '[';
}

int predict_one(api_request *req)
{
    api_app *app = req->app;
    cw_tx *tx = NULL;
    size_t n = 0;
    int st;
    listener_state ls;
    cache_fill fill = {0};
    cache_result cr = CACHE_BYPASS;
    char key[192], amounts[3 * CW_WEI_DEC_MAX + 2 * 43 + 32], digest[CW_SHA256_HEX_LEN];
    char *val;
    size_t vlen;

    if ((st = decode_body(req, &tx, &n)) != 0)
        return st;
    if (n != 1 || body_is_array(req)) {
        free(tx);
        return api_error(req, 400, "invalid_body",
                         "body: one transaction object expected (use /api/v1/predict/batch for "
                         "several)");
    }
    listener_get(app->listener, &ls);
    if (ls.valid && ls.active_model > 0) {
        /* the addresses and time too: a model over behaviour/1 scores them (a cached prediction
         * holds the profiles as they were, for the prediction cache's TTL) */
        snprintf(amounts, sizeof(amounts), "%s|%s|%s|%s|%s|%lld", tx->value, tx->gas, tx->gas_price,
                 tx->from, tx->to, (long long) tx->timestamp);
        cw_sha256_hex(amounts, strlen(amounts), digest);
        snprintf(key, sizeof(key), "e%u:predict:m%d:%s:%.16s", ls.ext_oid, ls.active_model,
                 tx->hash, digest);
        cr = cache_get(app->cache, CACHE_PREDICTION, key, &val, &vlen, &fill);
        if (cr == CACHE_HIT) {
            free(tx);
            return api_serve_hit(req, val, vlen);
        }
    } else {
        cache_count(app->cache, CACHE_PREDICTION, CACHE_BYPASS);
    }
    req->x_cache = cache_result_name(cr);
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long) tx->timestamp);
    PGresult *r = api_query(
        req, SQL_PREDICT, 6,
        (const char *[]){tx->value, tx->gas, tx->gas_price, tx->from[0] ? tx->from : NULL,
                         tx->to[0] ? tx->to : NULL, cw_tx_time_known(tx->timestamp) ? ts : NULL},
        &st);
    if (!r) {
        free(tx);
        cache_abandon(app->cache, &fill);
        return st;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        free(tx);
        cache_abandon(app->cache, &fill);
        return api_error(
            req, 503, "no_active_model",
            "no model is active: train one (POST /api/v1/models/train) and activate it");
    }
    cw_strbuf b = CW_STRBUF_INIT;
    result_json(&b, tx, r, 0);
    if (atoi(PQgetvalue(r, 0, 0)) == ls.active_model && !b.oom)
        cache_put(app->cache, &fill, b.data, b.len, -1);
    else
        cache_abandon(app->cache, &fill);
    PQclear(r);
    free(tx);
    st = b.oom ? api_error(req, 500, "internal", "out of memory")
               : api_json(req, 200, b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}

int predict_batch(api_request *req)
{
    api_app *app = req->app;
    cw_tx *txs = NULL;
    size_t n = 0;
    int st;

    if ((st = decode_body(req, &txs, &n)) != 0)
        return st;
    if (n == 0 || n > BATCH_MAX) {
        free(txs);
        return api_error(req, 400, "invalid_body", "body: between 1 and %d transactions expected",
                         BATCH_MAX);
    }
    /* six array literals: amounts, addresses (hex, or NULL when absent) and times */
    cw_strbuf av[6] = {CW_STRBUF_INIT, CW_STRBUF_INIT, CW_STRBUF_INIT,
                       CW_STRBUF_INIT, CW_STRBUF_INIT, CW_STRBUF_INIT};
    for (int k = 0; k < 6; k++)
        cw_strbuf_putc(&av[k], '{');
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? "," : "";
        cw_strbuf_printf(&av[0], "%s%s", sep, txs[i].value);
        cw_strbuf_printf(&av[1], "%s%s", sep, txs[i].gas);
        cw_strbuf_printf(&av[2], "%s%s", sep, txs[i].gas_price);
        cw_strbuf_printf(&av[3], "%s%s", sep, txs[i].from[0] ? txs[i].from : "NULL");
        cw_strbuf_printf(&av[4], "%s%s", sep, txs[i].to[0] ? txs[i].to : "NULL");
        if (cw_tx_time_known(txs[i].timestamp))
            cw_strbuf_printf(&av[5], "%s%lld", sep, (long long) txs[i].timestamp);
        else
            cw_strbuf_printf(&av[5], "%sNULL", sep);
    }
    for (int k = 0; k < 6; k++)
        cw_strbuf_putc(&av[k], '}');
    db_error e = {0};
    PGresult *r = NULL;
    db_conn *c = NULL;
    bool oom = false;
    for (int k = 0; k < 6; k++)
        oom = oom || av[k].oom;
    if (!oom && (c = db_acquire(app->db, app->cfg->request_timeout_ms / 2, true, &e)) != NULL) {
        r = db_exec(app->db, c, SQL_PREDICT_BATCH, 6,
                    (const char *[]){av[0].data, av[1].data, av[2].data, av[3].data, av[4].data,
                                     av[5].data},
                    true, &e);
        db_release(app->db, c);
    } else if (!c && e.status == DB_OK) {
        e.status = DB_FAILED;
        snprintf(e.message, sizeof(e.message), "out of memory");
    }
    for (int k = 0; k < 6; k++)
        cw_strbuf_free(&av[k]);
    if (!r) {
        free(txs);
        return api_db_error(req, &e);
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        free(txs);
        return api_error(
            req, 503, "no_active_model",
            "no model is active: train one (POST /api/v1/models/train) and activate it");
    }
    if ((size_t) PQntuples(r) != n) {
        PQclear(r);
        free(txs);
        return api_error(req, 500, "internal", "scored %d of %zu transactions", PQntuples(r), n);
    }
    cw_strbuf b = CW_STRBUF_INIT;
    cw_strbuf_printf(&b, "{\"model_id\":%s,\"threshold\":", PQgetvalue(r, 0, 0));
    json_number(&b, PQgetvalue(r, 0, 1));
    cw_strbuf_printf(&b, ",\"count\":%zu,\"results\":[", n);
    for (size_t i = 0; i < n; i++) {
        if (i)
            cw_strbuf_putc(&b, ',');
        result_json(&b, &txs[i], r, (int) i);
    }
    cw_strbuf_puts(&b, "]}");
    PQclear(r);
    free(txs);
    st = b.oom ? api_error(req, 500, "internal", "out of memory")
               : api_json(req, 200, b.data, b.len);
    cw_strbuf_free(&b);
    return st;
}
