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
    int64_t max_message_bytes; // larger frames make zmq drop the peer
} broker_config_t;

typedef struct broker_t broker_t;

//  Binds the three sockets. NULL (logged) when one cannot be bound.
broker_t *broker_new(const broker_config_t *config);

//  Tells every worker to DISCONNECT, answers waiting clients 503, closes.
void broker_destroy(broker_t **self_p);

//  Serves until zsys_interrupted (SIGINT/SIGTERM). Returns 0, or -1 when
//  the sockets fail.
int broker_run(broker_t *self);

#endif
