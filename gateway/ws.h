/*  ws: the WebSocket hub behind GET /api/v1/stream (API.md, Notifications).

    A client opens the stream with its access token, either in the query
    (?access_token=…; a bad one refuses the handshake with 401) or in the
    first frame {"type":"auth","token":"…"} (a bad one closes with code
    4401). On connect the hub sends an unread_count frame (notification's
    notifications.unread); after that every notification.push event for the
    user becomes a frame {type, data} on each of the user's open
    connections, and on nobody else's. Sending a new auth frame before the
    token expires keeps the connection open; at expiry it is closed with
    4401. The client may send {"type":"ping"} and gets {"type":"pong"};
    civetweb answers WebSocket pings and pings idle clients.

    Threads: civetweb runs each connection on one of its worker threads
    (so the pool is sized for GATEWAY_WEBSOCKETS_MAX extra connections, see
    main.c). One hub thread subscribes to "notification.push" on the
    broker's XPUB (EVENTS_SUB_URL) and fans each event out into the
    connections' bounded queues; a few writer threads drain the queues. A
    client that does not read fills its own queue and is dropped (close
    1008) without slowing the others.
*/
#ifndef GATEWAY_WS_H_INCLUDED
#define GATEWAY_WS_H_INCLUDED

#include "metrics.h"

#include <civetweb.h>
#include <stdint.h>

#define WS_PATH "/api/v1/stream"
#define WS_CLOSE_UNAUTHORIZED 4401
#define WS_QUEUE_MAX 256 // frames waiting for one connection before it is dropped

typedef struct {
    const char *jwt_secret;     // >= 32 bytes
    const char *broker_url;     // for notifications.unread on connect
    const char *events_sub_url; // the broker's XPUB (EVENTS_SUB_URL)
    metrics_t *metrics;         // websocket_connections, handshake statuses
    int max_connections;        // GATEWAY_WEBSOCKETS_MAX: more get 503
    int writers;                // writer threads (GATEWAY_WEBSOCKET_WRITERS)
    int auth_timeout_ms;        // time to send the first-frame token
    int64_t request_timeout_ms; // deadline of the unread count call
} ws_config_t;

typedef struct ws_hub_t ws_hub_t;

//  Starts the hub thread and the writers. NULL on failure (logged).
ws_hub_t *ws_hub_new(const ws_config_t *config);
//  After mg_stop (no connection is open any more): stops the threads.
void ws_hub_destroy(ws_hub_t **self_p);

//  Registers the WebSocket handlers for WS_PATH on ctx.
void ws_hub_attach(ws_hub_t *self, struct mg_context *ctx);

//  Before mg_stop: sends every open connection a close frame (1001, going
//  away) so clients reconnect elsewhere.
void ws_hub_close_all(ws_hub_t *self);

//  Open connections (authenticated or not).
int ws_hub_connections(ws_hub_t *self);

#endif
