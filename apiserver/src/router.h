/* apiserver/src/router.h — routes (method, path pattern, handler, role) and the matcher that finds
 * one for a request */
#ifndef API_ROUTER_H
#define API_ROUTER_H

#include <stdbool.h>

#define ROUTE_MAX_PARAMS 2
#define ROUTE_PARAM_MAX  128 /* longest path parameter accepted, with the NUL */

struct api_request;
typedef int (*api_handler)(struct api_request *req);

typedef enum api_role {
    ROLE_NONE = 0, /* no key needed */
    ROLE_READER = 1,
    ROLE_ADMIN = 2,
} api_role;

/*
 * api_route: one endpoint. pattern segments in braces ("{hash}") match one non-empty path
 * segment and are passed to the handler in order. The pattern is also the route's metric label,
 * so label values are bounded by this table, never by client input.
 */
typedef struct api_route {
    const char *method;
    const char *pattern;
    api_handler handler;
    api_role role;
    bool rate_limited; /* health and metrics are exempt: probes and scrapes must not be refused */
} api_route;

/*
 * router_match finds the route for method and path. On a match returns its index and copies the
 * path parameters into params (*n_params of them). Returns -1 when nothing matches; then
 * *path_known says whether the path exists with another method (405 rather than 404), and
 * allow (if not NULL, allow_len bytes) lists those methods ("GET, POST").
 */
int router_match(const api_route *table, int n, const char *method, const char *path,
                 char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *n_params, bool *path_known,
                 char *allow, int allow_len);

#endif /* API_ROUTER_H */
