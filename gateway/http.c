/*  http: one function, gateway_handle(), runs every HTTP request.

    civetweb gives each connection to one of its worker threads, which
    calls gateway_handle() for each request on it. Everything a request
    allocates is released before the handler returns (the args tree, the
    body buffer, the reply), on one path, so a bad request cannot leak.

    A request holds one rpc client from its first call to its end: taken
    from a pool of idle clients (a new one when the pool is empty), kept
    under a pthread key meanwhile, and given back when the request ends.
    A ZeroMQ socket is used by one thread at a time, and may move between
    threads across the pool's mutex; a call never waits for a free socket.
    The clients number the requests in flight at once at their peak, not
    civetweb's threads (GATEWAY_THREADS + GATEWAY_WEBSOCKETS_MAX, 288 by
    default), each of which kept a socket and a broker connection for
    good: gateway RSS after the bench's scenarios 63-66 -> 41-44 MiB, and
    the broker's 37-39 -> 16-17 MiB (docs/benchmarks.md, session 5).

    The API path, in order (the first failing step answers):
      route (404/405/400 bad path parameter) -> token (401) -> auth rate
      limit (429) -> declared size (413) -> Content-Type (415) -> body
      read (413) -> JSON (400) -> query (400) -> rpc_call -> reply.
    Arguments: the body object's fields, then query parameters, then path
    parameters, each overriding the one before (the URL wins), then the
    Idempotency-Key header as args.idempotency_key and the token's session
    as args.session_id. GET /api/v1/stream without a WebSocket upgrade is
    426. Upload routes
    (ROUTE_MULTIPART*) skip the JSON body steps and go to upload.c with
    those args.
*/
#include "http.h"
#include "auth.h"
#include "envelope.h"
#include "errors.h"
#include "jsonbody.h"
#include "log.h"
#include "msgjson.h"
#include "mediafile.h"
#include "ops.h"
#include "routes.h"
#include "rpc.h"
#include "static.h"
#include "upload.h"
#include "ws.h"

#include <czmq.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_QUERY_PARAMS 64
#define ERR_UPGRADE_REQUIRED "upgrade_required" // 426, only here: not a service's answer
#define RATELIMIT_MAX_KEYS 16384
//  A refused body up to this size is read and dropped before the 413 goes
//  out: closing a socket with unread input makes the kernel send a reset,
//  and the client may lose the 413 with it. Larger ones are cut off.
#define DRAIN_MAX (4 * 1024 * 1024)

struct gateway_t {
    char *jwt_secret;
    char *broker_url;
    size_t max_body;
    int64_t request_timeout_ms;
    char *web_root; // realpath, or NULL
    char *services;
    ratelimit_t *auth_limit;
    metrics_t *metrics;
    const route_t *routes;
    size_t route_count;
    pthread_key_t rpc_key;
    bool rpc_key_created;
    pthread_mutex_t rpc_lock; // guards rpc_idle
    zlist_t *rpc_idle;        // clients no request holds
    atomic_int in_flight;     // requests being served (not refused by a drain)
    atomic_bool draining;
    //  "timeout=N" for the Keep-Alive header, or "" when not announced.
    //  civetweb closes an idle connection after keep_alive_timeout_ms but
    //  does not say so; a client that reuses the socket later than that
    //  (Node's fetch waits up to 4 s by default) races the close and loses
    //  a request it may not retry. Announcing the timeout, rounded down to
    //  whole seconds, makes such clients retire the socket before we do.
    char keepalive_value[32];
};

//  ---------------------------------------------------------------------
//  Lifecycle

static void s_rpc_destructor(void *client)
{
    rpc_client_t *self = (rpc_client_t *)client;
    rpc_client_destroy(&self);
}

gateway_t *gateway_new(const gateway_config_t *config)
{
    gateway_t *self = (gateway_t *)zmalloc(sizeof(gateway_t));
    if (!self) return NULL;
    self->jwt_secret = strdup(config->jwt_secret ? config->jwt_secret : "");
    self->broker_url = strdup(config->broker_url ? config->broker_url : "");
    self->services = strdup(config->services ? config->services : "");
    self->max_body = config->max_body;
    if (config->keepalive_ms >= 1000)
        snprintf(self->keepalive_value, sizeof self->keepalive_value, "timeout=%lld",
                 (long long)(config->keepalive_ms / 1000));
    self->request_timeout_ms =
        config->request_timeout_ms > 0 ? config->request_timeout_ms : RPC_DEFAULT_TIMEOUT_MS;
    if (config->web_root) {
        char resolved[PATH_MAX];
        if (realpath(config->web_root, resolved))
            self->web_root = strdup(resolved);
        else
            log_warn("WEB_ROOT %s not found: no static files", config->web_root);
    }
    self->auth_limit = ratelimit_new(config->auth_rate_limit_per_min, RATELIMIT_MAX_KEYS);
    self->metrics = metrics_new();
    self->routes = routes_table(&self->route_count);
    char problem[256];
    if (routes_validate(self->routes, self->route_count, problem, sizeof problem) != 0) {
        log_error("route table: %s", problem);
        gateway_destroy(&self);
        return NULL;
    }
    if (pthread_key_create(&self->rpc_key, s_rpc_destructor) != 0) {
        gateway_destroy(&self);
        return NULL;
    }
    self->rpc_key_created = true;
    pthread_mutex_init(&self->rpc_lock, NULL);
    self->rpc_idle = zlist_new();
    return self;
}

void gateway_destroy(gateway_t **self_p)
{
    if (!self_p || !*self_p) return;
    gateway_t *self = *self_p;
    //  Worker threads are gone (mg_stop joined them; the destructors
    //  closed any client a thread still held). The calling thread may hold
    //  one too; the idle ones are in the pool.
    if (self->rpc_key_created) {
        rpc_client_t *client = (rpc_client_t *)pthread_getspecific(self->rpc_key);
        if (client) {
            pthread_setspecific(self->rpc_key, NULL);
            rpc_client_destroy(&client);
        }
        pthread_key_delete(self->rpc_key);
    }
    if (self->rpc_idle) {
        rpc_client_t *idle;
        while ((idle = (rpc_client_t *)zlist_pop(self->rpc_idle)))
            rpc_client_destroy(&idle);
        zlist_destroy(&self->rpc_idle);
        pthread_mutex_destroy(&self->rpc_lock);
    }
    ratelimit_destroy(&self->auth_limit);
    metrics_destroy(&self->metrics);
    free(self->jwt_secret);
    free(self->broker_url);
    free(self->services);
    free(self->web_root);
    free(self);
    *self_p = NULL;
}

metrics_t *gateway_metrics(gateway_t *self)
{
    return self->metrics;
}

const char *gateway_broker_url(gateway_t *self)
{
    return self->broker_url;
}

const char *gateway_services(gateway_t *self)
{
    return self->services;
}

const char *gateway_web_root(gateway_t *self)
{
    return self->web_root;
}

static rpc_client_t *s_thread_rpc(gateway_t *self)
{
    rpc_client_t *client = (rpc_client_t *)pthread_getspecific(self->rpc_key);
    if (!client) {
        pthread_mutex_lock(&self->rpc_lock);
        client = (rpc_client_t *)zlist_pop(self->rpc_idle);
        pthread_mutex_unlock(&self->rpc_lock);
        if (!client) client = rpc_client_new(self->broker_url);
        if (client) pthread_setspecific(self->rpc_key, client);
    }
    return client;
}

rpc_client_t *gateway_thread_rpc(gateway_t *self)
{
    return s_thread_rpc(self);
}

const char *gateway_keepalive(gateway_t *self)
{
    return self && self->keepalive_value[0] ? self->keepalive_value : NULL;
}

int64_t gateway_request_timeout_ms(gateway_t *self)
{
    return self->request_timeout_ms;
}

//  ---------------------------------------------------------------------
//  Responses

bool gateway_request_id_ok(const char *id)
{
    if (!id) return false;
    size_t length = 0;
    for (const char *p = id; *p; p++, length++) {
        char c = *p;
        if (length >= ENVELOPE_REQUEST_ID_MAX ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return length >= 1 && length <= 64;
}

static bool s_has_header(const char *const *headers, const char *name)
{
    for (size_t i = 0; headers && headers[i]; i += 2)
        if (strcasecmp(headers[i], name) == 0) return true;
    return false;
}

//  Response headers go out through civetweb's header API, which adds Date
//  and a Connection header that matches what civetweb will do. After an
//  interim "100 Continue" that API refuses to start (civetweb counts the
//  interim line as the response having begun), so on that path the
//  response is written by hand and the connection closed after it.
typedef struct {
    struct mg_connection *conn;
    bool manual;
} header_sink_t;

static void s_header(header_sink_t *sink, const char *name, const char *value)
{
    if (sink->manual)
        mg_printf(sink->conn, "%s: %s\r\n", name, value);
    else
        mg_response_header_add(sink->conn, name, value, -1);
}

int http_send(http_request_t *request, int status, const char *content_type, const char *body,
              size_t size, const char *const *headers)
{
    struct mg_connection *conn = request->conn;
    if (request->gateway && atomic_load(&request->gateway->draining))
        request->close = true; // clients should reconnect to another instance
    header_sink_t sink = {conn, request->continued};
    if (request->close || sink.manual) mg_disable_connection_keep_alive(conn);
    if (sink.manual) {
        if (request->status != 0) return -1;
        mg_printf(conn, "HTTP/1.1 %d %s\r\nConnection: close\r\n", status,
                  mg_get_response_code_text(conn, status));
    } else if (mg_response_header_start(conn, status) != 0) {
        return -1; // something was sent already; nothing sane to add
    }
    request->status = status;
    bool no_body_status = status == 204 || status == 304 || status < 200;
    if (body && !no_body_status) {
        char length[32];
        snprintf(length, sizeof length, "%zu", size);
        s_header(&sink, "Content-Type",
                 content_type ? content_type : "application/json; charset=utf-8");
        s_header(&sink, "Content-Length", length);
    } else if (!no_body_status) {
        s_header(&sink, "Content-Length", "0");
    }
    const char *keepalive =
        request->close || sink.manual ? NULL : gateway_keepalive(request->gateway);
    if (keepalive) s_header(&sink, "Keep-Alive", keepalive);
    if (!s_has_header(headers, "Cache-Control")) s_header(&sink, "Cache-Control", "no-store");
    s_header(&sink, "X-Content-Type-Options", "nosniff");
    s_header(&sink, "X-Request-Id", request->request_id);
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
        s_header(&sink, headers[i], headers[i + 1]);
    if (sink.manual)
        mg_printf(conn, "\r\n");
    else
        mg_response_header_send(conn);
    const char *method = request->info ? request->info->request_method : NULL;
    if (body && !no_body_status && size > 0 && !(method && strcmp(method, "HEAD") == 0))
        mg_write(conn, body, size);
    return 0;
}

void http_send_json(http_request_t *request, int status, const json_t *body,
                    const char *const *headers)
{
    if (!body) {
        http_send(request, status, NULL, NULL, 0, headers);
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        //  Cannot happen for trees built from JSON or msgpack; if it does,
        //  it is our bug, not the client's.
        log_error("could not encode a response body");
        const char fallback[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
        http_send(request, 500, NULL, fallback, sizeof fallback - 1, NULL);
        return;
    }
    http_send(request, status, NULL, text, strlen(text), headers);
    free(text);
}

void http_send_error(http_request_t *request, int status, const char *code, const char *message,
                     json_t *fields_stolen, const char *const *headers)
{
    json_t *error = json_pack("{s:s, s:s}", "code", code, "message", message ? message : code);
    if (error && json_is_object(fields_stolen) && json_object_size(fields_stolen) > 0)
        json_object_set(error, "fields", fields_stolen);
    json_decref(fields_stolen);
    json_t *body = json_pack("{s:o}", "error", error);
    if (!body) {
        const char fallback[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
        http_send(request, status, NULL, fallback, sizeof fallback - 1, headers);
        return;
    }
    http_send_json(request, status, body, headers);
    json_decref(body);
}

//  ---------------------------------------------------------------------
//  Service replies

static const char *const s_www_authenticate[] = {"WWW-Authenticate", "Bearer", NULL};

//  Writes a success body that came as msgpack straight out as JSON text.
static void s_send_text_body(http_request_t *request, const route_t *route, int status,
                             const msgpack_object *body)
{
    msgjson_text_t text = {0};
    if (msgjson_write_text(&text, body) != 0) {
        log_error("malformed reply from %s %s: a body JSON cannot carry", route->service,
                  route->method);
        http_send_error(request, 500, ERR_INTERNAL, "malformed reply from a service", NULL, NULL);
    } else {
        http_send(request, status, NULL, text.data ? text.data : "", text.size, NULL);
    }
    msgjson_text_free(&text);
}

//  Turns a reply object into the HTTP response; lazy_body, when not NULL,
//  is its success body still in msgpack (rpc_call_lazy). A reply that
//  breaks the envelope contract is a bug in the service: 500, logged.
static void s_send_reply(http_request_t *request, const route_t *route, json_t *reply,
                         const msgpack_object *lazy_body)
{
    json_t *status_value = json_object_get(reply, "status");
    json_int_t status = json_is_integer(status_value) ? json_integer_value(status_value) : 0;
    json_t *error = json_object_get(reply, "error");
    json_t *body = json_object_get(reply, "body");
    const char *problem = NULL;
    if (!json_is_object(reply))
        problem = "not an object";
    else if (status < 200 || status > 599)
        problem = "no status in 200..599";
    else if (status >= 400 && !json_is_string(json_object_get(error, "code")))
        problem = "an error status without an error code";
    else if (status < 400 && error)
        problem = "a success status with an error";

    if (problem) {
        log_error("malformed reply from %s %s: %s", route->service, route->method, problem);
        http_send_error(request, 500, ERR_INTERNAL, "the service sent a malformed reply", NULL,
                        NULL);
        return;
    }
    if (status >= 400) {
        const char *code = json_string_value(json_object_get(error, "code"));
        const char *message = json_string_value(json_object_get(error, "message"));
        json_t *fields = json_object_get(error, "fields");
        http_send_error(request, (int)status, code, message,
                        json_is_object(fields) ? json_incref(fields) : NULL,
                        status == 401 ? s_www_authenticate : NULL);
        return;
    }
    if (status == 204 || status == 304) {
        http_send_json(request, (int)status, NULL, NULL);
    } else if (lazy_body) {
        s_send_text_body(request, route, (int)status, lazy_body);
    } else {
        http_send_json(request, (int)status, body, NULL);
    }
}

void http_send_reply(http_request_t *request, const route_t *route, json_t *reply)
{
    s_send_reply(request, route, reply, NULL);
}

//  ---------------------------------------------------------------------
//  Request bodies

//  Reads the whole body into a new buffer, at most max bytes. Returns 0
//  (data may be NULL when empty), 413 when larger, or -1 on a read error
//  (the client went away or stalled past civetweb's request timeout).
static int s_read_body(http_request_t *request, size_t max, char **data_out, size_t *size_out)
{
    struct mg_connection *conn = request->conn;
    *data_out = NULL;
    *size_out = 0;
    const char *expect = mg_get_header(conn, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        mg_printf(conn, "HTTP/1.1 100 Continue\r\n\r\n");
        request->continued = true;
    }

    size_t capacity = 0, size = 0;
    char *data = NULL;
    while (true) {
        if (size == capacity) {
            if (capacity > max) {
                free(data);
                return 413;
            }
            size_t next = capacity ? capacity * 2 : 4096;
            if (next > max + 1) next = max + 1;
            char *grown = (char *)realloc(data, next);
            if (!grown) {
                free(data);
                return -1;
            }
            data = grown;
            capacity = next;
        }
        int got = mg_read(conn, data + size, capacity - size);
        if (got == 0) break;
        if (got < 0) {
            free(data);
            return -1;
        }
        size += (size_t)got;
        if (size > max) {
            free(data);
            return 413;
        }
    }
    *data_out = data;
    *size_out = size;
    return 0;
}

//  Reads and drops what is left of the body; true when it all came in
//  (the connection can then stay open).
static bool s_drain(struct mg_connection *conn, size_t limit)
{
    char buffer[16384];
    size_t total = 0;
    while (total <= limit) {
        int got = mg_read(conn, buffer, sizeof buffer);
        if (got == 0) return true;
        if (got < 0) return false;
        total += (size_t)got;
    }
    return false;
}

//  413. body_started: whether we already began reading the body (so it is
//  on its way: drain it). A client that sent "Expect: 100-continue" and
//  was not answered yet has sent no body: close instead of waiting for it.
static void s_too_large(http_request_t *request, bool body_started)
{
    const char *expect = mg_get_header(request->conn, "Expect");
    bool waiting = expect && strcasecmp(expect, "100-continue") == 0 && !body_started;
    if (waiting || !s_drain(request->conn, DRAIN_MAX)) request->close = true;
    http_send_error(request, 413, ERR_TOO_LARGE, "the request body is too large", NULL, NULL);
}

//  ---------------------------------------------------------------------
//  The API

static double s_seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void s_handle_api(http_request_t *request, const char *path)
{
    gateway_t *self = request->gateway;
    struct mg_connection *conn = request->conn;
    const struct mg_request_info *info = request->info;
    route_match_t match;
    json_t *args = NULL, *query = NULL, *reply = NULL;
    char *body = NULL;
    size_t body_size = 0;

    //  The stream path reaches this handler only without a WebSocket
    //  upgrade (civetweb's WebSocket handler takes those, ws.c): tell the
    //  client what is missing rather than 404.
    if (strcmp(path, WS_PATH) == 0) {
        request->route = WS_PATH;
        const char *method = info->request_method;
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            const char *headers[] = {"Upgrade", "websocket", NULL};
            http_send_error(request, 426, ERR_UPGRADE_REQUIRED,
                            "open this path as a WebSocket (Upgrade: websocket)", NULL, headers);
        } else {
            const char *headers[] = {"Allow", "GET", NULL};
            http_send_error(request, 405, ERR_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                            headers);
        }
        return;
    }

    route_match_result_t found =
        routes_match(self->routes, self->route_count, info->request_method, path, &match);
    if (found == ROUTE_MATCH_NOT_FOUND) {
        request->route = "unmatched";
        http_send_error(request, 404, ERR_NOT_FOUND, "no such endpoint", NULL, NULL);
        goto cleanup;
    }
    if (found == ROUTE_MATCH_METHOD_NOT_ALLOWED) {
        request->route = "unmatched";
        const char *headers[] = {"Allow", match.allow, NULL};
        http_send_error(request, 405, ERR_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                        headers);
        goto cleanup;
    }
    const route_t *route = match.route;
    request->route = route_pattern(route);
    if (found == ROUTE_MATCH_BAD_PARAM) {
        http_send_error(
            request, 400, ERR_INVALID, "bad path parameter",
            json_pack("{s:s}", match.bad_param, "must be valid UTF-8 without NUL characters"),
            NULL);
        goto cleanup;
    }

    //  Who is asking.
    int64_t viewer_id = 0, session_id = 0;
    if (route->auth != ROUTE_AUTH_NONE) {
        //  The WebSocket hub's clock (ws.c), not time()'s coarse one.
        auth_result_t auth =
            auth_viewer_session(mg_get_header(conn, "Authorization"), self->jwt_secret,
                                envelope_now_ms() / 1000, &viewer_id, &session_id);
        if (auth == AUTH_INVALID) {
            const char *headers[] = {"WWW-Authenticate", "Bearer error=\"invalid_token\"", NULL};
            http_send_error(request, 401, ERR_UNAUTHENTICATED,
                            "the access token is invalid or expired", NULL, headers);
            goto cleanup;
        }
        if (auth == AUTH_ANONYMOUS && route->auth == ROUTE_AUTH_REQUIRED) {
            http_send_error(request, 401, ERR_UNAUTHENTICATED, "an access token is required", NULL,
                            s_www_authenticate);
            goto cleanup;
        }
    }

    if ((route->flags & ROUTE_AUTH_RATE_LIMIT) && self->auth_limit) {
        char key[RATELIMIT_KEY_MAX];
        ratelimit_address_key(info->remote_addr, key, sizeof key);
        int wait_s = ratelimit_take(self->auth_limit, key, envelope_now_ms());
        if (wait_s > 0) {
            char retry[16];
            snprintf(retry, sizeof retry, "%d", wait_s);
            const char *headers[] = {"Retry-After", retry, NULL};
            http_send_error(request, 429, ERR_RATE_LIMITED, "too many attempts, try again later",
                            NULL, headers);
            goto cleanup;
        }
    }

    //  The body: declared size first, so a huge upload is refused unread
    //  (uploads have their own limits, upload.c).
    bool multipart = route->flags & (ROUTE_MULTIPART | ROUTE_MULTIPART_IMAGES);
    if (!multipart && info->content_length > 0 &&
        (unsigned long long)info->content_length > self->max_body) {
        s_too_large(request, false);
        goto cleanup;
    }
    if (route->flags & ROUTE_JSON_BODY) {
        if (!jsonbody_content_type_ok(mg_get_header(conn, "Content-Type"))) {
            http_send_error(request, 415, ERR_UNSUPPORTED_MEDIA_TYPE,
                            "send the body as application/json", NULL, NULL);
            goto cleanup;
        }
        int read = s_read_body(request, self->max_body, &body, &body_size);
        if (read == 413) {
            s_too_large(request, true);
            goto cleanup;
        }
        if (read != 0) {
            request->close = true;
            http_send_error(request, 400, ERR_INVALID, "could not read the request body", NULL,
                            NULL);
            goto cleanup;
        }
        const char *reason = NULL;
        if (jsonbody_parse(body, body_size, &args, &reason) != 0) {
            http_send_error(request, 400, ERR_INVALID, reason, NULL, NULL);
            goto cleanup;
        }
    } else {
        args = json_object();
    }

    query = json_object();
    char bad_name[64];
    if (info->query_string && query_to_args(info->query_string, query, MAX_QUERY_PARAMS, bad_name,
                                            sizeof bad_name) != 0) {
        http_send_error(request, 400, ERR_INVALID, "bad query parameter",
                        json_pack("{s:s}", bad_name,
                                  "must be valid UTF-8 without NUL characters (at most 64 "
                                  "parameters)"),
                        NULL);
        goto cleanup;
    }
    json_object_update(args, query);
    json_object_update(args, match.params);
    //  Idempotency-Key (API.md "retries") reaches every service as
    //  args.idempotency_key; only the header can set it.
    json_object_del(args, "idempotency_key");
    const char *idempotency_key = mg_get_header(conn, "Idempotency-Key");
    if (idempotency_key) {
        json_t *key = json_string(idempotency_key);
        if (!key) {
            http_send_error(request, 400, ERR_INVALID, "bad Idempotency-Key header",
                            json_pack("{s:s}", "Idempotency-Key", "must be printable text"), NULL);
            goto cleanup;
        }
        json_object_set_new(args, "idempotency_key", key);
    }
    //  args.session_id: the session the access token was issued for (its
    //  sid claim), so identity me.password can keep the caller's session;
    //  like idempotency_key, only the gateway sets it.
    json_object_del(args, "session_id");
    if (session_id > 0) {
        char session_text[24];
        snprintf(session_text, sizeof session_text, "%lld", (long long)session_id);
        json_object_set_new(args, "session_id", json_string(session_text));
    }
    if (multipart) {
        upload_handle(request, route, viewer_id, args);
        goto cleanup;
    }

    rpc_client_t *client = s_thread_rpc(self);
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    rpc_body_t lazy;
    rpc_body_init(&lazy);
    if (client)
        reply =
            rpc_call_lazy(client, route->service, route->method, viewer_id, args,
                          request->request_id, envelope_now_ms() + self->request_timeout_ms, &lazy);
    else
        reply = reply_error(503, ERR_UNAVAILABLE, "cannot reach the broker");
    metrics_rpc_observe(self->metrics, route->service, reply_status(reply),
                        s_seconds_since(&started));
    s_send_reply(request, route, reply, lazy.body);
    rpc_body_clear(&lazy);

cleanup:
    route_match_clear(&match);
    json_decref(reply);
    json_decref(query);
    json_decref(args);
    free(body);
}

//  ---------------------------------------------------------------------
//  Entry points

//  Whether path is prefix itself or lies under it ("/media", "/media/x").
static bool s_under(const char *path, const char *prefix)
{
    size_t length = strlen(prefix);
    return strncmp(path, prefix, length) == 0 && (path[length] == '\0' || path[length] == '/');
}

static void s_start(http_request_t *request, struct mg_connection *conn, gateway_t *self)
{
    memset(request, 0, sizeof *request);
    request->conn = conn;
    request->info = mg_get_request_info(conn);
    request->gateway = self;
    request->route = "unmatched";
    const char *incoming = mg_get_header(conn, "X-Request-Id");
    if (gateway_request_id_ok(incoming))
        snprintf(request->request_id, sizeof request->request_id, "%s", incoming);
    else
        log_new_request_id(request->request_id, sizeof request->request_id);
    log_set_request_id(request->request_id);
}

static void s_finish(http_request_t *request, double seconds)
{
    const char *method = metrics_method_label(request->info ? request->info->request_method : NULL);
    if (request->gateway)
        metrics_http_observe(request->gateway->metrics, request->route, method, request->status,
                             seconds);
    json_t *line = json_pack("{s:s, s:s, s:i, s:f}", "method", method, "route", request->route,
                             "status", request->status, "duration_ms", seconds * 1000.0);
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
    log_info("request %s", text ? text : "");
    free(text);
    json_decref(line);
    log_set_request_id(NULL);
}

void gateway_drain(gateway_t *self, int timeout_ms)
{
    atomic_store(&self->draining, true);
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    while (atomic_load(&self->in_flight) > 0 && s_seconds_since(&started) * 1000 < timeout_ms) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

int gateway_handle(struct mg_connection *conn, void *cbdata)
{
    gateway_t *self = (gateway_t *)cbdata;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    http_request_t request;
    s_start(&request, conn, self);

    //  Counted before the drain check, so gateway_drain() either sees this
    //  request in flight or this request sees the drain (never neither).
    atomic_fetch_add(&self->in_flight, 1);
    bool refused = atomic_load(&self->draining);
    if (refused) atomic_fetch_sub(&self->in_flight, 1);

    const char *path = request.info->local_uri ? request.info->local_uri : "/";
    if (refused) {
        request.close = true;
        http_send_error(&request, 503, ERR_UNAVAILABLE, "the server is shutting down", NULL, NULL);
    } else if (!request.info->request_method) {
        http_send_error(&request, 400, ERR_INVALID, "malformed request", NULL, NULL);
    } else if (s_under(path, "/api")) {
        s_handle_api(&request, path);
    } else if (ops_handle(&request, path)) {
        //  answered
    } else if (s_under(path, "/media")) {
        mediafile_serve(&request, path);
    } else if (s_under(path, "/stream")) {
        http_send_error(&request, 404, ERR_NOT_FOUND, "not found", NULL, NULL);
    } else {
        static_serve(&request, self->web_root, path);
    }
    if (request.status == 0) {
        //  Every branch answers; this is a last guard against a silent bug.
        http_send_error(&request, 500, ERR_INTERNAL, "internal error", NULL, NULL);
    }
    s_finish(&request, s_seconds_since(&started));
    //  The request's client goes back to the pool (file comment).
    rpc_client_t *client = (rpc_client_t *)pthread_getspecific(self->rpc_key);
    if (client) {
        pthread_setspecific(self->rpc_key, NULL);
        pthread_mutex_lock(&self->rpc_lock);
        zlist_push(self->rpc_idle, client);
        pthread_mutex_unlock(&self->rpc_lock);
    }
    if (!refused) atomic_fetch_sub(&self->in_flight, 1);
    return request.status;
}

static const char *s_code_for_status(int status)
{
    switch (status) {
    case 404:
        return ERR_NOT_FOUND;
    case 405:
        return ERR_METHOD_NOT_ALLOWED;
    case 413:
    case 431:
        return ERR_TOO_LARGE;
    case 415:
        return ERR_UNSUPPORTED_MEDIA_TYPE;
    case 503:
        return ERR_UNAVAILABLE;
    case 504:
        return ERR_TIMEOUT;
    default:
        return status >= 500 ? ERR_INTERNAL : ERR_INVALID;
    }
}

int gateway_http_error(struct mg_connection *conn, int status, const char *message)
{
    const struct mg_context *ctx = mg_get_context(conn);
    gateway_t *self = ctx ? (gateway_t *)mg_get_user_data(ctx) : NULL;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    http_request_t request;
    s_start(&request, conn, self);
    //  civetweb only raises errors for requests it could not parse: do not
    //  trust the rest of the connection.
    request.close = true;
    const char *text =
        status == 413 || status == 431 ? "the request headers are too large" : "malformed request";
    http_send_error(&request, status, s_code_for_status(status), text, NULL, NULL);
    bool sent = request.status != 0;
    if (!sent) request.status = status; // civetweb answers with its own page
    s_finish(&request, s_seconds_since(&started));
    (void)message;
    return sent ? 0 : 1;
}
