/* ingestor/src/history.h — a batch's behavioural features, from its addresses' profiles read in the
 * batch's own transaction
 */
#ifndef INGESTOR_HISTORY_H
#define INGESTOR_HISTORY_H

#include <libpq-fe.h>

#include "batch.h"

/*
 * history_compute reads the profiles of every address of b's rows (chainwatch._batch_profiles, one
 * statement) on conn, inside the open batch transaction, and fills b->history with each row's
 * behaviour/1 features (common/src/txfeatures.c), folding the batch's messages in one after another
 * as the profile trigger will. Returns NULL when done (b->has_history set); otherwise the failed
 * result (the caller classifies and clears it; NULL result of libpq's own is returned as a
 * PGresult of status PGRES_FATAL_ERROR), or out_of_memory set and NULL.
 */
PGresult *history_compute(PGconn *conn, batch *b, bool *out_of_memory);

#endif /* INGESTOR_HISTORY_H */
