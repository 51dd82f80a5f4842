/* ingestor/src/txn.h — one batch's database transaction: BEGIN, three COPYs, commit_batch, COMMIT
 */
#ifndef INGESTOR_TXN_H
#define INGESTOR_TXN_H

#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "batch.h"
#include "model.h"
#include "retry.h"

/* one partition's offsets in a batch: [first, next) */
typedef struct offset_range {
    int32_t partition;
    int64_t first, next;
} offset_range;

/* the partitions of a batch and their ranges, in order of first appearance; scratch owned by one
 * writer (slot is indexed by partition number and grows to the highest one seen) */
typedef struct range_set {
    offset_range *r;
    int n, cap;
    int32_t *slot; /* -1 = no range yet */
    size_t n_slot;
} range_set;

/* range_set_of fills rs with b's ranges; -1 on ENOMEM (rs is then empty) */
int range_set_of(range_set *rs, const batch *b);
void range_set_free(range_set *rs);

/*
 * Load slots: at most COPY_CONCURRENCY writers stream their transactions COPY at once (see the
 * design note in txn.c). Shared by the writers; limited is false when every writer may load.
 */
typedef struct load_slots {
    sem_t sem;
    bool limited;
} load_slots;

int load_slots_init(load_slots *s, long slots, int writers, char *err, size_t errlen);
void load_slots_destroy(load_slots *s);

/* what a transaction needs besides the batch */
typedef struct txn_env {
    PGconn *conn;
    const char *group, *topic;
    load_slots *slots;
    int writer_id; /* for the debug timing line */
} txn_env;

/*
 * txn_commit runs b's transaction once with the ranges rs (computed from b) and the model it was
 * scored with. ATTEMPT_OK: committed, counts filled. Otherwise why says what failed (classified by
 * retry_classify) and the transaction is ended (rolled back, or the connection is gone).
 */
attempt_result txn_commit(const txn_env *e, batch *b, const loaded_model *m, const range_set *rs,
                          batch_counts *counts, pg_failure *why);

/* txn_failure fills why from a failed result (or from the connection when res is NULL) */
void txn_failure(PGconn *conn, const PGresult *res, pg_failure *why);

#endif /* INGESTOR_TXN_H */
