/* apiserver/src/transactions.c — GET /api/v1/transactions/{hash}: the stored transaction with its
 * score
 *
 * Not cached (X-Cache: BYPASS): the lookup is one hash-index probe, and transactions are evicted
 * by size without any generation bump, so a cached copy could outlive its row.
 */
#include <string.h>

#include "cache.h"
#include "db.h"
#include "handlers.h"
#include "params.h"

int transactions_get(api_request *req)
{
    char hash[67];
    param_error pe;

    if (!params_hex_id(req->params[0], 64, hash))
        return api_error(req, 400, "invalid_parameter",
                         "hash: expected a 0x-prefixed 32-byte hex transaction hash");
    if (params_only(req->query, (const char *const[]){NULL}, &pe) != 0)
        return api_error(req, 400, "invalid_parameter", "%s: %s", pe.param, pe.message);
    int st;
    PGresult *r = api_query(req, SQL_TX_GET, 1, (const char *[]){hash}, &st);
    if (!r)
        return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return api_error(req, 404, "not_found", "no stored transaction with hash %s", hash);
    }
    st = api_json(req, 200, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    PQclear(r);
    return st;
}
