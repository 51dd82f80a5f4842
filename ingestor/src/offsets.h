/* ingestor/src/offsets.h — the group's stored offsets (chainwatch.kafka_offsets), read into a map
 */
#ifndef INGESTOR_OFFSETS_H
#define INGESTOR_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* one partition's next offset as Postgres stores it */
typedef struct stored_offset {
    int32_t partition;
    int64_t next;
} stored_offset;

/* offset_map: stored offsets sorted by partition; owns its array */
typedef struct offset_map {
    stored_offset *e;
    size_t n, cap;
} offset_map;

/* offsets_read fills m with every partition's next offset stored for group and topic; -1 with err
 * holding Postgres's reason (m is then empty) */
int offsets_read(PGconn *conn, const char *group, const char *topic, offset_map *m, char *err,
                 size_t errlen);
/* offsets_add appends one entry (kept sorted by offsets_sort); -1 on ENOMEM */
int offsets_add(offset_map *m, int32_t partition, int64_t next);
/* offsets_sort sorts the entries by partition (offsets_read does it itself) */
void offsets_sort(offset_map *m);
/* offsets_lookup: the stored next offset of partition, -1 when none is stored */
int64_t offsets_lookup(const offset_map *m, int32_t partition);
void offsets_clear(offset_map *m);
void offsets_free(offset_map *m);

#endif /* INGESTOR_OFFSETS_H */
