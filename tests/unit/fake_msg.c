/* tests/unit/fake_msg.c — heap Kafka messages for the cmocka tests and a recording
 * ingest_msg_free (see fake_msg.h) */
#include "fake_msg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_DESTROYED 4096
static const ingest_msg *destroyed[MAX_DESTROYED];
static int n_destroyed;

ingest_msg *fake_msg(const void *payload, size_t len, int32_t partition, int64_t offset)
{
    ingest_msg *m = calloc(1, sizeof(*m) + (len ? len : 1));
    assert_non_null(m);
    memcpy(m->payload, payload, len);
    m->len = len;
    m->partition = partition;
    m->offset = offset;
    /* malloc may hand back the address of a message destroyed earlier: forget that one */
    for (int i = 0; i < n_destroyed; i++)
        if (destroyed[i] == m)
            destroyed[i] = NULL;
    return m;
}

ingest_msg *fake_str(const char *s, int32_t partition, int64_t offset)
{
    return fake_msg(s, strlen(s), partition, offset);
}

/* ingest_msg_free replaces message.c's: frees a fake_msg and records it */
void ingest_msg_free(ingest_msg *m)
{
    for (int i = 0; i < n_destroyed; i++)
        if (destroyed[i] == m) {
            print_error("message %p (partition %d offset %lld) destroyed twice\n", (void *) m,
                        m->partition, (long long) m->offset);
            abort();
        }
    if (n_destroyed < MAX_DESTROYED)
        destroyed[n_destroyed++] = m;
    free(m);
}

bool was_destroyed(const ingest_msg *m)
{
    for (int i = 0; i < n_destroyed; i++)
        if (destroyed[i] == m)
            return true;
    return false;
}

int destroyed_count(void)
{
    return n_destroyed;
}

int reset_destroyed(void **state)
{
    (void) state;
    n_destroyed = 0;
    return 0;
}
