/*  metrics: the gateway's Prometheus metrics (text exposition format 0.0.4).

      http_requests_total{route,method,status}         counter
      http_request_duration_seconds{route}             histogram
      rpc_duration_seconds{service}                    histogram
      rpc_errors_total{service,code}                   counter (5xx replies:
                                                       unavailable, timeout, internal)
      websocket_connections                            gauge

    Label values must come from bounded sets: route is a route pattern (or
    one of the fixed names "/healthz", "/readyz", "/metrics", "static",
    "unmatched"), method is normalised by metrics_method_label(), service a
    name from the route table or GATEWAY_SERVICES. As a last guard each
    family holds at most METRICS_MAX_SERIES series; more are dropped.
    Thread-safe (one mutex; an observation is a few increments).
*/
#ifndef GATEWAY_METRICS_H_INCLUDED
#define GATEWAY_METRICS_H_INCLUDED

#include <stddef.h>

#define METRICS_MAX_SERIES 2048

typedef struct metrics_t metrics_t;

metrics_t *metrics_new(void);
void metrics_destroy(metrics_t **self_p);

void metrics_http_observe(metrics_t *self, const char *route, const char *method, int status,
                          double seconds);
//  status: the reply's status; 5xx count as errors of their code.
void metrics_rpc_observe(metrics_t *self, const char *service, int status, double seconds);
void metrics_websocket_add(metrics_t *self, int delta);

//  The exposition text, malloc'd (caller frees); *size_out its length.
char *metrics_render(metrics_t *self, size_t *size_out);

//  A known HTTP method as itself, anything else as "OTHER". Static text.
const char *metrics_method_label(const char *method);

#endif
