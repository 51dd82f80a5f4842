/* extension/src/xact_stats.c — rows inserted into a table by the current transaction, from its own
 * statistics */
#include "chainwatch.h"

#include "pgstat.h"

PG_FUNCTION_INFO_V1(chainwatch_xact_inserted);
/*
 * chainwatch_xact_inserted(relid oid) RETURNS bigint: the rows the current transaction (all of
 * its open subtransaction levels) has inserted into relid. pg_stat_get_xact_tuples_inserted()
 * also adds counts of earlier transactions of the session that are not yet flushed to the
 * shared statistics, so it cannot be used for this; the per-level transactional counters can.
 * Zero when track_counts is off (commit_batch refuses to run then).
 */
Datum chainwatch_xact_inserted(PG_FUNCTION_ARGS)
{
    PgStat_TableStatus *tab = find_tabstat_entry(PG_GETARG_OID(0));
    int64 n = 0;

    if (tab)
        for (PgStat_TableXactStatus *trans = tab->trans; trans != NULL; trans = trans->upper)
            n += trans->tuples_inserted;
    PG_RETURN_INT64(n);
}
