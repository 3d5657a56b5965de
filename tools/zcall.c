/*  zcall: call any service method through the broker from a shell.

        zcall [--broker URL] [--viewer ID] [--timeout MS] SERVICE METHOD ['{"json":"args"}']

    The args are JSON (an object); they travel as msgpack in the same
    envelope the gateway sends, so what a service sees from zcall is what it
    sees in production (viewer_id is whatever --viewer says: this is a
    developer tool that talks to the broker directly, behind the gateway's
    authentication). The reply object {status, body | error} is printed as
    one line of JSON on stdout; the exit code is 0 for a status below 400, 1
    otherwise, 2 for a usage error.
*/
#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "rpc.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char s_usage[] =
    "Usage: zcall [--broker URL] [--viewer ID] [--timeout MS] SERVICE METHOD "
    "['{\"json\":\"args\"}']\n"
    "\n"
    "Calls SERVICE's METHOD through the broker with the JSON object ARGS (default {})\n"
    "and prints the reply {status, body | error} as JSON. Exit code: 0 when status\n"
    "< 400, 1 otherwise, 2 on a usage error.\n"
    "\n"
    "  --broker URL   broker endpoint (BROKER_URL, default tcp://127.0.0.1:5555)\n"
    "  --viewer ID    viewer_id to send, as an authenticated user (default: anonymous)\n"
    "  --timeout MS   deadline from now (default 5000)\n"
    "\n"
    "Example: zcall identity users.get '{\"username\":\"ann\"}'\n";

static int s_usage_error(const char *message)
{
    fprintf(stderr, "zcall: %s (see zcall --help)\n", message);
    return 2;
}

int main(int argc, char **argv)
{
    if (config_wants_help(argc, argv, s_usage)) return 0;
    setenv("LOG_LEVEL", "warn", 0); // a tool's stderr is for problems only
    log_init("zcall");
    const char *broker = config_str("BROKER_URL", "tcp://127.0.0.1:5555");
    int64_t viewer_id = 0;
    int64_t timeout_ms = RPC_DEFAULT_TIMEOUT_MS;
    const char *positional[3] = {NULL, NULL, NULL};
    int count = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (streq(arg, "--broker") && has_value) {
            broker = argv[++i];
        } else if (streq(arg, "--viewer") && has_value) {
            if (!ids_parse(argv[++i], &viewer_id))
                return s_usage_error("--viewer needs a positive integer id");
        } else if (streq(arg, "--timeout") && has_value) {
            char *end = NULL;
            long long value = strtoll(argv[++i], &end, 10);
            if (!end || *end || value <= 0 || value > 3600000)
                return s_usage_error("--timeout needs milliseconds, 1..3600000");
            timeout_ms = value;
        } else if (arg[0] == '-' && arg[1] == '-') {
            return s_usage_error("unknown option or missing value");
        } else if (count < 3) {
            positional[count++] = arg;
        } else {
            return s_usage_error("too many arguments");
        }
    }
    if (count < 2) return s_usage_error("SERVICE and METHOD are required");

    json_error_t error;
    json_t *args = json_loads(positional[2] ? positional[2] : "{}", 0, &error);
    if (!json_is_object(args)) {
        json_decref(args);
        return s_usage_error("ARGS must be a JSON object");
    }
    rpc_client_t *client = rpc_client_new(broker);
    if (!client) {
        json_decref(args);
        return s_usage_error("cannot use the broker endpoint");
    }
    json_t *reply = rpc_call(client, positional[0], positional[1], viewer_id, args, NULL,
                             envelope_now_ms() + timeout_ms);
    char *text = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s\n", text ? text : "null");
    free(text);
    int status = reply_status(reply);
    json_decref(reply);
    json_decref(args);
    rpc_client_destroy(&client);
    return status < 400 ? 0 : 1;
}
