/* apiserver/src/handlers.h — the request handlers, one file per resource; each returns the HTTP
 * status */
#ifndef API_HANDLERS_H
#define API_HANDLERS_H

#include "httpx.h"

/* anomalies.c */
int anomalies_list(api_request *req);
int anomalies_get(api_request *req);
/* transactions.c */
int transactions_get(api_request *req);
/* predict.c */
int predict_one(api_request *req);
int predict_batch(api_request *req);
/* stats.c */
int stats_get(api_request *req);
/* models.c */
int models_list(api_request *req);
int models_get(api_request *req);
int models_train(api_request *req);
int models_activate(api_request *req);
int models_rollback(api_request *req);
/* health.c */
/* api_extension_version_ok: true when the dotted version have is API_MIN_EXTENSION or later */
bool api_extension_version_ok(const char *have);
int health_full(api_request *req);
int health_live(api_request *req);
int health_ready(api_request *req);
/* metrics_page.c */
int metrics_get(api_request *req);
/* openapi.c */
int openapi_get(api_request *req);

#endif /* API_HANDLERS_H */
