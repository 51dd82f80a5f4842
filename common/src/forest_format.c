/* common/src/forest_format.c — the chainwatch binary model format: serialize, checksum, deserialize
 */

#include "forest_impl.h"

#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/*
 * Layout (little-endian):
 *   "CWIF" u16 version u16 flags u32 n_features u32 n_trees u32 max_samples u32 transform
 *   f64 threshold u64 n_nodes, u32 nodes-per-tree[n_trees],
 *   if flags & 2: n_features × (u16 length, bytes) feature names,
 *   n_nodes × (i32 left, i32 feature, f64 split, i32 n_samples), u32 CRC-32C of all before.
 * flags: 1 = float32_inputs, 2 = feature names present.
 */
#define HEADER_SIZE 40
#define NODE_SIZE   20

static void put_u16(uint8_t **p, uint16_t v)
{
    (*p)[0] = (uint8_t) v;
    (*p)[1] = (uint8_t) (v >> 8);
    *p += 2;
}
static void put_u32(uint8_t **p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        (*p)[i] = (uint8_t) (v >> (8 * i));
    *p += 4;
}
static void put_u64(uint8_t **p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        (*p)[i] = (uint8_t) (v >> (8 * i));
    *p += 8;
}
static void put_f64(uint8_t **p, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(p, v);
}
static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t) p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t) p[i] << (8 * i);
    return v;
}
static double get_f64(const uint8_t *p)
{
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

size_t forest_serialized_size(const forest *f)
{
    size_t size = HEADER_SIZE + 4 * (size_t) f->n_trees + NODE_SIZE * f->n_nodes + 4;
    if (f->feature_names)
        for (int i = 0; i < f->n_features; i++)
            size += 2 + strlen(f->feature_names[i]);
    return size;
}

void forest_serialize(const forest *f, uint8_t *buf)
{
    uint8_t *p = buf;

    memcpy(p, "CWIF", 4);
    p += 4;
    put_u16(&p, FOREST_FORMAT_VERSION);
    put_u16(&p, (uint16_t) ((f->float32_inputs ? 1 : 0) | (f->feature_names ? 2 : 0)));
    put_u32(&p, (uint32_t) f->n_features);
    put_u32(&p, (uint32_t) f->n_trees);
    put_u32(&p, (uint32_t) f->max_samples);
    put_u32(&p, (uint32_t) f->transform);
    put_f64(&p, f->threshold);
    put_u64(&p, (uint64_t) f->n_nodes);
    for (int t = 0; t < f->n_trees; t++)
        put_u32(&p, f->tree_start[t + 1] - f->tree_start[t]);
    if (f->feature_names) {
        for (int i = 0; i < f->n_features; i++) {
            size_t len = strlen(f->feature_names[i]);
            put_u16(&p, (uint16_t) len);
            memcpy(p, f->feature_names[i], len);
            p += len;
        }
    }
    for (size_t i = 0; i < f->n_nodes; i++) {
        put_u32(&p, (uint32_t) f->left[i]);
        put_u32(&p, (uint32_t) f->feature[i]);
        put_f64(&p, f->split[i]);
        put_u32(&p, (uint32_t) f->n_samples[i]);
    }
    put_u32(&p, cw_crc32c(buf, (size_t) (p - buf)));
}

uint32_t forest_serialized_checksum(const uint8_t *buf, size_t len)
{
    return len >= 4 ? get_u32(buf + len - 4) : 0;
}

/*
 * forest_deserialize checks the magic, the length, the checksum and the version, in that order,
 * then rebuilds the forest through forest_from_trees so a corrupted-but-checksummed model is
 * still fully validated.
 */
forest *forest_deserialize(const uint8_t *buf, size_t len, forest_error *err)
{
    forest_tree_arrays *trees = NULL;
    int64_t *ints = NULL;
    double *splits = NULL;
    char **names = NULL;
    forest *f = NULL;

    if (len < HEADER_SIZE + 4 || memcmp(buf, "CWIF", 4) != 0)
        return forest_set_error(err, FOREST_ERR_MALFORMED,
                                "not a chainwatch model (bad magic or too short)");
    if (get_u32(buf + len - 4) != cw_crc32c(buf, len - 4))
        return forest_set_error(err, FOREST_ERR_CHECKSUM, "model checksum mismatch");
    uint16_t version = get_u16(buf + 4), flags = get_u16(buf + 6);
    if (version != FOREST_FORMAT_VERSION)
        return forest_set_error(err, FOREST_ERR_VERSION,
                                "model format version %u is not supported (expected %d)", version,
                                FOREST_FORMAT_VERSION);
    uint32_t n_features = get_u32(buf + 8), n_trees = get_u32(buf + 12);
    uint32_t max_samples = get_u32(buf + 16), transform = get_u32(buf + 20);
    double threshold = get_f64(buf + 24);
    uint64_t n_nodes = get_u64(buf + 32);
    const uint8_t *p = buf + HEADER_SIZE, *end = buf + len - 4;

    if (n_features < 1 || n_features > FOREST_MAX_FEATURES || n_trees < 1 ||
        n_trees > FOREST_MAX_TREES || (flags & ~3u) != 0)
        return forest_set_error(err, FOREST_ERR_MALFORMED, "model header out of range");
    if ((size_t) (end - p) < 4 * (size_t) n_trees || n_nodes > (size_t) (end - p) / NODE_SIZE)
        return forest_set_error(err, FOREST_ERR_MALFORMED, "model truncated");

    trees = calloc(n_trees, sizeof(forest_tree_arrays));
    ints = malloc(sizeof(int64_t) * 4 * (n_nodes ? n_nodes : 1));
    splits = malloc(sizeof(double) * (n_nodes ? n_nodes : 1));
    if (!trees || !ints || !splits) {
        forest_set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
        goto done;
    }
    uint64_t sum = 0;
    for (uint32_t t = 0; t < n_trees; t++) {
        uint32_t n = get_u32(p);
        p += 4;
        trees[t].n_nodes = n;
        sum += n;
    }
    if (sum != n_nodes) {
        forest_set_error(err, FOREST_ERR_MALFORMED, "model node counts disagree");
        goto done;
    }
    if (flags & 2) {
        names = calloc(n_features, sizeof(char *));
        if (!names) {
            forest_set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
            goto done;
        }
        for (uint32_t i = 0; i < n_features; i++) {
            if (end - p < 2 || (size_t) (end - p - 2) < get_u16(p)) {
                forest_set_error(err, FOREST_ERR_MALFORMED, "model truncated in feature names");
                goto done;
            }
            uint16_t l = get_u16(p);
            names[i] = strndup((const char *) p + 2, l);
            if (!names[i]) {
                forest_set_error(err, FOREST_ERR_NOMEM, "out of memory loading a model");
                goto done;
            }
            p += 2 + l;
        }
    }
    if ((size_t) (end - p) != n_nodes * NODE_SIZE) {
        forest_set_error(err, FOREST_ERR_MALFORMED, "model length does not match its node count");
        goto done;
    }

    /* tree-local children: canonical form stores left only, right = left + 1 */
    int64_t *cl = ints, *cr = ints + n_nodes, *feat = ints + 2 * n_nodes, *ns = ints + 3 * n_nodes;
    size_t at = 0;
    for (uint32_t t = 0; t < n_trees; t++) {
        trees[t].children_left = cl + at;
        trees[t].children_right = cr + at;
        trees[t].feature = feat + at;
        trees[t].threshold = splits + at;
        trees[t].n_node_samples = ns + at;
        for (size_t i = 0; i < trees[t].n_nodes; i++, at++) {
            int32_t l = (int32_t) get_u32(p);
            cl[at] = l;
            cr[at] = l >= 0 ? (int64_t) l + 1 : -1;
            feat[at] = (int32_t) get_u32(p + 4);
            splits[at] = get_f64(p + 8);
            ns[at] = (int32_t) get_u32(p + 16);
            p += NODE_SIZE;
        }
    }
    f = forest_from_trees((int) n_features, (int) max_samples, (forest_transform) transform,
                          (flags & 1) != 0, threshold, trees, (int) n_trees, err);
    if (f && names) {
        f->feature_names = names;
        names = NULL;
    }

done:
    forest_free_names(names, (int) n_features);
    free(trees);
    free(ints);
    free(splits);
    return f;
}
