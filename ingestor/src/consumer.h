/* ingestor/src/consumer.h — the consumer's decisions: assignment, revocation, routing and
 * back-pressure, with every effect behind consumer_ops */
#ifndef INGESTOR_CONSUMER_H
#define INGESTOR_CONSUMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "offsets.h"
#include "partitions.h"
#include "queue.h"
#include "stats.h"

#define BACKPRESSURE_WAIT_MS 250

/*
 * The consumer's effects. poller.c implements them with librdkafka, libpq and the writers; the
 * unit tests with fakes that record what was asked. Every function is called from the poll thread.
 */
typedef struct consumer_ops {
    /* Kafka: take or give up partitions (incremental for the cooperative protocol); -1 with err */
    int (*assign)(void *ctx, rd_kafka_topic_partition_list_t *parts, bool cooperative, char *err,
                  size_t errlen);
    int (*unassign)(void *ctx, rd_kafka_topic_partition_list_t *parts, bool cooperative, char *err,
                    size_t errlen);
    void (*set_paused)(void *ctx, int32_t partition, bool pause);
    /* resumed: partitions were resumed, so wake librdkafka's fetchers (nudge.c) */
    void (*resumed)(void *ctx);
    /* fatal_error: librdkafka's fatal error, its code and reason (rd_kafka_fatal_error) */
    rd_kafka_resp_err_t (*fatal_error)(void *ctx, char *reason, size_t len);
    /* Postgres: the group's stored offsets; -1 when Postgres cannot be asked */
    int (*stored_offsets)(void *ctx, offset_map *out);
    /* the writers (writer.h): push to p's writer, room to resume, drop revoked, idle */
    bool (*push)(void *ctx, ingest_msg *m, int wait_ms);
    bool (*has_room)(void *ctx, int32_t partition);
    size_t (*drop_queued)(void *ctx, bool (*revoked)(int32_t p, void *arg), void *arg);
    bool (*writers_idle)(void *ctx);
} consumer_ops;

/* what the poll thread keeps per partition (indexed by partition number, grown on demand) */
typedef struct consumer_part {
    ingest_msg *stash; /* a message kept aside while its writer's queue is full (owned) */
    bool paused;       /* paused by us for back-pressure */
    bool at_eof;       /* the last message fetched was the partition's last */
    bool revoking;     /* scratch for consumer_revoke */
} consumer_part;

/*
 * The consumer's state. Everything but `fatal` belongs to the poll thread; `fatal` is read by main
 * (consumer_failed) and `fatal_reason` is written before it is set.
 */
typedef struct consumer {
    const consumer_ops *ops;
    void *ctx;
    partitions *parts;
    ingest_stats *stats;
    bool latest; /* KAFKA_AUTO_OFFSET_RESET=latest */
    consumer_part *part;
    size_t n_part;
    int32_t *stashed; /* partitions with a stashed message, n_stashed of them (room for n_part) */
    int n_stashed;
    offset_map stored; /* scratch for the assignment */
    _Atomic bool fatal;
    char fatal_reason[512];
} consumer;

/* consumer_init prepares c over ops (not owned: ctx, parts, stats outlive it); latest is
 * KAFKA_AUTO_OFFSET_RESET=latest */
void consumer_init(consumer *c, const consumer_ops *ops, void *ctx, partitions *parts,
                   ingest_stats *stats, bool latest);
/* consumer_free destroys the stashed messages and the state */
void consumer_free(consumer *c);

/*
 * consumer_assign takes parts: each starts at its next offset stored in Postgres, or where
 * auto.offset.reset says when Postgres has none for it, or at Kafka's committed offset when
 * Postgres cannot be asked (never ahead of Postgres's: writers commit to Kafka after Postgres; a
 * re-read is skipped by commit_batch's replay check). A partition that cannot be tracked is a
 * fatal error (consumer_failed).
 */
void consumer_assign(consumer *c, rd_kafka_topic_partition_list_t *parts, bool cooperative);
/*
 * consumer_revoke gives parts up (lost: they were taken from us): ownership cleared, paused ones
 * resumed (not to come back paused), the writers' transactions in flight waited for (the
 * assignment lock), then their queued and stashed messages dropped. Once it returns no
 * transaction of ours can commit rows of these partitions.
 */
void consumer_revoke(consumer *c, rd_kafka_topic_partition_list_t *parts, bool cooperative,
                     bool lost);
/* consumer_rebalance dispatches librdkafka's rebalance callback */
void consumer_rebalance(consumer *c, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, bool cooperative, bool lost);
/* consumer_route hands m (owned) to its writer, or stashes it and pauses its partition when the
 * queues stay full for BACKPRESSURE_WAIT_MS; a message of a partition not owned is dropped */
void consumer_route(consumer *c, ingest_msg *m);
/* consumer_unstash pushes stashed messages whose writer has room again and resumes them */
void consumer_unstash(consumer *c);
/* consumer_eof: the partition's last message was fetched */
void consumer_eof(consumer *c, int32_t partition);
/* consumer_drained: --drain is done (something is owned, every owned partition is at its end,
 * nothing is stashed, the writers are idle) */
bool consumer_drained(consumer *c);
/* consumer_error handles librdkafka's error callback: a fatal error makes consumer_failed true */
void consumer_error(consumer *c, int err, const char *reason);
/* consumer_failed: a fatal error happened; why holds the reason */
bool consumer_failed(consumer *c, char *why, size_t len);

#endif /* INGESTOR_CONSUMER_H */
