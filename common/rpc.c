/*  rpc: the client side of the broker protocol (docs/protocol.md).

    One DEALER socket per rpc_client_t, one call in flight at a time. Each
    call gets a fresh correlation id (a per-client counter); the reply
    loop reads until the frame with this call's id arrives or the deadline
    passes, throwing away anything else: a reply that arrives after its
    call gave up (504) is recognised by its old id and discarded, so the
    socket stays usable and the next call never sees a stale answer.

    Never hangs: the send waits for room only until the deadline, and the
    receive polls with the time left. When the broker is down the DEALER
    keeps reconnecting in the background; a request sent meanwhile waits in
    the socket and goes out on reconnection, where the broker drops it if its
    deadline has passed (the deadline travels in its own frame, so the broker
    checks it without decoding the envelope).

    Resending. The broker marks a 503 with error.retry = true only for a
    request it never handed to a worker (it is draining for a restart), so
    sending it again cannot run it twice, whatever the method: the call
    sends it again after a short pause (RETRY_PAUSE_MS, doubling up to
    RETRY_PAUSE_MAX_MS) until the deadline, and the new broker gets it once
    the socket has reconnected. The broker's last message when it stops
    is BYE: it answered everything it read from us ahead of it and reads
    nothing after, so a call still waiting at BYE was never read: the
    client drops the socket, waits RPC_BYE_PAUSE_MS (the old broker closes
    its listener meanwhile), opens a new one and sends the request again.
    A BYE found waiting before a call is sent (the client was idle) only
    renews the socket. Nothing else is resent: a request whose reply never
    came for any other reason (a broker killed, a timeout) may have run.
*/
#include "rpc.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"

#include <czmq.h>
#include <signal.h>
#include <pthread.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_PAUSE_MS 20
#define RETRY_PAUSE_MAX_MS 200

struct rpc_client_t {
    zsock_t *sock;
    char *endpoint;
    uint64_t sequence; // last correlation id used
};

//  CZMQ sets itself up on the first socket made, and that first call is not
//  safe to race: two threads making their first sockets at once (the
//  gateway's parallel readiness pings) can trip its assertions. Setting it
//  up once, before any socket, removes the race.
static pthread_once_t s_zsys_once = PTHREAD_ONCE_INIT;

static void s_zsys_init(void)
{
    zsys_init();
}

void rpc_zsys_init_once(void)
{
    pthread_once(&s_zsys_once, s_zsys_init);
}

//  CZMQ's exit handler puts SIGTERM's default action back, and a process
//  can spend a while between that and its end (the sanitizers check for
//  leaks then). A second SIGTERM in that window, from an operator or an
//  orchestrator that repeats itself, would turn a clean exit into death by
//  signal. Once CZMQ no longer handles signals its exit handler leaves
//  them alone, so the ignoring holds until the process is gone.
void rpc_zsys_ignore_stop_signals(void)
{
    zsys_handler_set(NULL);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

static zsock_t *s_socket(const char *endpoint)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock) return NULL;
    zsock_set_linger(sock, 0);
    if (zsock_connect(sock, "%s", endpoint) == -1) {
        log_error("rpc cannot connect to %s", endpoint);
        zsock_destroy(&sock);
    }
    return sock;
}

rpc_client_t *rpc_client_new(const char *endpoint)
{
    assert(endpoint);
    rpc_zsys_init_once();
    zsock_t *sock = s_socket(endpoint);
    if (!sock) return NULL;
    rpc_client_t *self = (rpc_client_t *)zmalloc(sizeof *self);
    self->sock = sock;
    self->endpoint = strdup(endpoint);
    return self;
}

void rpc_client_destroy(rpc_client_t **self_p)
{
    rpc_client_t *self = *self_p;
    if (!self) return;
    zsock_destroy(&self->sock);
    freen(self->endpoint);
    freen(self);
    *self_p = NULL;
}

//  Sends the request frames, waiting for room until deadline_ms. 0, or -1
//  (deadline passed, or the socket failed).
static int s_send_request(rpc_client_t *self, const char *service, const char *correlation,
                          int64_t deadline_ms, const void *envelope, size_t envelope_size,
                          const void *blob, size_t blob_size)
{
    void *handle = zsock_resolve(self->sock);
    while (zmq_send(handle, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1) {
        if (errno != EAGAIN && errno != EINTR) return -1;
        int64_t left = deadline_ms - envelope_now_ms();
        if (left <= 0 || zsys_interrupted) return -1;
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&item, 1, (long)left);
    }
    //  The first frame was accepted, so the rest of the message will be too.
    char deadline_text[24];
    snprintf(deadline_text, sizeof deadline_text, "%" PRId64, deadline_ms);
    zmq_send(handle, PROTOCOL_CLIENT, strlen(PROTOCOL_CLIENT), ZMQ_SNDMORE);
    zmq_send(handle, service, strlen(service), ZMQ_SNDMORE);
    zmq_send(handle, correlation, strlen(correlation), ZMQ_SNDMORE);
    zmq_send(handle, deadline_text, strlen(deadline_text), ZMQ_SNDMORE);
    zmq_send(handle, envelope, envelope_size, blob ? ZMQ_SNDMORE : 0);
    if (blob) {
        zmq_send(handle, PROTOCOL_BLOB, strlen(PROTOCOL_BLOB), ZMQ_SNDMORE);
        zmq_send(handle, blob, blob_size, 0);
    }
    return 0;
}

//  True when msg is the broker's BYE.
static bool s_is_bye(zmsg_t *msg)
{
    return zmsg_size(msg) == 3 && zframe_size(zmsg_first(msg)) == 0 &&
           zframe_streq(zmsg_next(msg), PROTOCOL_CLIENT) && zframe_streq(zmsg_next(msg), RPC_BYE);
}

//  After a BYE: a new socket, once the old broker has closed. 0 or -1.
static int s_renew_socket(rpc_client_t *self)
{
    zsock_destroy(&self->sock);
    zclock_sleep(RPC_BYE_PAUSE_MS);
    self->sock = s_socket(self->endpoint);
    return self->sock ? 0 : -1;
}

//  Before a call: throws away what is waiting (late replies), and renews
//  the socket when a BYE is among it. 0 or -1.
static int s_clear_inbox(rpc_client_t *self)
{
    if (!self->sock) self->sock = s_socket(self->endpoint); // a renewal failed before
    if (!self->sock) return -1;
    bool bye = false;
    while (zsock_events(self->sock) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv(self->sock);
        if (!msg) break;
        bye = bye || s_is_bye(msg);
        zmsg_destroy(&msg);
    }
    return bye ? s_renew_socket(self) : 0;
}

//  True when msg is ["", SC01, service, correlation, reply (, BLOB, blob)]
//  for this call.
static bool s_is_our_reply(zmsg_t *msg, const char *service, const char *correlation)
{
    size_t size = zmsg_size(msg);
    if (size != 5 && size != 7) return false;
    zframe_t *empty = zmsg_first(msg);
    zframe_t *protocol = zmsg_next(msg);
    zframe_t *service_frame = zmsg_next(msg);
    zframe_t *correlation_frame = zmsg_next(msg);
    if (size == 7) {
        zmsg_next(msg); // the reply
        if (!zframe_streq(zmsg_next(msg), PROTOCOL_BLOB)) return false;
    }
    return zframe_size(empty) == 0 && zframe_streq(protocol, PROTOCOL_CLIENT) &&
           zframe_streq(service_frame, service) && zframe_streq(correlation_frame, correlation);
}

void rpc_body_init(rpc_body_t *body)
{
    body->msg = NULL;
    body->body = NULL;
    msgpack_unpacked_init(&body->unpacked);
}

void rpc_body_clear(rpc_body_t *body)
{
    msgpack_unpacked_destroy(&body->unpacked);
    zmsg_t *msg = (zmsg_t *)body->msg;
    zmsg_destroy(&msg);
    rpc_body_init(body);
}

//  The reply in frame: decoded, or with a success body left in msgpack for
//  lazy (which then keeps msg, as the body points into it).
static json_t *s_decode_reply(zmsg_t **msg_p, zframe_t *frame, rpc_body_t *lazy)
{
    if (!lazy) return envelope_reply_decode(zframe_data(frame), zframe_size(frame));
    rpc_body_clear(lazy);
    json_t *reply = envelope_reply_decode_lazy(zframe_data(frame), zframe_size(frame),
                                               &lazy->unpacked, &lazy->body);
    if (lazy->body) {
        lazy->msg = *msg_p;
        *msg_p = NULL;
    }
    return reply;
}

//  Waits for this call's reply until deadline_ms; discards any other.
//  NULL when the broker said BYE first (the request was not read).
static json_t *s_wait_reply(rpc_client_t *self, const char *service, const char *correlation,
                            int64_t deadline_ms, void **reply_blob, size_t *reply_blob_size,
                            rpc_body_t *lazy)
{
    void *handle = zsock_resolve(self->sock);
    while (true) {
        int64_t left = deadline_ms - envelope_now_ms();
        if (left <= 0) break;
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, (long)left);
        if (ready == -1) {
            if (errno == EINTR && !zsys_interrupted) continue;
            return reply_error(503, ERR_UNAVAILABLE, "the call was interrupted");
        }
        if (ready == 0) continue;
        zmsg_t *msg = zmsg_recv(self->sock);
        if (!msg) continue;
        if (s_is_bye(msg)) {
            zmsg_destroy(&msg);
            return NULL;
        }
        if (!s_is_our_reply(msg, service, correlation)) {
            log_debug("discarding a late or malformed reply");
            zmsg_destroy(&msg);
            continue;
        }
        bool has_blob = zmsg_size(msg) == 7;
        zmsg_first(msg);
        for (int skip = 0; skip < 3; skip++)
            zmsg_next(msg);
        zframe_t *frame = zmsg_next(msg);
        json_t *reply = s_decode_reply(&msg, frame, lazy);
        if (reply && has_blob && reply_blob) {
            zframe_t *blob = zmsg_last(msg);
            size_t size = zframe_size(blob);
            *reply_blob = malloc(size ? size : 1);
            if (!*reply_blob) {
                json_decref(reply);
                zmsg_destroy(&msg);
                return reply_error(500, ERR_INTERNAL, "out of memory for a reply");
            }
            memcpy(*reply_blob, zframe_data(blob), size);
            *reply_blob_size = size;
        }
        zmsg_destroy(&msg);
        if (!reply) {
            log_error("malformed reply from %s", service);
            return reply_error(500, ERR_INTERNAL, "malformed reply from a service");
        }
        return reply;
    }
    log_warn("%s: no reply before the deadline", service);
    return reply_error(504, ERR_TIMEOUT, "the service did not answer in time");
}

static json_t *s_call(rpc_client_t *self, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const void *blob, size_t blob_size,
                      const char *request_id, int64_t deadline_ms, void **reply_blob,
                      size_t *reply_blob_size, rpc_body_t *lazy);

json_t *rpc_call(rpc_client_t *self, const char *service, const char *method, int64_t viewer_id,
                 const json_t *args, const char *request_id, int64_t deadline_ms)
{
    return s_call(self, service, method, viewer_id, args, NULL, 0, request_id, deadline_ms, NULL,
                  NULL, NULL);
}

json_t *rpc_call_lazy(rpc_client_t *self, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const char *request_id,
                      int64_t deadline_ms, rpc_body_t *body)
{
    assert(body);
    return s_call(self, service, method, viewer_id, args, NULL, 0, request_id, deadline_ms, NULL,
                  NULL, body);
}

json_t *rpc_call_blob(rpc_client_t *self, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const void *blob, size_t blob_size,
                      const char *request_id, int64_t deadline_ms, void **reply_blob,
                      size_t *reply_blob_size)
{
    return s_call(self, service, method, viewer_id, args, blob, blob_size, request_id, deadline_ms,
                  reply_blob, reply_blob_size, NULL);
}

static json_t *s_call(rpc_client_t *self, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const void *blob, size_t blob_size,
                      const char *request_id, int64_t deadline_ms, void **reply_blob,
                      size_t *reply_blob_size, rpc_body_t *lazy)
{
    assert(self && service && method);
    if (reply_blob) {
        *reply_blob = NULL;
        *reply_blob_size = 0;
    }
    if (blob && blob_size > PROTOCOL_BLOB_MAX)
        return reply_error(413, ERR_TOO_LARGE, "the payload is too large");
    int64_t now = envelope_now_ms();
    if (deadline_ms <= 0) deadline_ms = now + RPC_DEFAULT_TIMEOUT_MS;
    if (deadline_ms <= now)
        return reply_error(504, ERR_TIMEOUT, "the deadline passed before the call");

    envelope_request_t request = {.v = ENVELOPE_VERSION,
                                  .viewer_id = viewer_id,
                                  .deadline_ms = deadline_ms,
                                  .args = (json_t *)args}; // only read (and ref-counted)
    size_t method_length = strlen(method);
    if (!protocol_valid_service(service, strlen(service)) || method_length == 0 ||
        method_length >= sizeof request.method) {
        log_error("rpc_call with an invalid service or method name");
        return reply_error(500, ERR_INTERNAL, "invalid service or method name");
    }
    memcpy(request.method, method, method_length + 1);
    if (!request_id || !*request_id) request_id = log_request_id();
    if (*request_id)
        snprintf(request.request_id, sizeof request.request_id, "%s", request_id);
    else
        log_new_request_id(request.request_id, sizeof request.request_id);

    size_t envelope_size = 0;
    char *envelope = envelope_request_encode(&request, &envelope_size);
    if (!envelope) return reply_error(500, ERR_INTERNAL, "cannot encode the request");
    json_t *reply = NULL;
    for (int64_t pause = RETRY_PAUSE_MS;;
         pause = pause * 2 > RETRY_PAUSE_MAX_MS ? RETRY_PAUSE_MAX_MS : pause * 2) {
        char correlation[24];
        snprintf(correlation, sizeof correlation, "%" PRIx64, ++self->sequence);
        if (s_clear_inbox(self) == -1) {
            reply = reply_error(503, ERR_UNAVAILABLE, "cannot reconnect to the broker");
            break;
        }
        if (s_send_request(self, service, correlation, deadline_ms, envelope, envelope_size, blob,
                           blob_size) == -1) {
            log_warn("%s: cannot send the request before the deadline", service);
            reply = reply_error(504, ERR_TIMEOUT, "the broker could not be reached in time");
            break;
        }
        reply = s_wait_reply(self, service, correlation, deadline_ms, reply_blob, reply_blob_size,
                             lazy);
        if (!reply) {
            //  BYE: never read by the broker that left. Again, on a new
            //  socket, to the next one.
            log_info("%s: the broker stopped before reading the request, sending it again",
                     service);
            if (s_renew_socket(self) == -1) {
                reply = reply_error(503, ERR_UNAVAILABLE, "cannot reconnect to the broker");
                break;
            }
            continue;
        }
        json_t *error = json_object_get(reply, "error");
        if (reply_status(reply) != 503 || !json_is_true(json_object_get(error, "retry"))) break;
        //  Never reached a worker: safe to send again, once the pause
        //  leaves time before the deadline. The mark stays internal.
        json_object_del(error, "retry");
        if (envelope_now_ms() + pause >= deadline_ms || zsys_interrupted) break;
        log_debug("%s: the broker is restarting, sending again in %lld ms", service,
                  (long long)pause);
        json_decref(reply);
        reply = NULL;
        zclock_sleep((int)pause);
    }
    free(envelope);
    return reply;
}
