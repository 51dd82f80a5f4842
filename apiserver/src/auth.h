/* apiserver/src/auth.h — API key authentication: key from the request, role from Postgres, short
 * in-process cache */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "router.h"
#include "sha256.h"

struct mg_connection;
struct listener;

typedef struct auth_cache auth_cache;

auth_cache *auth_create(struct listener *l);
void auth_destroy(auth_cache *a);

/*
 * auth_key_from_request finds the key in X-API-Key or "Authorization: Bearer KEY". Returns a
 * pointer into the request headers (valid for the request), or NULL when neither is present.
 */
const char *auth_key_from_request(struct mg_connection *conn);

/* auth_cached: the role of a key validated within the last AUTH_CACHE_S seconds (and not
 * revoked since), or ROLE_NONE when the key must be checked with auth_verify */
api_role auth_cached(auth_cache *a, const char digest[CW_SHA256_HEX_LEN]);

/*
 * auth_verify asks Postgres (chainwatch.authenticate_api_key) for the key's role and caches a
 * valid answer. Returns 0 with *role (ROLE_NONE: invalid key), or -1 with e filled when the
 * database could not answer.
 */
int auth_verify(auth_cache *a, db_pool *db, long wait_ms, const char *key,
                const char digest[CW_SHA256_HEX_LEN], api_role *role, db_error *e);

#endif /* API_AUTH_H */
