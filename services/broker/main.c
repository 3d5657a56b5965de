/*  broker: main. Reads the configuration, logs it, runs the broker until
    SIGTERM or SIGINT (CZMQ's handler sets zsys_interrupted and interrupts
    the poll), drains (broker_drain: requests in progress are answered,
    everything else gets a retryable 503), tells every worker to DISCONNECT
    and exits 0.

    The broker has no database and no methods of its own, so it does not use
    service_main(); see broker.c for the routing and docs/protocol.md for the
    wire protocol.
*/
#include "broker.h"
#include "config.h"
#include "log.h"
#include "rpc.h"

#include <czmq.h>
#include <stdlib.h>

static const char s_usage[] =
    "Usage: broker [--help]\n"
    "\n"
    "Routes requests from clients (the gateway, services, zcall) to workers of\n"
    "the named service and proxies events from publishers to subscribers.\n"
    "See docs/protocol.md.\n"
    "\n"
    "Environment (default):\n"
    "  BROKER_URL                 ROUTER for clients and workers (tcp://127.0.0.1:5555)\n"
    "  EVENTS_PUB_URL             XSUB where publishers connect (tcp://127.0.0.1:5556)\n"
    "  EVENTS_SUB_URL             XPUB where subscribers connect (tcp://127.0.0.1:5557)\n"
    "  BROKER_QUEUE_MAX           requests waiting per service before 503 (10000)\n"
    "  BROKER_QUEUE_BYTES         bytes of all waiting requests before 503 (268435456)\n"
    "  BROKER_HOLD_MS             how long a request waits for a service that has no\n"
    "                             worker right now, then 503 (3000)\n"
    "  BROKER_FORGET_MS           a service without workers for this long is unknown\n"
    "                             again: its requests get 503 at once (60000)\n"
    "  BROKER_DRAIN_MS            on SIGTERM, wait this long for requests in progress\n"
    "                             (5000)\n"
    "  BROKER_MAX_MESSAGE_BYTES   largest frame accepted (134217728)\n"
    "  LOG_LEVEL                  debug|info|warn|error (info)\n";

int main(int argc, char **argv)
{
    if (config_wants_help(argc, argv, s_usage)) return 0;
    //  Defaults go into the environment so config_log shows what is used.
    setenv("BROKER_URL", "tcp://127.0.0.1:5555", 0);
    setenv("EVENTS_PUB_URL", "tcp://127.0.0.1:5556", 0);
    setenv("EVENTS_SUB_URL", "tcp://127.0.0.1:5557", 0);
    setenv("BROKER_QUEUE_MAX", "10000", 0);
    setenv("BROKER_QUEUE_BYTES", "268435456", 0);
    setenv("BROKER_HOLD_MS", "3000", 0);
    setenv("BROKER_FORGET_MS", "60000", 0);
    setenv("BROKER_DRAIN_MS", "5000", 0);
    setenv("BROKER_MAX_MESSAGE_BYTES", "134217728", 0);
    setenv("LOG_LEVEL", "info", 0);
    log_init("broker");
    static const char *const names[] = {"BROKER_URL",
                                        "EVENTS_PUB_URL",
                                        "EVENTS_SUB_URL",
                                        "BROKER_QUEUE_MAX",
                                        "BROKER_QUEUE_BYTES",
                                        "BROKER_HOLD_MS",
                                        "BROKER_FORGET_MS",
                                        "BROKER_DRAIN_MS",
                                        "BROKER_MAX_MESSAGE_BYTES",
                                        "LOG_LEVEL",
                                        NULL};
    config_log(names);

    broker_config_t config = {
        .endpoint = config_str("BROKER_URL", "tcp://127.0.0.1:5555"),
        .events_pub = config_str("EVENTS_PUB_URL", "tcp://127.0.0.1:5556"),
        .events_sub = config_str("EVENTS_SUB_URL", "tcp://127.0.0.1:5557"),
        .queue_max = (size_t)config_int("BROKER_QUEUE_MAX", 10000),
        .max_message_bytes = config_int("BROKER_MAX_MESSAGE_BYTES", 134217728),
        .hold_ms = config_int("BROKER_HOLD_MS", 3000),
        .forget_ms = config_int("BROKER_FORGET_MS", 60000),
        .drain_ms = config_int("BROKER_DRAIN_MS", 5000),
    };
    int64_t queue_bytes = config_int("BROKER_QUEUE_BYTES", 268435456);
    if (config.queue_max == 0 || config.queue_max > 10000000 || config.max_message_bytes < 1024) {
        log_error("BROKER_QUEUE_MAX must be 1..10000000 and BROKER_MAX_MESSAGE_BYTES >= 1024");
        return 2;
    }
    if (queue_bytes < 1024 || config.hold_ms < 0 || config.hold_ms > 600000 ||
        config.forget_ms < 1 || config.drain_ms < 0 || config.drain_ms > 600000) {
        log_error("BROKER_QUEUE_BYTES must be >= 1024, BROKER_HOLD_MS and BROKER_DRAIN_MS "
                  "0..600000, BROKER_FORGET_MS >= 1");
        return 2;
    }
    config.queue_bytes_max = (size_t)queue_bytes;
    broker_t *broker = broker_new(&config);
    if (!broker) return 1;
    int rc = broker_run(broker);
    if (rc == 0) broker_drain(broker);
    rpc_zsys_ignore_stop_signals();
    broker_destroy(&broker);
    log_info("broker stopped");
    return rc == 0 ? 0 : 1;
}
