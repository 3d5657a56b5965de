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
    the hub answers WebSocket pings and pings idle clients. A client
    message longer than 8 KiB is closed with 1009 as soon as its frame
    header arrives, before any of it is read or allocated (the hub reads
    frames itself, not civetweb: see ws.c).

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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_PATH "/api/v1/stream"
#define WS_CLOSE_UNAUTHORIZED 4401
#define WS_QUEUE_MAX 256         // frames waiting for one connection before it is dropped
#define WS_CLIENT_FRAME_MAX 8192 // bytes of one client message
#define WS_FRAME_HEADER_MAX 14   // 2 + 8 (64-bit length) + 4 (mask key)

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

//  Registers the WebSocket handler for WS_PATH on ctx; pings idle clients
//  after ctx's websocket_timeout_ms.
void ws_hub_attach(ws_hub_t *self, struct mg_context *ctx);

//  Before mg_stop: sends every open connection a close frame (1001, going
//  away) so clients reconnect elsewhere.
void ws_hub_close_all(ws_hub_t *self);

//  Open connections (authenticated or not).
int ws_hub_connections(ws_hub_t *self);

//  ---------------------------------------------------------------------
//  Client frames (RFC 6455, 5.2), pure functions over bytes: the read
//  loop (ws.c) and the fuzz target (tests/fuzz/fuzz_ws_frame.c) share them.

typedef enum {
    WS_FRAME_ERROR = -1,    // close with close_code
    WS_FRAME_NEED_MORE = 0, // the buffer must first hold need bytes
    WS_FRAME_OK = 1,        // the header is complete (the payload follows it)
} ws_frame_result_t;

typedef struct {
    size_t need;          // NEED_MORE: bytes the buffer must hold (> len, <= 14)
    size_t header_len;    // OK: 6, 8 or 14 (7-, 16- or 64-bit length, mask key)
    int opcode;           // OK, ERROR: the low 4 bits of the first byte
    bool fin;             // OK, ERROR
    uint8_t mask[4];      // OK: the client's mask key
    uint64_t payload_len; // OK: <= max_payload; ERROR: as announced
    int close_code;       // ERROR: 1002 (protocol error) or 1009 (too big)
} ws_frame_t;

//  Reads the header of the client frame at the start of buf (len bytes;
//  NULL when len is 0) into *out and answers:
//    NEED_MORE  out->need is the length buf must reach before anything can
//               be decided: 2, then 2 + the extended length (4 or 10),
//               then the whole header; so a reader that fetches exactly
//               need - len more bytes each time never reads past a header.
//    ERROR      as soon as the length is known (the mask key is not
//               waited for): 1002 for set reserved bits (no extension is
//               negotiated), an unknown opcode, an unmasked frame, or a
//               control frame that is fragmented or longer than 125
//               bytes; else 1009 for a 64-bit length with its top bit set
//               or a payload longer than max_payload. The checks run before
//               any payload byte is needed, so nothing is allocated for a
//               frame that is refused.
//    OK         the header is complete: the payload is the payload_len
//               bytes after header_len (not necessarily in buf yet).
//  Never reads past buf[len - 1]. A continuation frame (opcode 0) is valid
//  here: what a message may be made of is the caller's rule.
ws_frame_result_t ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload,
                                 ws_frame_t *out);

//  Unmasks (or masks: the same XOR) len payload bytes in place with the
//  frame's mask key; byte i of the payload uses mask[i % 4].
void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4]);

#endif
