/* extension/src/chainwatch.c — module entry point: magic block, GUCs, maintenance worker
 * registration */
#include "chainwatch.h"

#include <limits.h>
#include <string.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/* settings (see docs/configuration.md); the SQL side reads them with current_setting() */
int cw_maintenance_interval = 10; /* seconds */
char *cw_database = NULL;         /* comma-separated database names for the worker */
static bool cw_auto_train = true;
static int cw_auto_train_min_rows = 10000;
static int cw_auto_train_sample_size = 2048; /* rows per tree of automatically trained models */
static double cw_auto_train_contamination = 0.005; /* their expected share of anomalies */
static int cw_retrain_interval = 0;                /* seconds, 0 = off */
static double cw_retrain_growth = 2.0; /* multiple of the newest model's training rows, 0 = off */

/* check_retrain_growth refuses growths in (0, 1.1): they would retrain on nearly every maintenance
 * run */
static bool check_retrain_growth(double *newval, void **extra, GucSource source)
{
    if (*newval > 0 && *newval < 1.1) {
        GUC_check_errdetail("chainwatch.retrain_growth is 0 (off) or at least 1.1.");
        return false;
    }
    return true;
}
static int cw_maintenance_lock_timeout = 200; /* ms */

/* the behaviour/1 features automatic training gives a model (measured on make bench-detect:
 * docs/detection.md says why these) */
static char *cw_model_features = NULL;
#define DEFAULT_MODEL_FEATURES                                                                     \
    "log_value,log_gas,log_gas_price,sender_age,sender_gap,sender_value_up,sender_recent,"         \
    "gas_price_up"

/* check_model_features accepts a comma-separated list of distinct behaviour/1 feature names */
static bool check_model_features(char **newval, void **extra, GucSource source)
{
    char *copy = pstrdup(*newval);
    const char *names[CW_FEATURES];
    int map[CW_FEATURES], n = 0;
    bool ok = true;

    for (char *tok = strtok(copy, ", "); tok; tok = strtok(NULL, ", ")) {
        if (n == CW_FEATURES) {
            ok = false;
            break;
        }
        names[n++] = tok;
    }
    ok = ok && n > 0 && cw_feature_map(names, n, map) == n;
    if (!ok)
        GUC_check_errdetail("chainwatch.model_features lists distinct names of "
                            "chainwatch.feature_names(), separated by commas.");
    pfree(copy);
    return ok;
}

/* what automatic training trains on (models.feature_set) */
static int cw_feature_set = 0;
static const struct config_enum_entry feature_sets[] = {
    {"behaviour/1", 0, false},
    {"transaction/1", 1, false},
    {NULL, 0, false},
};

/*
 * _PG_init runs when the library is loaded, by shared_preload_libraries or by the first call
 * of one of its functions. It defines the settings, and when preloaded registers one
 * maintenance worker per database named in chainwatch.database. Without preloading the
 * extension works the same, and maintain() is called by the ingestor or pg_cron instead.
 */
void _PG_init(void)
{
    ModelCacheInit();

    DefineCustomIntVariable(
        "chainwatch.maintenance_interval",
        "Seconds between runs of chainwatch.maintain() by the background worker.", NULL,
        &cw_maintenance_interval, 10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
    DefineCustomStringVariable(
        "chainwatch.database", "Databases (comma-separated) in which the maintenance worker runs.",
        "Needs shared_preload_libraries = 'chainwatch'.", &cw_database, "chainwatch",
        /* only the postmaster reads it; later loads may not define
         * PGC_POSTMASTER settings */
        process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP, 0, NULL, NULL,
        NULL);
    DefineCustomBoolVariable(
        "chainwatch.auto_train",
        "Train and activate a first model when enough transactions are stored.", NULL,
        &cw_auto_train, true, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("chainwatch.auto_train_min_rows",
                            "Stored transactions needed before the first automatic training.", NULL,
                            &cw_auto_train_min_rows, 10000, 2, INT_MAX, PGC_SUSET, 0, NULL, NULL,
                            NULL);
    DefineCustomIntVariable("chainwatch.auto_train_sample_size",
                            "Rows each tree of an automatically trained model is built from.",
                            "train_model()'s own default stays 256, scikit-learn's.",
                            &cw_auto_train_sample_size, 2048, 16, 65536, PGC_SUSET, 0, NULL, NULL,
                            NULL);
    DefineCustomRealVariable("chainwatch.auto_train_contamination",
                             "Expected share of anomalies of an automatically trained model: its "
                             "threshold is that quantile of its training scores.",
                             "train_model()'s own default stays 0.01.",
                             &cw_auto_train_contamination, 0.005, 0.0001, 0.5, PGC_SUSET, 0, NULL,
                             NULL, NULL);
    DefineCustomIntVariable(
        "chainwatch.retrain_interval", "Retrain on the latest window this often (0 = never).", NULL,
        &cw_retrain_interval, 0, 0, INT_MAX, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
    DefineCustomRealVariable("chainwatch.retrain_growth",
                             "Retrain when the stored transactions reach this multiple of the "
                             "newest model's training rows "
                             "(0 = never).",
                             NULL, &cw_retrain_growth, 2.0, 0.0, 1000.0, PGC_SUSET, 0,
                             check_retrain_growth, NULL, NULL);
    DefineCustomEnumVariable("chainwatch.feature_set",
                             "Features automatic training trains models on.",
                             "behaviour/1: transactions.features, the transaction next to its "
                             "sender's and recipient's history; transaction/1: value, gas and gas "
                             "price alone.",
                             &cw_feature_set, 0, feature_sets, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomStringVariable(
        "chainwatch.model_features",
        "The behaviour/1 features of models automatic training makes (comma-separated).", NULL,
        &cw_model_features, DEFAULT_MODEL_FEATURES, PGC_SUSET, 0, check_model_features, NULL, NULL);
    DefineCustomIntVariable("chainwatch.maintenance_lock_timeout",
                            "Longest wait of maintenance DDL for a table lock.", NULL,
                            &cw_maintenance_lock_timeout, 200, 1, 60000, PGC_SUSET, GUC_UNIT_MS,
                            NULL, NULL, NULL);
    MarkGUCPrefixReserved("chainwatch");

    if (process_shared_preload_libraries_in_progress)
        MaintenanceWorkersRegister();
}

PG_FUNCTION_INFO_V1(chainwatch_load);
/* chainwatch_load: a no-op whose call guarantees the library (and its settings) is loaded */
Datum chainwatch_load(PG_FUNCTION_ARGS)
{
    PG_RETURN_VOID();
}
