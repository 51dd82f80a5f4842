/* apiserver/src/auth.c — API keys: extraction, verification by chainwatch.authenticate_api_key,
 * caching
 *
 * Design. Only Postgres decides whether a key is valid (SHA-256 digests in chainwatch.api_keys,
 * checked by a SECURITY DEFINER function, so this process never sees the digests table). Asking for
 * every request would put a round trip (and a possible last_used_at write) in front of every
 * cached response, so a positive answer is remembered for AUTH_CACHE_S seconds, keyed by the key's
 * SHA-256 (the key itself is never stored, logged or exported). Revocation is still immediate:
 * revoke_api_key() notifies chainwatch_api_keys, the listener bumps its auth epoch, and entries
 * from an older epoch are ignored. Expiry is honoured within AUTH_CACHE_S. Negative answers are
 * not cached; callers rate-limit unknown keys by IP before verifying them.
 */
#include "auth.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>

#include "listener.h"

#define AUTH_CACHE_S 15
#define AUTH_SLOTS   1024
#define MAX_KEY_LEN  256

typedef struct auth_entry {
    char digest[CW_SHA256_HEX_LEN];
    api_role role;
    uint64_t epoch;
    time_t until;
} auth_entry;

struct auth_cache {
    pthread_rwlock_t lock;
    listener *listener;
    auth_entry slots[AUTH_SLOTS];
};

auth_cache *auth_create(listener *l)
{
    auth_cache *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    pthread_rwlock_init(&a->lock, NULL);
    a->listener = l;
    return a;
}

void auth_destroy(auth_cache *a)
{
    if (!a)
        return;
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

const char *auth_key_from_request(struct mg_connection *conn)
{
    const char *k = mg_get_header(conn, "X-API-Key");
    if (k && *k)
        return strlen(k) <= MAX_KEY_LEN ? k : "";
    k = mg_get_header(conn, "Authorization");
    if (k && strncasecmp(k, "Bearer ", 7) == 0) {
        k += 7;
        while (*k == ' ')
            k++;
        return strlen(k) <= MAX_KEY_LEN ? k : "";
    }
    return NULL;
}

static unsigned slot_of(const char *digest)
{
    return (unsigned) strtoul((char[9]){digest[0], digest[1], digest[2], digest[3], digest[4],
                                        digest[5], digest[6], digest[7], 0},
                              NULL, 16) %
           AUTH_SLOTS;
}

api_role auth_cached(auth_cache *a, const char digest[CW_SHA256_HEX_LEN])
{
    const auth_entry *e = &a->slots[slot_of(digest)];
    api_role role = ROLE_NONE;
    uint64_t epoch = listener_auth_epoch(a->listener);

    pthread_rwlock_rdlock(&a->lock);
    if (e->epoch == epoch && e->until > time(NULL) && !memcmp(e->digest, digest, 64))
        role = e->role;
    pthread_rwlock_unlock(&a->lock);
    return role;
}

int auth_verify(auth_cache *a, db_pool *db, long wait_ms, const char *key,
                const char digest[CW_SHA256_HEX_LEN], api_role *role, db_error *e)
{
    /* the epoch is read before asking, so a revocation racing with this check wins */
    uint64_t epoch = listener_auth_epoch(a->listener);
    db_conn *c = db_acquire(db, wait_ms, true, e);
    PGresult *r;

    *role = ROLE_NONE;
    if (!c)
        return -1;
    r = db_exec(db, c, SQL_AUTH, 1, (const char *[]){key}, true, e);
    db_release(db, c);
    if (!r)
        return e->status == DB_INVALID ? 0 : -1; /* e.g. a key that is not valid UTF-8 */
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        const char *v = PQgetvalue(r, 0, 0);
        *role = !strcmp(v, "admin") ? ROLE_ADMIN : !strcmp(v, "reader") ? ROLE_READER : ROLE_NONE;
    }
    PQclear(r);
    if (*role != ROLE_NONE && listener_connected(a->listener)) {
        auth_entry *s = &a->slots[slot_of(digest)];
        pthread_rwlock_wrlock(&a->lock);
        memcpy(s->digest, digest, CW_SHA256_HEX_LEN);
        s->role = *role;
        s->epoch = epoch;
        s->until = time(NULL) + AUTH_CACHE_S;
        pthread_rwlock_unlock(&a->lock);
    }
    return 0;
}
