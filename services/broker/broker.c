/*  broker: request routing and the event proxy.

    Structures. `services` maps a service name to its broker_service_t: a
    FIFO of waiting requests and a list of idle workers, longest idle first
    (LRU: a worker that finishes goes to the back, so a stream of requests
    visits every worker of the service in turn). `workers` maps a worker's
    routing id (hex) to its broker_worker_t, which is either idle (in its
    service's idle list) or busy (holding the one request it was given).

    Holding (Majordomo-style). A service is created by its first worker's
    READY and outlives its last worker by forget_ms: while it has no worker
    (a stop-start restart, the moment between an old replica's DISCONNECT
    and a new one's READY) its requests wait in its queue until a worker
    comes, or hold_ms passes, or their deadline is HOLD_REPLY_MARGIN_MS
    away: then 503 (no worker came; a request that waits behind busy
    workers gets 504 at its deadline instead). A name no
    worker ever registered is answered 503 at once, so a missing service
    fails fast and clients naming random services cannot grow the tables;
    the exception is the first hold_ms after the broker starts, when any
    valid name is held, because the workers of the broker this one
    replaces are registering again. Waiting requests are bounded per
    service (queue_max) and in bytes over all services (queue_bytes_max).

    Leaving. A worker that says DISCONNECT gets DISCONNECT back once the
    broker has forgotten it; that echo is the last message it will ever get
    on that connection. A worker is only ever sent a REQUEST while the
    broker counts it idle, so when its DISCONNECT arrives it holds at most
    the one request sent before the DISCONNECT was read: the broker waits
    for that REPLY (the worker answers what reaches it until the echo, see
    worker.h), forwards it, then echoes. Invariant: every request handed to
    a worker that leaves cleanly is answered by that worker.

    Draining (broker_drain, on SIGTERM). The broker keeps serving only
    requests that end (deadline) no later than the latest deadline in
    progress when the drain began: the calls the requests in progress make
    to other services carry their deadline, and must be served for those
    to finish. Every other waiting or new request is answered 503 with
    error.retry = true (it never reached a worker, so the client may send
    it again: rpc.c does, to the next broker). It forwards replies until
    nothing is in progress or waiting, or drain_ms passes.
    Last, it sends BYE to every client heard from in the last CLIENT_KEEP_MS
    and closes without reading again. BYE therefore means: every request
    you sent on this connection that I read has been answered (the answers
    are ahead of the BYE, in order), and I read nothing more. A client
    still waiting for an answer at BYE knows its request never reached a
    worker and sends it again on a new connection (rpc.c); this closes the
    gap of requests that were on the wire while the broker stopped.

    Memory. Uploads pass through the broker as blobs of up to a few MiB,
    and events.replay pages as large replies. glibc keeps what they free
    (some of it freed by ZeroMQ's I/O thread after the send), so after a
    burst of uploads the broker held its busiest moment as RSS: 31 MiB, of
    which malloc_trim gave back 16. Messages of BROKER_TRIM_MESSAGE_BYTES or
    more are counted, and at each heartbeat round (every
    WORKER_HEARTBEAT_MS) that saw BROKER_TRIM_BYTES of them the free pages go
    back to the system, and once more at the round after, which catches
    what was still in flight at the last one.

    Liveness. The broker heartbeats every worker every WORKER_HEARTBEAT_MS
    and expects to hear from each one within WORKER_LIVENESS beats. A busy
    worker's thread is inside a handler and cannot heartbeat, so it is given
    until its request's deadline plus the same window. The ROUTER is in
    mandatory mode: sending to a peer whose connection is gone (its process
    died, the kernel closed the socket) fails at once with EHOSTUNREACH, so a
    killed worker is dropped the first time the broker tries to use it, and
    the request that was about to go to it goes to the next idle worker
    instead of being lost. A busy worker found gone that way has its client
    told 503 at once rather than left waiting for the deadline. Requests are
    never retried on another worker once handed over (a handler may have
    had effects).

    Deadlines. A request waits in its service's queue while every worker is
    busy; one whose absolute deadline passes there is answered 504. The
    poll timeout is the nearer of the next heartbeat and the earliest queued
    deadline, so 504s go out on time. The client (rpc.c) enforces the same
    deadline on its side, so a late or lost 504 never makes it wait longer.

    Every send uses ZMQ_DONTWAIT: a peer that does not read (full pipe) loses
    that message; the broker itself never blocks. Malformed messages are
    dropped and logged at debug level; nothing from the network is trusted.
*/
#include "broker.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "rpc.h"
#include "worker.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define LIVENESS_WINDOW_MS ((int64_t)WORKER_HEARTBEAT_MS * WORKER_LIVENESS)
//  Messages handled per socket per poll round, so one busy socket cannot
//  starve the others or the timers.
#define DRAIN_MAX 256
//  A held request is answered 503 this long before its deadline: time for
//  the answer to reach the caller, which stops waiting at the deadline.
#define HOLD_REPLY_MARGIN_MS 50
//  Clients get a BYE when the broker stops if heard from this recently;
//  at most CLIENTS_MAX are remembered (beyond the cap new ones are not:
//  they fall back to their deadline, as before BYE existed).
#define CLIENT_KEEP_MS (5 * 60 * 1000)
#define CLIENTS_MAX 100000

typedef struct {
    zframe_t *address;
    int64_t last_seen; // mono ms
} broker_client_t;

typedef struct {
    zframe_t *client;      // routing id of the client
    zframe_t *correlation; // opaque, echoed back
    zframe_t *envelope;    // request envelope, forwarded untouched
    zframe_t *blob;        // the optional BLOB payload, forwarded untouched (or NULL)
    int64_t deadline_ms;   // absolute unix ms
    int64_t hold_until;    // unix ms: 503 after this while its service has no worker
    size_t bytes;          // what it costs while queued (queue_bytes_max)
} broker_request_t;

typedef struct {
    char *name;
    zlistx_t *idle;     // broker_worker_t *, longest idle first (not owned)
    zlistx_t *requests; // broker_request_t *, oldest first (owned)
    size_t worker_count;
    int64_t forget_at; // unix ms: removed after this when it has no worker and no request
} broker_service_t;

typedef struct {
    char *key;                 // routing id as hex, key in broker_t.workers
    zframe_t *address;         // routing id
    broker_service_t *service; // never NULL: a worker exists from READY on
    void *idle_handle;         // its node in service->idle, NULL while busy
    broker_request_t *current; // the request it holds while busy (owned)
    int64_t last_seen;         // mono ms of the last message from it
    int64_t busy_until;        // mono ms of current's deadline, 0 while idle
    bool leaving;              // said DISCONNECT while busy: goes after its REPLY
} broker_worker_t;

struct broker_t {
    zsock_t *router;
    zsock_t *xsub;
    zsock_t *xpub;
    zhashx_t *services; // name -> broker_service_t (owned)
    zhashx_t *workers;  // key -> broker_worker_t (owned)
    zhashx_t *clients;  // routing id hex -> broker_client_t (owned), for BYE
    size_t queue_max;
    size_t queue_bytes_max;
    size_t queue_bytes; // sum of broker_request_t.bytes of every queued request
    int64_t hold_ms;
    int64_t forget_ms;
    int64_t drain_ms;
    int64_t hold_any_until; // unix ms: until then unknown services are held too
    bool draining;          // broker_drain: only what ends by drain_deadline is handed out
    int64_t drain_deadline; // unix ms: the latest deadline in progress when draining began
    int64_t heartbeat_at;   // mono ms of the next heartbeat round
    int64_t next_deadline;  // unix ms of the earliest queued deadline or hold
    size_t large_bytes;     // bytes of large messages since the last round (see Memory)
    bool trim_again;        // the last round trimmed during a burst: trim once more
};

//  Only messages this large count towards a trim (a page of posts does not).
#define BROKER_TRIM_MESSAGE_BYTES (64 * 1024)
//  A heartbeat round trims once this much passed through since the last.
#define BROKER_TRIM_BYTES (256 * 1024)

//  ---------------------------------------------------------------------
//  Sending

typedef struct {
    const void *data;
    size_t size;
} part_t;

//  Sends one multipart message without blocking. Returns 0, or -1 with
//  errno EHOSTUNREACH (the peer is gone) or EAGAIN (its pipe is full).
//  Only the first (routing id) frame can fail; once it is accepted the
//  ROUTER takes the rest.
static int s_send_parts(zsock_t *sock, const part_t *parts, size_t count)
{
    void *handle = zsock_resolve(sock);
    for (size_t i = 0; i < count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < count ? ZMQ_SNDMORE : 0);
        if (zmq_send(handle, parts[i].data, parts[i].size, flags) == -1) return -1;
    }
    return 0;
}

static part_t s_frame_part(zframe_t *frame)
{
    return (part_t){zframe_data(frame), zframe_size(frame)};
}

static part_t s_string_part(const char *text)
{
    return (part_t){text, strlen(text)};
}

//  ["", SW01, command] to a worker address.
static int s_send_command(broker_t *self, zframe_t *address, const char *command)
{
    part_t parts[] = {
        s_frame_part(address), {"", 0}, s_string_part(PROTOCOL_WORKER), s_string_part(command)};
    return s_send_parts(self->router, parts, 4);
}

//  Answers a client with reply bytes and, when blob is not NULL, the BLOB
//  pair after them.
static void s_client_send(broker_t *self, zframe_t *client, const char *service,
                          size_t service_size, zframe_t *correlation, const void *reply,
                          size_t reply_size, zframe_t *blob)
{
    part_t parts[] = {s_frame_part(client),           {"", 0},
                      s_string_part(PROTOCOL_CLIENT), {service, service_size},
                      s_frame_part(correlation),      {reply, reply_size},
                      s_string_part(PROTOCOL_BLOB),   blob ? s_frame_part(blob) : (part_t){"", 0}};
    if (s_send_parts(self->router, parts, blob ? 8 : 6) == -1)
        log_debug("reply to client dropped: %s", zmq_strerror(errno));
}

//  Answers a client with an error reply built here (503, 504). retry adds
//  error.retry = true: the request never reached a worker, so sending it
//  again cannot run it twice.
static void s_client_error_retry(broker_t *self, zframe_t *client, const char *service,
                                 size_t service_size, zframe_t *correlation, int status,
                                 const char *code, const char *message, bool retry)
{
    json_t *reply = reply_error(status, code, message);
    if (retry) json_object_set_new(json_object_get(reply, "error"), "retry", json_true());
    size_t size = 0;
    char *bytes = envelope_reply_encode(reply, &size);
    json_decref(reply);
    if (bytes) s_client_send(self, client, service, service_size, correlation, bytes, size, NULL);
    free(bytes);
}

static void s_client_error(broker_t *self, zframe_t *client, const char *service,
                           size_t service_size, zframe_t *correlation, int status, const char *code,
                           const char *message)
{
    s_client_error_retry(self, client, service, service_size, correlation, status, code, message,
                         false);
}

//  ---------------------------------------------------------------------
//  Requests, services, workers

static void s_request_destroy(broker_request_t **self_p)
{
    broker_request_t *self = *self_p;
    if (!self) return;
    zframe_destroy(&self->client);
    zframe_destroy(&self->correlation);
    zframe_destroy(&self->envelope);
    zframe_destroy(&self->blob);
    freen(self);
    *self_p = NULL;
}

//  Answers request with an error and destroys it.
static void s_request_fail(broker_t *self, broker_service_t *service, broker_request_t **request_p,
                           int status, const char *code, const char *message)
{
    broker_request_t *request = *request_p;
    s_client_error(self, request->client, service->name, strlen(service->name),
                   request->correlation, status, code, message);
    s_request_destroy(request_p);
}

//  The earliest moment a queued request needs attention: its deadline, or
//  its hold while the service has no worker.
static int64_t s_request_due(broker_service_t *service, broker_request_t *request)
{
    if (service->worker_count > 0) return request->deadline_ms;
    //  No worker: the hold ends at hold_until, or just before the caller's
    //  deadline, so the caller hears the true reason (503, no worker)
    //  instead of running into its own 504.
    int64_t last = request->deadline_ms - HOLD_REPLY_MARGIN_MS;
    return request->hold_until < last ? request->hold_until : last;
}

//  Appends request to service's queue (the caller checked the bounds).
static void s_queue_add(broker_t *self, broker_service_t *service, broker_request_t *request)
{
    zlistx_add_end(service->requests, request);
    self->queue_bytes += request->bytes;
    int64_t due = s_request_due(service, request);
    if (due < self->next_deadline) self->next_deadline = due;
}

//  Takes a request out of service's queue: the first one when handle is
//  NULL. NULL when the queue is empty.
static broker_request_t *s_queue_take(broker_t *self, broker_service_t *service, void *handle)
{
    broker_request_t *request = (broker_request_t *)zlistx_detach(service->requests, handle);
    if (request) {
        assert(self->queue_bytes >= request->bytes);
        self->queue_bytes -= request->bytes;
    }
    return request;
}

//  Answers every waiting request 503: retry says whether they may be sent
//  again (they never reached a worker, so only a full stop says so).
static void s_queue_fail(broker_t *self, broker_service_t *service, bool retry, const char *why)
{
    broker_request_t *request;
    while ((request = s_queue_take(self, service, NULL))) {
        s_client_error_retry(self, request->client, service->name, strlen(service->name),
                             request->correlation, 503, ERR_UNAVAILABLE, why, retry);
        s_request_destroy(&request);
    }
}

static broker_service_t *s_service_new(broker_t *self, const char *name)
{
    broker_service_t *service = (broker_service_t *)zmalloc(sizeof *service);
    service->name = strdup(name);
    service->idle = zlistx_new();
    service->requests = zlistx_new();
    service->forget_at = envelope_now_ms() + self->forget_ms;
    zhashx_insert(self->services, name, service);
    return service;
}

//  Fails every waiting request with 503 (retry: none was handed out) and
//  removes the service.
static void s_service_delete(broker_t *self, broker_service_t *service)
{
    assert(service->worker_count == 0);
    s_queue_fail(self, service, true, "no worker for this service");
    log_debug("service %s forgotten", service->name);
    zlistx_destroy(&service->idle);
    zlistx_destroy(&service->requests);
    zhashx_delete(self->services, service->name);
    freen(service->name);
    freen(service);
}

//  Removes a worker: tells it DISCONNECT when asked, answers the request
//  it held with 503. When it was its service's last worker, the requests
//  waiting for that service start their hold (hold_ms from now).
static void s_worker_delete(broker_t *self, broker_worker_t *worker, bool disconnect,
                            const char *why)
{
    broker_service_t *service = worker->service;
    if (disconnect) s_send_command(self, worker->address, PROTOCOL_DISCONNECT);
    if (worker->current)
        s_request_fail(self, service, &worker->current, 503, ERR_UNAVAILABLE,
                       "the worker serving this request went away");
    if (worker->idle_handle) zlistx_delete(service->idle, worker->idle_handle);
    log_info("worker %s of %s dropped: %s", worker->key, service->name, why);
    zhashx_delete(self->workers, worker->key);
    zframe_destroy(&worker->address);
    freen(worker->key);
    freen(worker);
    if (--service->worker_count > 0) return;
    int64_t now = envelope_now_ms();
    service->forget_at = now + self->forget_ms;
    for (broker_request_t *request = (broker_request_t *)zlistx_first(service->requests); request;
         request = (broker_request_t *)zlistx_next(service->requests)) {
        request->hold_until = now + self->hold_ms;
        if (request->hold_until < self->next_deadline) self->next_deadline = request->hold_until;
    }
    log_info("service %s has no worker left: holding its requests up to %lld ms", service->name,
             (long long)self->hold_ms);
}

static void s_worker_set_idle(broker_worker_t *worker)
{
    assert(!worker->idle_handle && !worker->current);
    worker->busy_until = 0;
    worker->idle_handle = zlistx_add_end(worker->service->idle, worker);
}

//  True when the broker no longer takes this request (draining, and it
//  could outlast the requests in progress: see broker_drain).
static bool s_refused_by_drain(broker_t *self, int64_t deadline_ms)
{
    return self->draining && deadline_ms > self->drain_deadline;
}

//  Hands waiting requests to idle workers, longest idle first.
static void s_service_dispatch(broker_t *self, broker_service_t *service)
{
    while (zlistx_size(service->idle) > 0 && zlistx_size(service->requests) > 0) {
        broker_request_t *request = s_queue_take(self, service, NULL);
        int64_t now = envelope_now_ms();
        if (request->deadline_ms <= now) {
            s_request_fail(self, service, &request, 504, ERR_TIMEOUT,
                           "the deadline passed while waiting for a worker");
            continue;
        }
        assert(!s_refused_by_drain(self, request->deadline_ms)); // never queued
        broker_worker_t *worker = (broker_worker_t *)zlistx_detach(service->idle, NULL);
        worker->idle_handle = NULL;
        part_t parts[] = {s_frame_part(worker->address),
                          {"", 0},
                          s_string_part(PROTOCOL_WORKER),
                          s_string_part(PROTOCOL_REQUEST),
                          s_frame_part(request->client),
                          s_frame_part(request->correlation),
                          s_frame_part(request->envelope),
                          s_string_part(PROTOCOL_BLOB),
                          request->blob ? s_frame_part(request->blob) : (part_t){"", 0}};
        if (s_send_parts(self->router, parts, request->blob ? 9 : 7) == 0) {
            worker->current = request;
            worker->busy_until = zclock_mono() + (request->deadline_ms - now);
            continue;
        }
        //  The worker is gone (or wedged): the request goes back to the
        //  head of the queue for the next worker (or its hold, if that
        //  was the last one).
        zlistx_add_start(service->requests, request);
        self->queue_bytes += request->bytes;
        s_worker_delete(self, worker, false, "unreachable");
    }
}

//  Answers queued requests whose deadline has passed with 504 and those
//  held past hold_ms (no worker came) with 503, forgets services without
//  workers or requests past their forget_at, and recomputes the earliest
//  remaining due time.
static void s_purge_expired(broker_t *self)
{
    int64_t now = envelope_now_ms();
    self->next_deadline = INT64_MAX;
    zlistx_t *forgotten = zlistx_new();
    for (broker_service_t *service = (broker_service_t *)zhashx_first(self->services); service;
         service = (broker_service_t *)zhashx_next(self->services)) {
        broker_request_t *request = (broker_request_t *)zlistx_first(service->requests);
        while (request) {
            void *handle = zlistx_cursor(service->requests);
            broker_request_t *next = (broker_request_t *)zlistx_next(service->requests);
            int64_t due = s_request_due(service, request);
            if (service->worker_count == 0 && due <= now) {
                s_queue_take(self, service, handle);
                s_request_fail(self, service, &request, 503, ERR_UNAVAILABLE,
                               "no worker for this service");
            } else if (request->deadline_ms <= now) {
                s_queue_take(self, service, handle);
                s_request_fail(self, service, &request, 504, ERR_TIMEOUT,
                               "the deadline passed while waiting for a worker");
            } else if (due < self->next_deadline) {
                self->next_deadline = due;
            }
            request = next;
        }
        if (service->worker_count == 0 && zlistx_size(service->requests) == 0 &&
            service->forget_at <= now)
            zlistx_add_end(forgotten, service);
    }
    broker_service_t *service;
    while ((service = (broker_service_t *)zlistx_detach(forgotten, NULL)))
        s_service_delete(self, service);
    zlistx_destroy(&forgotten);
}

//  Heartbeats every worker and drops the ones that are gone or silent.
static void s_heartbeat(broker_t *self)
{
    int64_t now = zclock_mono();
    zlistx_t *silent = zlistx_new();
    zlistx_t *gone = zlistx_new();
    for (broker_worker_t *worker = (broker_worker_t *)zhashx_first(self->workers); worker;
         worker = (broker_worker_t *)zhashx_next(self->workers)) {
        int64_t heard =
            worker->last_seen > worker->busy_until ? worker->last_seen : worker->busy_until;
        if (now > heard + LIVENESS_WINDOW_MS)
            zlistx_add_end(silent, worker);
        else if (s_send_command(self, worker->address, PROTOCOL_HEARTBEAT) == -1 &&
                 errno == EHOSTUNREACH)
            zlistx_add_end(gone, worker);
    }
    //  Deleting a worker never frees another one, so the lists stay valid.
    broker_worker_t *worker;
    while ((worker = (broker_worker_t *)zlistx_detach(silent, NULL)))
        s_worker_delete(self, worker, true, "silent");
    while ((worker = (broker_worker_t *)zlistx_detach(gone, NULL)))
        s_worker_delete(self, worker, false, "connection gone");
    zlistx_destroy(&silent);
    zlistx_destroy(&gone);
}

//  ---------------------------------------------------------------------
//  Incoming messages

//  Parses a decimal deadline frame (1..18 digits, so no overflow). -1 when
//  malformed.
static int64_t s_parse_deadline(zframe_t *frame)
{
    size_t size = zframe_size(frame);
    const byte *data = zframe_data(frame);
    if (size == 0 || size > 18) return -1;
    int64_t value = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] < '0' || data[i] > '9') return -1;
        value = value * 10 + (data[i] - '0');
    }
    return value;
}

//  ["", SC01, service, correlation, deadline_ms, envelope (, BLOB, blob)]
//  from a client; msg holds the frames after SC01.
static void s_client_destroy(void **item)
{
    broker_client_t *client = (broker_client_t *)*item;
    if (!client) return;
    zframe_destroy(&client->address);
    freen(client);
    *item = NULL;
}

//  Remembers a client for the BYE of a stop.
static void s_client_seen(broker_t *self, zframe_t *address)
{
    char *key = zframe_strhex(address);
    broker_client_t *client = (broker_client_t *)zhashx_lookup(self->clients, key);
    if (!client && zhashx_size(self->clients) < CLIENTS_MAX) {
        client = (broker_client_t *)zmalloc(sizeof *client);
        client->address = zframe_dup(address);
        zhashx_insert(self->clients, key, client);
    }
    if (client) client->last_seen = zclock_mono();
    freen(key);
}

//  Forgets clients not heard from for CLIENT_KEEP_MS.
static void s_clients_prune(broker_t *self)
{
    int64_t now = zclock_mono();
    zlistx_t *old = zlistx_new();
    zlistx_set_destructor(old, (zlistx_destructor_fn *)zstr_free);
    for (broker_client_t *client = (broker_client_t *)zhashx_first(self->clients); client;
         client = (broker_client_t *)zhashx_next(self->clients))
        if (now - client->last_seen > CLIENT_KEEP_MS)
            zlistx_add_end(old, strdup((const char *)zhashx_cursor(self->clients)));
    for (const char *key = (const char *)zlistx_first(old); key;
         key = (const char *)zlistx_next(old))
        zhashx_delete(self->clients, key);
    zlistx_destroy(&old);
}

static void s_client_message(broker_t *self, zframe_t *client, zmsg_t *msg)
{
    s_client_seen(self, client);
    if (zmsg_size(msg) != 4 && zmsg_size(msg) != 6) {
        log_debug("client message with %zu frames dropped", zmsg_size(msg));
        return;
    }
    zframe_t *service_frame = zmsg_pop(msg);
    zframe_t *correlation = zmsg_pop(msg);
    zframe_t *deadline_frame = zmsg_pop(msg);
    zframe_t *envelope = zmsg_pop(msg);
    zframe_t *marker = zmsg_pop(msg);
    zframe_t *blob = zmsg_pop(msg);
    int64_t deadline_ms = s_parse_deadline(deadline_frame);
    size_t correlation_size = zframe_size(correlation);
    const char *service_name = (const char *)zframe_data(service_frame);
    size_t service_size = zframe_size(service_frame);

    if (deadline_ms < 0 || correlation_size == 0 || correlation_size > PROTOCOL_CORRELATION_MAX ||
        service_size > PROTOCOL_SERVICE_MAX || (marker && !zframe_streq(marker, PROTOCOL_BLOB))) {
        log_debug("malformed client request dropped");
        goto cleanup;
    }
    if (blob && zframe_size(blob) > PROTOCOL_BLOB_MAX) {
        s_client_error(self, client, service_name, service_size, correlation, 413, ERR_TOO_LARGE,
                       "the payload is too large");
        goto cleanup;
    }
    broker_service_t *service = NULL;
    if (protocol_valid_service(service_name, service_size)) {
        char name[PROTOCOL_SERVICE_MAX + 1];
        memcpy(name, service_name, service_size);
        name[service_size] = '\0';
        service = (broker_service_t *)zhashx_lookup(self->services, name);
    }
    int64_t now = envelope_now_ms();
    if (s_refused_by_drain(self, deadline_ms)) {
        s_client_error_retry(self, client, service_name, service_size, correlation, 503,
                             ERR_UNAVAILABLE, "the broker is restarting", true);
        goto cleanup;
    }
    if (!service && protocol_valid_service(service_name, service_size) &&
        now < self->hold_any_until) {
        //  Just started: this service's workers are probably registering
        //  again. Forgotten as soon as it has neither workers nor requests.
        char name[PROTOCOL_SERVICE_MAX + 1];
        memcpy(name, service_name, service_size);
        name[service_size] = '\0';
        service = s_service_new(self, name);
        service->forget_at = now;
    }
    if (!service) {
        s_client_error(self, client, service_name, service_size, correlation, 503, ERR_UNAVAILABLE,
                       "no worker for this service");
        goto cleanup;
    }
    if (deadline_ms <= now) {
        s_client_error(self, client, service_name, service_size, correlation, 504, ERR_TIMEOUT,
                       "the deadline passed before the request reached the broker");
        goto cleanup;
    }
    size_t bytes = sizeof(broker_request_t) + zframe_size(client) + correlation_size +
                   zframe_size(envelope) + (blob ? zframe_size(blob) : 0);
    if (zlistx_size(service->requests) >= self->queue_max ||
        self->queue_bytes + bytes > self->queue_bytes_max) {
        s_client_error(self, client, service_name, service_size, correlation, 503, ERR_UNAVAILABLE,
                       "too many requests waiting for this service");
        goto cleanup;
    }
    broker_request_t *request = (broker_request_t *)zmalloc(sizeof *request);
    request->client = zframe_dup(client);
    request->correlation = correlation;
    request->envelope = envelope;
    request->blob = blob;
    request->deadline_ms = deadline_ms;
    request->hold_until = now + self->hold_ms;
    request->bytes = bytes;
    correlation = envelope = blob = NULL;
    s_queue_add(self, service, request);
    s_service_dispatch(self, service);
cleanup:
    zframe_destroy(&service_frame);
    zframe_destroy(&correlation);
    zframe_destroy(&deadline_frame);
    zframe_destroy(&envelope);
    zframe_destroy(&marker);
    zframe_destroy(&blob);
}

//  READY [service] from a worker the broker does not know yet.
static void s_worker_ready(broker_t *self, zframe_t *address, const char *key, zmsg_t *msg)
{
    zframe_t *service_frame = zmsg_pop(msg);
    if (!service_frame || zmsg_size(msg) != 0 ||
        !protocol_valid_service((const char *)zframe_data(service_frame),
                                zframe_size(service_frame))) {
        log_debug("malformed READY from %s", key);
        s_send_command(self, address, PROTOCOL_DISCONNECT);
        zframe_destroy(&service_frame);
        return;
    }
    char *name = zframe_strdup(service_frame);
    zframe_destroy(&service_frame);
    broker_service_t *service = (broker_service_t *)zhashx_lookup(self->services, name);
    if (!service) service = s_service_new(self, name);
    if (service->worker_count == 0)
        log_info("service %s has a worker (%zu requests held)", name,
                 zlistx_size(service->requests));
    freen(name);
    broker_worker_t *worker = (broker_worker_t *)zmalloc(sizeof *worker);
    worker->key = strdup(key);
    worker->address = zframe_dup(address);
    worker->service = service;
    worker->last_seen = zclock_mono();
    service->worker_count++;
    zhashx_insert(self->workers, key, worker);
    s_worker_set_idle(worker);
    log_debug("worker %s ready for %s", key, service->name);
    s_service_dispatch(self, service);
}

//  REPLY [client, correlation, reply (, BLOB, blob)] from a busy worker.
static void s_worker_reply(broker_t *self, broker_worker_t *worker, zmsg_t *msg)
{
    broker_request_t *request = worker->current;
    zframe_t *client = zmsg_pop(msg);
    zframe_t *correlation = zmsg_pop(msg);
    zframe_t *reply = zmsg_pop(msg);
    zframe_t *marker = zmsg_pop(msg);
    zframe_t *blob = zmsg_pop(msg);
    if (!reply || zmsg_size(msg) != 0 || !request || !zframe_eq(client, request->client) ||
        !zframe_eq(correlation, request->correlation) ||
        (marker && (!blob || !zframe_streq(marker, PROTOCOL_BLOB)))) {
        //  A worker that answers something it was not asked is confused:
        //  start it afresh rather than guess.
        log_debug("unexpected REPLY from worker %s", worker->key);
        s_worker_delete(self, worker, true, "unexpected reply");
    } else {
        broker_service_t *service = worker->service;
        if (blob && zframe_size(blob) > PROTOCOL_BLOB_MAX) {
            log_warn("reply blob of %zu bytes from %s dropped", zframe_size(blob), service->name);
            s_client_error(self, request->client, service->name, strlen(service->name),
                           request->correlation, 500, ERR_INTERNAL, "the reply is too large");
        } else {
            s_client_send(self, request->client, service->name, strlen(service->name),
                          request->correlation, zframe_data(reply), zframe_size(reply), blob);
        }
        s_request_destroy(&worker->current);
        if (worker->leaving) {
            //  It said DISCONNECT while this request was on its way: now
            //  that it is answered, the echo tells the worker it may go.
            s_worker_delete(self, worker, true, "left after its last reply");
        } else {
            s_worker_set_idle(worker);
            s_service_dispatch(self, service);
        }
    }
    zframe_destroy(&client);
    zframe_destroy(&correlation);
    zframe_destroy(&reply);
    zframe_destroy(&marker);
    zframe_destroy(&blob);
}

//  ["", SW01, command, ...] from a worker; msg holds the frames after SW01.
static void s_worker_message(broker_t *self, zframe_t *address, zmsg_t *msg)
{
    zframe_t *command = zmsg_pop(msg);
    if (!command) {
        log_debug("worker message without a command dropped");
        return;
    }
    char *key = zframe_strhex(address);
    broker_worker_t *worker = (broker_worker_t *)zhashx_lookup(self->workers, key);
    if (zframe_streq(command, PROTOCOL_READY)) {
        if (worker)
            s_worker_delete(self, worker, true, "READY twice");
        else
            s_worker_ready(self, address, key, msg);
    } else if (!worker) {
        //  Anything before READY (typically a worker of a broker that was
        //  restarted) is told to start over; it reconnects and says READY.
        //  A DISCONNECT gets its echo: the worker is not known, so nothing
        //  more will come to it.
        s_send_command(self, address, PROTOCOL_DISCONNECT);
    } else {
        worker->last_seen = zclock_mono();
        if (zframe_streq(command, PROTOCOL_REPLY))
            s_worker_reply(self, worker, msg);
        else if (zframe_streq(command, PROTOCOL_DISCONNECT) && worker->current) {
            //  A request crossed its DISCONNECT: wait for that REPLY (the
            //  worker answers everything until the echo), then echo.
            worker->leaving = true;
            log_debug("worker %s leaving after its reply", key);
        } else if (zframe_streq(command, PROTOCOL_DISCONNECT))
            s_worker_delete(self, worker, true, "said DISCONNECT");
        else if (!zframe_streq(command, PROTOCOL_HEARTBEAT))
            log_debug("unknown worker command from %s dropped", key);
    }
    freen(key);
    zframe_destroy(&command);
}

//  Reads one message from the ROUTER and routes it by protocol frame.
static void s_router_message(broker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->router);
    size_t size = msg ? zmsg_content_size(msg) : 0;
    if (size >= BROKER_TRIM_MESSAGE_BYTES) self->large_bytes += size;
    if (!msg) return;
    zframe_t *address = zmsg_pop(msg);
    zframe_t *empty = zmsg_pop(msg);
    zframe_t *protocol = zmsg_pop(msg);
    if (!address || !empty || zframe_size(empty) != 0 || !protocol)
        log_debug("message without envelope dropped");
    else if (zframe_streq(protocol, PROTOCOL_CLIENT))
        s_client_message(self, address, msg);
    else if (zframe_streq(protocol, PROTOCOL_WORKER))
        s_worker_message(self, address, msg);
    else
        log_debug("message with unknown protocol dropped");
    zframe_destroy(&address);
    zframe_destroy(&empty);
    zframe_destroy(&protocol);
    zmsg_destroy(&msg);
}

//  Moves one whole multipart message from one proxy socket to the other.
//  A part that cannot be sent drops the rest of that message, never the
//  framing of the next one.
static void s_forward(zsock_t *from, zsock_t *to)
{
    void *source = zsock_resolve(from);
    void *target = zsock_resolve(to);
    bool sending = true;
    while (true) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, source, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&part);
            return;
        }
        bool more = zmq_msg_more(&part);
        if (sending && zmq_msg_send(&part, target, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) == -1)
            sending = false;
        zmq_msg_close(&part);
        if (!more) return;
    }
}

//  ---------------------------------------------------------------------
//  Life cycle

static zsock_t *s_bind(int type, const char *endpoint, const char *what)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) return NULL;
    if (zsock_bind(sock, "%s", endpoint) == -1) {
        log_error("cannot bind %s on %s: %s", what, endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
    }
    return sock;
}

broker_t *broker_new(const broker_config_t *config)
{
    broker_t *self = (broker_t *)zmalloc(sizeof *self);
    self->queue_max = config->queue_max ? config->queue_max : 1;
    self->queue_bytes_max = config->queue_bytes_max ? config->queue_bytes_max : 256 << 20;
    self->hold_ms = config->hold_ms > 0 ? config->hold_ms : 0;
    self->forget_ms = config->forget_ms > 0 ? config->forget_ms : 60000;
    self->drain_ms = config->drain_ms > 0 ? config->drain_ms : 0;
    self->hold_any_until = envelope_now_ms() + self->hold_ms;
    self->services = zhashx_new();
    self->workers = zhashx_new();
    self->clients = zhashx_new();
    zhashx_set_destructor(self->clients, s_client_destroy);
    self->next_deadline = INT64_MAX;
    self->heartbeat_at = zclock_mono() + WORKER_HEARTBEAT_MS;

    self->router = zsock_new(ZMQ_ROUTER);
    if (self->router) {
        zsock_set_router_mandatory(self->router, 1);
        zsock_set_maxmsgsize(self->router, config->max_message_bytes > INT_MAX
                                               ? INT_MAX
                                               : (int)config->max_message_bytes);
        zsock_set_linger(self->router, 500); // lets the DISCONNECTs of a shutdown out
        if (zsock_bind(self->router, "%s", config->endpoint) == -1) {
            log_error("cannot bind requests on %s: %s", config->endpoint,
                      zmq_strerror(zmq_errno()));
            zsock_destroy(&self->router);
        }
    }
    self->xsub = s_bind(ZMQ_XSUB, config->events_pub, "event publishers");
    self->xpub = s_bind(ZMQ_XPUB, config->events_sub, "event subscribers");
    if (!self->router || !self->xsub || !self->xpub) {
        broker_destroy(&self);
        return NULL;
    }
    //  Events are recoverable (consumers replay gaps) but drops cost a
    //  replay round trip, so allow deep queues for bursts.
    zsock_set_rcvhwm(self->xsub, 100000);
    zsock_set_sndhwm(self->xpub, 100000);
    log_info("broker listening: requests on %s, events in on %s, events out on %s",
             config->endpoint, config->events_pub, config->events_sub);
    return self;
}

void broker_destroy(broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self) return;
    //  Workers reconnect at once, so a restarted broker gets them back
    //  quickly; clients waiting on the broker get 503 instead of a timeout.
    if (self->router) {
        zlistx_t *workers = zhashx_values(self->workers);
        for (broker_worker_t *worker = (broker_worker_t *)zlistx_first(workers); worker;
             worker = (broker_worker_t *)zlistx_next(workers))
            s_worker_delete(self, worker, true, "broker shutting down");
        zlistx_destroy(&workers);
        zlistx_t *services = zhashx_values(self->services);
        for (broker_service_t *service = (broker_service_t *)zlistx_first(services); service;
             service = (broker_service_t *)zlistx_next(services))
            s_service_delete(self, service);
        zlistx_destroy(&services);
    }
    assert(zhashx_size(self->workers) == 0 && zhashx_size(self->services) == 0);
    zhashx_destroy(&self->services);
    zhashx_destroy(&self->workers);
    zhashx_destroy(&self->clients);
    zsock_destroy(&self->router);
    zsock_destroy(&self->xsub);
    zsock_destroy(&self->xpub);
    freen(self);
    *self_p = NULL;
}

//  One round: waits for traffic (at most until the next timer, or
//  wait_max_ms), handles it and the timers. 0, or -1 when poll fails.
static int s_round(broker_t *self, int64_t wait_max_ms)
{
    zmq_pollitem_t items[] = {{zsock_resolve(self->router), 0, ZMQ_POLLIN, 0},
                              {zsock_resolve(self->xsub), 0, ZMQ_POLLIN, 0},
                              {zsock_resolve(self->xpub), 0, ZMQ_POLLIN, 0}};
    int64_t timeout = self->heartbeat_at - zclock_mono();
    if (self->next_deadline != INT64_MAX) {
        int64_t until_deadline = self->next_deadline - envelope_now_ms();
        if (until_deadline < timeout) timeout = until_deadline;
    }
    if (timeout > wait_max_ms) timeout = wait_max_ms;
    if (timeout < 0) timeout = 0;
    if (zmq_poll(items, 3, (long)timeout) == -1) {
        if (errno == EINTR) return 0;
        log_error("poll failed: %s", zmq_strerror(errno));
        return -1;
    }
    if (items[0].revents & ZMQ_POLLIN)
        for (int i = 0; i < DRAIN_MAX && (zsock_events(self->router) & ZMQ_POLLIN); i++)
            s_router_message(self);
    if (items[1].revents & ZMQ_POLLIN)
        for (int i = 0; i < DRAIN_MAX && (zsock_events(self->xsub) & ZMQ_POLLIN); i++)
            s_forward(self->xsub, self->xpub);
    if (items[2].revents & ZMQ_POLLIN)
        for (int i = 0; i < DRAIN_MAX && (zsock_events(self->xpub) & ZMQ_POLLIN); i++)
            s_forward(self->xpub, self->xsub);
    if (zclock_mono() >= self->heartbeat_at) {
        s_heartbeat(self);
        self->heartbeat_at = zclock_mono() + WORKER_HEARTBEAT_MS;
        s_purge_expired(self); // also forgets services that stayed without workers
        s_clients_prune(self);
        bool busy = self->large_bytes >= BROKER_TRIM_BYTES;
        if (busy || self->trim_again) malloc_trim(0);
        self->trim_again = busy;
        self->large_bytes = 0;
    }
    if (envelope_now_ms() >= self->next_deadline) s_purge_expired(self);
    return 0;
}

int broker_run(broker_t *self)
{
    while (!zsys_interrupted)
        if (s_round(self, INT64_MAX) == -1) return -1;
    return 0;
}

//  Workers holding a request.
static size_t s_busy_count(broker_t *self)
{
    size_t busy = 0;
    for (broker_worker_t *worker = (broker_worker_t *)zhashx_first(self->workers); worker;
         worker = (broker_worker_t *)zhashx_next(self->workers))
        busy += worker->current != NULL;
    return busy;
}

//  Requests waiting in every queue.
static size_t s_queued_count(broker_t *self)
{
    size_t queued = 0;
    for (broker_service_t *service = (broker_service_t *)zhashx_first(self->services); service;
         service = (broker_service_t *)zhashx_next(self->services))
        queued += zlistx_size(service->requests);
    return queued;
}

void broker_drain(broker_t *self)
{
    //  A request in progress may be waiting for calls it makes to other
    //  services, which reach the broker as new requests carrying its
    //  deadline (or an earlier one): those must still be served, or the
    //  drain would wait for nothing. So the drain keeps serving every
    //  request that ends no later than the latest deadline in progress now
    //  (it cannot make the drain longer) and refuses the rest (503,
    //  retry): new work from the gateway has a later deadline.
    self->draining = true;
    self->drain_deadline = 0;
    for (broker_worker_t *worker = (broker_worker_t *)zhashx_first(self->workers); worker;
         worker = (broker_worker_t *)zhashx_next(self->workers))
        if (worker->current && worker->current->deadline_ms > self->drain_deadline)
            self->drain_deadline = worker->current->deadline_ms;
    for (broker_service_t *service = (broker_service_t *)zhashx_first(self->services); service;
         service = (broker_service_t *)zhashx_next(self->services)) {
        broker_request_t *request = (broker_request_t *)zlistx_first(service->requests);
        while (request) {
            void *handle = zlistx_cursor(service->requests);
            broker_request_t *next = (broker_request_t *)zlistx_next(service->requests);
            if (s_refused_by_drain(self, request->deadline_ms)) {
                s_queue_take(self, service, handle);
                s_client_error_retry(self, request->client, service->name, strlen(service->name),
                                     request->correlation, 503, ERR_UNAVAILABLE,
                                     "the broker is restarting", true);
                s_request_destroy(&request);
            }
            request = next;
        }
    }
    int64_t until = zclock_mono() + self->drain_ms;
    size_t busy = s_busy_count(self), queued = s_queued_count(self);
    log_info("draining: %zu requests in progress, %zu waiting, up to %lld ms", busy, queued,
             (long long)self->drain_ms);
    while ((busy > 0 || queued > 0) && zclock_mono() < until) {
        if (s_round(self, until - zclock_mono()) == -1) break;
        busy = s_busy_count(self);
        queued = s_queued_count(self);
    }
    //  The last word: nothing is read after it (see the top of the file).
    part_t bye[] = {{NULL, 0}, {"", 0}, s_string_part(PROTOCOL_CLIENT), s_string_part(RPC_BYE)};
    size_t told = 0;
    for (broker_client_t *client = (broker_client_t *)zhashx_first(self->clients); client;
         client = (broker_client_t *)zhashx_next(self->clients)) {
        bye[0] = s_frame_part(client->address);
        told += s_send_parts(self->router, bye, 4) == 0;
    }
    log_info("drained: %zu requests still in progress, BYE sent to %zu clients", busy, told);
}
