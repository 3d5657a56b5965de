/*  ops: the operations endpoints (API.md "Operations").

    /healthz  200 {"status":"ok"} while the process serves HTTP.
    /readyz   pings every service of GATEWAY_SERVICES ("sys.ping", 1 s
              deadline, all at once): a 503 or 504 reply means down,
              any other reply (even 404 for an unknown method) means a
              worker answered, so up. 200 {"status":"ok","services":{...}}
              when all are up, else 503 {"status":"unavailable",...}.
    /metrics  the Prometheus text of metrics.h.
*/
#ifndef GATEWAY_OPS_H_INCLUDED
#define GATEWAY_OPS_H_INCLUDED

#include "http.h"

#include <jansson.h>

#define OPS_PING_TIMEOUT_MS 1000
#define OPS_MAX_SERVICES 32

//  Handles path if it is one of the three; returns false otherwise.
bool ops_handle(http_request_t *request, const char *path);

//  The readiness report for the comma-separated services, asking the
//  broker at broker_url. *status_out gets 200 or 503. New reference.
json_t *ops_readiness(const char *broker_url, const char *services, const char *request_id,
                      int *status_out);

#endif
