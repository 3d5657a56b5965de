/*  ws: the WebSocket hub (see ws.h for the contract).

    Connections. civetweb calls four handlers, all on the connection's own
    worker thread: connect (before the handshake: a bad query token is
    answered 401 here, a full hub 503), ready (after it: the connection is
    registered, and authenticated when the query carried a token), data
    (each client frame: auth, ping) and close (last: unregistered and
    freed). A ws_conn_t lives from ready to close, reachable from the
    connection's user data and from the hub's lists.

    Delivery. The hub thread reads notification.push events and appends a
    shared, reference-counted frame to the queue of each connection of the
    event's user_id, then puts the connection on the ready list. Writer
    threads take one connection at a time off that list, write its whole
    queue with mg_websocket_write (civetweb's per-connection lock keeps
    frames from interleaving with its own pongs), and put it back when more
    came meanwhile. A connection is written by at most one writer at a
    time, so its frames keep their order. A queue that reaches WS_QUEUE_MAX
    means the client does not read: its frames are dropped, it gets a close
    frame (1008), and nothing more is queued for it; a writer blocked on it
    costs that one writer at most civetweb's write timeout, and the others
    keep serving everyone else. A failed write stops all writes to that
    connection; civetweb's ping then fails too and ends it.

    Lifetime. The close handler marks the connection stopped, takes it off
    every list, waits until no writer holds it, frees its queue and itself.
    So a writer never touches a connection civetweb has reused.

    Every lock is the hub's one mutex; it is held only for list and queue
    updates, never across a write, an RPC or a database call.
*/
#include "ws.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "msgjson.h"
#include "rpc.h"
#include "token.h"

#include <czmq.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define WS_CLIENT_FRAME_MAX 8192 // bytes of one client message
#define WS_SWEEP_MS 1000         // token expiry and first-frame timeout checks
#define WS_POLL_MS 250           // how quickly the hub thread notices a stop
#define WS_RPC_CLIENTS 4         // rpc clients shared by the connection threads

typedef struct {
    atomic_int refs;
    int opcode;
    size_t size;
    char data[];
} frame_t;

typedef struct node_t {
    struct node_t *next;
    frame_t *frame;
} node_t;

typedef struct ws_conn_t {
    struct mg_connection *conn;
    int64_t user_id;   // 0 until authenticated
    int64_t expires_s; // the token's exp
    int64_t opened_ms;
    node_t *head, *tail; // frames waiting
    size_t queued;
    bool writing;   // a writer holds it (outside the lock)
    bool scheduled; // on the ready list
    bool held;      // authenticated, the unread_count frame not queued yet
    bool closing;   // a close frame is queued: nothing more is
    bool stopped;   // never write again (closed, failed, or going away)
    struct ws_conn_t *ready_next;
    void *all_handle;  // in hub->all
    void *user_handle; // in the user's list
} ws_conn_t;

struct ws_hub_t {
    char *jwt_secret;
    char *broker_url;
    char *events_sub_url;
    metrics_t *metrics;
    int max_connections;
    int auth_timeout_ms;
    int64_t request_timeout_ms;

    pthread_mutex_t mutex;
    pthread_cond_t work; // writers: a connection is ready
    pthread_cond_t idle; // close handlers: a writer let go of a connection
    zhashx_t *by_user;   // "<user id>" -> zlistx_t of ws_conn_t (authenticated)
    zlistx_t *all;       // every open ws_conn_t
    ws_conn_t *ready_head, *ready_tail;
    atomic_int open;
    atomic_bool stop;

    pthread_t hub_thread;
    bool hub_started;
    pthread_t *writers;
    int writer_count;

    //  A few rpc clients shared by every connection thread for the unread
    //  count on connect: one per thread would be a ZeroMQ socket per open
    //  stream (thousands; ZeroMQ caps a process at its max_sockets).
    pthread_mutex_t rpc_mutex;
    pthread_cond_t rpc_free;
    rpc_client_t *rpc[WS_RPC_CLIENTS];
    bool rpc_busy[WS_RPC_CLIENTS];
};

//  ---------------------------------------------------------------------
//  Frames and queues (call with the mutex held unless said otherwise)

static frame_t *s_frame_new(int opcode, const char *data, size_t size)
{
    frame_t *frame = (frame_t *)malloc(sizeof(frame_t) + size);
    if (!frame) return NULL;
    atomic_init(&frame->refs, 1);
    frame->opcode = opcode;
    frame->size = size;
    if (size) memcpy(frame->data, data, size);
    return frame;
}

static void s_frame_unref(frame_t *frame)
{
    if (frame && atomic_fetch_sub(&frame->refs, 1) == 1) free(frame);
}

//  A close frame: 2 bytes of code, then the reason.
static frame_t *s_close_frame(int code, const char *reason)
{
    char payload[125];
    size_t length = strlen(reason);
    if (length > sizeof payload - 2) length = sizeof payload - 2;
    payload[0] = (char)((code >> 8) & 0xff);
    payload[1] = (char)(code & 0xff);
    memcpy(payload + 2, reason, length);
    return s_frame_new(MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, payload, length + 2);
}

//  A text frame of {"type": type, "data": data (borrowed, may be NULL)}.
static frame_t *s_json_frame(const char *type, const json_t *data)
{
    json_t *object = json_pack("{s:s}", "type", type);
    if (data) json_object_set(object, "data", (json_t *)data);
    char *text = object ? json_dumps(object, JSON_COMPACT) : NULL;
    json_decref(object);
    frame_t *frame = text ? s_frame_new(MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text)) : NULL;
    free(text);
    return frame;
}

static void s_free_queue(ws_conn_t *c)
{
    for (node_t *node = c->head, *next; node; node = next) {
        next = node->next;
        s_frame_unref(node->frame);
        free(node);
    }
    c->head = c->tail = NULL;
    c->queued = 0;
}

static void s_schedule(ws_hub_t *self, ws_conn_t *c)
{
    if (c->writing || c->scheduled || c->held || c->stopped || !c->head) return;
    c->scheduled = true;
    c->ready_next = NULL;
    if (self->ready_tail)
        self->ready_tail->ready_next = c;
    else
        self->ready_head = c;
    self->ready_tail = c;
    pthread_cond_signal(&self->work);
}

static void s_unschedule(ws_hub_t *self, ws_conn_t *c)
{
    if (!c->scheduled) return;
    ws_conn_t *previous = NULL;
    for (ws_conn_t *at = self->ready_head; at; previous = at, at = at->ready_next) {
        if (at != c) continue;
        if (previous)
            previous->ready_next = at->ready_next;
        else
            self->ready_head = at->ready_next;
        if (self->ready_tail == at) self->ready_tail = previous;
        break;
    }
    c->scheduled = false;
}

//  Appends (or puts first) a reference to frame. Takes no reference from
//  the caller.
static void s_push(ws_conn_t *c, frame_t *frame, bool first)
{
    node_t *node = (node_t *)calloc(1, sizeof(node_t));
    if (!node) return;
    atomic_fetch_add(&frame->refs, 1);
    node->frame = frame;
    if (first) {
        node->next = c->head;
        c->head = node;
        if (!c->tail) c->tail = node;
    } else {
        if (c->tail)
            c->tail->next = node;
        else
            c->head = node;
        c->tail = node;
    }
    c->queued++;
}

//  Queues the close frame and nothing after it.
static void s_close_queued(ws_hub_t *self, ws_conn_t *c, int code, const char *reason)
{
    if (c->closing || c->stopped) return;
    frame_t *frame = s_close_frame(code, reason);
    if (!frame) return;
    c->closing = true;
    s_push(c, frame, false);
    s_frame_unref(frame);
    s_schedule(self, c);
}

static void s_enqueue(ws_hub_t *self, ws_conn_t *c, frame_t *frame)
{
    if (c->closing || c->stopped) return;
    if (c->queued >= WS_QUEUE_MAX) {
        //  The client does not read: drop it rather than hold memory for it.
        log_info("websocket of user %lld does not read: dropped", (long long)c->user_id);
        s_free_queue(c);
        s_close_queued(self, c, 1008, "too slow");
        return;
    }
    s_push(c, frame, false);
    s_schedule(self, c);
}

//  Outside the lock, on the connection's own thread: stops the writers
//  for c, then writes a close frame directly.
static void s_close_now(ws_hub_t *self, ws_conn_t *c, int code, const char *reason)
{
    pthread_mutex_lock(&self->mutex);
    bool already = c->stopped;
    c->stopped = true;
    s_unschedule(self, c);
    while (c->writing)
        pthread_cond_wait(&self->idle, &self->mutex);
    pthread_mutex_unlock(&self->mutex);
    if (already) return;
    frame_t *frame = s_close_frame(code, reason);
    if (frame) mg_websocket_write(c->conn, frame->opcode, frame->data, frame->size);
    s_frame_unref(frame);
}

//  ---------------------------------------------------------------------
//  Writers

static void *s_writer(void *arg)
{
    ws_hub_t *self = (ws_hub_t *)arg;
    pthread_mutex_lock(&self->mutex);
    while (true) {
        while (!self->ready_head && !atomic_load(&self->stop))
            pthread_cond_wait(&self->work, &self->mutex);
        if (!self->ready_head) break; // stopping, nothing left
        ws_conn_t *c = self->ready_head;
        self->ready_head = c->ready_next;
        if (!self->ready_head) self->ready_tail = NULL;
        c->scheduled = false;
        node_t *batch = c->head;
        c->head = c->tail = NULL;
        c->queued = 0;
        c->writing = true;
        pthread_mutex_unlock(&self->mutex);

        bool failed = false, closed = false;
        for (node_t *node = batch, *next; node; node = next) {
            next = node->next;
            frame_t *frame = node->frame;
            if (!failed && !closed) {
                int rc = mg_websocket_write(c->conn, frame->opcode, frame->data, frame->size);
                failed = rc <= 0;
                closed = frame->opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE;
            }
            s_frame_unref(frame);
            free(node);
        }

        pthread_mutex_lock(&self->mutex);
        c->writing = false;
        if (failed || closed) c->stopped = true;
        s_schedule(self, c);
        pthread_cond_broadcast(&self->idle);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

//  ---------------------------------------------------------------------
//  Tokens

//  The token's exp claim (the token is already verified). 0 when missing.
static int64_t s_token_exp(const char *token)
{
    const char *first = strchr(token, '.');
    const char *second = first ? strchr(first + 1, '.') : NULL;
    if (!second) return 0;
    size_t encoded = (size_t)(second - first - 1);
    unsigned char *decoded = (unsigned char *)malloc(encoded + 1);
    size_t size = 0;
    int64_t exp = 0;
    if (decoded && sodium_base642bin(decoded, encoded, first + 1, encoded, NULL, &size, NULL,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) {
        json_t *claims = json_loadb((const char *)decoded, size, 0, NULL);
        json_t *value = json_object_get(claims, "exp");
        if (json_is_integer(value)) exp = json_integer_value(value);
        json_decref(claims);
    }
    free(decoded);
    return exp;
}

//  Verifies token: 0 with the user and expiry, or -1.
static int s_verify(ws_hub_t *self, const char *token, int64_t *user_id, int64_t *expires_s)
{
    if (!token || !*token) return -1;
    if (token_verify(self->jwt_secret, token, (int64_t)time(NULL), user_id) != 0) return -1;
    *expires_s = s_token_exp(token);
    return *expires_s > 0 ? 0 : -1;
}

//  The token a handshake carries: "Authorization: Bearer …" or
//  ?access_token=…. Returns 1 (copied into buf), 0 none, -1 malformed.
static int s_handshake_token(const struct mg_connection *conn, char *buf, size_t size)
{
    const char *header = mg_get_header(conn, "Authorization");
    if (header && *header) {
        if (strncasecmp(header, "Bearer ", 7) != 0) return -1;
        const char *token = header + 7;
        while (*token == ' ')
            token++;
        if (strlen(token) >= size) return -1;
        snprintf(buf, size, "%s", token);
        return 1;
    }
    const struct mg_request_info *info = mg_get_request_info(conn);
    const char *query = info ? info->query_string : NULL;
    if (!query) return 0;
    int length = mg_get_var(query, strlen(query), "access_token", buf, size);
    if (length == -1) return 0;
    return length >= 0 ? 1 : -1;
}

//  ---------------------------------------------------------------------
//  Authentication and the first frame

//  Borrows a pooled rpc client (waits while all are busy); *slot_out
//  names it for s_rpc_return. NULL when none can be made.
static rpc_client_t *s_rpc_borrow(ws_hub_t *self, int *slot_out)
{
    pthread_mutex_lock(&self->rpc_mutex);
    int slot = -1;
    while (slot < 0) {
        for (int i = 0; i < WS_RPC_CLIENTS && slot < 0; i++)
            if (!self->rpc_busy[i]) slot = i;
        if (slot < 0) pthread_cond_wait(&self->rpc_free, &self->rpc_mutex);
    }
    self->rpc_busy[slot] = true;
    if (!self->rpc[slot]) self->rpc[slot] = rpc_client_new(self->broker_url);
    rpc_client_t *client = self->rpc[slot];
    if (!client) self->rpc_busy[slot] = false;
    pthread_mutex_unlock(&self->rpc_mutex);
    *slot_out = slot;
    return client;
}

static void s_rpc_return(ws_hub_t *self, int slot)
{
    pthread_mutex_lock(&self->rpc_mutex);
    self->rpc_busy[slot] = false;
    pthread_cond_signal(&self->rpc_free);
    pthread_mutex_unlock(&self->rpc_mutex);
}

//  The unread_count frame for user_id, or NULL when notification does not
//  answer (logged: the client can still ask the REST endpoints).
static frame_t *s_unread_frame(ws_hub_t *self, int64_t user_id)
{
    int slot = 0;
    rpc_client_t *client = s_rpc_borrow(self, &slot);
    if (!client) return NULL;
    json_t *reply = rpc_call(client, "notification", "notifications.unread", user_id, NULL, NULL,
                             envelope_now_ms() + self->request_timeout_ms);
    s_rpc_return(self, slot);
    frame_t *frame = NULL;
    if (reply_status(reply) == 200)
        frame = s_json_frame("unread_count", reply_body(reply));
    else
        log_warn("notification notifications.unread answered %d: no unread_count frame",
                 reply_status(reply));
    json_decref(reply);
    return frame;
}

//  Makes c belong to user_id until expires_s. The first time, registers it
//  under the user and queues the unread_count frame ahead of any push that
//  arrived meanwhile. Returns -1 when c belongs to another user already.
static int s_authenticate(ws_hub_t *self, ws_conn_t *c, int64_t user_id, int64_t expires_s)
{
    pthread_mutex_lock(&self->mutex);
    if (c->user_id && c->user_id != user_id) {
        pthread_mutex_unlock(&self->mutex);
        return -1;
    }
    bool first = c->user_id == 0;
    c->user_id = user_id;
    c->expires_s = expires_s;
    if (first) {
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)user_id);
        zlistx_t *list = (zlistx_t *)zhashx_lookup(self->by_user, key);
        if (!list) {
            list = zlistx_new();
            zhashx_insert(self->by_user, key, list);
        }
        c->user_handle = zlistx_add_end(list, c);
        c->held = true; // pushes wait behind the unread_count frame
    }
    pthread_mutex_unlock(&self->mutex);
    if (!first) return 0;

    frame_t *frame = s_unread_frame(self, user_id);
    pthread_mutex_lock(&self->mutex);
    if (frame && !c->stopped && !c->closing) s_push(c, frame, true);
    c->held = false;
    s_schedule(self, c);
    pthread_mutex_unlock(&self->mutex);
    s_frame_unref(frame);
    return 0;
}

//  ---------------------------------------------------------------------
//  civetweb handlers

static double s_seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

//  Answers the upgrade request with an HTTP error instead of a handshake.
static void s_refuse(struct mg_connection *conn, int status, const char *code, const char *message)
{
    char request_id[32];
    log_new_request_id(request_id, sizeof request_id);
    char body[256];
    int length = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                          code, message);
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\n"
              "Content-Type: application/json; charset=utf-8\r\n"
              "Content-Length: %d\r\n"
              "Cache-Control: no-store\r\n"
              "X-Content-Type-Options: nosniff\r\n"
              "X-Request-Id: %s\r\n"
              "%s"
              "Connection: close\r\n\r\n%s",
              status, mg_get_response_code_text(conn, status), length, request_id,
              status == 401 ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n" : "", body);
    mg_disable_connection_keep_alive(conn);
}

static int s_on_connect(const struct mg_connection *const_conn, void *cbdata)
{
    ws_hub_t *self = (ws_hub_t *)cbdata;
    //  civetweb hands the connect handler a const connection although the
    //  handler may answer on it (its own examples do the same).
    struct mg_connection *conn = (struct mg_connection *)const_conn;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    char token[TOKEN_MAX_BYTES + 1];
    int found = s_handshake_token(conn, token, sizeof token);
    int64_t user_id = 0, expires_s = 0;
    int status = 0;
    if (found < 0 || (found == 1 && s_verify(self, token, &user_id, &expires_s) != 0)) {
        status = 401;
        s_refuse(conn, 401, ERR_UNAUTHENTICATED, "the access token is invalid or expired");
    } else if (atomic_load(&self->open) >= self->max_connections) {
        status = 503;
        s_refuse(conn, 503, ERR_UNAVAILABLE, "too many open streams, try again later");
    }
    if (status) {
        metrics_http_observe(self->metrics, WS_PATH, "GET", status, s_seconds_since(&started));
        return 1;
    }
    return 0;
}

static void s_on_ready(struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *self = (ws_hub_t *)cbdata;
    ws_conn_t *c = (ws_conn_t *)calloc(1, sizeof(ws_conn_t));
    mg_set_user_connection_data(conn, c);
    if (!c) return; // the data handler closes a connection without state
    c->conn = conn;
    c->opened_ms = envelope_now_ms();
    pthread_mutex_lock(&self->mutex);
    c->all_handle = zlistx_add_end(self->all, c);
    pthread_mutex_unlock(&self->mutex);
    atomic_fetch_add(&self->open, 1);
    metrics_websocket_add(self->metrics, 1);
    metrics_http_observe(self->metrics, WS_PATH, "GET", 101, 0);

    //  The connect handler checked the token already; verify again rather
    //  than carry it across (it costs one HMAC).
    char token[TOKEN_MAX_BYTES + 1];
    int64_t user_id = 0, expires_s = 0;
    if (s_handshake_token(conn, token, sizeof token) == 1 &&
        s_verify(self, token, &user_id, &expires_s) == 0)
        s_authenticate(self, c, user_id, expires_s);
}

//  A client message (a complete text frame).
static int s_on_message(ws_hub_t *self, ws_conn_t *c, const char *data, size_t size)
{
    json_t *message = json_loadb(data, size, 0, NULL);
    const char *type = json_string_value(json_object_get(message, "type"));
    int keep = 1;
    if (type && strcmp(type, "auth") == 0) {
        const char *token = json_string_value(json_object_get(message, "token"));
        int64_t user_id = 0, expires_s = 0;
        if (!token || strlen(token) > TOKEN_MAX_BYTES ||
            s_verify(self, token, &user_id, &expires_s) != 0 ||
            s_authenticate(self, c, user_id, expires_s) != 0) {
            s_close_now(self, c, WS_CLOSE_UNAUTHORIZED, "invalid token");
            keep = 0;
        }
    } else if (c->user_id == 0) {
        s_close_now(self, c, WS_CLOSE_UNAUTHORIZED, "authenticate first");
        keep = 0;
    } else if (type && strcmp(type, "ping") == 0) {
        frame_t *frame = s_json_frame("pong", NULL);
        if (frame) {
            pthread_mutex_lock(&self->mutex);
            s_enqueue(self, c, frame);
            pthread_mutex_unlock(&self->mutex);
            s_frame_unref(frame);
        }
    }
    //  Anything else is ignored: newer clients may send more.
    json_decref(message);
    return keep;
}

static int s_on_data(struct mg_connection *conn, int bits, char *data, size_t size, void *cbdata)
{
    ws_hub_t *self = (ws_hub_t *)cbdata;
    ws_conn_t *c = (ws_conn_t *)mg_get_user_connection_data(conn);
    if (!c) return 0;
    int opcode = bits & 0xf;
    bool fin = (bits & 0x80) != 0;
    pthread_mutex_lock(&self->mutex);
    bool done = c->stopped || c->closing;
    pthread_mutex_unlock(&self->mutex);
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        //  Answer the client's close with the same code (RFC 6455 5.5.1).
        int code = size >= 2 ? (((unsigned char)data[0] << 8) | (unsigned char)data[1]) : 1000;
        if (code < 1000 || code == 1005 || code == 1006 || code == 1015 || code > 4999)
            code = 1000; // codes a close frame may not carry
        s_close_now(self, c, code, "");
        return 0;
    }
    if (done) return 0;
    if (opcode == MG_WEBSOCKET_OPCODE_PING || opcode == MG_WEBSOCKET_OPCODE_PONG) return 1;
    if (opcode != MG_WEBSOCKET_OPCODE_TEXT || !fin) {
        if (c->user_id == 0)
            s_close_now(self, c, WS_CLOSE_UNAUTHORIZED, "authenticate first");
        else
            s_close_now(self, c, 1003, "only whole JSON text messages");
        return 0;
    }
    if (size > WS_CLIENT_FRAME_MAX) {
        s_close_now(self, c, 1009, "message too big");
        return 0;
    }
    return s_on_message(self, c, data, size);
}

static void s_on_close(const struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *self = (ws_hub_t *)cbdata;
    ws_conn_t *c = (ws_conn_t *)mg_get_user_connection_data(conn);
    if (!c) return;
    pthread_mutex_lock(&self->mutex);
    c->stopped = true;
    s_unschedule(self, c);
    while (c->writing)
        pthread_cond_wait(&self->idle, &self->mutex);
    if (c->user_handle) {
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)c->user_id);
        zlistx_t *list = (zlistx_t *)zhashx_lookup(self->by_user, key);
        if (list) {
            zlistx_delete(list, c->user_handle);
            if (zlistx_size(list) == 0) zhashx_delete(self->by_user, key);
        }
    }
    if (c->all_handle) zlistx_delete(self->all, c->all_handle);
    s_free_queue(c);
    pthread_mutex_unlock(&self->mutex);
    mg_set_user_connection_data(conn, NULL);
    free(c);
    atomic_fetch_sub(&self->open, 1);
    metrics_websocket_add(self->metrics, -1);
}

void ws_hub_attach(ws_hub_t *self, struct mg_context *ctx)
{
    mg_set_websocket_handler(ctx, WS_PATH, s_on_connect, s_on_ready, s_on_data, s_on_close, self);
}

//  ---------------------------------------------------------------------
//  The hub thread: events in, frames out

//  One notification.push event: {user_id, type, data} in its payload.
static void s_fanout(ws_hub_t *self, const json_t *event)
{
    json_t *payload = json_object_get(event, "payload");
    const char *user_id = json_string_value(json_object_get(payload, "user_id"));
    const char *type = json_string_value(json_object_get(payload, "type"));
    if (!user_id || !type) {
        log_warn("notification.push without user_id or type: dropped");
        return;
    }
    pthread_mutex_lock(&self->mutex);
    bool anyone = zhashx_lookup(self->by_user, user_id) != NULL;
    pthread_mutex_unlock(&self->mutex);
    if (!anyone) return; // the common case: not connected to this gateway

    frame_t *frame = s_json_frame(type, json_object_get(payload, "data"));
    if (!frame) return;
    pthread_mutex_lock(&self->mutex);
    zlistx_t *list = (zlistx_t *)zhashx_lookup(self->by_user, user_id);
    for (ws_conn_t *c = list ? (ws_conn_t *)zlistx_first(list) : NULL; c;
         c = (ws_conn_t *)zlistx_next(list))
        s_enqueue(self, c, frame);
    pthread_mutex_unlock(&self->mutex);
    s_frame_unref(frame);
}

//  Closes connections whose token expired and those that never sent one.
static void s_sweep(ws_hub_t *self)
{
    int64_t now_ms = envelope_now_ms();
    pthread_mutex_lock(&self->mutex);
    for (ws_conn_t *c = (ws_conn_t *)zlistx_first(self->all); c;
         c = (ws_conn_t *)zlistx_next(self->all)) {
        if (c->user_id == 0 && !c->held && now_ms - c->opened_ms > self->auth_timeout_ms)
            s_close_queued(self, c, WS_CLOSE_UNAUTHORIZED, "authenticate first");
        else if (c->user_id != 0 && c->expires_s * 1000 <= now_ms)
            s_close_queued(self, c, WS_CLOSE_UNAUTHORIZED, "token expired");
    }
    pthread_mutex_unlock(&self->mutex);
}

static void *s_hub_thread(void *arg)
{
    ws_hub_t *self = (ws_hub_t *)arg;
    zsock_t *sub = zsock_new(ZMQ_SUB);
    if (!sub || zsock_connect(sub, "%s", self->events_sub_url) != 0) {
        log_error("websocket hub: cannot connect to %s: no live events", self->events_sub_url);
        zsock_destroy(&sub);
        return NULL;
    }
    zsock_set_subscribe(sub, "notification.push");
    int64_t next_sweep = zclock_mono() + WS_SWEEP_MS;
    while (!atomic_load(&self->stop)) {
        zmq_pollitem_t item = {zsock_resolve(sub), 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, WS_POLL_MS);
        for (int i = 0; ready > 0 && i < 1000 && (zsock_events(sub) & ZMQ_POLLIN); i++) {
            zmsg_t *msg = zmsg_recv(sub);
            if (!msg) break;
            zframe_t *topic = zmsg_first(msg);
            zframe_t *body = zmsg_next(msg);
            if (topic && body && zmsg_size(msg) == 2) {
                json_t *event = msgjson_decode(zframe_data(body), zframe_size(body));
                if (event)
                    s_fanout(self, event);
                else
                    log_warn("notification.push event that does not decode: dropped");
                json_decref(event);
            }
            zmsg_destroy(&msg);
        }
        if (zclock_mono() >= next_sweep) {
            s_sweep(self);
            next_sweep = zclock_mono() + WS_SWEEP_MS;
        }
    }
    zsock_destroy(&sub);
    return NULL;
}

//  ---------------------------------------------------------------------
//  Lifecycle

static void s_list_destructor(void **item)
{
    zlistx_t *list = (zlistx_t *)*item;
    zlistx_destroy(&list);
    *item = NULL;
}

ws_hub_t *ws_hub_new(const ws_config_t *config)
{
    ws_hub_t *self = (ws_hub_t *)zmalloc(sizeof(ws_hub_t));
    if (!self) return NULL;
    self->jwt_secret = strdup(config->jwt_secret ? config->jwt_secret : "");
    self->broker_url = strdup(config->broker_url ? config->broker_url : "");
    self->events_sub_url = strdup(config->events_sub_url ? config->events_sub_url : "");
    self->metrics = config->metrics;
    self->max_connections = config->max_connections > 0 ? config->max_connections : 1;
    self->auth_timeout_ms = config->auth_timeout_ms > 0 ? config->auth_timeout_ms : 10000;
    self->request_timeout_ms =
        config->request_timeout_ms > 0 ? config->request_timeout_ms : RPC_DEFAULT_TIMEOUT_MS;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->work, NULL);
    pthread_cond_init(&self->idle, NULL);
    self->by_user = zhashx_new();
    zhashx_set_destructor(self->by_user, s_list_destructor);
    self->all = zlistx_new();
    atomic_init(&self->open, 0);
    atomic_init(&self->stop, false);
    pthread_mutex_init(&self->rpc_mutex, NULL);
    pthread_cond_init(&self->rpc_free, NULL);
    int writers = config->writers > 0 ? config->writers : 4;
    self->writers = (pthread_t *)calloc((size_t)writers, sizeof(pthread_t));
    if (!self->by_user || !self->all || !self->writers) {
        ws_hub_destroy(&self);
        return NULL;
    }
    for (int i = 0; i < writers; i++) {
        if (pthread_create(&self->writers[i], NULL, s_writer, self) != 0) break;
        self->writer_count++;
    }
    if (self->writer_count == 0 || pthread_create(&self->hub_thread, NULL, s_hub_thread, self)) {
        log_error("websocket hub: cannot start its threads");
        ws_hub_destroy(&self);
        return NULL;
    }
    self->hub_started = true;
    return self;
}

void ws_hub_destroy(ws_hub_t **self_p)
{
    if (!self_p || !*self_p) return;
    ws_hub_t *self = *self_p;
    pthread_mutex_lock(&self->mutex);
    atomic_store(&self->stop, true);
    pthread_cond_broadcast(&self->work);
    pthread_mutex_unlock(&self->mutex);
    if (self->hub_started) pthread_join(self->hub_thread, NULL);
    for (int i = 0; i < self->writer_count; i++)
        pthread_join(self->writers[i], NULL);
    free(self->writers);
    for (int i = 0; i < WS_RPC_CLIENTS; i++)
        rpc_client_destroy(&self->rpc[i]);
    pthread_cond_destroy(&self->rpc_free);
    pthread_mutex_destroy(&self->rpc_mutex);
    zhashx_destroy(&self->by_user);
    zlistx_destroy(&self->all);
    pthread_cond_destroy(&self->idle);
    pthread_cond_destroy(&self->work);
    pthread_mutex_destroy(&self->mutex);
    free(self->jwt_secret);
    free(self->broker_url);
    free(self->events_sub_url);
    free(self);
    *self_p = NULL;
}

void ws_hub_close_all(ws_hub_t *self)
{
    pthread_mutex_lock(&self->mutex);
    for (ws_conn_t *c = (ws_conn_t *)zlistx_first(self->all); c;
         c = (ws_conn_t *)zlistx_next(self->all))
        s_close_queued(self, c, 1001, "going away");
    pthread_mutex_unlock(&self->mutex);
}

int ws_hub_connections(ws_hub_t *self)
{
    return atomic_load(&self->open);
}
