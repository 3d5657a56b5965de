/*  test_gateway: the gateway over real HTTP, against a real broker and a
    scripted "identity" worker that lives inside this test process.

    The worker is in-process (worker.h) rather than a mock binary so each
    test can make it do exactly what it needs: echo what it received (to
    check args, viewer_id and request_id propagation), answer late (504),
    answer garbage (500), go away (503, /readyz down) and come back. No
    database is involved; the identity service's own suite covers that.

    Processes: build/bin/broker and build/bin/gateway (found next to this
    binary: <dir of argv[0]>/../../bin, so a SAN=1 build tests SAN=1
    programs), with PDEATHSIG so nothing outlives the test, logs in a temp
    folder (printed on failure). Ports 17210-17214.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "envelope.h"
#include "errors.h"
#include "msgjson.h"
#include "token.h"
#include "worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define GATEWAY_PORT 17210
#define BROKER_PORT 17211
#define SPARE_PORT 17214
#define SECRET "integration-test-secret-0123456789abcdef"
#define RATE_LIMIT 5

static char s_bin_dir[PATH_MAX];
static char s_web_root[PATH_MAX];
static char s_log_dir[PATH_MAX];
static char s_base[64];
static pid_t s_broker = -1;
static pid_t s_gateway = -1;

//  ---------------------------------------------------------------------
//  Time and processes

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

//  Starts bin_dir/name with extra environment entries ("NAME=value"),
//  stdout and stderr to <log_dir>/<log>.log.
static pid_t s_spawn(const char *name, const char *log, const char *const *env,
                     const char *const *args)
{
    char path[PATH_MAX + 64], log_path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", s_bin_dir, name);
    snprintf(log_path, sizeof log_path, "%s/%s.log", s_log_dir, log);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    char *argv[8] = {path};
    for (size_t i = 0; args && args[i] && i < 6; i++)
        argv[i + 1] = (char *)args[i];
    execv(path, argv);
    _exit(127);
}

//  Waits up to timeout_ms for pid; returns its wait status, or -1 if it
//  is still running.
static int s_wait(pid_t pid, int timeout_ms)
{
    int64_t until = s_now_ms() + timeout_ms;
    int status = 0;
    while (true) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) return status;
        if (done < 0 || s_now_ms() >= until) return -1;
        s_sleep_ms(20);
    }
}

static void s_kill(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    if (s_wait(*pid, 10000) < 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = -1;
}

static void s_kill_all(void)
{
    s_kill(&s_gateway);
    s_kill(&s_broker);
}

//  Prints the tail of a child's log (for failures).
static void s_print_log(const char *log)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.log", s_log_dir, log);
    FILE *file = fopen(path, "r");
    if (!file) return;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, size > 4000 ? size - 4000 : 0, SEEK_SET);
    char buffer[4001];
    size_t got = fread(buffer, 1, 4000, file);
    buffer[got] = 0;
    fclose(file);
    fprintf(stderr, "---- %s (tail) ----\n%s\n", path, buffer);
}

//  Whether a child's log holds a sanitizer report.
static bool s_log_has_sanitizer_report(const char *log)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.log", s_log_dir, log);
    FILE *file = fopen(path, "r");
    if (!file) return false;
    char line[4096];
    bool found = false;
    while (fgets(line, sizeof line, file))
        if (strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
            strstr(line, "runtime error:"))
            found = true;
    fclose(file);
    return found;
}

//  ---------------------------------------------------------------------
//  HTTP

typedef struct {
    long status;
    char *body;
    size_t size;
    char headers[16384];
    size_t headers_size;
    json_t *json;
    long connects; // new connections this request opened
} response_t;

static size_t s_on_body(char *data, size_t size, size_t count, void *user)
{
    response_t *response = (response_t *)user;
    size_t length = size * count;
    char *grown = realloc(response->body, response->size + length + 1);
    if (!grown) return 0;
    response->body = grown;
    memcpy(response->body + response->size, data, length);
    response->size += length;
    response->body[response->size] = 0;
    return length;
}

static size_t s_on_header(char *data, size_t size, size_t count, void *user)
{
    response_t *response = (response_t *)user;
    size_t length = size * count;
    //  Keep only the last response's headers (a 100 Continue comes first).
    if (length >= 5 && memcmp(data, "HTTP/", 5) == 0) response->headers_size = 0;
    if (response->headers_size + length < sizeof response->headers) {
        memcpy(response->headers + response->headers_size, data, length);
        response->headers_size += length;
        response->headers[response->headers_size] = 0;
    }
    return length;
}

typedef struct {
    size_t left;
} upload_t;

static size_t s_on_read(char *buffer, size_t size, size_t count, void *user)
{
    upload_t *upload = (upload_t *)user;
    size_t length = size * count;
    if (length > upload->left) length = upload->left;
    memset(buffer, 'x', length);
    upload->left -= length;
    return length;
}

static void s_response_clear(response_t *response)
{
    free(response->body);
    json_decref(response->json);
    memset(response, 0, sizeof *response);
}

static CURL *s_shared_curl; // for the keep-alive test

//  Sends a request. body NULL: none; body_size (size_t)-1: strlen(body).
//  headers: NULL-terminated "Name: value" lines; a JSON Content-Type is
//  added when there is a body and the caller gave none ("Content-Type:"
//  removes it). chunked_size > 0: send that many bytes chunked instead.
static long s_request_on(CURL *curl, const char *method, const char *path, const char *token,
                         const char *body, size_t body_size, const char *const *headers,
                         size_t chunked_size, response_t *response)
{
    memset(response, 0, sizeof *response);
    char url[4096];
    snprintf(url, sizeof url, "%s%s", s_base, path);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, response);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);

    struct curl_slist *list = NULL;
    bool has_type = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        list = curl_slist_append(list, headers[i]);
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0) has_type = true;
    }
    char auth[TOKEN_MAX_BYTES + 64];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        list = curl_slist_append(list, auth);
    }
    upload_t upload = {chunked_size};
    if (body || chunked_size) {
        if (!has_type) list = curl_slist_append(list, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        if (chunked_size) {
            list = curl_slist_append(list, "Transfer-Encoding: chunked");
            curl_easy_setopt(curl, CURLOPT_READFUNCTION, s_on_read);
            curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
        } else {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(body_size == (size_t)-1 ? strlen(body) : body_size));
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        }
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &response->connects);
    } else {
        fprintf(stderr, "curl %s %s: %s\n", method, path, curl_easy_strerror(rc));
    }
    curl_slist_free_all(list);
    if (response->body) response->json = json_loadb(response->body, response->size, 0, NULL);
    return response->status;
}

static long s_request(const char *method, const char *path, const char *token, const char *body,
                      const char *const *headers, response_t *response)
{
    CURL *curl = curl_easy_init();
    long status = s_request_on(curl, method, path, token, body, (size_t)-1, headers, 0, response);
    curl_easy_cleanup(curl);
    return status;
}

static long s_request_raw(const char *method, const char *path, const char *body, size_t size,
                          const char *const *headers, response_t *response)
{
    CURL *curl = curl_easy_init();
    long status = s_request_on(curl, method, path, NULL, body, size, headers, 0, response);
    curl_easy_cleanup(curl);
    return status;
}

//  The value of header name in the response, or NULL. Static buffer.
static const char *s_header(const response_t *response, const char *name)
{
    static char value[1024];
    size_t length = strlen(name);
    const char *line = response->headers;
    while (line && *line) {
        if (strncasecmp(line, name, length) == 0 && line[length] == ':') {
            const char *start = line + length + 1;
            while (*start == ' ')
                start++;
            size_t n = strcspn(start, "\r\n");
            if (n >= sizeof value) n = sizeof value - 1;
            memcpy(value, start, n);
            value[n] = 0;
            return value;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    return NULL;
}

static const char *s_error_code(const response_t *response)
{
    const char *code =
        json_string_value(json_object_get(json_object_get(response->json, "error"), "code"));
    return code ? code : "";
}

//  Asserts the error envelope and the headers every API error carries.
static void s_assert_error(const response_t *response, long status, const char *code)
{
    if (response->status != status)
        fprintf(stderr, "expected %ld %s, got %ld: %s\n", status, code, response->status,
                response->body ? response->body : "");
    assert_int_equal(response->status, status);
    assert_string_equal(s_error_code(response), code);
    assert_true(
        json_is_string(json_object_get(json_object_get(response->json, "error"), "message")));
    assert_string_equal(s_header(response, "Content-Type"), "application/json; charset=utf-8");
    assert_non_null(s_header(response, "X-Request-Id"));
}

//  ---------------------------------------------------------------------
//  The scripted identity worker

static pthread_t s_worker_thread;
static atomic_bool s_worker_running;
static atomic_int s_worker_served;

static json_t *s_echo(const envelope_request_t *request)
{
    return reply_ok(200, json_pack("{s:s, s:I, s:s, s:O}", "method", request->method, "viewer_id",
                                   (json_int_t)request->viewer_id, "request_id",
                                   request->request_id, "args", request->args));
}

//  What the worker answers; *raw_out set for a reply that is not even
//  msgpack.
static json_t *s_answer(const envelope_request_t *request, const char **raw_out)
{
    *raw_out = NULL;
    if (strcmp(request->method, "sys.ping") == 0)
        return reply_error(404, ERR_NOT_FOUND, "unknown method");
    if (strcmp(request->method, "auth.login") == 0)
        return reply_error(401, ERR_INVALID_CREDENTIALS, "wrong login or password");
    if (strcmp(request->method, "auth.logout") == 0) return reply_ok(204, NULL);
    const char *username = json_string_value(json_object_get(request->args, "username"));
    if (strcmp(request->method, "users.get") == 0 && username) {
        if (strcmp(username, "slow") == 0) {
            s_sleep_ms(1600);
            return s_echo(request);
        }
        if (strcmp(username, "garbage") == 0) {
            *raw_out = "\xc1 not msgpack";
            return NULL;
        }
        if (strcmp(username, "bad-text-body") == 0) {
            //  {status: 200, body: "\xc3\x28"}: a success whose body is not
            //  valid UTF-8, so it cannot be JSON (written straight from
            //  msgpack by the gateway, msgjson_write_text).
            *raw_out = "\x82\xa6status\xcc\xc8\xa4"
                       "body\xa2\xc3\x28";
            return NULL;
        }
        if (strcmp(username, "success-with-error") == 0)
            return json_pack("{s:i, s:{s:s, s:s}}", "status", 200, "error", "code", "x", "message",
                             "y");
        if (strcmp(username, "taken") == 0)
            return reply_invalid(json_pack("{s:s}", "username", "is taken"), "bad input");
        if (strcmp(username, "conflict") == 0)
            return reply_error(409, ERR_CONFLICT, "username taken");
        if (strcmp(username, "empty") == 0) return reply_ok(204, NULL);
        if (strcmp(username, "created") == 0) return reply_ok(201, json_pack("{s:s}", "id", "123"));
    }
    return s_echo(request);
}

static void *s_worker_main(void *arg)
{
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", BROKER_PORT);
    worker_t *worker = worker_new(endpoint, "identity");
    assert(worker);
    while (atomic_load(&s_worker_running)) {
        worker_request_t request;
        int got = worker_recv(worker, &request, 100);
        if (got != 1) continue;
        envelope_request_t envelope;
        json_t *reply = NULL;
        const char *raw = NULL;
        if (envelope_request_decode(request.envelope, request.envelope_size, &envelope) == 0) {
            reply = s_answer(&envelope, &raw);
            envelope_request_clear(&envelope);
        } else {
            reply = reply_error(400, ERR_INVALID, "bad envelope");
        }
        if (raw) {
            worker_send(worker, &request, raw, strlen(raw));
        } else {
            size_t size = 0;
            char *bytes = envelope_reply_encode(reply, &size);
            worker_send(worker, &request, bytes, size);
            free(bytes);
        }
        json_decref(reply);
        atomic_fetch_add(&s_worker_served, 1);
    }
    worker_destroy(&worker);
    return NULL;
}

static void s_worker_start(void)
{
    atomic_store(&s_worker_running, true);
    pthread_create(&s_worker_thread, NULL, s_worker_main, NULL);
}

static void s_worker_stop(void)
{
    if (!atomic_load(&s_worker_running)) return;
    atomic_store(&s_worker_running, false);
    pthread_join(s_worker_thread, NULL);
}

//  ---------------------------------------------------------------------
//  Tokens

static char *s_b64url(const void *data, size_t size)
{
    size_t room = sodium_base64_encoded_len(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(room);
    sodium_bin2base64(out, room, data, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

static char *s_alg_none_token(void)
{
    char payload[128];
    long now = (long)time(NULL);
    snprintf(payload, sizeof payload, "{\"sub\":\"42\",\"iat\":%ld,\"exp\":%ld}", now, now + 900);
    const char *header = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char *h = s_b64url(header, strlen(header));
    char *p = s_b64url(payload, strlen(payload));
    size_t size = strlen(h) + strlen(p) + 3;
    char *token = malloc(size);
    snprintf(token, size, "%s.%s.", h, p);
    free(h);
    free(p);
    return token;
}

static char *s_expired_token(void)
{
    jwt_t *jwt = NULL;
    jwt_new(&jwt);
    long now = (long)time(NULL);
    jwt_add_grant(jwt, "sub", "42");
    jwt_add_grant_int(jwt, "iat", now - 1000);
    jwt_add_grant_int(jwt, "exp", now - 10);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET));
    char *token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

//  ---------------------------------------------------------------------
//  Setup

static int s_wait_healthy(int timeout_ms)
{
    int64_t until = s_now_ms() + timeout_ms;
    while (s_now_ms() < until) {
        response_t response;
        CURL *curl = curl_easy_init();
        char url[128];
        snprintf(url, sizeof url, "%s/healthz", s_base);
        memset(&response, 0, sizeof response);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
        long status = 0;
        if (curl_easy_perform(curl) == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(curl);
        s_response_clear(&response);
        if (status == 200) return 0;
        s_sleep_ms(50);
    }
    return -1;
}

static int s_wait_ready(int timeout_ms)
{
    int64_t until = s_now_ms() + timeout_ms;
    while (s_now_ms() < until) {
        response_t response;
        long status = s_request("GET", "/readyz", NULL, NULL, NULL, &response);
        s_response_clear(&response);
        if (status == 200) return 0;
        s_sleep_ms(100);
    }
    return -1;
}

static int s_setup(void **state)
{
    snprintf(s_base, sizeof s_base, "http://127.0.0.1:%d", GATEWAY_PORT);
    static char broker_url[64], pub_url[64], sub_url[64], listen[64], web_root[PATH_MAX + 16];
    snprintf(broker_url, sizeof broker_url, "BROKER_URL=tcp://127.0.0.1:%d", BROKER_PORT);
    snprintf(pub_url, sizeof pub_url, "EVENTS_PUB_URL=tcp://127.0.0.1:%d", BROKER_PORT + 1);
    snprintf(sub_url, sizeof sub_url, "EVENTS_SUB_URL=tcp://127.0.0.1:%d", BROKER_PORT + 2);
    snprintf(listen, sizeof listen, "GATEWAY_LISTEN=127.0.0.1:%d", GATEWAY_PORT);
    snprintf(web_root, sizeof web_root, "WEB_ROOT=%s", s_web_root);
    const char *broker_env[] = {broker_url, pub_url, sub_url, NULL};
    s_broker = s_spawn("broker", "broker", broker_env, NULL);
    const char *gateway_env[] = {listen,
                                 broker_url,
                                 web_root,
                                 "JWT_SECRET=" SECRET,
                                 "REQUEST_TIMEOUT_MS=1000",
                                 "AUTH_RATE_LIMIT_PER_MIN=5",
                                 "GATEWAY_SERVICES=identity",
                                 "GATEWAY_THREADS=8",
                                 NULL};
    s_gateway = s_spawn("gateway", "gateway", gateway_env, NULL);
    s_worker_start();
    if (s_wait_healthy(10000) != 0 || s_wait_ready(10000) != 0) {
        fprintf(stderr, "the gateway did not become ready\n");
        s_print_log("gateway");
        s_print_log("broker");
        return -1;
    }
    s_shared_curl = curl_easy_init();
    return 0;
}

static int s_teardown(void **state)
{
    s_worker_stop();
    s_kill_all();
    if (s_shared_curl) curl_easy_cleanup(s_shared_curl);
    s_shared_curl = NULL;
    return 0;
}

//  ---------------------------------------------------------------------
//  Tests

static void test_healthz(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/healthz", NULL, NULL, NULL, &response), 200);
    assert_string_equal(json_string_value(json_object_get(response.json, "status")), "ok");
    assert_string_equal(s_header(&response, "Content-Type"), "application/json; charset=utf-8");
    assert_string_equal(s_header(&response, "Cache-Control"), "no-store");
    assert_int_equal(strlen(s_header(&response, "X-Request-Id")), 16);
    s_response_clear(&response);
    assert_int_equal(s_request("POST", "/healthz", NULL, "{}", NULL, &response), 405);
    assert_non_null(s_header(&response, "Allow"));
    s_response_clear(&response);
}

static void test_request_id(void **state)
{
    response_t response;
    const char *mine[] = {"X-Request-Id: my-request.id_1", NULL};
    assert_int_equal(s_request("GET", "/api/v1/users/ann", NULL, NULL, mine, &response), 200);
    assert_string_equal(s_header(&response, "X-Request-Id"), "my-request.id_1");
    //  It travelled through the broker to the service.
    assert_string_equal(json_string_value(json_object_get(response.json, "request_id")),
                        "my-request.id_1");
    s_response_clear(&response);

    const char *bad[] = {"X-Request-Id: has space", NULL};
    assert_int_equal(s_request("GET", "/healthz", NULL, NULL, bad, &response), 200);
    assert_string_not_equal(s_header(&response, "X-Request-Id"), "has space");
    assert_int_equal(strlen(s_header(&response, "X-Request-Id")), 16);
    s_response_clear(&response);

    char long_id[100] = "X-Request-Id: ";
    memset(long_id + strlen(long_id), 'a', 65);
    const char *too_long[] = {long_id, NULL};
    assert_int_equal(s_request("GET", "/healthz", NULL, NULL, too_long, &response), 200);
    assert_int_equal(strlen(s_header(&response, "X-Request-Id")), 16);
    s_response_clear(&response);
}

static void test_args_and_viewer(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/api/v1/users/ann%20lee?limit=5&x=%C3%A9&flag", NULL, NULL,
                               NULL, &response),
                     200);
    json_t *args = json_object_get(response.json, "args");
    assert_string_equal(json_string_value(json_object_get(args, "username")), "ann lee");
    assert_string_equal(json_string_value(json_object_get(args, "limit")), "5");
    assert_string_equal(json_string_value(json_object_get(args, "x")), "\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(args, "flag")), "");
    assert_string_equal(json_string_value(json_object_get(response.json, "method")), "users.get");
    assert_int_equal(json_integer_value(json_object_get(response.json, "viewer_id")), 0);
    s_response_clear(&response);

    //  The path parameter wins over a query parameter of the same name.
    assert_int_equal(
        s_request("GET", "/api/v1/users/ann?username=bob", NULL, NULL, NULL, &response), 200);
    args = json_object_get(response.json, "args");
    assert_string_equal(json_string_value(json_object_get(args, "username")), "ann");
    s_response_clear(&response);

    //  A valid token sets viewer_id, on optional and required routes.
    char *token = token_issue(SECRET, 4242, 900);
    assert_int_equal(s_request("GET", "/api/v1/users/ann", token, NULL, NULL, &response), 200);
    assert_int_equal(json_integer_value(json_object_get(response.json, "viewer_id")), 4242);
    s_response_clear(&response);
    assert_int_equal(s_request("PATCH", "/api/v1/me?bio=from-query", token,
                               "{\"bio\":\"from-body\",\"is_private\":true,\"n\":[1,{\"a\":null}]}",
                               NULL, &response),
                     200);
    assert_string_equal(json_string_value(json_object_get(response.json, "method")), "me.update");
    assert_int_equal(json_integer_value(json_object_get(response.json, "viewer_id")), 4242);
    args = json_object_get(response.json, "args");
    assert_string_equal(json_string_value(json_object_get(args, "bio")), "from-query");
    assert_true(json_is_true(json_object_get(args, "is_private")));
    json_t *expected = json_loads("[1,{\"a\":null}]", 0, NULL);
    assert_true(json_equal(json_object_get(args, "n"), expected));
    json_decref(expected);
    s_response_clear(&response);

    //  A token's session (sid claim) reaches the service as
    //  args.session_id; a client cannot set it.
    char *with_session = token_issue_session(SECRET, 4242, 777, 900);
    assert_int_equal(s_request("PATCH", "/api/v1/me?session_id=1", with_session,
                               "{\"session_id\":\"2\"}", NULL, &response),
                     200);
    args = json_object_get(response.json, "args");
    assert_string_equal(json_string_value(json_object_get(args, "session_id")), "777");
    s_response_clear(&response);
    assert_int_equal(
        s_request("PATCH", "/api/v1/me", token, "{\"session_id\":\"2\"}", NULL, &response), 200);
    assert_null(json_object_get(json_object_get(response.json, "args"), "session_id"));
    s_response_clear(&response);
    free(with_session);

    //  An empty body is {}: the service sees no fields and names them.
    assert_int_equal(s_request("DELETE", "/api/v1/me", token, NULL, NULL, &response), 200);
    assert_string_equal(json_string_value(json_object_get(response.json, "method")), "me.delete");
    assert_int_equal(json_object_size(json_object_get(response.json, "args")), 0);
    s_response_clear(&response);
    //  No Content-Type at all is accepted.
    const char *untyped[] = {"Content-Type:", NULL};
    assert_int_equal(s_request("POST", "/api/v1/auth/refresh", NULL, "{\"refresh_token\":\"r\"}",
                               untyped, &response),
                     200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(response.json, "args"), "refresh_token")),
        "r");
    s_response_clear(&response);
    //  A client that waits for "100 Continue" gets it, then the answer.
    const char *expect[] = {"Expect: 100-continue", NULL};
    assert_int_equal(s_request("POST", "/api/v1/auth/refresh", NULL, "{\"refresh_token\":\"e\"}",
                               expect, &response),
                     200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(response.json, "args"), "refresh_token")),
        "e");
    assert_non_null(s_header(&response, "X-Request-Id"));
    s_response_clear(&response);
    free(token);
}

static void test_unauthenticated(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/api/v1/me", NULL, NULL, NULL, &response), 401);
    s_assert_error(&response, 401, "unauthenticated");
    assert_non_null(strstr(s_header(&response, "WWW-Authenticate"), "Bearer"));
    s_response_clear(&response);

    char *none = s_alg_none_token();
    char *wrong_key = token_issue("another-secret-that-is-long-enough-12345", 42, 900);
    char *expired = s_expired_token();
    char *valid = token_issue(SECRET, 42, 900);
    char tampered[TOKEN_MAX_BYTES];
    snprintf(tampered, sizeof tampered, "%s", valid);
    char *sig = strrchr(tampered, '.') + 1;
    sig[1] = sig[1] == 'A' ? 'B' : 'A';
    const char *bad[] = {none, wrong_key, expired, tampered, "garbage", "a.b.c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_request("GET", "/api/v1/me", bad[i], NULL, NULL, &response), 401);
        s_assert_error(&response, 401, "unauthenticated");
        assert_non_null(s_header(&response, "WWW-Authenticate"));
        s_response_clear(&response);
        //  On an optional route a bad token is 401 too (not anonymous).
        assert_int_equal(s_request("GET", "/api/v1/users/ann", bad[i], NULL, NULL, &response), 401);
        s_response_clear(&response);
    }
    const char *basic[] = {"Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", NULL};
    assert_int_equal(s_request("GET", "/api/v1/me", NULL, NULL, basic, &response), 401);
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/api/v1/me", valid, NULL, NULL, &response), 200);
    s_response_clear(&response);
    //  Auth-none routes ignore a bad token.
    assert_int_equal(s_request("POST", "/api/v1/auth/refresh", "garbage", "{}", NULL, &response),
                     200);
    s_response_clear(&response);
    free(none);
    free(wrong_key);
    free(expired);
    free(valid);
}

static void test_not_found_and_method(void **state)
{
    response_t response;
    const char *missing[] = {"/api/v1/nope",   "/api/v1/me/", "/api",   "/api/v2/me",
                             "/api/v1/users/", "/media/abc",  "/stream"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        assert_int_equal(s_request("GET", missing[i], NULL, NULL, NULL, &response), 404);
        s_assert_error(&response, 404, "not_found");
        s_response_clear(&response);
    }
    assert_int_equal(s_request("PUT", "/api/v1/me", NULL, "{}", NULL, &response), 405);
    s_assert_error(&response, 405, "method_not_allowed");
    assert_string_equal(s_header(&response, "Allow"), "GET, HEAD, PATCH, DELETE");
    s_response_clear(&response);
    //  HEAD runs the GET route and sends its headers without the body.
    assert_int_equal(s_request("HEAD", "/api/v1/users/ann", NULL, NULL, NULL, &response), 200);
    assert_int_equal(response.size, 0);
    assert_string_equal(s_header(&response, "Content-Type"), "application/json; charset=utf-8");
    s_response_clear(&response);
    assert_int_equal(s_request("HEAD", "/api/v1/auth/login", NULL, NULL, NULL, &response), 405);
    s_response_clear(&response);
    //  The stream without a WebSocket upgrade: 426 in the envelope, not 404.
    assert_int_equal(s_request("GET", "/api/v1/stream", NULL, NULL, NULL, &response), 426);
    s_assert_error(&response, 426, "upgrade_required");
    assert_string_equal(s_header(&response, "Upgrade"), "websocket");
    s_response_clear(&response);
    assert_int_equal(s_request("POST", "/api/v1/stream", NULL, "{}", NULL, &response), 405);
    s_assert_error(&response, 405, "method_not_allowed");
    assert_string_equal(s_header(&response, "Allow"), "GET");
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/api/v1/auth/login", NULL, NULL, NULL, &response), 405);
    assert_string_equal(s_header(&response, "Allow"), "POST");
    s_response_clear(&response);
    //  civetweb itself refuses methods it does not know (400), in our
    //  envelope.
    long status = s_request("BREW", "/api/v1/me", NULL, NULL, NULL, &response);
    assert_true(status == 400 || status == 405);
    assert_true(strcmp(s_error_code(&response), "invalid") == 0 ||
                strcmp(s_error_code(&response), "method_not_allowed") == 0);
    s_response_clear(&response);
}

static void test_too_large(void **state)
{
    size_t size = 1024 * 1024;
    char *big = malloc(size + 1);
    memset(big, ' ', size);
    big[0] = '{';
    big[size - 1] = '}';
    big[size] = 0;
    response_t response;
    //  With curl's default Expect: 100-continue, and without it.
    assert_int_equal(s_request_raw("POST", "/api/v1/auth/refresh", big, size, NULL, &response),
                     413);
    s_assert_error(&response, 413, "too_large");
    s_response_clear(&response);
    const char *no_expect[] = {"Expect:", NULL};
    assert_int_equal(s_request_raw("POST", "/api/v1/auth/refresh", big, size, no_expect, &response),
                     413);
    s_assert_error(&response, 413, "too_large");
    s_response_clear(&response);
    //  Chunked, so the size is only known while reading.
    CURL *curl = curl_easy_init();
    assert_int_equal(s_request_on(curl, "POST", "/api/v1/auth/refresh", NULL, NULL, 0, no_expect,
                                  size, &response),
                     413);
    s_assert_error(&response, 413, "too_large");
    s_response_clear(&response);
    curl_easy_cleanup(curl);
    //  Just under the limit is read (and refused as JSON: it is not).
    memset(big, 'x', 65536);
    assert_int_equal(s_request_raw("POST", "/api/v1/auth/refresh", big, 65536, NULL, &response),
                     400);
    s_response_clear(&response);
    //  Too large declared on a route without a body is refused too.
    assert_int_equal(s_request_raw("GET", "/api/v1/users/ann", big, 70000, NULL, &response), 413);
    s_response_clear(&response);
    free(big);
}

static void test_unsupported_media_type(void **state)
{
    response_t response;
    const char *types[] = {"Content-Type: text/plain",
                           "Content-Type: application/x-www-form-urlencoded",
                           "Content-Type: multipart/form-data; boundary=x",
                           "Content-Type: application/json; charset=latin1"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *headers[] = {types[i], NULL};
        assert_int_equal(s_request("POST", "/api/v1/auth/refresh", NULL, "{}", headers, &response),
                         415);
        s_assert_error(&response, 415, "unsupported_media_type");
        s_response_clear(&response);
    }
    const char *fine[] = {"Content-Type: application/json; charset=UTF-8", NULL};
    assert_int_equal(s_request("POST", "/api/v1/auth/refresh", NULL, "{}", fine, &response), 200);
    s_response_clear(&response);
}

static void test_bad_json(void **state)
{
    struct {
        const char *body;
        size_t size;
    } bad[] = {
        {"{", 1},
        {"{\"refresh_token\": }", 19},
        {"[1,2]", 5},
        {"\"text\"", 6},
        {"{\"a\":\"\\u0000\"}", 14},
        {"{\"a\":\"x\0y\"}", 11},
        {"{\"a\":\"\xff\xfe\"}", 10},
        {"{\"a\":\"\xc3\x28\"}", 10},
        {"{\"a\":1,\"a\":2}", 13},
        {"{\"a\":1} trailing", 16},
        {"{\"a\":99999999999999999999}", 26},
    };
    response_t response;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_request_raw("POST", "/api/v1/auth/refresh", bad[i].body, bad[i].size,
                                       NULL, &response),
                         400);
        s_assert_error(&response, 400, "invalid");
        s_response_clear(&response);
    }
    //  Nesting beyond the limit.
    char deep[400];
    size_t used = 0;
    deep[used++] = '{';
    memcpy(deep + used, "\"a\":", 4);
    used += 4;
    for (int i = 0; i < 100; i++)
        deep[used++] = '[';
    for (int i = 0; i < 100; i++)
        deep[used++] = ']';
    deep[used++] = '}';
    assert_int_equal(s_request_raw("POST", "/api/v1/auth/refresh", deep, used, NULL, &response),
                     400);
    s_response_clear(&response);

    //  Bad path and query parameters: named in fields.
    assert_int_equal(s_request("GET", "/api/v1/users/%ff", NULL, NULL, NULL, &response), 400);
    s_assert_error(&response, 400, "invalid");
    assert_non_null(json_object_get(
        json_object_get(json_object_get(response.json, "error"), "fields"), "username"));
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/api/v1/users/a%00b", NULL, NULL, NULL, &response), 400);
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/api/v1/users/ann?cursor=%00", NULL, NULL, NULL, &response),
                     400);
    assert_non_null(json_object_get(
        json_object_get(json_object_get(response.json, "error"), "fields"), "cursor"));
    s_response_clear(&response);
}

static void test_service_replies(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/api/v1/users/taken", NULL, NULL, NULL, &response), 400);
    s_assert_error(&response, 400, "invalid");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(response.json, "error"), "fields"), "username")),
        "is taken");
    s_response_clear(&response);

    assert_int_equal(s_request("GET", "/api/v1/users/conflict", NULL, NULL, NULL, &response), 409);
    s_assert_error(&response, 409, "conflict");
    assert_null(json_object_get(json_object_get(response.json, "error"), "fields"));
    s_response_clear(&response);

    assert_int_equal(s_request("GET", "/api/v1/users/created", NULL, NULL, NULL, &response), 201);
    assert_string_equal(json_string_value(json_object_get(response.json, "id")), "123");
    s_response_clear(&response);

    assert_int_equal(s_request("GET", "/api/v1/users/empty", NULL, NULL, NULL, &response), 204);
    assert_int_equal(response.size, 0);
    assert_null(s_header(&response, "Content-Type"));
    assert_non_null(s_header(&response, "X-Request-Id"));
    s_response_clear(&response);
    assert_int_equal(s_request("POST", "/api/v1/auth/logout", NULL, NULL, NULL, &response), 204);
    s_response_clear(&response);

    //  A broken service is a 500, never a hang or a crash.
    assert_int_equal(s_request("GET", "/api/v1/users/garbage", NULL, NULL, NULL, &response), 500);
    s_assert_error(&response, 500, "internal");
    s_response_clear(&response);
    assert_int_equal(
        s_request("GET", "/api/v1/users/success-with-error", NULL, NULL, NULL, &response), 500);
    s_assert_error(&response, 500, "internal");
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/api/v1/users/bad-text-body", NULL, NULL, NULL, &response),
                     500);
    s_assert_error(&response, 500, "internal");
    s_response_clear(&response);
}

static void test_timeout(void **state)
{
    response_t response;
    int64_t started = s_now_ms();
    const char *id[] = {"X-Request-Id: slow-call", NULL};
    assert_int_equal(s_request("GET", "/api/v1/users/slow", NULL, NULL, id, &response), 504);
    int64_t took = s_now_ms() - started;
    s_assert_error(&response, 504, "timeout");
    assert_true(took >= 900 && took < 3000);
    s_response_clear(&response);
    //  The late reply is dropped: the next calls get their own answers
    //  (on whichever gateway thread they land).
    s_sleep_ms(800);
    for (int i = 0; i < 20; i++) {
        char header[64], expected[32];
        snprintf(expected, sizeof expected, "after-slow-%d", i);
        snprintf(header, sizeof header, "X-Request-Id: %s", expected);
        const char *headers[] = {header, NULL};
        assert_int_equal(s_request("GET", "/api/v1/users/ann", NULL, NULL, headers, &response),
                         200);
        assert_string_equal(json_string_value(json_object_get(response.json, "request_id")),
                            expected);
        s_response_clear(&response);
    }
}

static void test_rate_limit(void **state)
{
    response_t response;
    for (int i = 0; i < RATE_LIMIT; i++) {
        assert_int_equal(s_request("POST", "/api/v1/auth/login", NULL,
                                   "{\"login\":\"ann\",\"password\":\"wrong\"}", NULL, &response),
                         401);
        //  A service's 401 carries the challenge too.
        s_assert_error(&response, 401, "invalid_credentials");
        assert_non_null(s_header(&response, "WWW-Authenticate"));
        s_response_clear(&response);
    }
    assert_int_equal(s_request("POST", "/api/v1/auth/login", NULL, "{}", NULL, &response), 429);
    s_assert_error(&response, 429, "rate_limited");
    const char *retry = s_header(&response, "Retry-After");
    assert_non_null(retry);
    int seconds = atoi(retry);
    assert_true(seconds >= 1 && seconds <= 60);
    s_response_clear(&response);
    //  Register shares the budget of the address; refresh is not limited.
    assert_int_equal(s_request("POST", "/api/v1/auth/register", NULL, "{}", NULL, &response), 429);
    s_response_clear(&response);
    assert_int_equal(s_request("POST", "/api/v1/auth/refresh", NULL, "{}", NULL, &response), 200);
    s_response_clear(&response);
}

static void test_static_files(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/", NULL, NULL, NULL, &response), 200);
    assert_non_null(strstr(s_header(&response, "Content-Type"), "text/html"));
    assert_non_null(strstr(response.body, "<div id=\"app\">"));
    assert_string_equal(s_header(&response, "Cache-Control"), "no-cache");
    assert_string_equal(s_header(&response, "Keep-Alive"), "timeout=2");
    char etag[128];
    snprintf(etag, sizeof etag, "If-None-Match: %s", s_header(&response, "ETag"));
    s_response_clear(&response);

    const char *conditional[] = {etag, NULL};
    assert_int_equal(s_request("GET", "/index.html", NULL, NULL, conditional, &response), 304);
    assert_int_equal(response.size, 0);
    s_response_clear(&response);

    //  Client-side routes get the app, dots and all (usernames may hold
    //  them); missing build assets and escapes do not.
    const char *routes[] = {"/u/ann/posts", "/u/ann.b", "/u/ann.b/followers", "/missing.js"};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        assert_int_equal(s_request("GET", routes[i], NULL, NULL, NULL, &response), 200);
        assert_non_null(strstr(response.body, "<div id=\"app\">"));
        assert_string_equal(s_header(&response, "Cache-Control"), "no-cache");
        s_response_clear(&response);
    }
    const char *refused[] = {"/assets/missing.js", "/%2e%2e/Makefile",
                             "/..%2fMakefile",     "/%2e%2e%2f%2e%2e%2fetc%2fpasswd.txt",
                             "/a%00.js",           "/%zz.js"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(s_request("GET", refused[i], NULL, NULL, NULL, &response), 404);
        s_response_clear(&response);
    }
    //  Dot segments are resolved first: this is the client-side route
    //  /etc/passwd, which gets the app, not the file.
    assert_int_equal(s_request("GET", "/../../../../etc/passwd", NULL, NULL, NULL, &response), 200);
    assert_non_null(strstr(response.body, "<div id=\"app\">"));
    s_response_clear(&response);
    assert_int_equal(s_request("POST", "/index.html", NULL, "{}", NULL, &response), 405);
    s_response_clear(&response);
    assert_int_equal(s_request("HEAD", "/", NULL, NULL, NULL, &response), 200);
    assert_int_equal(response.size, 0);
    s_response_clear(&response);
}

static void test_readiness_and_unavailable(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/readyz", NULL, NULL, NULL, &response), 200);
    assert_string_equal(json_string_value(json_object_get(response.json, "status")), "ok");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(response.json, "services"), "identity")),
        "up");
    s_response_clear(&response);

    //  The only identity worker leaves: the broker holds the request for a
    //  worker to come back (a restart), and answers 503 before the
    //  gateway's deadline (REQUEST_TIMEOUT_MS 1000) when none does; not
    //  ready meanwhile.
    s_worker_stop();
    s_sleep_ms(200);
    int64_t started = s_now_ms();
    assert_int_equal(s_request("GET", "/api/v1/users/ann", NULL, NULL, NULL, &response), 503);
    assert_true(s_now_ms() - started < 1000);
    s_assert_error(&response, 503, "unavailable");
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/readyz", NULL, NULL, NULL, &response), 503);
    assert_string_equal(json_string_value(json_object_get(response.json, "status")), "unavailable");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(response.json, "services"), "identity")),
        "down");
    s_response_clear(&response);

    //  It comes back.
    s_worker_start();
    assert_int_equal(s_wait_ready(10000), 0);
    assert_int_equal(s_request("GET", "/api/v1/users/ann", NULL, NULL, NULL, &response), 200);
    s_response_clear(&response);
}

static void test_metrics(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/metrics", NULL, NULL, NULL, &response), 200);
    assert_non_null(strstr(s_header(&response, "Content-Type"), "text/plain"));
    const char *body = response.body;
    assert_non_null(strstr(body, "# TYPE http_requests_total counter"));
    assert_non_null(strstr(body, "http_requests_total{route=\"/api/v1/users/{username}\","
                                 "method=\"GET\",status=\"200\"}"));
    assert_non_null(strstr(body, "http_requests_total{route=\"unmatched\",method=\"GET\","
                                 "status=\"404\"}"));
    assert_non_null(strstr(body, "http_request_duration_seconds_bucket{route=\"/healthz\""));
    assert_non_null(strstr(body, "rpc_duration_seconds_bucket{service=\"identity\",le=\"+Inf\"}"));
    assert_non_null(strstr(body, "rpc_errors_total{service=\"identity\",code=\"timeout\"}"));
    assert_non_null(strstr(body, "rpc_errors_total{service=\"identity\",code=\"unavailable\"}"));
    assert_non_null(strstr(body, "websocket_connections 0"));
    //  Patterns, never raw paths, as labels.
    assert_null(strstr(body, "/api/v1/users/ann"));
    assert_null(strstr(body, "BREW"));
    s_response_clear(&response);
}

static void test_keep_alive(void **state)
{
    response_t response;
    assert_int_equal(
        s_request_on(s_shared_curl, "GET", "/healthz", NULL, NULL, 0, NULL, 0, &response), 200);
    s_response_clear(&response);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s_request_on(s_shared_curl, "GET", "/api/v1/users/ann", NULL, NULL, 0,
                                      NULL, 0, &response),
                         200);
        assert_int_equal(response.connects, 0); // the same connection
        assert_string_equal(s_header(&response, "Connection"), "keep-alive");
        //  GATEWAY_KEEPALIVE_MS (2000 by default) announced in whole seconds,
        //  so clients retire an idle socket before the gateway closes it.
        assert_string_equal(s_header(&response, "Keep-Alive"), "timeout=2");
        s_response_clear(&response);
    }
}

//  Sends raw bytes and returns the status of the reply (0 if none).
static int s_raw_exchange(const char *request, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(GATEWAY_PORT)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    struct timeval timeout = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    int status = 0;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0 &&
        write(fd, request, size) == (ssize_t)size) {
        char reply[4096];
        ssize_t got = read(fd, reply, sizeof reply - 1);
        if (got > 12) {
            reply[got] = 0;
            status = atoi(reply + 9);
        }
    }
    close(fd);
    return status;
}

static void test_malformed_http(void **state)
{
    const char garbage[] = "\x01\x02 garbage \r\n\r\n";
    int status = s_raw_exchange(garbage, sizeof garbage - 1);
    assert_true(status == 0 || (status >= 400 && status < 500));
    //  Headers beyond the 16 KiB limit.
    size_t size = 40000;
    char *big = malloc(size);
    int used = snprintf(big, size, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + used, 'a', size - (size_t)used - 4);
    memcpy(big + size - 4, "\r\n\r\n", 4);
    status = s_raw_exchange(big, size);
    assert_true(status == 0 || status == 413 || status == 431 || status == 400);
    free(big);
    const char bad_length[] = "POST /api/v1/auth/refresh HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: -5\r\n\r\n";
    status = s_raw_exchange(bad_length, sizeof bad_length - 1);
    assert_true(status == 0 || (status >= 400 && status < 500));
    const char http10[] = "GET /healthz HTTP/1.0\r\n\r\n";
    assert_int_equal(s_raw_exchange(http10, sizeof http10 - 1), 200);
}

static void test_startup_refusals(void **state)
{
    static char listen[64];
    snprintf(listen, sizeof listen, "GATEWAY_LISTEN=127.0.0.1:%d", SPARE_PORT);
    const char *no_secret[] = {listen, "JWT_SECRET=", NULL};
    pid_t pid = s_spawn("gateway", "refused", no_secret, NULL);
    int status = s_wait(pid, 5000);
    assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
    const char *short_secret[] = {listen, "JWT_SECRET=0123456789abcdef0123456789abcde", NULL};
    pid = s_spawn("gateway", "refused", short_secret, NULL);
    status = s_wait(pid, 5000);
    assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
    const char *help[] = {"--help", NULL};
    pid = s_spawn("gateway", "help", NULL, help);
    status = s_wait(pid, 5000);
    assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    //  The port is busy: refuse, do not hang.
    char busy[64];
    snprintf(busy, sizeof busy, "GATEWAY_LISTEN=127.0.0.1:%d", GATEWAY_PORT);
    const char *taken[] = {busy, "JWT_SECRET=" SECRET, NULL};
    pid = s_spawn("gateway", "refused", taken, NULL);
    status = s_wait(pid, 5000);
    if (status < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void *s_slow_request(void *arg)
{
    s_request("GET", "/api/v1/users/slow", NULL, NULL, NULL, (response_t *)arg);
    return NULL;
}

static void test_still_healthy_then_clean_shutdown(void **state)
{
    response_t response;
    assert_int_equal(s_request("GET", "/healthz", NULL, NULL, NULL, &response), 200);
    s_response_clear(&response);
    assert_int_equal(s_request("GET", "/api/v1/users/ann", NULL, NULL, NULL, &response), 200);
    s_response_clear(&response);

    //  SIGTERM while a slow call is in flight: it is answered (here by
    //  the deadline), then the gateway exits 0.
    pthread_t slow;
    response_t slow_response;
    pthread_create(&slow, NULL, s_slow_request, &slow_response);
    //  A keep-alive connection open before the SIGTERM.
    assert_int_equal(
        s_request_on(s_shared_curl, "GET", "/healthz", NULL, NULL, 0, NULL, 0, &response), 200);
    s_response_clear(&response);
    s_sleep_ms(300);
    kill(s_gateway, SIGTERM);
    s_sleep_ms(300);
    //  Meanwhile new connections are refused at once (the listener is
    //  closed first, so an edge sends them to another gateway), not left
    //  hanging; a request on a connection already open is served, and
    //  told the connection closes (/healthz: the one identity worker is
    //  busy with the slow call, which is the point of the next check).
    int64_t started = s_now_ms();
    assert_int_equal(s_request("GET", "/api/v1/users/ann", NULL, NULL, NULL, &response), 0);
    assert_true(s_now_ms() - started < 1000);
    s_response_clear(&response);
    assert_int_equal(
        s_request_on(s_shared_curl, "GET", "/healthz", NULL, NULL, 0, NULL, 0, &response), 200);
    assert_int_equal(response.connects, 0); // the connection opened before the SIGTERM
    assert_string_equal(s_header(&response, "Connection"), "close");
    s_response_clear(&response);
    int status = s_wait(s_gateway, 15000);
    if (status < 0) {
        s_print_log("gateway");
        fail_msg("the gateway did not stop within 15 s of SIGTERM");
    }
    s_gateway = -1;
    pthread_join(slow, NULL);
    assert_int_equal(slow_response.status, 504);
    s_response_clear(&slow_response);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) s_print_log("gateway");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    if (s_log_has_sanitizer_report("gateway")) {
        s_print_log("gateway");
        fail_msg("sanitizer report in the gateway's log");
    }
}

//  ---------------------------------------------------------------------

static int s_find_paths(const char *argv0)
{
    char self[PATH_MAX];
    if (!realpath(argv0, self)) return -1;
    char *dir = dirname(self);
    snprintf(s_bin_dir, sizeof s_bin_dir, "%s/../../bin", dir);
    //  The repository holds web/index.html; walk up from the binary.
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s", dir);
    for (int i = 0; i < 6; i++) {
        char candidate[PATH_MAX + 32];
        snprintf(candidate, sizeof candidate, "%s/web/index.html", probe);
        if (access(candidate, R_OK) == 0) {
            snprintf(s_web_root, sizeof s_web_root, "%s/web", probe);
            return 0;
        }
        size_t length = strlen(probe);
        if (length + 4 >= sizeof probe) return -1;
        memcpy(probe + length, "/..", 4);
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (s_find_paths(argv[0]) != 0) {
        fprintf(stderr, "cannot find bin/ and web/ from %s\n", argv[0]);
        return 1;
    }
    snprintf(s_log_dir, sizeof s_log_dir, "/tmp/test_gateway.XXXXXX");
    if (!mkdtemp(s_log_dir)) return 1;
    if (sodium_init() < 0) return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    atexit(s_kill_all);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_args_and_viewer),
        cmocka_unit_test(test_unauthenticated),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_unsupported_media_type),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_service_replies),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_static_files),
        cmocka_unit_test(test_readiness_and_unavailable),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_malformed_http),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_startup_refusals),
        cmocka_unit_test(test_still_healthy_then_clean_shutdown),
    };
    int failed = cmocka_run_group_tests_name("gateway_http", tests, s_setup, s_teardown);
    if (failed) {
        s_print_log("gateway");
        s_print_log("broker");
        fprintf(stderr, "logs in %s\n", s_log_dir);
    } else {
        const char *logs[] = {"gateway", "broker", "refused", "help"};
        for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s/%s.log", s_log_dir, logs[i]);
            unlink(path);
        }
        rmdir(s_log_dir);
    }
    curl_global_cleanup();
    return failed ? 1 : 0;
}
