/* apiserver/src/sql.h — every SQL statement chainwatch-api runs, prepared on each pooled connection
 */
#ifndef API_SQL_H
#define API_SQL_H

#include <stdbool.h>

/* API_MIN_EXTENSION: the oldest chainwatch extension version whose objects these statements read
 * (anomalies.document came with 0.7.0); every message about the extension's version names it */
#define API_MIN_EXTENSION "0.7.0"

typedef enum sql_stmt {
    SQL_AUTH,
    SQL_ANOMALY_LIST,
    SQL_ANOMALY_LIST_ALL,
    SQL_ANOMALY_GET,
    SQL_TX_GET,
    SQL_PREDICT,
    SQL_PREDICT_BATCH,
    SQL_STATS,
    SQL_MODEL_LIST,
    SQL_MODEL_GET,
    SQL_MODEL_TRAIN,
    SQL_MODEL_ACTIVATE,
    SQL_MODEL_ROLLBACK,
    SQL_STMT_COUNT
} sql_stmt;

typedef struct sql_def {
    const char *name; /* prepared statement name */
    int nparams;
    const char *text;
    bool binary; /* results in binary format (read with pgbin.c), else text */
} sql_def;

extern const sql_def sql_statements[SQL_STMT_COUNT];

#endif /* API_SQL_H */
