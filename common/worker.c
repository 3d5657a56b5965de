/*  worker: the worker side of the broker protocol (docs/protocol.md).

    State. A worker_t owns one DEALER socket connected to the broker, or
    none between a DISCONNECT and the next connection. On every (re)connect
    it makes a brand-new socket, so the broker sees a new routing id and the
    stale state of an old connection (queued heartbeats, a half-registered
    worker) cannot leak into the new one, and it queues READY at once: a
    DEALER keeps messages for a peer it has not reached yet, so READY goes
    out as soon as the broker is there, even one that starts later.

    Liveness, both ways. worker_recv() sends HEARTBEAT every
    WORKER_HEARTBEAT_MS, and worker_send() counts as one. Any message from
    the broker proves it alive; when nothing came for WORKER_LIVENESS beats
    (checked only when the socket has nothing queued, so a long request
    served meanwhile does not count as broker silence) the worker reconnects.
    A broker that does not know this worker (it was restarted, or dropped
    us) answers whatever we send with DISCONNECT, and we reconnect at once;
    reconnects are spaced at least WORKER_HEARTBEAT_MS apart so a confused
    broker cannot make us spin.

    Leaving (worker_leave, worker_drain). The broker hands a REQUEST only
    to a worker it counts idle, and forgets the worker when it reads its
    DISCONNECT; so after our DISCONNECT at most one REQUEST can still be on
    its way (sent before the broker read the DISCONNECT), and the broker
    answers the DISCONNECT with a DISCONNECT of its own once that REQUEST's
    REPLY is in (or at once when there was none). Until that echo arrives
    we keep reading and serving; after it, nothing can come, so closing
    the socket loses nothing. Invariant: a request the broker delivered to
    a worker that leaves cleanly is answered by that worker.

    Threads: a worker_t is used by one thread at a time (service.c gives each
    worker thread its own).
*/
#include "worker.h"
#include "rpc.h"
#include "log.h"
#include "protocol.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>

#define BROKER_SILENCE_MS ((int64_t)WORKER_HEARTBEAT_MS * WORKER_LIVENESS)

struct worker_t {
    char *endpoint;
    char *service;
    zsock_t *sock;        // NULL while waiting to reconnect
    int64_t heartbeat_at; // mono ms: next HEARTBEAT due
    int64_t broker_until; // mono ms: the broker counts as gone after this
    int64_t connected_at; // mono ms of the last connect
    int64_t reconnect_at; // mono ms: when to connect again while sock is NULL
    bool leaving;         // worker_leave sent DISCONNECT
    bool left;            // the broker echoed it: nothing more will come
};

//  Sends ["", SW01, command, parts...] without blocking. 0 or -1.
static int s_send(worker_t *self, const char *command, const void *const *parts,
                  const size_t *sizes, size_t count)
{
    void *handle = zsock_resolve(self->sock);
    if (zmq_send(handle, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1) return -1;
    //  The first frame was accepted, so the rest of the message will be too.
    zmq_send(handle, PROTOCOL_WORKER, strlen(PROTOCOL_WORKER), ZMQ_SNDMORE);
    zmq_send(handle, command, strlen(command), count ? ZMQ_SNDMORE : 0);
    for (size_t i = 0; i < count; i++)
        zmq_send(handle, parts[i], sizes[i], i + 1 < count ? ZMQ_SNDMORE : 0);
    return 0;
}

//  Opens a fresh socket and queues READY. 0, or -1 on a bad endpoint.
static int s_connect(worker_t *self)
{
    zsock_destroy(&self->sock);
    self->sock = zsock_new(ZMQ_DEALER);
    if (!self->sock) return -1;
    zsock_set_linger(self->sock, 0);
    if (zsock_connect(self->sock, "%s", self->endpoint) == -1) {
        log_error("worker cannot connect to %s", self->endpoint);
        zsock_destroy(&self->sock);
        return -1;
    }
    const void *parts[] = {self->service};
    size_t sizes[] = {strlen(self->service)};
    s_send(self, PROTOCOL_READY, parts, sizes, 1);
    int64_t now = zclock_mono();
    self->connected_at = now;
    self->heartbeat_at = now + WORKER_HEARTBEAT_MS;
    self->broker_until = now + BROKER_SILENCE_MS;
    return 0;
}

//  Drops the socket and schedules a new connection.
static void s_disconnected(worker_t *self, const char *why)
{
    log_info("worker for %s reconnecting to %s: %s", self->service, self->endpoint, why);
    zsock_destroy(&self->sock);
    int64_t earliest = self->connected_at + WORKER_HEARTBEAT_MS;
    int64_t now = zclock_mono();
    self->reconnect_at = earliest > now ? earliest : now;
}

worker_t *worker_new(const char *endpoint, const char *service)
{
    assert(endpoint && service);
    if (!protocol_valid_service(service, strlen(service))) {
        log_error("invalid service name '%s'", service);
        return NULL;
    }
    rpc_zsys_init_once();
    worker_t *self = (worker_t *)zmalloc(sizeof *self);
    self->endpoint = strdup(endpoint);
    self->service = strdup(service);
    if (s_connect(self) == -1) {
        worker_destroy(&self);
        return NULL;
    }
    return self;
}

void worker_destroy(worker_t **self_p)
{
    worker_t *self = *self_p;
    if (!self) return;
    if (self->sock) {
        //  Linger briefly so the DISCONNECT leaves before the socket dies:
        //  the broker then drops us at once instead of after the liveness
        //  window.
        if (!self->left) s_send(self, PROTOCOL_DISCONNECT, NULL, NULL, 0);
        zsock_set_linger(self->sock, 200);
        zsock_destroy(&self->sock);
    }
    freen(self->endpoint);
    freen(self->service);
    freen(self);
    *self_p = NULL;
}

void worker_request_clear(worker_request_t *request)
{
    freen(request->client);
    freen(request->correlation);
    freen(request->envelope);
    freen(request->blob);
    memset(request, 0, sizeof *request);
}

//  Copies a frame into a NUL-terminated heap buffer.
static char *s_frame_copy(zframe_t *frame, size_t *size_out)
{
    size_t size = zframe_size(frame);
    char *copy = (char *)zmalloc(size + 1);
    memcpy(copy, zframe_data(frame), size);
    *size_out = size;
    return copy;
}

//  Handles one message from the broker. Returns 1 when it was a request
//  (request filled), 2 when it was the echo of our DISCONNECT (leaving),
//  else 0.
static int s_broker_message(worker_t *self, worker_request_t *request)
{
    zmsg_t *msg = zmsg_recv(self->sock);
    if (!msg) return 0;
    self->broker_until = zclock_mono() + BROKER_SILENCE_MS;
    int rc = 0;
    zframe_t *empty = zmsg_first(msg);
    zframe_t *protocol = zmsg_next(msg);
    zframe_t *command = zmsg_next(msg);
    if (!command || zframe_size(empty) != 0 || !zframe_streq(protocol, PROTOCOL_WORKER)) {
        log_debug("malformed message from the broker dropped");
    } else if (zframe_streq(command, PROTOCOL_REQUEST) &&
               (zmsg_size(msg) == 6 || zmsg_size(msg) == 8)) {
        zframe_t *client = zmsg_next(msg);
        zframe_t *correlation = zmsg_next(msg);
        zframe_t *envelope = zmsg_next(msg);
        zframe_t *marker = zmsg_next(msg);
        //  Not zmsg_next past the end: after the last frame it starts over
        //  at the first, and a request without a blob got the empty
        //  delimiter frame as its blob (size 0, not NULL).
        zframe_t *blob = marker ? zmsg_next(msg) : NULL;
        if (marker && !zframe_streq(marker, PROTOCOL_BLOB)) {
            log_debug("request with an unknown extra frame dropped");
        } else {
            request->client = s_frame_copy(client, &request->client_size);
            request->correlation = s_frame_copy(correlation, &request->correlation_size);
            request->envelope = s_frame_copy(envelope, &request->envelope_size);
            if (blob) request->blob = s_frame_copy(blob, &request->blob_size);
            rc = 1;
        }
    } else if (zframe_streq(command, PROTOCOL_DISCONNECT) && self->leaving) {
        self->left = true;
        rc = 2;
    } else if (zframe_streq(command, PROTOCOL_DISCONNECT)) {
        s_disconnected(self, "the broker said DISCONNECT");
    } else if (!zframe_streq(command, PROTOCOL_HEARTBEAT)) {
        log_debug("unknown command from the broker dropped");
    }
    zmsg_destroy(&msg);
    return rc;
}

int worker_recv(worker_t *self, worker_request_t *request, int timeout_ms)
{
    memset(request, 0, sizeof *request);
    int64_t until = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    while (!zsys_interrupted) {
        int64_t now = zclock_mono();
        if (!self->sock && now >= self->reconnect_at && s_connect(self) == -1) return -1;
        if (self->sock && now >= self->heartbeat_at) {
            s_send(self, PROTOCOL_HEARTBEAT, NULL, NULL, 0);
            self->heartbeat_at = now + WORKER_HEARTBEAT_MS;
        }
        int64_t wake = self->sock ? self->heartbeat_at : self->reconnect_at;
        if (until < wake) wake = until;
        zmq_pollitem_t item = {self->sock ? zsock_resolve(self->sock) : NULL, 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, self->sock ? 1 : 0, (long)(wake > now ? wake - now : 0));
        if (ready == -1) {
            if (errno == EINTR) continue;
            return -1; // context terminated
        }
        if (ready > 0) {
            if (s_broker_message(self, request) == 1) return 1;
        } else if (self->sock && zclock_mono() > self->broker_until) {
            //  Judged only when nothing is queued: after a long request the
            //  broker's heartbeats are waiting in the socket, not missing.
            s_disconnected(self, "the broker is silent");
        }
        if (zclock_mono() >= until) return 0;
    }
    return -1;
}

int worker_send(worker_t *self, worker_request_t *request, const void *reply, size_t reply_size)
{
    return worker_send_blob(self, request, reply, reply_size, NULL, 0);
}

int worker_send_blob(worker_t *self, worker_request_t *request, const void *reply,
                     size_t reply_size, const void *blob, size_t blob_size)
{
    int rc = -1;
    if (self->sock) {
        const void *parts[] = {request->client, request->correlation, reply, PROTOCOL_BLOB, blob};
        size_t sizes[] = {request->client_size, request->correlation_size, reply_size,
                          strlen(PROTOCOL_BLOB), blob_size};
        rc = s_send(self, PROTOCOL_REPLY, parts, sizes, blob ? 5 : 3);
        if (rc == 0) self->heartbeat_at = zclock_mono() + WORKER_HEARTBEAT_MS;
    }
    worker_request_clear(request);
    return rc;
}

int worker_leave(worker_t *self)
{
    if (!self->sock || self->leaving) return self->sock ? 0 : -1;
    self->leaving = true;
    return s_send(self, PROTOCOL_DISCONNECT, NULL, NULL, 0);
}

int worker_drain(worker_t *self, worker_request_t *request, int timeout_ms)
{
    memset(request, 0, sizeof *request);
    if (!self->sock || !self->leaving) return -1;
    if (self->left) return 0;
    int64_t until = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    while (true) {
        int64_t now = zclock_mono();
        if (now >= until) return -1;
        //  zsys_interrupted is set (that is why we leave): the poll's EINTR
        //  from a second signal is retried, never taken as the end.
        zmq_pollitem_t item = {zsock_resolve(self->sock), 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, (long)(until - now));
        if (ready == -1 && errno != EINTR) return -1;
        if (ready <= 0) continue;
        int rc = s_broker_message(self, request);
        if (rc == 1) return 1;
        if (rc == 2) return 0;
        if (!self->sock) return -1; // cannot happen while leaving; be safe
    }
}
