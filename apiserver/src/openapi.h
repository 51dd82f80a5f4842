/* apiserver/src/openapi.h — the OpenAPI 3 document (docs/openapi.yaml as JSON, generated at build
 * time) */
#ifndef API_OPENAPI_H
#define API_OPENAPI_H

#include <stddef.h>

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

#endif /* API_OPENAPI_H */
