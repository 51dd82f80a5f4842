/* ingestor/src/message.c — copying a Kafka message out of librdkafka into an ingest_msg */
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "queue.h"

/* ingest_msg_copy copies partition, offset and payload (one allocation; see queue.h) */
ingest_msg *ingest_msg_copy(const rd_kafka_message_t *m)
{
    ingest_msg *c = malloc(sizeof(ingest_msg) + m->len);
    if (!c)
        return NULL;
    c->partition = m->partition;
    c->offset = m->offset;
    c->len = m->len;
    if (m->len)
        memcpy(c->payload, m->payload, m->len);
    return c;
}

void ingest_msg_free(ingest_msg *m)
{
    free(m);
}
