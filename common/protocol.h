/*  protocol: the frame constants of the broker protocol (docs/protocol.md).

    Shared by the broker (services/broker), the client (rpc.c) and the
    worker (worker.c) so the three cannot drift apart. Every message on the
    broker's ROUTER starts with an empty delimiter frame and one of the two
    protocol frames below; the rest of the layout is in docs/protocol.md.

      client -> broker  ["", SC01, service, correlation, deadline_ms, envelope (, BLOB, blob)]
      broker -> client  ["", SC01, service, correlation, reply (, BLOB, blob)]
      worker -> broker  ["", SW01, READY, service]
                        ["", SW01, REPLY, client, correlation, reply (, BLOB, blob)]
                        ["", SW01, HEARTBEAT] | ["", SW01, DISCONNECT]
      broker -> worker  ["", SW01, REQUEST, client, correlation, envelope (, BLOB, blob)]
                        ["", SW01, HEARTBEAT] | ["", SW01, DISCONNECT]

    The optional pair at the end carries one binary payload (image bytes)
    beside the msgpack envelope, so large bytes never pass through msgpack
    or JSON. The marker frame makes the extension explicit: any other extra
    frame is still malformed.
*/
#ifndef PROTOCOL_H_INCLUDED
#define PROTOCOL_H_INCLUDED

#define PROTOCOL_CLIENT "SC01"
#define PROTOCOL_WORKER "SW01"

#define PROTOCOL_READY "READY"
#define PROTOCOL_REQUEST "REQUEST"
#define PROTOCOL_REPLY "REPLY"
#define PROTOCOL_HEARTBEAT "HEARTBEAT"
#define PROTOCOL_DISCONNECT "DISCONNECT"
#define PROTOCOL_BLOB "BLOB"

//  Largest blob frame the broker forwards (a request's is answered 413
//  too_large, a reply's replaced by a 500). Uploads are at most 10 MiB.
#define PROTOCOL_BLOB_MAX (32 * 1024 * 1024)

//  Longest service name and correlation id the broker accepts; a service
//  name is made of [a-z0-9_.-] (it is also a schema and a log program name).
#define PROTOCOL_SERVICE_MAX 63
#define PROTOCOL_CORRELATION_MAX 64

#include <stdbool.h>
#include <stddef.h>

//  True when name[0..size) is a valid service name.
static inline bool protocol_valid_service(const char *name, size_t size)
{
    if (size == 0 || size > PROTOCOL_SERVICE_MAX) return false;
    for (size_t i = 0; i < size; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

#endif
