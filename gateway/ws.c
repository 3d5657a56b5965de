/*  ws: the WebSocket hub (see ws.h for the contract).

    Connections. civetweb routes the upgrade request to our connect
    handler, on the connection's own worker thread, and we keep the
    connection from there on: civetweb 1.15's own frame reader
    (read_websocket) allocates whatever payload length a client announces,
    up to 2 GiB, before any handler sees a byte of it, and then reads it
    all; one client could make the gateway hold gigabytes. So the connect
    handler checks the token (a bad query token: 401) and the capacity
    (503), finds the connection's socket (civetweb 1.15 does not hand it
    out; see s_client_socket), answers the handshake itself (SHA-1 from
    OpenSSL's libcrypto, which libjwt already links) and runs the read loop
    (s_serve) until the connection ends, then returns "handled" so civetweb
    only closes the socket. The loop reads each frame header, and a frame
    longer than WS_CLIENT_FRAME_MAX is answered with close 1009 before any
    of its payload is read or a byte is allocated for it. The header is
    parsed by ws_frame_parse, a pure function over the bytes read so far
    (it says how many more to read), so that the parser has unit tests and
    a fuzz target without a socket (tests/fuzz/fuzz_ws_frame.c). Writes still go
    through mg_websocket_write (civetweb's per-connection lock orders our
    frames). Inside the loop the steps are the ones civetweb used to call:
    ready (the connection is registered, and authenticated when the query
    carried a token), data (each client message: auth, ping) and close
    (last: unregistered and freed). A ws_conn_t lives from ready to close,
    reachable from the connection's user data and from the hub's lists.
    The loop also does civetweb's keep-alive: a ping after ping_ms without
    a byte from the client, the end after more than WS_PINGS_MAX
    unanswered. A client must wait for the 101 before it sends a frame
    (RFC 6455, 4.1); bytes sent earlier may sit in civetweb's request
    buffer, which we cannot read, and are lost.

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
    connection; its read loop then ends it (s_tick: a stopped connection).

    Lifetime. The close step marks the connection stopped, takes it off
    every list, waits until no writer holds it, frees its queue and itself.
    So a writer never touches a connection civetweb has reused. After a
    close frame went out (ours, or our answer to the client's) the loop
    waits at most WS_CLOSE_GRACE_MS for the client's close, sends FIN and
    reads what is still in flight (bounded) so that closing does not reset
    the connection under the client's unread close frame.

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

#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_SWEEP_MS 1000          // token expiry and first-frame timeout checks
#define WS_POLL_MS 250            // how quickly a stop is noticed (hub thread, read loops)
#define WS_RPC_CLIENTS 4          // rpc clients shared by the connection threads
#define WS_CLOSE_GRACE_MS 1000    // after our close frame: the client's time to close
#define WS_DRAIN_GRACE_MS 3000    // shutting down: the most a read loop waits
#define WS_DRAIN_MAX (256 * 1024) // bytes read and dropped while closing, at most
#define WS_PINGS_MAX 5            // unanswered pings before a client is gone
#define WS_KEY_MAX 64             // bytes of Sec-WebSocket-Key (24 in practice)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" // RFC 6455, 1.3

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
    int64_t ping_ms;      // idle time before the server pings (civetweb's websocket_timeout_ms)
    atomic_bool draining; // ws_hub_close_all ran: read loops end soon

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
    //  The clock s_sweep closes expired streams by: time() reads a coarse
    //  clock that may still show the second before, so a token could pass
    //  here just after its stream was closed as expired.
    if (token_verify(self->jwt_secret, token, envelope_now_ms() / 1000, user_id) != 0) return -1;
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
//  Taking the connection over from civetweb

//  The port of a TCP address, or -1.
static int s_port(const struct sockaddr_storage *address)
{
    if (address->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)address)->sin_port);
    if (address->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
    return -1;
}

//  The socket of conn: civetweb 1.15 does not hand it out, so it is the one
//  open socket of this process whose local port is the connection's server
//  port and whose peer is the client's address and port, as civetweb
//  prints them (inet_ntop). A TCP connection's address pair is unique while
//  it is open, and civetweb keeps this one open until its handler returns,
//  so the answer cannot change under us. Costs about one system call per
//  open descriptor, once per stream. -1 when there is none (civetweb serving TLS
//  or a Unix socket itself: the gateway does neither).
static int s_client_socket(const struct mg_connection *conn)
{
    const struct mg_request_info *info = mg_get_request_info(conn);
    if (!info || info->is_ssl) return -1;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int found = -1, own = dirfd(dir);
    struct dirent *entry;
    while (found < 0 && (entry = readdir(dir))) {
        char *end = NULL;
        long fd = strtol(entry->d_name, &end, 10);
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9' || *end || fd == own) continue;
        //  The peer first: its port (the client's) rules out nearly every
        //  other descriptor with one system call.
        struct sockaddr_storage local, peer;
        socklen_t local_size = sizeof local, peer_size = sizeof peer;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &peer_size) != 0 ||
            s_port(&peer) != info->remote_port ||
            getsockname((int)fd, (struct sockaddr *)&local, &local_size) != 0 ||
            s_port(&local) != info->server_port)
            continue;
        char text[INET6_ADDRSTRLEN] = "";
        const void *address = peer.ss_family == AF_INET
                                  ? (const void *)&((struct sockaddr_in *)&peer)->sin_addr
                                  : (const void *)&((struct sockaddr_in6 *)&peer)->sin6_addr;
        if (inet_ntop(peer.ss_family, address, text, sizeof text) && streq(text, info->remote_addr))
            found = (int)fd;
    }
    closedir(dir);
    return found;
}

//  Writes the 101 answer: Sec-WebSocket-Accept is base64(SHA-1(key +
//  GUID)) (RFC 6455, 4.2.2). No subprotocol or extension is chosen. 0 or
//  -1.
static int s_accept_handshake(struct mg_connection *conn, const char *key)
{
    char input[WS_KEY_MAX + sizeof WS_GUID];
    snprintf(input, sizeof input, "%s%s", key, WS_GUID);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    if (EVP_Digest(input, strlen(input), digest, &digest_size, EVP_sha1(), NULL) != 1 ||
        digest_size != 20)
        return -1;
    char accept[sodium_base64_ENCODED_LEN(20, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(accept, sizeof accept, digest, digest_size, sodium_base64_VARIANT_ORIGINAL);
    int written = mg_printf(conn,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n\r\n",
                            accept);
    return written > 0 ? 0 : -1;
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

static void s_serve(ws_hub_t *self, struct mg_connection *conn, int fd);

//  Whether the upgrade request may become a stream: 0 when it may
//  (*fd_out is the connection's socket), else the HTTP status it was
//  answered with. civetweb checked the upgrade headers (a
//  Sec-WebSocket-Key, version 13) before. Never inlined: its 4 KiB token
//  buffer must be off the stack before the handshake (mg_printf keeps an
//  8 KiB buffer on the stack) and the stream's long life: stack pages
//  touched once stay resident, on each of 1,000 streams' threads.
__attribute__((noinline)) static int s_admit(ws_hub_t *self, struct mg_connection *conn,
                                             int *fd_out)
{
    char token[TOKEN_MAX_BYTES + 1];
    int found = s_handshake_token(conn, token, sizeof token);
    int64_t user_id = 0, expires_s = 0;
    const char *key = mg_get_header(conn, "Sec-WebSocket-Key");
    if (found < 0 || (found == 1 && s_verify(self, token, &user_id, &expires_s) != 0)) {
        s_refuse(conn, 401, ERR_UNAUTHENTICATED, "the access token is invalid or expired");
        return 401;
    }
    if (atomic_load(&self->open) >= self->max_connections) {
        s_refuse(conn, 503, ERR_UNAVAILABLE, "too many open streams, try again later");
        return 503;
    }
    if (!key || !*key || strlen(key) > WS_KEY_MAX) {
        s_refuse(conn, 400, ERR_INVALID, "Sec-WebSocket-Key is missing or too long");
        return 400;
    }
    if ((*fd_out = s_client_socket(conn)) < 0) {
        //  Only when civetweb serves TLS or a Unix socket itself, which the
        //  gateway does not configure (nginx terminates TLS).
        log_error("websocket: the connection's socket was not found: refused");
        s_refuse(conn, 503, ERR_UNAVAILABLE, "the stream is not available");
        return 503;
    }
    return 0;
}

//  Always returns 1: the request is answered here (refused, or served
//  until the connection ends), and civetweb only closes the socket
//  afterwards.
static int s_on_connect(const struct mg_connection *const_conn, void *cbdata)
{
    ws_hub_t *self = (ws_hub_t *)cbdata;
    //  civetweb hands the connect handler a const connection although the
    //  handler may answer on it (its own examples do the same).
    struct mg_connection *conn = (struct mg_connection *)const_conn;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    int fd = -1;
    int status = s_admit(self, conn, &fd);
    if (!status && s_accept_handshake(conn, mg_get_header(conn, "Sec-WebSocket-Key")) != 0)
        status = 500; // the 101 did not go out
    if (status)
        metrics_http_observe(self->metrics, WS_PATH, "GET", status, s_seconds_since(&started));
    else
        s_serve(self, conn, fd);
    mg_disable_connection_keep_alive(conn);
    return 1;
}

static void s_on_ready(struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *self = (ws_hub_t *)cbdata;
    ws_conn_t *c = (ws_conn_t *)calloc(1, sizeof(ws_conn_t));
    mg_set_user_connection_data(conn, c);
    if (!c) return; // s_serve ends a connection without state
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

//  ---------------------------------------------------------------------
//  Client frame headers (pure: no socket, no allocation; see ws.h)

ws_frame_result_t ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload,
                                 ws_frame_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < 2) {
        out->need = 2;
        return WS_FRAME_NEED_MORE;
    }
    uint64_t length = buf[1] & 0x7f;
    size_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
    if (len < 2 + extended) {
        out->need = 2 + extended;
        return WS_FRAME_NEED_MORE;
    }
    if (extended) {
        length = 0;
        for (size_t i = 0; i < extended; i++)
            length = (length << 8) | buf[2 + i];
    }
    out->fin = (buf[0] & 0x80) != 0;
    out->opcode = buf[0] & 0x0f;
    out->payload_len = length;
    bool control = (out->opcode & 0x8) != 0;
    bool known = out->opcode <= MG_WEBSOCKET_OPCODE_BINARY ||
                 (out->opcode >= MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE &&
                  out->opcode <= MG_WEBSOCKET_OPCODE_PONG);
    //  No extension was negotiated (RSV bits), clients must mask, and
    //  control frames are whole and short.
    if ((buf[0] & 0x70) || !(buf[1] & 0x80) || !known || (control && (!out->fin || length > 125))) {
        out->close_code = 1002;
        return WS_FRAME_ERROR;
    }
    //  RFC 6455 wants the top bit of a 64-bit length clear; such a length
    //  is refused as too big (what the 8 KiB cap answered for it anyway),
    //  whatever max_payload the caller allows.
    if ((length >> 63) || length > max_payload) {
        out->close_code = 1009;
        return WS_FRAME_ERROR;
    }
    size_t header = 2 + extended + 4;
    if (len < header) {
        out->need = header;
        return WS_FRAME_NEED_MORE;
    }
    memcpy(out->mask, buf + 2 + extended, 4);
    out->header_len = header;
    return WS_FRAME_OK;
}

void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4])
{
    for (size_t i = 0; i < len; i++)
        data[i] ^= mask[i & 3];
}

//  ---------------------------------------------------------------------
//  The read loop of one connection (its worker thread)

typedef struct {
    int fd;
    int64_t last_byte_ms; // the client last sent something
    int64_t last_ping_ms; // we last pinged
    int64_t last_tick_ms;
    int64_t stopped_ms; // first seen stopped or draining (0: not yet)
    int unanswered;     // pings since the client last sent something
    bool eof;           // the client closed its side
} reader_t;

//  Every WS_POLL_MS: whether the loop goes on. It ends WS_CLOSE_GRACE_MS
//  after a close frame went out (the client did not answer it), soon after
//  the hub started closing everything, and when the client answered none
//  of WS_PINGS_MAX pings. Pings an idle client.
static bool s_tick(ws_hub_t *self, ws_conn_t *c, reader_t *r)
{
    int64_t now = envelope_now_ms();
    r->last_tick_ms = now;
    pthread_mutex_lock(&self->mutex);
    bool stopped = c->stopped;
    pthread_mutex_unlock(&self->mutex);
    bool draining = atomic_load(&self->draining);
    if (stopped || draining) {
        if (!r->stopped_ms) r->stopped_ms = now;
        return now - r->stopped_ms < (stopped ? WS_CLOSE_GRACE_MS : WS_DRAIN_GRACE_MS);
    }
    if (now - r->last_byte_ms >= self->ping_ms && now - r->last_ping_ms >= self->ping_ms) {
        if (r->unanswered > WS_PINGS_MAX) {
            log_info("websocket of user %lld answered no ping: closed", (long long)c->user_id);
            return false;
        }
        if (mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_PING, NULL, 0) <= 0) return false;
        r->unanswered++;
        r->last_ping_ms = now;
    }
    return true;
}

//  Reads exactly size bytes into buf. 1 done; 0 the loop must end (the
//  client closed or failed, or s_tick said so).
static int s_receive(ws_hub_t *self, ws_conn_t *c, reader_t *r, void *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        if (envelope_now_ms() - r->last_tick_ms >= WS_POLL_MS && !s_tick(self, c, r)) return 0;
        struct pollfd pfd = {r->fd, POLLIN, 0};
        int ready = poll(&pfd, 1, WS_POLL_MS);
        if (ready < 0 && errno != EINTR) return 0;
        if (ready <= 0) continue;
        ssize_t n = recv(r->fd, (char *)buf + got, size - got, 0);
        if (n == 0) {
            r->eof = true;
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return 0;
        }
        got += (size_t)n;
        r->last_byte_ms = envelope_now_ms();
        r->unanswered = 0;
    }
    return 1;
}

//  Closes with code (on this thread) and ends the loop: 0.
static int s_fail(ws_hub_t *self, ws_conn_t *c, int code, const char *reason)
{
    s_close_now(self, c, code, reason);
    return 0;
}

//  Reads one client frame (RFC 6455, 5.2) and handles it: 1 go on, 0 the
//  connection ends. The header comes in the pieces ws_frame_parse asks
//  for, so the loop never reads past it; the payload length is checked
//  against WS_CLIENT_FRAME_MAX as soon as the length is in, before any
//  payload byte is read or allocated: a longer frame is closed with 1009.
static int s_frame(ws_hub_t *self, ws_conn_t *c, reader_t *r)
{
    uint8_t head[WS_FRAME_HEADER_MAX];
    size_t have = 0;
    ws_frame_t frame;
    ws_frame_result_t result;
    while ((result = ws_frame_parse(head, have, WS_CLIENT_FRAME_MAX, &frame)) ==
           WS_FRAME_NEED_MORE) {
        //  ws_frame_parse promises have < need <= WS_FRAME_HEADER_MAX; the
        //  check keeps a broken promise from overrunning head.
        if (frame.need <= have || frame.need > sizeof head)
            return s_fail(self, c, 1011, "internal error");
        if (!s_receive(self, c, r, head + have, frame.need - have)) return 0;
        have = frame.need;
    }
    if (result == WS_FRAME_ERROR) {
        if (frame.close_code == 1009)
            log_info("websocket of user %lld announced a %llu-byte frame: closed 1009",
                     (long long)c->user_id, (unsigned long long)frame.payload_len);
        return s_fail(self, c, frame.close_code,
                      frame.close_code == 1009 ? "message too big" : "protocol error");
    }
    size_t length = (size_t)frame.payload_len; // <= WS_CLIENT_FRAME_MAX
    char *data = (char *)malloc(length + 1);
    if (!data) return s_fail(self, c, 1011, "out of memory");
    int keep = s_receive(self, c, r, data, length);
    if (keep) {
        ws_unmask((uint8_t *)data, length, frame.mask);
        data[length] = '\0';
        if (frame.opcode == MG_WEBSOCKET_OPCODE_PING) {
            pthread_mutex_lock(&self->mutex);
            bool done = c->stopped || c->closing;
            pthread_mutex_unlock(&self->mutex);
            if (!done && mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_PONG, data, length) <= 0)
                keep = 0;
        } else if (frame.opcode != MG_WEBSOCKET_OPCODE_PONG) {
            //  The first byte as civetweb handed it to data handlers: FIN
            //  and the opcode (the reserved bits are clear here).
            int bits = (frame.fin ? 0x80 : 0) | frame.opcode;
            keep = s_on_data(c->conn, bits, data, length, self);
        }
    }
    free(data);
    return keep;
}

//  After the last frame: sends FIN so the client sees the end, then reads
//  and drops what it still sends until it closes too, for at most
//  WS_CLOSE_GRACE_MS and WS_DRAIN_MAX bytes. Closing a socket with unread
//  input resets the connection, which could cost the client our close
//  frame; civetweb closes the socket after we return.
static void s_linger(const reader_t *r)
{
    shutdown(r->fd, SHUT_WR);
    if (r->eof) return;
    int64_t deadline = envelope_now_ms() + WS_CLOSE_GRACE_MS;
    size_t dropped = 0;
    char sink[4096];
    while (dropped < WS_DRAIN_MAX) {
        int64_t left = deadline - envelope_now_ms();
        if (left <= 0) break;
        struct pollfd pfd = {r->fd, POLLIN, 0};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;
        ssize_t n = recv(r->fd, sink, sizeof sink, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) break;
        dropped += (size_t)n;
    }
}

//  The whole life of an accepted stream, on its worker thread.
static void s_serve(ws_hub_t *self, struct mg_connection *conn, int fd)
{
    s_on_ready(conn, self);
    ws_conn_t *c = (ws_conn_t *)mg_get_user_connection_data(conn);
    int64_t now = envelope_now_ms();
    reader_t reader = {.fd = fd, .last_byte_ms = now, .last_ping_ms = now, .last_tick_ms = now};
    while (c && s_frame(self, c, &reader) == 1)
        ;
    s_on_close(conn, self);
    s_linger(&reader);
}

void ws_hub_attach(ws_hub_t *self, struct mg_context *ctx)
{
    //  The same idle time civetweb would have pinged after.
    const char *ping = mg_get_option(ctx, "websocket_timeout_ms");
    long long ping_ms = ping ? atoll(ping) : 0;
    self->ping_ms = ping_ms >= 100 ? ping_ms : 30000;
    //  Only the connect handler: it keeps the connection (see the top), so
    //  civetweb never runs its own handshake, read loop or close handler.
    mg_set_websocket_handler(ctx, WS_PATH, s_on_connect, NULL, NULL, NULL, self);
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
    atomic_init(&self->draining, false);
    self->ping_ms = 30000;
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
    atomic_store(&self->draining, true);
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
