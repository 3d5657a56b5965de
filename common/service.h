/*  service: the wiring every service's main.c shares.

    service_main() reads the configuration (BROKER_URL, EVENTS_PUB_URL,
    EVENTS_SUB_URL, DATABASE_URL, WORKERS, SHARD, LOG_LEVEL), logs it,
    applies the service's migrations, then runs WORKERS threads, each with
    its own worker socket to the broker and its own database connection, the
    outbox publisher (when the service produces events; events.replay is
    then answered too) and the event subscriber (when it consumes some). On
    SIGTERM or SIGINT it stops taking work, lets each thread finish the
    request it holds, tells the broker, and returns 0.

    A handler gets a call_t and returns a reply object (errors.h). The
    worker packs it, and answers 500 "internal" when the handler returns
    NULL. Handlers never see HTTP or JSON text.
*/
#ifndef SERVICE_H_INCLUDED
#define SERVICE_H_INCLUDED

#include "db.h"
#include "envelope.h"
#include "events.h"
#include "rpc.h"
#include <jansson.h>
#include <stdbool.h>

typedef struct {
    const envelope_request_t *request; // method, request_id, viewer_id, deadline_ms, args
    const json_t *args;                // == request->args, always an object
    int64_t viewer_id;                 // 0 = anonymous
    db_t *db;                          // this thread's connection (NULL if no database)
    rpc_client_t *rpc;                 // this thread's client for calls to other services
    void *state;                       // service_def_t.state
    //  The request's optional BLOB frame (docs/protocol.md): borrowed, valid
    //  during the call; NULL when the request carried none.
    const void *blob;
    size_t blob_size;
    //  A handler may set a reply blob: a malloc'd buffer the framework
    //  sends after the reply envelope and then frees (also on error).
    void *reply_blob;
    size_t reply_blob_size;
    //  A handler may answer with a reply envelope it packed itself (malloc'd
    //  msgpack, {status, body}), to pass on another service's body without
    //  building it as a jansson tree (feed's timeline splices media's
    //  posts). The framework sends it in place of the returned reply, which
    //  then only gives the status for the log, and frees it.
    void *reply_packed;
    size_t reply_packed_size;
} call_t;

typedef json_t *(*service_handler_fn)(call_t *call);

typedef struct {
    const char *method; // "users.get"
    service_handler_fn handler;
} service_method_t;

typedef struct {
    const char *name;                // "identity": broker service, schema, log program
    const char *usage;               // one paragraph for --help
    const service_method_t *methods; // ends with {NULL, NULL}
    const events_route_t *consumes;  // ends with {NULL, NULL}; NULL if none
    bool produces_events;            // outbox publisher + events.replay
    bool uses_database;              // connect and migrate schemas/<name>/
    void *state;                     // handed to handlers and event handlers
    //  Optional: runs once after migrations, before workers start. 0 or -1.
    int (*on_start)(db_t *db, void *state);
    //  Optional: variable names to log at start beside the common ones.
    const char *const *config_names;
} service_def_t;

//  Runs the service until SIGTERM/SIGINT. Returns the process exit code.
int service_main(const service_def_t *def, int argc, char **argv);

//  Runs one request through def's method table (used by service_main's
//  workers and by tests). Returns a new reply object, never NULL.
json_t *service_dispatch(const service_def_t *def, call_t *call);

#endif
