/* extension/src/chainwatch.h — declarations shared by the chainwatch extension's C modules */
#ifndef CHAINWATCH_H
#define CHAINWATCH_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/portal.h"

#include "forest.h"
#include "txfeatures.h"

#define CW_RESERVOIR_ROWS 100000

/* model_cache.c — deserialized models cached per backend, invalidated through the relcache */
typedef struct CachedModel {
    int32 id;
    forest *forest;          /* malloc'd, owned by the cache */
    double *feature_median;  /* the training sample's median of each raw feature (malloc'd, owned
                              * by the cache), NULL when the model has none (imported, or older) */
    int n_select;            /* behaviour/1: the model's features, by position in the full vector */
    int select[CW_FEATURES]; /* (0: not a behaviour/1 model) */
} CachedModel;

extern CachedModel *ModelCacheGet(int32 model_id);
extern CachedModel *ModelCacheTryGet(int32 model_id);
extern CachedModel *ModelCacheGetActive(void);
extern CachedModel *ModelCacheResolve(FunctionCallInfo fcinfo, int model_arg);
extern void ModelCacheInit(void);
extern Oid ModelCacheModelsRelid(void);

/* features.c — turning SQL values into feature vectors, with validation */
extern double FeatureFromNumeric(Datum num, const char *what);
extern bool FeatureFromNumericQuiet(Datum num, double *out);
extern void FeatureCheck(const forest *f, const double *x, int n);
extern double *FeaturesFromArray(ArrayType *arr, int *n_out);
extern double *FeaturesForModel(const CachedModel *m, double *x, int *n);
extern Portal SourceQueryOpen(const char *query);
extern void ForestErrorReport(const forest_error *err, const char *context);

/* model_io.c */
extern int32 ModelInsert(const char *name, forest *f, const char *source, double contamination,
                         bool has_contamination, int64 seed, bool has_seed, int64 training_rows,
                         const forest_score_summary *summary, const double *feature_median);

/* explain.c — why a transaction scored as it did */
extern Jsonb *ExplanationBuild(const CachedModel *m, const double *x);

/* worker.c — the maintenance background worker */
extern int cw_maintenance_interval;
extern char *cw_database;
extern void MaintenanceWorkersRegister(void);

#endif /* CHAINWATCH_H */
