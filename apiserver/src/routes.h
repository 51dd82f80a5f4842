/* apiserver/src/routes.h — the route table of chainwatch-api (routes.c) */
#ifndef API_ROUTES_H
#define API_ROUTES_H

#include "router.h"

/* api_routes: every endpoint the server answers; a route's index is its metrics slot */
extern const api_route api_routes[];
extern const int api_routes_count;

#endif /* API_ROUTES_H */
