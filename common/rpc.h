/*  rpc: the client side of the broker protocol (docs/protocol.md).

    An rpc_client_t is one DEALER socket connected to the broker, used by one
    thread at a time (the gateway keeps one per HTTP worker thread, a
    service one per worker thread). A call is synchronous: send, then wait
    for the reply that carries this call's correlation id until the
    deadline; replies to earlier calls that arrive late are discarded.

    The result is always a reply object (errors.h), never NULL:
      - the service's own reply;
      - 503 "unavailable" when the broker has no worker for the service:
        at once for a name no worker ever registered, after the broker's
        hold (BROKER_HOLD_MS) for one whose workers are restarting;
      - a request the broker never handed to a worker (it is draining,
        or said BYE) is sent again by the call itself until the deadline
        (rpc.c, "Resending");
      - 504 "timeout" when the deadline passes with no reply (also when the
        broker itself is down: the socket reconnects in the background and
        the next call goes through once it is back).
*/
#ifndef RPC_H_INCLUDED
#define RPC_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>

#define RPC_DEFAULT_TIMEOUT_MS 5000
//  The broker's last message to a client when it stops: ["", SC01, BYE]
//  (docs/protocol.md). Every request it read from the connection is
//  answered ahead of it; nothing sent is read after it.
#define RPC_BYE "BYE"
//  How long a client waits after a BYE before it connects again, so the
//  stopping broker has closed its listening socket by then (it closes
//  right after sending BYE).
#define RPC_BYE_PAUSE_MS 100

typedef struct rpc_client_t rpc_client_t;

//  Sets CZMQ up once per process (thread-safe). rpc_client_new and
//  worker_new call it; call it before making other sockets in threads.
void rpc_zsys_init_once(void);

//  For a process past its drain: SIGTERM and SIGINT are ignored from now
//  on, so a repeated stop signal cannot turn its clean exit into a kill.
void rpc_zsys_ignore_stop_signals(void);

//  endpoint: the broker's client endpoint (BROKER_URL). NULL on failure.
rpc_client_t *rpc_client_new(const char *endpoint);
void rpc_client_destroy(rpc_client_t **self_p);

//  Calls service.method with args (borrowed; NULL = {}). request_id NULL
//  means the calling thread's log request id (or a new one). deadline_ms is
//  absolute unix ms; 0 means now + RPC_DEFAULT_TIMEOUT_MS.
//  Returns a new reply object.
json_t *rpc_call(rpc_client_t *self, const char *service, const char *method, int64_t viewer_id,
                 const json_t *args, const char *request_id, int64_t deadline_ms);

//  rpc_call with one optional binary payload each way (the BLOB frame of
//  docs/protocol.md): blob[0..blob_size) goes with the request (NULL = none;
//  at most PROTOCOL_BLOB_MAX bytes, else 413 without sending). When
//  reply_blob is not NULL it gets the reply's blob as a new malloc'd buffer
//  the caller frees (NULL and size 0 when the reply has none); a reply blob
//  that is not asked for is dropped.
json_t *rpc_call_blob(rpc_client_t *self, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const void *blob, size_t blob_size,
                      const char *request_id, int64_t deadline_ms, void **reply_blob,
                      size_t *reply_blob_size);

//  A success reply's body left in msgpack, for a caller that writes it out
//  itself (the gateway writes it as JSON text, msgjson_write_text) instead
//  of having it built as a jansson tree first.
typedef struct {
    void *msg;                  // the reply message (zmsg_t) the body points into
    msgpack_unpacked unpacked;  // the reply, unpacked
    const msgpack_object *body; // the body, or NULL: then the reply object has it
} rpc_body_t;

void rpc_body_init(rpc_body_t *body);
//  Frees what a call left in body and makes it empty again.
void rpc_body_clear(rpc_body_t *body);

//  rpc_call, except that a success reply ({status, body}, no error) comes
//  back as {status} alone with its body in body->body (valid until
//  rpc_body_clear; not checked yet: msgjson_write_text refuses what
//  rpc_call would have answered 500 for). Every other reply is as rpc_call
//  returns it, and body->body is NULL. body must be initialised.
json_t *rpc_call_lazy(rpc_client_t *self, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const char *request_id,
                      int64_t deadline_ms, rpc_body_t *body);

#endif
