/* tests/unit/fake_msg.h — heap Kafka messages for the ingestor's cmocka tests, and an
 * ingest_msg_free that records what it destroys */
#ifndef TESTS_UNIT_FAKE_MSG_H
#define TESTS_UNIT_FAKE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"

/*
 * The queue, the batch and the consumer own ingest_msg objects and free them with
 * ingest_msg_free(), which lives in ingestor/src/message.c. The test binaries do not link that
 * file: fake_msg.c defines its own ingest_msg_free, which frees the messages made by fake_msg()
 * and records each call. That lets the tests check ownership exactly: what is dropped is destroyed,
 * what is kept is not, and a message is never destroyed twice (that aborts; ASan would say so too).
 */

/* fake_msg: a heap message with a copy of payload (len bytes) at partition/offset */
ingest_msg *fake_msg(const void *payload, size_t len, int32_t partition, int64_t offset);
/* fake_str: fake_msg of a NUL-terminated payload */
ingest_msg *fake_str(const char *s, int32_t partition, int64_t offset);
/* was_destroyed: m was passed to ingest_msg_free since the last reset_destroyed */
bool was_destroyed(const ingest_msg *m);
/* destroyed_count: how many messages were destroyed since the last reset_destroyed */
int destroyed_count(void);
/* reset_destroyed forgets what was destroyed (a cmocka setup function) */
int reset_destroyed(void **state);

#endif /* TESTS_UNIT_FAKE_MSG_H */
