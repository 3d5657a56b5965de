/*  gateway: the HTTP front door (DESIGN.md). Wiring only: configuration,
    the civetweb server, signals. The request path is in http.c.

    civetweb serves each connection on one thread of a fixed pool
    (GATEWAY_THREADS); a keep-alive connection holds its thread while idle
    for up to GATEWAY_KEEPALIVE_MS, so that timeout is kept short, and
    connections beyond the pool wait in a bounded queue. TCP_NODELAY is on:
    responses are small and must not wait for Nagle. Request headers are
    capped at 16 KiB and bodies at GATEWAY_MAX_BODY (http.c).

    CZMQ would install its own SIGINT/SIGTERM handler the first time a
    socket is made (on some worker thread, at some request); we switch
    that off and handle both signals here, stopping in this order:
    1. stop accepting: the listening socket is shut down and its descriptor
       replaced by an idle pipe (civetweb has no call for that, and its
       accept thread keeps polling the descriptor until mg_stop), so new
       connections are refused at once and a load balancer or client sends
       them elsewhere or again (a refused connection carried no request);
    2. finish what came in: requests on connections already open are served
       normally but answered with Connection: close, until none is in
       flight and GATEWAY_KEEPALIVE_MS has passed (by then civetweb has
       closed every connection idle since step 1), at most that plus
       REQUEST_TIMEOUT_MS + 1 s; only then does gateway_drain refuse
       (503) whatever might still arrive;
    3. close every WebSocket with 1001 "going away", the reconnect hint of
       API.md (clients reconnect, through the edge, to another gateway),
       give the close frames up to a second, then stop civetweb, exit 0.
*/
#include "config.h"
#include "http.h"
#include "log.h"
#include "rpc.h"
#include "token.h"
#include "upload.h"
#include "ws.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <czmq.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *s_usage =
    "gateway: the HTTP front door (API under /api/v1, /healthz, /readyz, /metrics, web UI).\n"
    "\n"
    "Environment (default):\n"
    "  GATEWAY_LISTEN           address:port to listen on (127.0.0.1:8080; PORT=n means\n"
    "                           127.0.0.1:n when GATEWAY_LISTEN is unset)\n"
    "  GATEWAY_THREADS          HTTP worker threads, one per open connection (32)\n"
    "  GATEWAY_WEBSOCKETS_MAX   open /api/v1/stream connections, each holding one more\n"
    "                           worker thread; more are refused with 503 (256)\n"
    "  GATEWAY_WEBSOCKET_WRITERS  threads writing frames to WebSockets (4)\n"
    "  GATEWAY_WEBSOCKET_PING_MS  ping an idle WebSocket this often; 6 unanswered pings\n"
    "                           close it (30000)\n"
    "  GATEWAY_THREAD_STACK_KB  stack of each worker thread, 0 = the system default (1024)\n"
    "  EVENTS_SUB_URL           the broker's event endpoint, for notification.push\n"
    "                           (tcp://127.0.0.1:5557)\n"
    "  GATEWAY_MAX_BODY         largest JSON request body in bytes (65536)\n"
    "  UPLOAD_TMPDIR            folder for images being uploaded (multipart), unlinked at once\n"
    "                           (/tmp)\n"
    "  GATEWAY_KEEPALIVE_MS     idle keep-alive time before a connection is closed (2000)\n"
    "  GATEWAY_REQUEST_TIMEOUT_MS  time a client may take to send a request (10000)\n"
    "  GATEWAY_SERVICES         services /readyz checks, comma separated (identity)\n"
    "  REQUEST_TIMEOUT_MS       deadline of each call to a service (5000)\n"
    "  BROKER_URL               the broker's client endpoint (tcp://127.0.0.1:5555)\n"
    "  JWT_SECRET               HS256 key for access tokens, at least 32 bytes (required)\n"
    "  AUTH_RATE_LIMIT_PER_MIN  login/register attempts per client address a minute, 0 = off (10)\n"
    "  WEB_ROOT                 static files (web/dist if it exists, else web)\n"
    "  LOG_LEVEL                debug|info|warn|error (info)\n";

static volatile sig_atomic_t s_stop = 0;
//  Requests inside s_handle, and whether their connections must close
//  after the answer (step 2 above).
static atomic_int s_in_flight;
static atomic_bool s_closing;
//  The idle pipe put in place of the listening sockets: [0] is what
//  civetweb polls until mg_stop closes it, [1] is held open so [0] never
//  reports end of file (which would make the accept loop spin).
static int s_idle_pipe[2] = {-1, -1};

static void s_on_signal(int signum)
{
    (void)signum;
    s_stop = 1;
}

//  The request handler civetweb calls: gateway_handle, counted, and with
//  keep-alive off while stopping.
static int s_handle(struct mg_connection *conn, void *cbdata)
{
    atomic_fetch_add(&s_in_flight, 1);
    if (atomic_load(&s_closing)) mg_disable_connection_keep_alive(conn);
    int status = gateway_handle(conn, cbdata);
    atomic_fetch_sub(&s_in_flight, 1);
    return status;
}

//  Step 1: stops every listening socket of ctx from accepting. Returns how
//  many were closed.
static int s_stop_listening(struct mg_context *ctx)
{
    struct mg_server_port ports[8];
    int count = mg_get_server_ports(ctx, 8, ports);
    if (count <= 0 || pipe(s_idle_pipe) == -1) return 0;
    int closed = 0;
    long fd_max = sysconf(_SC_OPEN_MAX);
    if (fd_max < 0 || fd_max > 65536) fd_max = 65536;
    for (int fd = 0; fd < (int)fd_max; fd++) {
        int listening = 0;
        socklen_t size = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == -1) continue;
        struct sockaddr_storage address;
        socklen_t address_size = sizeof address;
        if (!listening || getsockname(fd, (struct sockaddr *)&address, &address_size) == -1)
            continue;
        int port = address.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&address)->sin_port)
                   : address.ss_family == AF_INET6
                       ? ntohs(((struct sockaddr_in6 *)&address)->sin6_port)
                       : -1;
        for (int i = 0; i < count; i++)
            if (ports[i].port == port) {
                //  shutdown ends the listen at once, even while civetweb's
                //  poll still holds the socket; dup2 then swaps in the
                //  pipe under the same number for civetweb to close later.
                shutdown(fd, SHUT_RDWR);
                dup2(s_idle_pipe[0], fd);
                closed++;
                break;
            }
    }
    return closed;
}

static double s_elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

static void s_sleep_ms(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&pause, NULL);
}

static int s_log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

static void s_default(const char *name, const char *value)
{
    setenv(name, value, 0);
}

static bool s_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int main(int argc, char **argv)
{
    if (config_wants_help(argc, argv, s_usage)) return 0;
    log_init("gateway");
    //  Before any socket exists, so CZMQ never takes the signals.
    zsys_handler_set(NULL);
    //  Both libraries want their one-time setup done before threads start:
    //  libsodium for its random source (request ids, token ids), jansson
    //  for its hash seed.
    if (sodium_init() < 0) {
        log_error("libsodium cannot start");
        return 1;
    }
    json_object_seed(0);

    //  Defaults go into the environment so config_log shows the values used.
    const char *port = getenv("PORT");
    if (!getenv("GATEWAY_LISTEN") && port && *port) {
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%s", port);
        setenv("GATEWAY_LISTEN", listen, 1);
    }
    s_default("GATEWAY_LISTEN", "127.0.0.1:8080");
    s_default("GATEWAY_THREADS", "32");
    s_default("GATEWAY_WEBSOCKETS_MAX", "256");
    s_default("GATEWAY_WEBSOCKET_WRITERS", "4");
    s_default("GATEWAY_WEBSOCKET_PING_MS", "30000");
    s_default("GATEWAY_THREAD_STACK_KB", "1024");
    s_default("EVENTS_SUB_URL", "tcp://127.0.0.1:5557");
    s_default("GATEWAY_MAX_BODY", "65536");
    s_default("UPLOAD_TMPDIR", "/tmp");
    s_default("GATEWAY_KEEPALIVE_MS", "2000");
    s_default("GATEWAY_REQUEST_TIMEOUT_MS", "10000");
    s_default("GATEWAY_SERVICES", "identity");
    s_default("REQUEST_TIMEOUT_MS", "5000");
    s_default("BROKER_URL", "tcp://127.0.0.1:5555");
    s_default("AUTH_RATE_LIMIT_PER_MIN", "10");
    s_default("WEB_ROOT", s_is_dir("web/dist") ? "web/dist" : "web");
    s_default("LOG_LEVEL", "info");
    static const char *const names[] = {"GATEWAY_LISTEN",
                                        "GATEWAY_THREADS",
                                        "GATEWAY_WEBSOCKETS_MAX",
                                        "GATEWAY_WEBSOCKET_WRITERS",
                                        "GATEWAY_WEBSOCKET_PING_MS",
                                        "GATEWAY_THREAD_STACK_KB",
                                        "EVENTS_SUB_URL",
                                        "GATEWAY_MAX_BODY",
                                        "UPLOAD_TMPDIR",
                                        "GATEWAY_KEEPALIVE_MS",
                                        "GATEWAY_REQUEST_TIMEOUT_MS",
                                        "GATEWAY_SERVICES",
                                        "REQUEST_TIMEOUT_MS",
                                        "BROKER_URL",
                                        "JWT_SECRET",
                                        "AUTH_RATE_LIMIT_PER_MIN",
                                        "WEB_ROOT",
                                        "LOG_LEVEL",
                                        NULL};
    config_log(names);

    const char *secret = config_str("JWT_SECRET", NULL);
    if (!token_secret_ok(secret)) {
        log_error("JWT_SECRET is missing or shorter than %d bytes: refusing to start",
                  TOKEN_SECRET_MIN_BYTES);
        return 1;
    }
    int64_t threads = config_int("GATEWAY_THREADS", 32);
    int64_t max_body = config_int("GATEWAY_MAX_BODY", 65536);
    int64_t keepalive_ms = config_int("GATEWAY_KEEPALIVE_MS", 2000);
    int64_t read_timeout_ms = config_int("GATEWAY_REQUEST_TIMEOUT_MS", 10000);
    int64_t rate = config_int("AUTH_RATE_LIMIT_PER_MIN", 10);
    int64_t websockets = config_int("GATEWAY_WEBSOCKETS_MAX", 256);
    int64_t ws_writers = config_int("GATEWAY_WEBSOCKET_WRITERS", 4);
    int64_t ping_ms = config_int("GATEWAY_WEBSOCKET_PING_MS", 30000);
    int64_t stack_kb = config_int("GATEWAY_THREAD_STACK_KB", 1024);
    if (threads < 1 || threads > 1024 || max_body < 0 || keepalive_ms < 0 || read_timeout_ms < 1 ||
        rate < 0 || rate > 1000000) {
        log_error("GATEWAY_THREADS, GATEWAY_MAX_BODY, timeouts or AUTH_RATE_LIMIT_PER_MIN out of "
                  "range");
        return 1;
    }
    if (websockets < 1 || websockets > 100000 || ws_writers < 1 || ws_writers > 64 ||
        ping_ms < 100 || stack_kb < 0 || (stack_kb > 0 && stack_kb < 128)) {
        log_error("GATEWAY_WEBSOCKETS_MAX, GATEWAY_WEBSOCKET_WRITERS, GATEWAY_WEBSOCKET_PING_MS or "
                  "GATEWAY_THREAD_STACK_KB out of range");
        return 1;
    }
    //  Each worker thread keeps its own rpc client (a ZeroMQ socket), and
    //  ZeroMQ refuses sockets past its limit (1024 by default): allow one
    //  per thread of the pool, plus the hub's and a margin.
    zsys_set_max_sockets((size_t)(threads + websockets + 64));
    //  civetweb holds one worker thread per open WebSocket: thousands of
    //  them must not each reserve the default 8 MiB of stack.
    if (stack_kb > 0) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)stack_kb * 1024);
        pthread_setattr_default_np(&attr);
        pthread_attr_destroy(&attr);
    }

    gateway_config_t config = {
        .jwt_secret = secret,
        .broker_url = config_str("BROKER_URL", "tcp://127.0.0.1:5555"),
        .max_body = (size_t)max_body,
        .request_timeout_ms = config_int("REQUEST_TIMEOUT_MS", RPC_DEFAULT_TIMEOUT_MS),
        .web_root = config_str("WEB_ROOT", "web"),
        .services = config_str("GATEWAY_SERVICES", "identity"),
        .auth_rate_limit_per_min = (int)rate,
        .keepalive_ms = keepalive_ms,
    };
    gateway_t *gateway = gateway_new(&config);
    if (!gateway) return 1;
    ws_config_t ws_config = {
        .jwt_secret = secret,
        .broker_url = config.broker_url,
        .events_sub_url = config_str("EVENTS_SUB_URL", "tcp://127.0.0.1:5557"),
        .metrics = gateway_metrics(gateway),
        .max_connections = (int)websockets,
        .writers = (int)ws_writers,
        .auth_timeout_ms = 10000,
        .request_timeout_ms = config.request_timeout_ms,
    };
    ws_hub_t *hub = ws_hub_new(&ws_config);
    if (!hub) {
        gateway_destroy(&gateway);
        return 1;
    }

    char threads_text[16], keepalive_text[24], timeout_text[24], queue_text[16], ping_text[24];
    snprintf(threads_text, sizeof threads_text, "%d", (int)(threads + websockets));
    snprintf(ping_text, sizeof ping_text, "%lld", (long long)ping_ms);
    snprintf(keepalive_text, sizeof keepalive_text, "%lld", (long long)keepalive_ms);
    snprintf(timeout_text, sizeof timeout_text, "%lld", (long long)read_timeout_ms);
    snprintf(queue_text, sizeof queue_text, "%d", (int)(threads * 4 < 64 ? 64 : threads * 4));
    const char *options[] = {"listening_ports",
                             config_str("GATEWAY_LISTEN", "127.0.0.1:8080"),
                             "num_threads",
                             threads_text,
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             keepalive_text,
                             "request_timeout_ms",
                             timeout_text,
                             "max_request_size",
                             "16384",
                             "connection_queue",
                             queue_text,
                             "listen_backlog",
                             "512",
                             "tcp_nodelay",
                             "1",
                             "decode_url",
                             "no",
                             "enable_directory_listing",
                             "no",
                             "websocket_timeout_ms",
                             ping_text,
                             "enable_websocket_ping_pong",
                             "yes",
                             NULL};

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    mg_init_library(0);
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.log_message = s_log_message;
    callbacks.http_error = gateway_http_error;
    struct mg_context *ctx = mg_start(&callbacks, gateway, options);
    if (!ctx) {
        log_error("cannot listen on %s", config_str("GATEWAY_LISTEN", ""));
        ws_hub_destroy(&hub);
        gateway_destroy(&gateway);
        mg_exit_library();
        return 1;
    }
    //  mg_start sets SIGPIPE to ignored; the signals above stay ours.
    mg_set_request_handler(ctx, "/", s_handle, gateway);
    ws_hub_attach(hub, ctx);
    log_info("listening on http://%s", config_str("GATEWAY_LISTEN", ""));

    while (!s_stop) {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
        upload_trim_when_idle();
    }
    atomic_store(&s_closing, true);
    int closed = s_stop_listening(ctx);
    log_info("stopping: %d listening sockets closed, finishing requests in flight", closed);
    //  Each request is bounded by its RPC deadline; allow that plus a
    //  second for writing the answer.
    struct timespec stopping;
    clock_gettime(CLOCK_MONOTONIC, &stopping);
    double limit = (double)(keepalive_ms + config.request_timeout_ms + 1000);
    while (s_elapsed_ms(&stopping) < limit &&
           (atomic_load(&s_in_flight) > 0 || s_elapsed_ms(&stopping) < (double)keepalive_ms))
        s_sleep_ms(10);
    gateway_drain(gateway, 1000);
    log_info("stopping: requests done after %.0f ms, closing %d WebSockets",
             s_elapsed_ms(&stopping), ws_hub_connections(hub));
    ws_hub_close_all(hub);
    struct timespec closing;
    clock_gettime(CLOCK_MONOTONIC, &closing);
    while (ws_hub_connections(hub) > 0 && s_elapsed_ms(&closing) < 1000)
        s_sleep_ms(10);
    mg_stop(ctx);
    if (s_idle_pipe[1] != -1) close(s_idle_pipe[1]);
    if (s_idle_pipe[0] != -1) close(s_idle_pipe[0]);
    ws_hub_destroy(&hub);
    gateway_destroy(&gateway);
    mg_exit_library();
    log_info("stopped");
    return 0;
}
