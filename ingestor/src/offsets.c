/* ingestor/src/offsets.c — reading chainwatch.kafka_offsets for the assignment (poll thread) and
 * after a replay (writers) */
#include "offsets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int offsets_add(offset_map *m, int32_t partition, int64_t next)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        stored_offset *e = realloc(m->e, cap * sizeof(*e));
        if (!e)
            return -1;
        m->e = e;
        m->cap = cap;
    }
    m->e[m->n].partition = partition;
    m->e[m->n].next = next;
    m->n++;
    return 0;
}

static int by_partition(const void *a, const void *b)
{
    int32_t pa = ((const stored_offset *) a)->partition,
            pb = ((const stored_offset *) b)->partition;
    return (pa > pb) - (pa < pb);
}

void offsets_sort(offset_map *m)
{
    if (m->n > 1)
        qsort(m->e, m->n, sizeof(*m->e), by_partition);
}

int offsets_read(PGconn *conn, const char *group, const char *topic, offset_map *m, char *err,
                 size_t errlen)
{
    const char *params[2] = {group, topic};
    offsets_clear(m);
    PGresult *res = PQexecParams(conn,
                                 "SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                 "WHERE consumer_group = $1 AND topic = $2 ORDER BY partition",
                                 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        snprintf(err, errlen, "%.*s", (int) strcspn(msg, "\n"), msg);
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (offsets_add(m, (int32_t) atol(PQgetvalue(res, i, 0)), atoll(PQgetvalue(res, i, 1))) !=
            0) {
            snprintf(err, errlen, "out of memory reading stored offsets");
            PQclear(res);
            offsets_clear(m);
            return -1;
        }
    }
    PQclear(res);
    return 0;
}

int64_t offsets_lookup(const offset_map *m, int32_t partition)
{
    stored_offset key = {partition, 0};
    const stored_offset *hit = m->n ? bsearch(&key, m->e, m->n, sizeof(*m->e), by_partition) : NULL;
    return hit ? hit->next : -1;
}

void offsets_clear(offset_map *m)
{
    m->n = 0;
}

void offsets_free(offset_map *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}
