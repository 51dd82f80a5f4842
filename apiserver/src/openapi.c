/* apiserver/src/openapi.c — GET /api/v1/openapi.json: serves the document embedded at build time */
#include "openapi.h"

#include "handlers.h"

int openapi_get(api_request *req)
{
    return api_json(req, 200, api_openapi_json, api_openapi_json_len);
}
