/*  mock_echo: a fake peer service for running one real service alone, and
    the worker the broker tests use.

    It registers with the broker under any service name (--service NAME or
    SERVICE, default "echo") and has no database. Its methods:

      echo     replies 200 with the args it was given
      sleep    sleeps args.ms milliseconds (0..600000), then replies 200 {slept_ms}
      whoami   replies 200 {pid, service}: which process served the call
      <any>    a canned reply from MOCK_REPLIES

    MOCK_REPLIES is a JSON object, given inline (it starts with '{') or as
    the path of a file, mapping a method name to a reply object, e.g.
        MOCK_REPLIES='{"users.get": {"status": 200, "body": {"id": "1"}}}'
    A value without an integer "status" is taken as the body of a 200. A
    canned reply may also override echo, sleep or whoami.

    So a developer runs, say, feed against fake graph and identity peers:
        SERVICE=graph MOCK_REPLIES=graph.json build/bin/mock_echo &
        SERVICE=identity MOCK_REPLIES=identity.json build/bin/mock_echo &
*/
#include "config.h"
#include "errors.h"
#include "log.h"
#include "service.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLEEP_MAX_MS 600000

typedef struct {
    const char *service;
    json_t *replies; // method -> reply object (owned)
} mock_t;

static json_t *s_echo(call_t *call)
{
    return reply_ok(200, json_deep_copy(call->args));
}

static json_t *s_sleep(call_t *call)
{
    json_t *ms = json_object_get(call->args, "ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0 || json_integer_value(ms) > SLEEP_MAX_MS)
        return reply_invalid(json_pack("{s:s}", "ms", "an integer 0..600000"), NULL);
    zclock_sleep((int)json_integer_value(ms));
    return reply_ok(200, json_pack("{s:I}", "slept_ms", json_integer_value(ms)));
}

static json_t *s_whoami(call_t *call)
{
    mock_t *mock = (mock_t *)call->state;
    return reply_ok(200,
                    json_pack("{s:I, s:s}", "pid", (json_int_t)getpid(), "service", mock->service));
}

static json_t *s_canned(call_t *call)
{
    mock_t *mock = (mock_t *)call->state;
    json_t *canned = json_object_get(mock->replies, call->request->method);
    if (!canned) return reply_error(404, ERR_NOT_FOUND, "unknown method");
    if (json_is_integer(json_object_get(canned, "status"))) return json_deep_copy(canned);
    return reply_ok(200, json_deep_copy(canned));
}

//  MOCK_REPLIES as inline JSON or a file path. NULL (logged) when invalid.
static json_t *s_load_replies(const char *text)
{
    json_error_t error;
    json_t *replies =
        text[0] == '{' ? json_loads(text, 0, &error) : json_load_file(text, 0, &error);
    if (!json_is_object(replies)) {
        log_error("MOCK_REPLIES is not a JSON object: %s (line %d)", error.text, error.line);
        json_decref(replies);
        return NULL;
    }
    return replies;
}

//  The service name from --service NAME, else SERVICE, else "echo".
static const char *s_service_name(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (streq(argv[i], "--service")) return argv[i + 1];
    return config_str("SERVICE", "echo");
}

int main(int argc, char **argv)
{
    mock_t mock = {.service = s_service_name(argc, argv)};
    log_init(mock.service);
    const char *text = config_str("MOCK_REPLIES", "{}");
    mock.replies = s_load_replies(text);
    if (!mock.replies) return 2;

    //  Canned methods first, so a canned reply can replace a built-in one.
    size_t count = json_object_size(mock.replies);
    service_method_t *methods = (service_method_t *)zmalloc(sizeof *methods * (count + 4));
    size_t used = 0;
    const char *method;
    json_t *value;
    json_object_foreach(mock.replies, method, value)
    {
        methods[used++] = (service_method_t){method, s_canned};
    }
    methods[used++] = (service_method_t){"echo", s_echo};
    methods[used++] = (service_method_t){"sleep", s_sleep};
    methods[used++] = (service_method_t){"whoami", s_whoami};

    static const char *const config_names[] = {"SERVICE", "MOCK_REPLIES", NULL};
    service_def_t def = {
        .name = mock.service,
        .usage = "A fake peer: registers as --service NAME (or SERVICE, default echo) and\n"
                 "answers echo (its args), sleep {ms}, whoami {pid, service} and the canned\n"
                 "replies of MOCK_REPLIES (inline JSON or a file):\n"
                 "  MOCK_REPLIES='{\"users.get\": {\"status\": 200, \"body\": {...}}}'",
        .methods = methods,
        .state = &mock,
        .config_names = config_names,
    };
    int rc = service_main(&def, argc, argv);
    freen(methods);
    json_decref(mock.replies);
    return rc;
}
