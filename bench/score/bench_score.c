/* bench/score/bench_score.c — time the forest core on a file of rows: train, batch scoring,
 * row-at-a-time scoring */

/*
 * Usage: bench_score ROWS.f64 N_FEATURES [N_TREES SAMPLE_SIZE CONTAMINATION SEED TRANSFORM]
 *
 * ROWS.f64 holds raw (untransformed) rows as little-endian float64, row-major. Everything runs on
 * one thread. Output is one "key value" pair per line so bench/score/bench.py can parse it:
 * train_seconds, score_batch_seconds, score_batch_rows_per_second, score_single_rows_per_second,
 * threshold, above_half (rows scoring > 0.5), checksum (a sum of the scores, to keep the compiler
 * honest and to compare runs). Each scoring measurement is the best of PASSES passes over all rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forest.h"

#define PASSES 5 /* this host's speed drifts between runs: the best of five is the machine's */

/* now_seconds reads the monotonic clock. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* read_rows loads the whole file; returns a malloc'd array and the row count, or NULL. */
static double *read_rows(const char *path, int nf, size_t *n_rows)
{
    FILE *fh = fopen(path, "rb");
    double *rows = NULL;
    long size;

    if (!fh)
        return NULL;
    if (fseek(fh, 0, SEEK_END) != 0 || (size = ftell(fh)) < 0 || fseek(fh, 0, SEEK_SET) != 0)
        goto fail;
    *n_rows = (size_t) size / (sizeof(double) * (size_t) nf);
    rows = malloc((size_t) size > 0 ? (size_t) size : 1);
    if (!rows || fread(rows, sizeof(double) * (size_t) nf, *n_rows, fh) != *n_rows)
        goto fail;
    fclose(fh);
    return rows;
fail:
    free(rows);
    fclose(fh);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s ROWS.f64 N_FEATURES [N_TREES SAMPLE_SIZE CONTAMINATION SEED "
                "TRANSFORM]\n",
                argv[0]);
        return 2;
    }
    forest_params p = {.n_features = atoi(argv[2]),
                       .n_trees = argc > 3 ? atoi(argv[3]) : 100,
                       .sample_size = argc > 4 ? atoi(argv[4]) : 256,
                       .contamination = argc > 5 ? atof(argv[5]) : 0.01,
                       .seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 42,
                       .transform = FOREST_TRANSFORM_LOG1P};
    if (argc > 7 && forest_transform_parse(argv[7], &p.transform) != 0) {
        fprintf(stderr, "unknown transform %s\n", argv[7]);
        return 2;
    }
    if (p.n_features < 1) {
        fprintf(stderr, "N_FEATURES must be positive\n");
        return 2;
    }
    size_t n = 0;
    double *rows = read_rows(argv[1], p.n_features, &n);
    if (!rows || n < 2) {
        fprintf(stderr, "cannot read rows from %s\n", argv[1]);
        return 1;
    }
    double *scores = malloc(sizeof(double) * n);
    if (!scores) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    forest_error err;
    double t0 = now_seconds();
    forest *f = forest_train(rows, n, &p, NULL, &err);
    double train = now_seconds() - t0;
    if (!f) {
        fprintf(stderr, "forest_train: %s\n", err.message);
        return 1;
    }

    double best_batch = 1e300, best_single = 1e300, checksum = 0.0;
    for (int pass = 0; pass < PASSES; pass++) {
        t0 = now_seconds();
        forest_score_batch(f, rows, n, scores);
        double dt = now_seconds() - t0;
        if (dt < best_batch)
            best_batch = dt;
    }
    size_t above_half = 0;
    for (size_t i = 0; i < n; i++) {
        checksum += scores[i];
        above_half += scores[i] > 0.5;
    }
    for (int pass = 0; pass < PASSES; pass++) {
        double sink = 0.0;
        t0 = now_seconds();
        for (size_t i = 0; i < n; i++)
            sink += forest_score(f, rows + i * (size_t) p.n_features);
        double dt = now_seconds() - t0;
        if (dt < best_single)
            best_single = dt;
        if (sink != checksum && pass == 0)
            fprintf(stderr, "note: single-row sum %.17g differs from batch sum %.17g\n", sink,
                    checksum);
    }

    printf("rows %zu\n", n);
    printf("train_seconds %.6f\n", train);
    printf("score_batch_seconds %.6f\n", best_batch);
    printf("score_batch_rows_per_second %.0f\n", (double) n / best_batch);
    printf("score_single_rows_per_second %.0f\n", (double) n / best_single);
    printf("threshold %.17g\n", forest_threshold(f));
    printf("checksum %.17g\n", checksum);
    printf("above_half %zu\n", above_half);
    forest_free(f);
    free(scores);
    free(rows);
    return 0;
}
