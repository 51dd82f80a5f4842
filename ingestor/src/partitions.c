/* ingestor/src/partitions.c — the partition table: ownership, stored offsets, watermarks, the
 * assignment lock */

/*
 * Design
 * ------
 * A two-level table indexed by partition number: a fixed directory of PARTITIONS_MAX_CHUNKS
 * pointers, each to PARTITIONS_CHUNK entries allocated the first time a partition in its range is
 * taken and kept until partitions_destroy. Readers (writers, the HTTP threads) never lock: they
 * load the chunk pointer (acquire) and the entry's atomics. Only the poll thread takes partitions,
 * so allocation is rare and serialised by grow_lock, and a chunk once published never moves. Any
 * partition count up to PARTITIONS_LIMIT works, including partitions added to the topic while we
 * run, and the memory follows the highest partition number (40 bytes a partition).
 */
#include "partitions.h"

#include <stdlib.h>

/* entry returns p's entry, or NULL when p has none (never taken, or out of range) */
static partition_entry *entry(partitions *ps, int32_t p)
{
    if (p < 0 || p >= PARTITIONS_LIMIT)
        return NULL;
    partition_entry *chunk =
        atomic_load_explicit(&ps->chunks[p / PARTITIONS_CHUNK], memory_order_acquire);
    return chunk ? &chunk[p % PARTITIONS_CHUNK] : NULL;
}

/* entry_create returns p's entry, allocating its chunk if needed; NULL when out of range or
 * memory */
static partition_entry *entry_create(partitions *ps, int32_t p)
{
    partition_entry *e = entry(ps, p);
    if (e || p < 0 || p >= PARTITIONS_LIMIT)
        return e;
    pthread_mutex_lock(&ps->grow_lock);
    partition_entry *chunk = atomic_load(&ps->chunks[p / PARTITIONS_CHUNK]);
    if (!chunk && (chunk = calloc(PARTITIONS_CHUNK, sizeof(*chunk))) != NULL) {
        for (int i = 0; i < PARTITIONS_CHUNK; i++) {
            atomic_init(&chunk[i].committed, -1);
            atomic_init(&chunk[i].floor, -1);
            atomic_init(&chunk[i].low, -1);
            atomic_init(&chunk[i].high, -1);
        }
        atomic_store_explicit(&ps->chunks[p / PARTITIONS_CHUNK], chunk, memory_order_release);
    }
    pthread_mutex_unlock(&ps->grow_lock);
    return chunk ? &chunk[p % PARTITIONS_CHUNK] : NULL;
}

int partitions_init(partitions *ps)
{
    pthread_rwlockattr_t attr;
    for (int i = 0; i < PARTITIONS_MAX_CHUNKS; i++)
        atomic_init(&ps->chunks[i], NULL);
    atomic_init(&ps->limit, 0);
    atomic_init(&ps->owned, 0);
    if (pthread_rwlockattr_init(&attr) != 0)
        return -1;
    /* the revocation must not starve behind writers that keep re-acquiring */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&ps->assign_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&ps->grow_lock, NULL) != 0) {
        pthread_rwlock_destroy(&ps->assign_lock);
        return -1;
    }
    return 0;
}

void partitions_destroy(partitions *ps)
{
    for (int i = 0; i < PARTITIONS_MAX_CHUNKS; i++) {
        free(atomic_load(&ps->chunks[i]));
        atomic_store(&ps->chunks[i], NULL);
    }
    pthread_rwlock_destroy(&ps->assign_lock);
    pthread_mutex_destroy(&ps->grow_lock);
}

int partitions_take(partitions *ps, int32_t p, int64_t start)
{
    partition_entry *e = entry_create(ps, p);
    if (!e)
        return -1;
    atomic_fetch_add(&e->generation, 1);
    atomic_store(&e->floor, start);
    atomic_store(&e->committed, start);
    if (!atomic_exchange(&e->owned, true))
        atomic_fetch_add(&ps->owned, 1);
    if (p >= atomic_load(&ps->limit))
        atomic_store(&ps->limit, p + 1);
    return 0;
}

bool partitions_release(partitions *ps, int32_t p)
{
    partition_entry *e = entry(ps, p);
    if (!e || !atomic_exchange(&e->owned, false))
        return false;
    atomic_fetch_sub(&ps->owned, 1);
    return true;
}

bool partitions_owned(partitions *ps, int32_t p)
{
    partition_entry *e = entry(ps, p);
    return e && atomic_load(&e->owned);
}

int partitions_owned_count(partitions *ps)
{
    return atomic_load(&ps->owned);
}

uint32_t partitions_generation(partitions *ps, int32_t p)
{
    partition_entry *e = entry(ps, p);
    return e ? atomic_load(&e->generation) : 0;
}

bool partitions_current(partitions *ps, int32_t p, uint32_t generation, int64_t offset)
{
    partition_entry *e = entry(ps, p);
    return e && atomic_load(&e->owned) && atomic_load(&e->generation) == generation &&
           offset >= atomic_load(&e->floor);
}

int32_t partitions_limit(partitions *ps)
{
    return atomic_load(&ps->limit);
}

int64_t partitions_floor(partitions *ps, int32_t p)
{
    partition_entry *e = entry(ps, p);
    return e ? atomic_load(&e->floor) : -1;
}

int64_t partitions_committed(partitions *ps, int32_t p)
{
    partition_entry *e = entry(ps, p);
    return e ? atomic_load(&e->committed) : -1;
}

/* raise stores v in *a unless *a is already at least v */
static void raise(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

void partitions_stored(partitions *ps, int32_t p, int64_t next)
{
    partition_entry *e = entry(ps, p);
    if (e)
        raise(&e->committed, next);
}

void partitions_resync(partitions *ps, int32_t p, int64_t next)
{
    partition_entry *e = entry(ps, p);
    if (!e)
        return;
    raise(&e->floor, next);
    atomic_store(&e->committed, next);
}

void partitions_set_watermarks(partitions *ps, int32_t p, int64_t low, int64_t high)
{
    partition_entry *e = entry(ps, p);
    if (!e)
        return;
    atomic_store(&e->low, low);
    atomic_store(&e->high, high);
}

bool partitions_lag(partitions *ps, int32_t p, int64_t *lag)
{
    partition_entry *e = entry(ps, p);
    if (!e || !atomic_load(&e->owned))
        return false;
    int64_t hi = atomic_load(&e->high), done = atomic_load(&e->committed);
    if (hi < 0)
        return false; /* no watermark read yet */
    if (done < 0)
        done = atomic_load(&e->low);
    *lag = done >= 0 && hi > done ? hi - done : 0;
    return true;
}

void partitions_writers_enter(partitions *ps)
{
    pthread_rwlock_rdlock(&ps->assign_lock);
}

void partitions_writers_leave(partitions *ps)
{
    pthread_rwlock_unlock(&ps->assign_lock);
}

bool partitions_revoke_try(partitions *ps)
{
    return pthread_rwlock_trywrlock(&ps->assign_lock) == 0;
}

void partitions_revoke_begin(partitions *ps)
{
    pthread_rwlock_wrlock(&ps->assign_lock);
}

void partitions_revoke_end(partitions *ps)
{
    pthread_rwlock_unlock(&ps->assign_lock);
}
