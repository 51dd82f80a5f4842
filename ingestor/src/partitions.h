/* ingestor/src/partitions.h — which partitions this member owns, how far each is stored, and the
 * assignment lock */
#ifndef INGESTOR_PARTITIONS_H
#define INGESTOR_PARTITIONS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Partitions are numbered from 0 by Kafka and a topic may gain partitions while we run, so the
 * table grows on demand: PARTITIONS_CHUNK entries at a time, up to PARTITIONS_LIMIT partition
 * numbers (a topic of two million partitions; Kafka clusters hold a few hundred thousand).
 */
#define PARTITIONS_CHUNK      1024
#define PARTITIONS_MAX_CHUNKS 2048
#define PARTITIONS_LIMIT      (PARTITIONS_CHUNK * PARTITIONS_MAX_CHUNKS)

/* one partition: every field is an atomic that any thread may read */
typedef struct partition_entry {
    _Atomic bool owned;
    _Atomic uint32_t generation; /* raised by every take: messages polled before it are stale */
    _Atomic int64_t committed;   /* next offset stored in Postgres; -1 unknown */
    _Atomic int64_t floor;       /* messages below it are already stored: skip them */
    _Atomic int64_t low, high;   /* the broker's watermarks as the poll thread last read them; -1 */
} partition_entry;

/*
 * Ownership and the assignment lock. The poll thread (consumer.c) takes and releases partitions;
 * writers read them. A revocation clears owned and then takes the assignment lock exclusively;
 * writers hold it shared from the moment they filter a batch by ownership until its transaction
 * has ended. So once a revocation has the lock, no transaction that still contains rows of a
 * revoked partition can commit. Chunks are allocated by the poll thread and published with an
 * atomic pointer; readers see a partition not yet allocated as not owned.
 */
/*
 * Generations. A writer may hold messages it took from its queue before a revocation (the
 * revocation drops only what is still queued); if the partition comes back to this member, the poll
 * thread fetches it again from the stored offset and the same offsets arrive a second time,
 * possibly into the same batch, above the floor and with the partition owned: stored twice (chaos,
 * kill -9 of a member). Every take raises the partition's generation, the poll thread stamps each
 * message with the generation it was polled under, and a writer drops a message whose generation is
 * not the current one (partitions_current).
 */
typedef struct partitions {
    pthread_rwlock_t assign_lock;
    pthread_mutex_t grow_lock; /* allocating chunks */
    _Atomic(partition_entry *) chunks[PARTITIONS_MAX_CHUNKS];
    _Atomic int32_t limit; /* one past the highest partition number with an entry */
    _Atomic int owned;     /* partitions owned now */
} partitions;

/* partitions_init makes an empty table (nothing owned) and its locks; -1 when a lock cannot be made
 */
int partitions_init(partitions *ps);
void partitions_destroy(partitions *ps);

/* partitions_take owns p from offset start (-1: unknown) on; -1 when p cannot be tracked (beyond
 * PARTITIONS_LIMIT, or out of memory) */
int partitions_take(partitions *ps, int32_t p, int64_t start);
/* partitions_release gives p up; true if it was owned */
bool partitions_release(partitions *ps, int32_t p);
bool partitions_owned(partitions *ps, int32_t p);
/* partitions_owned_count: how many partitions are owned now */
int partitions_owned_count(partitions *ps);
/* partitions_limit: one past the highest partition number ever taken (for walks) */
int32_t partitions_limit(partitions *ps);
int64_t partitions_floor(partitions *ps, int32_t p);
int64_t partitions_committed(partitions *ps, int32_t p);
/* partitions_stored records that offsets below next are stored in Postgres (after a commit) */
void partitions_stored(partitions *ps, int32_t p, int64_t next);
/* partitions_generation: p's assignment generation (0 before its first take); the poll thread
 * stamps every message it routes with it */
uint32_t partitions_generation(partitions *ps, int32_t p);

/* partitions_current: a message of p polled under generation, at offset, is still to be stored:
 * p is owned, has not been taken again since, and the offset is not below the floor */
bool partitions_current(partitions *ps, int32_t p, uint32_t generation, int64_t offset);

/* partitions_resync records the next offset Postgres holds for p (after a replay, CW002): below it
 * messages are skipped */
void partitions_resync(partitions *ps, int32_t p, int64_t next);
/* partitions_set_watermarks records the broker's low and high watermarks of p */
void partitions_set_watermarks(partitions *ps, int32_t p, int64_t low, int64_t high);
/* partitions_lag: messages of an owned partition not yet stored; false if p is not owned or its
 * watermarks were not read yet */
bool partitions_lag(partitions *ps, int32_t p, int64_t *lag);

/* writers: hold the assignment lock shared around filtering a batch and its transaction */
void partitions_writers_enter(partitions *ps);
void partitions_writers_leave(partitions *ps);
/* revocations: take it exclusively, which waits for the writers' transactions in flight;
 * partitions_revoke_try takes it only if no transaction is in flight (false: it would wait) */
bool partitions_revoke_try(partitions *ps);
void partitions_revoke_begin(partitions *ps);
void partitions_revoke_end(partitions *ps);

#endif /* INGESTOR_PARTITIONS_H */
