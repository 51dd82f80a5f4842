/* extension/src/worker.c — background worker that runs chainwatch.maintain() on an interval */

/*
 * One worker per database named in chainwatch.database (registered only when the library is
 * preloaded). Each connects to its database and, every chainwatch.maintenance_interval
 * seconds, runs chainwatch.maintain() in a transaction of its own if the extension is
 * installed there. The retention logic lives in SQL (pg_partman's habit): the worker only
 * schedules it. SIGHUP reloads the settings, SIGTERM exits through die(); the latch wait
 * watches for postmaster death. An error ends the worker, and the postmaster restarts it
 * after bgw_restart_time, which is also the back-off.
 */
#include "chainwatch.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

#define MAX_WORKERS 16

PGDLLEXPORT void chainwatch_maintenance_main(Datum arg);

/* MaintenanceWorkersRegister registers one worker per listed database (postmaster only). */
void MaintenanceWorkersRegister(void)
{
    char *raw = pstrdup(cw_database ? cw_database : "");
    List *names = NIL;
    ListCell *lc;
    int n = 0;

    if (!SplitIdentifierString(raw, ',', &names))
        ereport(FATAL,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("chainwatch.database must be a comma-separated list of database names")));
    foreach (lc, names) {
        const char *db = lfirst(lc);
        BackgroundWorker worker;

        if (n >= MAX_WORKERS) {
            ereport(WARNING, (errmsg("chainwatch: at most %d maintenance workers; ignoring \"%s\"",
                                     MAX_WORKERS, db)));
            continue;
        }
        memset(&worker, 0, sizeof(worker));
        worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
        worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
        worker.bgw_restart_time = 10;
        snprintf(worker.bgw_library_name, BGW_MAXLEN, "chainwatch");
        snprintf(worker.bgw_function_name, BGW_MAXLEN, "chainwatch_maintenance_main");
        snprintf(worker.bgw_name, BGW_MAXLEN, "chainwatch maintenance %s", db);
        snprintf(worker.bgw_type, BGW_MAXLEN, "chainwatch maintenance");
        strlcpy(worker.bgw_extra, db, BGW_EXTRALEN);
        worker.bgw_main_arg = Int32GetDatum(n);
        RegisterBackgroundWorker(&worker);
        n++;
    }
    /* the names point into raw; RegisterBackgroundWorker copied what it keeps */
    list_free(names);
    pfree(raw);
}

/* run_maintenance runs maintain() once in its own transaction, if the extension exists here. */
static void run_maintenance(void)
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "SELECT chainwatch.maintain()");
    if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'chainwatch'", true,
                    1) == SPI_OK_SELECT &&
        SPI_processed == 1) {
        if (SPI_execute("SELECT * FROM chainwatch.maintain()", false, 0) != SPI_OK_SELECT)
            elog(ERROR, "chainwatch.maintain() failed");
    }
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_stat(true);
    pgstat_report_activity(STATE_IDLE, NULL);
}

/* chainwatch_maintenance_main is the worker's entry point. */
void chainwatch_maintenance_main(Datum arg)
{
    char db[BGW_EXTRALEN];

    strlcpy(db, MyBgworkerEntry->bgw_extra, sizeof(db));
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(db, NULL, 0);
    ereport(LOG, (errmsg("chainwatch maintenance worker started in database \"%s\" (every %d s)",
                         db, cw_maintenance_interval)));

    for (;;) {
        run_maintenance();
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                         (long) cw_maintenance_interval * 1000L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
    }
}
