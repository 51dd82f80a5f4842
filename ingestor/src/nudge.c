/* ingestor/src/nudge.c — wakes librdkafka's fetchers once its prefetch queue has drained
 *
 * Design
 * ------
 * The problem. librdkafka keeps at most queued.max.messages.kbytes of prefetched messages. When
 * the queue is full, each broker thread takes its partitions off the fetch list and sleeps until
 * something wakes it: an operation on its queue, network input, or its one-second poll timeout.
 * Consuming from the queue wakes nobody (librdkafka 2.0.2: rd_kafka_toppar_fetch_decide() and
 * rd_kafka_broker_consumer_serve(); 2.3.0 added fetch.queue.backoff.ms, still 1000 ms by default).
 * While the writers are slower than the broker, which is always the case under a backlog, the
 * prefetch fills, the writers drain it in a fraction of a second and then wait for the rest of
 * the second. Measured with librdkafka's debug=fetch log during make bench-ingest: each broker
 * thread spent 11-16 s of a 17 s drain "not fetchable: queued.max.messages.kbytes exceeded", in
 * stalls of ~0.92 s, and the machine was 55% idle.
 *
 * The nudge. Any request queued for a broker wakes its thread, which then re-decides every
 * partition it leads and fetches those whose queue has room. rd_kafka_offsets_for_times() with
 * timestamp -1 (the end offsets) sends one ListOffsets request to each leader of the given
 * partitions and changes no consumer state (no seek, no pause, nothing purged), so it is the
 * nudge, from a thread of its own because the call waits for the answers (at most NUDGE_WAIT_MS:
 * the broker threads woke when the requests were queued, and the answers are not needed; a
 * longer wait held up the end of a drain behind leaders long-polling an empty fetch). It is given
 * one assigned partition per leader (leaders from the topic's metadata, read again every
 * LEADERS_REFRESH_MS; a partition whose leader is unknown is always included): with the whole
 * assignment, 1,024 partitions, the nudges cost 3.5% of the ingestor's CPU. Pausing, resuming or
 * seeking would also wake the fetchers in some versions, but each bumps the partition's op version,
 * which drops what was prefetched for it.
 *
 * When. The poll thread measures the consumer queue every QUEUE_SAMPLE messages and whenever a
 * poll returns nothing. A nudge is due once the queue
 * had grown past a third of the prefetch (so the fetchers may have stopped) and has since fallen
 * below a twelfth (so they may fetch again and should, before the writers run dry), and at most
 * every NUDGE_MIN_INTERVAL_MS. The prefetch is in bytes, the queue length in messages: a moving
 * average of message sizes plus librdkafka's per-message overhead converts one into the other.
 * A consumer keeping up with its topic never fills its prefetch, so it never nudges.
 *
 * Measured (make bench-ingest conditions, 256 partitions, 1M messages): steady state 49k -> 89-93k
 * msg/s, with 30-50 nudges per million messages; the prefetch could shrink from 14 MiB to 8 MiB.
 */
#include "nudge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monoclock.h"
#include "log.h"

#define NUDGE_MIN_INTERVAL_MS 20
#define NUDGE_TIMEOUT_MS      500 /* metadata, whose answer is needed */
#define NUDGE_WAIT_MS         20
#define QUEUE_SAMPLE          32
#define LEADERS_REFRESH_MS    10000
#define MAX_LEADERS           64 /* distinct leaders told apart; past that, every partition goes */
/* librdkafka's accounting per queued message, beyond the payload */
#define MSG_OVERHEAD_BYTES 250

/* refresh_leaders reads each partition's leader from the topic's metadata (nudging thread) */
static void refresh_leaders(fetch_nudger *n)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(n->rk, n->topic, NULL);
    n->leaders_at = cw_mono_ms();
    if (!rkt)
        return;
    rd_kafka_resp_err_t err = rd_kafka_metadata(n->rk, 0, rkt, &md, NUDGE_TIMEOUT_MS);
    if (!err && md->topic_cnt == 1 && !md->topics[0].err) {
        const rd_kafka_metadata_topic_t *t = &md->topics[0];
        int top = 0;
        for (int i = 0; i < t->partition_cnt; i++)
            if (t->partitions[i].id >= top)
                top = t->partitions[i].id + 1;
        int32_t *leader = top > 0 ? malloc(sizeof(*leader) * (size_t) top) : NULL;
        if (leader) {
            for (int i = 0; i < top; i++)
                leader[i] = -1;
            for (int i = 0; i < t->partition_cnt; i++)
                if (t->partitions[i].id >= 0)
                    leader[t->partitions[i].id] = t->partitions[i].leader;
            free(n->leader);
            n->leader = leader;
            n->n_leader = top;
        }
    } else if (err) {
        log_debug("fetch nudge: metadata: %s", rd_kafka_err2str(err));
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
}

/* one_per_leader returns the partitions of a to nudge: the first assigned one of each leader */
static rd_kafka_topic_partition_list_t *one_per_leader(fetch_nudger *n,
                                                       const rd_kafka_topic_partition_list_t *a)
{
    int32_t seen[MAX_LEADERS];
    int n_seen = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(a->cnt);
    for (int i = 0; i < a->cnt; i++) {
        int32_t p = a->elems[i].partition;
        int32_t ld = p >= 0 && p < n->n_leader ? n->leader[p] : -1;
        bool add = ld < 0 || n_seen == MAX_LEADERS;
        if (!add) {
            add = true;
            for (int k = 0; k < n_seen; k++)
                if (seen[k] == ld)
                    add = false;
            if (add)
                seen[n_seen++] = ld;
        }
        if (add) /* the offset, as a timestamp: -1 asks for the end offsets */
            rd_kafka_topic_partition_list_add(l, a->elems[i].topic, p)->offset =
                RD_KAFKA_OFFSET_END;
    }
    return l;
}

/* nudger_main waits for requests and nudges every leader of the current assignment */
static void *nudger_main(void *arg)
{
    fetch_nudger *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->wanted && !n->stop)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->stop)
            break;
        n->wanted = false;
        pthread_mutex_unlock(&n->mu);

        rd_kafka_topic_partition_list_t *a = NULL;
        rd_kafka_resp_err_t err = rd_kafka_assignment(n->rk, &a);
        if (!err && a->cnt > 0) {
            if (!n->leaders_at || cw_mono_ms() - n->leaders_at >= LEADERS_REFRESH_MS)
                refresh_leaders(n);
            rd_kafka_topic_partition_list_t *l = one_per_leader(n, a);
            err = rd_kafka_offsets_for_times(n->rk, l, NUDGE_WAIT_MS);
            if (err && err != RD_KAFKA_RESP_ERR__TIMED_OUT)
                log_debug("fetch nudge: %s", rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(l);
            atomic_fetch_add(&n->nudges, 1);
        }
        if (a)
            rd_kafka_topic_partition_list_destroy(a);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int nudger_start(fetch_nudger *n, rd_kafka_t *rk, const char *topic)
{
    char kb[32];
    size_t kblen = sizeof(kb);
    memset(n, 0, sizeof(*n));
    n->rk = rk;
    if (!(n->topic = strdup(topic)))
        return -1;
    n->prefetch_bytes = 65536 * 1024; /* librdkafka's default, if it cannot be read */
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "queued.max.messages.kbytes", kb, &kblen) ==
        RD_KAFKA_CONF_OK)
        n->prefetch_bytes = (size_t) strtoull(kb, NULL, 10) * 1024;
    n->avg_len = 512;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (!(n->consumer_queue = rd_kafka_queue_get_consumer(rk)) ||
        pthread_create(&n->thread, NULL, nudger_main, n) != 0) {
        if (n->consumer_queue)
            rd_kafka_queue_destroy(n->consumer_queue);
        n->consumer_queue = NULL;
        free(n->topic);
        n->topic = NULL;
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->cv);
        return -1;
    }
    n->started = true;
    return 0;
}

void nudger_now(fetch_nudger *n)
{
    if (!n->started)
        return;
    n->peak = 0;
    n->nudged_at = cw_mono_ms();
    pthread_mutex_lock(&n->mu);
    n->wanted = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

void nudger_check(fetch_nudger *n, size_t msg_len)
{
    if (!n->started)
        return;
    if (msg_len)
        n->avg_len += ((double) msg_len - n->avg_len) / 64;
    /* the queue's length takes its lock, which the fetchers contend for: read it every
     * QUEUE_SAMPLE-th message (well under a millisecond under a backlog), and whenever the poll
     * came back empty */
    if (msg_len && ++n->passes % QUEUE_SAMPLE != 0)
        return;
    size_t queued = rd_kafka_queue_length(n->consumer_queue);
    if (queued > n->peak)
        n->peak = queued;
    size_t capacity = (size_t) ((double) n->prefetch_bytes / (n->avg_len + MSG_OVERHEAD_BYTES));
    if (n->peak < capacity / 3 || queued > capacity / 12)
        return;
    if (cw_mono_ms() - n->nudged_at < NUDGE_MIN_INTERVAL_MS)
        return;
    nudger_now(n);
}

void nudger_stop(fetch_nudger *n)
{
    if (!n->started)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    log_info("fetch nudges sent: %llu", (unsigned long long) atomic_load(&n->nudges));
    rd_kafka_queue_destroy(n->consumer_queue);
    n->consumer_queue = NULL;
    free(n->leader);
    n->leader = NULL;
    free(n->topic);
    n->topic = NULL;
    n->started = false;
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
}
