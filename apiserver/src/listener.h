/* apiserver/src/listener.h — one dedicated connection that LISTENs for generations, model and key
 * changes */
#ifndef API_LISTENER_H
#define API_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct listener listener;

/* a consistent view of what the listener knows; valid is false while it is disconnected */
typedef struct listener_state {
    bool valid;
    uint32_t ext_oid;            /* pg_extension oid of chainwatch: namespaces cache keys */
    int64_t anomaly_generation;  /* chainwatch.ingest_state.anomaly_generation */
    int64_t registry_generation; /* chainwatch.registry_state.generation */
    int32_t active_model;        /* 0: none active */
} listener_state;

/* listener_start connects in a thread of its own (retrying every second); NULL on failure */
listener *listener_start(const char *conninfo, char *err, size_t errlen);
void listener_stop(listener *l);

/* listener_get copies the current state: lock-free, never a mix of two writes (seqlock) */
void listener_get(listener *l, listener_state *out);
/* listener_publish replaces ext_oid and the three values at once (s->valid is ignored: the
 * connection's state is the listener's own); any thread */
void listener_publish(listener *l, const listener_state *s);
/* listener_set_active_model records an activation this process just committed */
void listener_set_active_model(listener *l, int32_t model_id);
/* listener_raise_registry records a registry generation this process just committed */
void listener_raise_registry(listener *l, int64_t generation);
/* listener_auth_epoch changes whenever cached authentications must be dropped (a revocation,
 * or the listener lost its connection and may have missed one) */
uint64_t listener_auth_epoch(listener *l);
/* listener_connected: for /health and logs */
bool listener_connected(listener *l);

#endif /* API_LISTENER_H */
