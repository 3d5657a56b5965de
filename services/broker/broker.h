/*  broker: the request router and the event proxy (docs/protocol.md).

    One ROUTER socket serves both clients and workers; two more sockets
    (XSUB for publishers, XPUB for subscribers) proxy events. Everything runs
    in the thread that calls broker_run(), so no state is shared.
*/
#ifndef BROKER_H_INCLUDED
#define BROKER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;      // ROUTER bind for clients and workers (BROKER_URL)
    const char *events_pub;    // XSUB bind where publishers connect (EVENTS_PUB_URL)
    const char *events_sub;    // XPUB bind where subscribers connect (EVENTS_SUB_URL)
    size_t queue_max;          // requests waiting per service before 503
    size_t queue_bytes_max;    // bytes of all waiting requests before 503 (0: 256 MiB)
    int64_t max_message_bytes; // larger frames make zmq drop the peer
    int64_t hold_ms;           // how long a request waits for a worker of a service that has
                               // none right now (and, after start, for any service)
    int64_t forget_ms;         // a service without workers is forgotten after this (0: 60 s)
    int64_t drain_ms;          // on SIGTERM, how long to wait for requests in progress
} broker_config_t;

typedef struct broker_t broker_t;

//  Binds the three sockets. NULL (logged) when one cannot be bound.
broker_t *broker_new(const broker_config_t *config);

//  Tells every worker to DISCONNECT, answers waiting clients 503, closes.
void broker_destroy(broker_t **self_p);

//  Serves until zsys_interrupted (SIGINT/SIGTERM). Returns 0, or -1 when
//  the sockets fail.
int broker_run(broker_t *self);

//  The graceful part of a stop, after broker_run: answers every waiting
//  request and every new one 503 with error.retry = true (never handed to
//  a worker: safe to send again), forwards the replies of the requests in
//  progress until none is left or drain_ms passes, then returns. Call
//  broker_destroy after it.
void broker_drain(broker_t *self);

#endif
