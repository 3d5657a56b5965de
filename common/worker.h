/*  worker: the worker side of the broker protocol (docs/protocol.md).

    A worker_t is one DEALER socket that connects out to the broker (workers
    never bind, so N copies of a service is N processes), announces READY
    with its service name, then takes one request at a time. Heartbeats are
    sent from worker_recv (and a reply counts as one), so a thread busy in a
    handler does not heartbeat: the broker gives a busy worker until its
    request's deadline plus the liveness window before it drops it (see
    docs/protocol.md). If the broker is silent for WORKER_LIVENESS
    heartbeats, or says DISCONNECT, the worker reconnects with a new socket,
    so a restarted broker gets its workers back.
*/
#ifndef WORKER_H_INCLUDED
#define WORKER_H_INCLUDED

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define WORKER_HEARTBEAT_MS 1000
#define WORKER_LIVENESS 3

typedef struct worker_t worker_t;

typedef struct {
    char *client; // opaque routing address (owned)
    size_t client_size;
    char *correlation; // opaque correlation id (owned)
    size_t correlation_size;
    char *envelope; // request envelope bytes (owned)
    size_t envelope_size;
    char *blob; // the optional BLOB frame's bytes (owned), NULL when none
    size_t blob_size;
} worker_request_t;

worker_t *worker_new(const char *endpoint, const char *service);
//  Sends DISCONNECT to the broker and closes.
void worker_destroy(worker_t **self_p);

//  Waits up to timeout_ms for a request (heartbeating meanwhile). Returns 1
//  with *request filled, 0 on timeout, -1 when interrupted (zsys_interrupted).
int worker_recv(worker_t *self, worker_request_t *request, int timeout_ms);

//  Sends the reply bytes for request and frees request's fields. 0 or -1.
int worker_send(worker_t *self, worker_request_t *request, const void *reply, size_t reply_size);

//  worker_send with an optional blob frame after the reply (NULL = none).
int worker_send_blob(worker_t *self, worker_request_t *request, const void *reply,
                     size_t reply_size, const void *blob, size_t blob_size);

void worker_request_clear(worker_request_t *request);

//  Leaving cleanly (a SIGTERM): worker_leave sends DISCONNECT, after which
//  the broker routes nothing new here; then call worker_drain until it
//  returns 0 or -1, serving (and answering with worker_send) every request
//  it returns: those are the ones the broker sent before it read the
//  DISCONNECT. worker_drain returns 0 when the broker echoed the
//  DISCONNECT (nothing more can come: the echo is the broker's last message
//  on this connection), -1 after timeout_ms or when there is no connection
//  (an old broker that does not echo: the 503 it answers is the caller's
//  loss). worker_leave returns 0, or -1 when not connected.
int worker_leave(worker_t *self);
int worker_drain(worker_t *self, worker_request_t *request, int timeout_ms);

#endif
