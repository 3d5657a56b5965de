/*  events: the outbox, the ordered publisher, replay and the subscriber
    (DESIGN.md decision 3; the wire format is in docs/protocol.md).

    Producing. events_emit() inserts a row into the producer's own `outbox`
    table inside the caller's open transaction, so the event exists iff the
    change committed. One publisher per producer (elected with a Postgres
    advisory lock, so scaled-out copies do not publish twice) numbers the
    committed rows 1, 2, 3… in commit order and publishes each on the PUB
    socket as two frames: the topic "<producer>.<event>" and the msgpack
    event {producer, seq, topic, request_id, created_ms, payload}. Every
    producer serves `events.replay {since, limit}` from the same table.

    Consuming. A subscriber thread keeps, in the consumer's own schema, the
    last seq it handled per producer (`event_offsets`), updated in the same
    transaction as the handler's effect. An event at last+1 is handled; one
    at or below last is a duplicate and skipped; one above last+1 means a
    gap, filled by calling the producer's events.replay before going on. It
    also replays at start and every few seconds, so a consumer that was
    down, or missed the last event of a burst, catches up. Handlers must be
    idempotent anyway (at-least-once across failures of the handler's
    transaction); a handler that fails is retried, never skipped. A
    backlog is handled in batches: one transaction (and one offset update)
    for up to 500 events of one producer, in seq order; a handler may
    therefore see, in its transaction, what the handlers of earlier events
    of the batch wrote. Optional batch hooks (EVENTS_BATCH_END/RESET) let a
    consumer do deferred work once per transaction.
*/
#ifndef EVENTS_H_INCLUDED
#define EVENTS_H_INCLUDED

#include "db.h"
#include <jansson.h>
#include <stdint.h>

typedef struct {
    const char *producer;   // "identity"
    int64_t seq;            // 1, 2, 3… per producer
    const char *topic;      // "user.created" (without the producer)
    const char *request_id; // of the request that caused it, "" if none
    int64_t created_ms;
    const json_t *payload; // object
} event_t;

//  Creates the outbox and event_offsets tables in db's schema if missing.
int events_ensure_tables(db_t *db);

//  Inside the caller's transaction (asserted): appends topic ("post.created")
//  with payload (borrowed) to the outbox. request_id: the thread's log id.
//  Returns 0 or -1.
int events_emit(db_t *db, const char *topic, const json_t *payload);

//  events_emit for many events of one topic in one statement (bulk writers
//  such as the benchmark seed methods): payloads is an array of objects
//  (borrowed), appended in array order. Inside the caller's transaction
//  (asserted). An empty array is a no-op. Returns 0 or -1.
int events_emit_many(db_t *db, const char *topic, const json_t *payloads);

//  An event emitted by the statement that makes its change: one round trip
//  instead of BEGIN, the change, events_emit and COMMIT, for a hot write
//  that fits one statement (a like). A statement is atomic on its own, so
//  the change and its outbox row still commit or roll back together.
//  events_inline_init checks topic and payload (borrowed) as events_emit
//  does and fills the texts to bind; the statement then holds a CTE
//
//      emitted AS (EVENTS_INLINE_INSERT("changed", "$4", "$5", "$6", "$7"))
//
//  which appends one outbox row per row of the CTE "changed" (none: no
//  event) and asks for the publisher's wake-up at commit; $4..$7 bound to
//  topic, payload, request_id and channel. The statement must read
//  "emitted" (SELECT count(*) FROM emitted) so the caller can tell.
typedef struct {
    const char *topic;
    char *payload;          // the msgpack bytes in bytea's hex input form
    const char *request_id; // the thread's log id: bind it before the request ends
    char channel[72];       // the producer's NOTIFY channel
} events_inline_t;

#define EVENTS_INLINE_INSERT(rows, topic, payload, request_id, channel)                            \
    "INSERT INTO outbox (topic, payload, request_id) SELECT " topic "::text, " payload             \
    "::bytea, " request_id "::text FROM " rows " RETURNING pg_notify(" channel "::text, '')"

//  Returns 0, or -1 (logged) for a bad topic or payload; then nothing to clear.
int events_inline_init(events_inline_t *self, db_t *db, const char *topic, const json_t *payload);
void events_inline_clear(events_inline_t *self);

//  ---- publisher ---------------------------------------------------------
typedef struct events_publisher_t events_publisher_t;

//  Starts the publisher thread for producer (= schema name). pub_endpoint is
//  the broker's XSUB endpoint (EVENTS_PUB_URL). NULL on failure.
events_publisher_t *events_publisher_new(const char *database_url, const char *producer,
                                         const char *pub_endpoint);
void events_publisher_destroy(events_publisher_t **self_p);

//  The events.replay handler: args {since: int, limit?: int <= 1000};
//  returns a reply {status:200, body:{events:[…], last_seq}} where last_seq
//  is the highest seq assigned so far.
json_t *events_replay(db_t *db, const json_t *args);

//  ---- subscriber --------------------------------------------------------
typedef int (*events_handler_fn)(db_t *db, const event_t *event, void *state);

typedef struct {
    const char *topic;         // "media.post.created": producer, dot, event
    events_handler_fn handler; // runs inside the offset's transaction (shared with the
                               // batch's earlier events); 0 ok, -1 retry
} events_route_t;

//  Batch hooks: a routes table may also hold, at most once each, a route
//  whose topic is one of these pseudo-topics; its handler is then called
//  with event NULL (and the subscriber's state), for a consumer that defers
//  work to do once per transaction instead of once per event (notification
//  collects its WebSocket pushes and builds them with one users.batch):
//    EVENTS_BATCH_END    inside every transaction the subscriber opens to
//                        handle events (a batch of one or many), after the
//                        last handler and before the offset update and the
//                        commit. -1 fails the transaction like a failing
//                        handler (rolled back; a batch then goes event by
//                        event). A single live event is a batch of one, so
//                        what it defers still happens before its commit.
//    EVENTS_BATCH_RESET  after each rollback of such a transaction (a
//                        handler, the end hook, the offset update or the
//                        commit failed; or a duplicate or gap was found
//                        before any handler ran), so what the rolled-back
//                        events deferred is forgotten before they run again.
#define EVENTS_BATCH_END "$batch.end"
#define EVENTS_BATCH_RESET "$batch.reset"

typedef struct events_subscriber_t events_subscriber_t;

//  Starts a subscriber thread consuming every producer named in routes
//  (NULL-terminated by a route with topic NULL; at least one real topic,
//  besides any batch hooks), with its own connection
//  to database_url in schema, its SUB socket on sub_endpoint
//  (EVENTS_SUB_URL) and an rpc client on broker_endpoint for replays.
events_subscriber_t *events_subscriber_new(const char *database_url, const char *schema,
                                           const char *sub_endpoint, const char *broker_endpoint,
                                           const events_route_t *routes, void *state);
void events_subscriber_destroy(events_subscriber_t **self_p);

#endif
