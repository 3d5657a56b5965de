/*  http: the gateway's request path, from civetweb to a service and back.

    gateway_handle() is the one civetweb request handler (registered on
    "/"). It gives every request an id, then sends it to one of:
      /api/...              route table -> auth -> limits -> args -> rpc_call
      /healthz /readyz /metrics            ops.c
      /media/{key}          image bytes from media media.get (mediafile.c)
      /stream               404 until the WebSocket hub exists
      anything else         static files from WEB_ROOT (static.c)
    and finally records metrics and writes one log line for it.

    Response rules shared by every module: a JSON body is sent as
    "application/json; charset=utf-8"; every response carries X-Request-Id
    and X-Content-Type-Options: nosniff; API and ops responses carry
    Cache-Control: no-store unless the caller sets its own.
*/
#ifndef GATEWAY_HTTP_H_INCLUDED
#define GATEWAY_HTTP_H_INCLUDED

#include "metrics.h"
#include "ratelimit.h"
#include "routes.h"
#include "rpc.h"

#include <civetweb.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *jwt_secret;      // >= 32 bytes (checked by main)
    const char *broker_url;      // BROKER_URL
    size_t max_body;             // GATEWAY_MAX_BODY, bytes
    int64_t request_timeout_ms;  // REQUEST_TIMEOUT_MS: the RPC deadline
    const char *web_root;        // WEB_ROOT; NULL or missing: no static files
    const char *services;        // GATEWAY_SERVICES, comma separated, for /readyz
    int auth_rate_limit_per_min; // AUTH_RATE_LIMIT_PER_MIN, 0 = off
    int64_t keepalive_ms;        // GATEWAY_KEEPALIVE_MS; 0 = not announced
} gateway_config_t;

typedef struct gateway_t gateway_t;

//  Copies what it needs from config. NULL on failure (logged).
gateway_t *gateway_new(const gateway_config_t *config);
//  Call after mg_stop (no request may be running).
void gateway_destroy(gateway_t **self_p);

//  Graceful stop, before mg_stop(): from now on new requests get 503 and
//  every response closes its connection; returns when the requests in
//  flight have been answered or after timeout_ms. (mg_stop alone would
//  drop the answers of requests still running: civetweb stops writing
//  once it is stopping.)
void gateway_drain(gateway_t *self, int timeout_ms);

//  The civetweb request handler; cbdata is the gateway_t. Returns the
//  HTTP status it sent.
int gateway_handle(struct mg_connection *conn, void *cbdata);

//  The civetweb http_error callback: errors civetweb raises itself
//  (malformed request line, headers too large) get the JSON error
//  envelope too. Needs the gateway_t as mg_start's user_data.
int gateway_http_error(struct mg_connection *conn, int status, const char *message);

metrics_t *gateway_metrics(gateway_t *self);

//  True when id is 1..64 characters of [A-Za-z0-9._-] (an X-Request-Id we
//  pass on; anything else is replaced by a fresh id).
bool gateway_request_id_ok(const char *id);

//  ---------------------------------------------------------------------
//  For ops.c and static.c: one request in flight.

typedef struct {
    struct mg_connection *conn;
    const struct mg_request_info *info;
    gateway_t *gateway;
    char request_id[65];
    const char *route; // metrics and log label (bounded set)
    int status;        // what was sent (0 until then)
    bool close;        // ask civetweb to close the connection after it
    bool continued;    // an interim "100 Continue" went out
} http_request_t;

//  Sends status, then body[0..size) (NULL: no body; suppressed for HEAD
//  but Content-Length kept). headers: NULL-terminated name, value pairs
//  (may be NULL). content_type is used only when there is a body.
//  Returns 0, or -1 when a response was already started (nothing sent).
int http_send(http_request_t *request, int status, const char *content_type, const char *body,
              size_t size, const char *const *headers);

//  Sends body as JSON (NULL: no body).
void http_send_json(http_request_t *request, int status, const json_t *body,
                    const char *const *headers);

//  Sends {"error": {code, message, fields?}}; fields (may be NULL) is stolen.
void http_send_error(http_request_t *request, int status, const char *code, const char *message,
                     json_t *fields_stolen, const char *const *headers);

//  Turns a service's reply object into the HTTP response (errors as the
//  error envelope, 401 with WWW-Authenticate). reply is borrowed.
void http_send_reply(http_request_t *request, const route_t *route, json_t *reply);

//  Accessors for the modules the handler dispatches to.
//  The calling thread's rpc client (made on first use; NULL when the broker
//  URL is unusable). Borrowed.
rpc_client_t *gateway_thread_rpc(gateway_t *self);
int64_t gateway_request_timeout_ms(gateway_t *self);
//  The Keep-Alive header's value ("timeout=N"), or NULL when none is sent.
const char *gateway_keepalive(gateway_t *self);
const char *gateway_broker_url(gateway_t *self);
const char *gateway_services(gateway_t *self);
const char *gateway_web_root(gateway_t *self); // resolved real path, or NULL

#endif
