/* fuzz/fuzz_forest_json.c — libFuzzer target: chainwatch-iforest/1 import, then export and
 * re-import */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput: an accepted model must score, export, and re-import to the same scores.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    forest_error err;
    forest *f = forest_import_json((const char *) data, size, &err);
    if (!f)
        return 0;
    double x[FOREST_MAX_FEATURES];
    for (int i = 0; i < forest_n_features(f); i++)
        x[i] = (double) (i * 7 % 13);
    double s = forest_score(f, x);
    if (!(s > 0 && s <= 1))
        abort();
    char *json = forest_export_json(f);
    if (json) {
        forest *g = forest_import_json(json, strlen(json), &err);
        if (!g || forest_score(g, x) != s)
            abort();
        forest_free(g);
        free(json);
    }
    forest_free(f);
    return 0;
}
