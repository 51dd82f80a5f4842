/* common/src/forest_json.c — the chainwatch-iforest/1 JSON interchange format (import/export) */

/*
 * The format is documented in docs/model-format.md. Import is strict: every field is checked
 * for type and range, unknown "format" strings are rejected, and the tree structure is
 * validated by forest_from_trees(). Numbers are exported with %.17g so a double survives the
 * round trip exactly (cJSON's own printer compares with a tolerance and may drop the last bit).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "forest.h"

#define JSON_MAX_NODES_PER_TREE ((int64_t) 2 * FOREST_MAX_SAMPLES)

static forest *json_error(forest_error *err, forest_errcode code, const char *msg,
                          const char *field)
{
    if (err) {
        err->code = code;
        snprintf(err->message, sizeof(err->message), msg, field);
    }
    return NULL;
}

/* get_integer reads an integral JSON number within [lo, hi] into *out. */
static int get_integer(const cJSON *item, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double d = item->valuedouble;
    if (!(d >= (double) lo && d <= (double) hi) || d != floor(d))
        return -1;
    *out = (int64_t) d;
    return 0;
}

/* read_int_array copies a JSON array of n integers in [lo, hi] into out. */
static int read_int_array(const cJSON *arr, int64_t n, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *it;
    int64_t i = 0;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
        return -1;
    cJSON_ArrayForEach(it, arr)
    {
        if (get_integer(it, lo, hi, &out[i++]) != 0)
            return -1;
    }
    return 0;
}

forest *forest_import_json(const char *json, size_t len, forest_error *err)
{
    cJSON *root;
    const char *end = NULL;
    forest *f = NULL;
    forest_tree_arrays *trees = NULL;
    int64_t *ints = NULL;
    double *thr = NULL;
    const char **names = NULL;
    int n_trees = 0;

    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root)
        return json_error(err, FOREST_ERR_MALFORMED, "model is not valid JSON%s", "");
    while (end && end < json + len &&
           (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r' || *end == '\0'))
        end++;
    if (end != json + len) {
        json_error(err, FOREST_ERR_MALFORMED, "trailing data after the model JSON%s", "");
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        json_error(err, FOREST_ERR_MALFORMED, "model must be a JSON object%s", "");
        goto done;
    }

    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt)) {
        json_error(err, FOREST_ERR_MALFORMED, "missing \"format\" (expected \"%s\")",
                   FOREST_JSON_FORMAT);
        goto done;
    }
    if (strcmp(fmt->valuestring, FOREST_JSON_FORMAT) != 0) {
        json_error(err,
                   strncmp(fmt->valuestring, "chainwatch-iforest/", 19) == 0 ? FOREST_ERR_VERSION
                                                                             : FOREST_ERR_MALFORMED,
                   "unsupported model format (this version reads \"%s\")", FOREST_JSON_FORMAT);
        goto done;
    }

    int64_t n_features, max_samples;
    if (get_integer(cJSON_GetObjectItemCaseSensitive(root, "n_features"), 1, FOREST_MAX_FEATURES,
                    &n_features) != 0) {
        json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be an integer between 1 and 1024",
                   "n_features");
        goto done;
    }
    if (get_integer(cJSON_GetObjectItemCaseSensitive(root, "max_samples"), 1, FOREST_MAX_SAMPLES,
                    &max_samples) != 0) {
        json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be a positive integer", "max_samples");
        goto done;
    }
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "threshold");
    if (!cJSON_IsNumber(th) || !isfinite(th->valuedouble)) {
        json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be a finite number", "threshold");
        goto done;
    }
    forest_transform transform = FOREST_TRANSFORM_IDENTITY;
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "transform");
    if (tr && (!cJSON_IsString(tr) || forest_transform_parse(tr->valuestring, &transform) != 0)) {
        json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be \"identity\" or \"log1p\"",
                   "transform");
        goto done;
    }
    bool f32 = false;
    const cJSON *f32item = cJSON_GetObjectItemCaseSensitive(root, "float32_inputs");
    if (f32item) {
        if (!cJSON_IsBool(f32item)) {
            json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be true or false", "float32_inputs");
            goto done;
        }
        f32 = cJSON_IsTrue(f32item);
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(root, "feature_names");
    if (fn && !cJSON_IsNull(fn)) {
        const cJSON *it;
        int i = 0;
        if (!cJSON_IsArray(fn) || cJSON_GetArraySize(fn) != n_features) {
            json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be an array of n_features strings",
                       "feature_names");
            goto done;
        }
        names = calloc((size_t) n_features, sizeof(char *));
        if (!names) {
            json_error(err, FOREST_ERR_NOMEM, "out of memory%s", "");
            goto done;
        }
        cJSON_ArrayForEach(it, fn)
        {
            if (!cJSON_IsString(it)) {
                json_error(err, FOREST_ERR_MALFORMED,
                           "\"%s\" must be an array of n_features strings", "feature_names");
                goto done;
            }
            names[i++] = it->valuestring;
        }
    }

    const cJSON *tarr = cJSON_GetObjectItemCaseSensitive(root, "trees");
    if (!cJSON_IsArray(tarr) || cJSON_GetArraySize(tarr) < 1 ||
        cJSON_GetArraySize(tarr) > FOREST_MAX_TREES) {
        json_error(err, FOREST_ERR_MALFORMED, "\"%s\" must be a non-empty array of trees", "trees");
        goto done;
    }
    n_trees = cJSON_GetArraySize(tarr);

    /* first pass: sizes */
    int64_t total = 0;
    const cJSON *tree;
    trees = calloc((size_t) n_trees, sizeof(forest_tree_arrays));
    if (!trees) {
        json_error(err, FOREST_ERR_NOMEM, "out of memory%s", "");
        goto done;
    }
    int t = 0;
    cJSON_ArrayForEach(tree, tarr)
    {
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(tree, "children_left");
        if (!cJSON_IsObject(tree) || !cJSON_IsArray(cl) || cJSON_GetArraySize(cl) < 1 ||
            cJSON_GetArraySize(cl) > JSON_MAX_NODES_PER_TREE) {
            json_error(err, FOREST_ERR_MALFORMED,
                       "each tree must be an object with a non-empty \"%s\" array",
                       "children_left");
            goto done;
        }
        trees[t++].n_nodes = (size_t) cJSON_GetArraySize(cl);
        total += cJSON_GetArraySize(cl);
    }
    ints = malloc(sizeof(int64_t) * 4 * (size_t) total);
    thr = malloc(sizeof(double) * (size_t) total);
    if (!ints || !thr) {
        json_error(err, FOREST_ERR_NOMEM, "out of memory%s", "");
        goto done;
    }

    /* second pass: values */
    int64_t at = 0;
    t = 0;
    cJSON_ArrayForEach(tree, tarr)
    {
        int64_t n = (int64_t) trees[t].n_nodes;
        int64_t *cl = ints + at, *cr = ints + total + at, *feat = ints + 2 * total + at,
                *ns = ints + 3 * total + at;
        double *th_out = thr + at;
        static const char *const fields[] = {"children_left", "children_right", "feature",
                                             "n_node_samples"};
        int64_t *outs[] = {cl, cr, feat, ns};
        const int64_t lo[] = {-1, -1, -2, 0}, hi[] = {n - 1, n - 1, n_features - 1, INT32_MAX};

        for (int k = 0; k < 4; k++) {
            if (read_int_array(cJSON_GetObjectItemCaseSensitive(tree, fields[k]), n, lo[k], hi[k],
                               outs[k]) != 0) {
                json_error(err, FOREST_ERR_MALFORMED,
                           "tree field \"%s\" must be an array of in-range integers as long as "
                           "children_left",
                           fields[k]);
                goto done;
            }
        }
        const cJSON *tharr = cJSON_GetObjectItemCaseSensitive(tree, "threshold"), *it;
        if (!cJSON_IsArray(tharr) || cJSON_GetArraySize(tharr) != n) {
            json_error(err, FOREST_ERR_MALFORMED,
                       "tree field \"%s\" must be an array of numbers as long as children_left",
                       "threshold");
            goto done;
        }
        int64_t i = 0;
        cJSON_ArrayForEach(it, tharr)
        {
            if (!cJSON_IsNumber(it)) {
                json_error(err, FOREST_ERR_MALFORMED,
                           "tree field \"%s\" must be an array of numbers", "threshold");
                goto done;
            }
            th_out[i++] = it->valuedouble;
        }
        trees[t].children_left = cl;
        trees[t].children_right = cr;
        trees[t].feature = feat;
        trees[t].threshold = th_out;
        trees[t].n_node_samples = ns;
        at += n;
        t++;
    }

    f = forest_from_trees((int) n_features, (int) max_samples, transform, f32, th->valuedouble,
                          trees, n_trees, err);
    if (f && names && forest_set_feature_names(f, names) != 0) {
        forest_free(f);
        f = NULL;
        json_error(err, FOREST_ERR_NOMEM, "out of memory%s", "");
    }

done:
    free(names);
    free(trees);
    free(ints);
    free(thr);
    cJSON_Delete(root);
    return f;
}

/* add_raw_number appends a number printed with %.17g (exact round trip) to an array. */
static int add_number(cJSON *arr, double d)
{
    char buf[32];
    cJSON *item;
    if (d == floor(d) && fabs(d) < 1e15)
        snprintf(buf, sizeof(buf), "%.0f", d);
    else
        snprintf(buf, sizeof(buf), "%.17g", d);
    item = cJSON_CreateRaw(buf);
    if (!item)
        return -1;
    cJSON_AddItemToArray(arr, item);
    return 0;
}

/* forest_export_json writes the canonical trees (right child = left + 1) in the interchange
 * format; leaves carry feature -2 and threshold -2 as sklearn writes them. */
char *forest_export_json(const forest *f)
{
    cJSON *root = cJSON_CreateObject(), *trees;
    char *out = NULL;
    char buf[32];

    if (!root)
        return NULL;
    snprintf(buf, sizeof(buf), "%.17g", forest_threshold(f));
    if (!cJSON_AddStringToObject(root, "format", FOREST_JSON_FORMAT) ||
        !cJSON_AddNumberToObject(root, "n_features", forest_n_features(f)) ||
        !cJSON_AddStringToObject(root, "transform",
                                 forest_transform_name(forest_get_transform(f))) ||
        !cJSON_AddNumberToObject(root, "max_samples", forest_max_samples(f)) ||
        !cJSON_AddRawToObject(root, "threshold", buf) ||
        !cJSON_AddBoolToObject(root, "float32_inputs", forest_float32_inputs(f)))
        goto done;
    if (forest_feature_name(f, 0)) {
        cJSON *names = cJSON_AddArrayToObject(root, "feature_names");
        if (!names)
            goto done;
        for (int i = 0; i < forest_n_features(f); i++) {
            cJSON *s = cJSON_CreateString(forest_feature_name(f, i));
            if (!s)
                goto done;
            cJSON_AddItemToArray(names, s);
        }
    }
    trees = cJSON_AddArrayToObject(root, "trees");
    if (!trees)
        goto done;

    for (int t = 0; t < forest_n_trees(f); t++) {
        forest_canonical_tree ct;
        cJSON *tree = cJSON_CreateObject();
        cJSON *cl = cJSON_AddArrayToObject(tree, "children_left");
        cJSON *cr = cJSON_AddArrayToObject(tree, "children_right");
        cJSON *ft = cJSON_AddArrayToObject(tree, "feature");
        cJSON *th = cJSON_AddArrayToObject(tree, "threshold");
        cJSON *ns = cJSON_AddArrayToObject(tree, "n_node_samples");
        if (!tree || !cl || !cr || !ft || !th || !ns) {
            cJSON_Delete(tree);
            goto done;
        }
        cJSON_AddItemToArray(trees, tree);
        forest_get_tree(f, t, &ct);
        for (uint32_t i = 0; i < ct.n_nodes; i++) {
            int32_t l = ct.left[i];
            if (add_number(cl, l) || add_number(cr, l >= 0 ? l + 1 : -1) ||
                add_number(ft, l >= 0 ? ct.feature[i] : -2) ||
                add_number(th, l >= 0 ? ct.split[i] : -2.0) || add_number(ns, ct.n_samples[i]))
                goto done;
        }
    }
    out = cJSON_PrintUnformatted(root);

done:
    cJSON_Delete(root);
    return out;
}
