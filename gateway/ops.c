/*  ops: health, readiness and metrics.

    Readiness pings run in parallel, one short-lived thread and one fresh
    rpc client each, so /readyz takes at most about one ping deadline
    however many services there are, and never borrows the calling
    thread's client (whose socket might still hold a late reply).
*/
#include "ops.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "rpc.h"

#include <czmq.h>
#include <pthread.h>
#include <string.h>

static const char *const s_get_only[] = {"Allow", "GET, HEAD", NULL};

typedef struct {
    const char *broker_url;
    const char *request_id;
    char service[64];
    int status; // the ping's reply status; 0 until it ran
} ping_t;

static void *s_ping(void *arg)
{
    ping_t *ping = (ping_t *)arg;
    log_set_request_id(ping->request_id);
    ping->status = 503;
    if (!protocol_valid_service(ping->service, strlen(ping->service)))
        return NULL; // cannot be a worker's name: down, and no call
    rpc_client_t *client = rpc_client_new(ping->broker_url);
    if (!client) return NULL;
    json_t *reply = rpc_call(client, ping->service, "sys.ping", 0, NULL, ping->request_id,
                             envelope_now_ms() + OPS_PING_TIMEOUT_MS);
    ping->status = reply_status(reply);
    json_decref(reply);
    rpc_client_destroy(&client);
    return NULL;
}

json_t *ops_readiness(const char *broker_url, const char *services, const char *request_id,
                      int *status_out)
{
    ping_t pings[OPS_MAX_SERVICES];
    pthread_t threads[OPS_MAX_SERVICES];
    bool started[OPS_MAX_SERVICES];
    size_t count = 0;

    //  Split "identity, media" into names, ignoring blanks and empties.
    const char *p = services ? services : "";
    while (*p && count < OPS_MAX_SERVICES) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t length = strcspn(p, ", ");
        if (length > 0) {
            ping_t *ping = &pings[count++];
            memset(ping, 0, sizeof *ping);
            ping->broker_url = broker_url;
            ping->request_id = request_id;
            snprintf(ping->service, sizeof ping->service, "%.*s", (int)length, p);
        }
        p += length;
    }
    for (size_t i = 0; i < count; i++) {
        started[i] = pthread_create(&threads[i], NULL, s_ping, &pings[i]) == 0;
        if (!started[i]) s_ping(&pings[i]);
    }
    json_t *states = json_object();
    bool all_up = true;
    for (size_t i = 0; i < count; i++) {
        if (started[i]) pthread_join(threads[i], NULL);
        bool up = pings[i].status != 503 && pings[i].status != 504;
        all_up &= up;
        json_object_set_new(states, pings[i].service, json_string(up ? "up" : "down"));
    }
    *status_out = all_up ? 200 : 503;
    return json_pack("{s:s, s:o}", "status", all_up ? "ok" : "unavailable", "services", states);
}

static bool s_method_get(http_request_t *request)
{
    const char *method = request->info->request_method;
    return method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
}

bool ops_handle(http_request_t *request, const char *path)
{
    if (strcmp(path, "/healthz") == 0)
        request->route = "/healthz";
    else if (strcmp(path, "/readyz") == 0)
        request->route = "/readyz";
    else if (strcmp(path, "/metrics") == 0)
        request->route = "/metrics";
    else
        return false;

    if (!s_method_get(request)) {
        http_send_error(request, 405, ERR_METHOD_NOT_ALLOWED, "use GET", NULL, s_get_only);
        return true;
    }
    if (strcmp(request->route, "/healthz") == 0) {
        json_t *body = json_pack("{s:s}", "status", "ok");
        http_send_json(request, 200, body, NULL);
        json_decref(body);
    } else if (strcmp(request->route, "/readyz") == 0) {
        int status = 503;
        json_t *body =
            ops_readiness(gateway_broker_url(request->gateway), gateway_services(request->gateway),
                          request->request_id, &status);
        if (status != 200) {
            char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
            log_warn("not ready %s", text ? text : "");
            free(text);
        }
        http_send_json(request, status, body, NULL);
        json_decref(body);
    } else {
        size_t size = 0;
        char *text = metrics_render(gateway_metrics(request->gateway), &size);
        if (!text) {
            http_send_error(request, 500, ERR_INTERNAL, "could not render metrics", NULL, NULL);
            return true;
        }
        http_send(request, 200, "text/plain; version=0.0.4; charset=utf-8", text, size, NULL);
        free(text);
    }
    return true;
}
