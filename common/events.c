/*  events: outbox, ordered publisher, replay and subscriber (see events.h;
    the wire format is in docs/protocol.md).

    Tables, in the service's own schema:
      outbox(id bigserial, seq bigint unique, topic, payload bytea,
             request_id, created_at)      seq is NULL until published
      event_offsets(producer, last_seq)   what this consumer has handled

    The payload is stored as its msgpack encoding (bytea): the publisher
    splices those bytes into the event it sends without decoding them, and
    replay decodes them once. db_query takes text parameters only, so
    events_emit passes the bytes in bytea's hex input form ("\x0a1b…").

    Emitting. One statement inserts the row (events_emit_many: a chunk of
    rows of one topic, from one hex-encoded parameter) and calls pg_notify on the
    channel "events_<producer>"; Postgres delivers the notification only if
    and when the transaction commits, so the publisher wakes within
    milliseconds of a commit and never for a rolled-back event. A hot write
    that fits one statement carries the same INSERT as a CTE of its own
    statement (events_inline_t), which saves the round trips of an explicit
    transaction: the statement alone is atomic.

    Numbering. seq is assigned by the publisher, not at insert time: rows are
    numbered in the order they become visible (committed), so consumers
    never see seq n+1 while n is still invisible in an open transaction,
    which would be an unfillable gap. The assigning transaction takes a
    transaction-level advisory lock ("outbox-seq:<producer>") before reading
    max(seq), so even two publishers that both believe they lead (one whose
    connection was just replaced) cannot hand out a number twice.

    Publisher thread (zactor). Owns its connection and its PUB socket. It
    leads while it holds the session advisory lock "outbox:<producer>"
    (pg_try_advisory_lock, retried every second by the others; a lost
    connection loses the lock, noticed by the backend pid changing). The
    leader LISTENs, waits on the connection's socket and the actor pipe, and
    also polls every 500 ms as a safety net. A commit after a quiet spell is
    published at once; one that comes within EVENTS_PUBLISH_LINGER_MS of the
    last round waits for that much to have passed, with the connection's
    socket out of the poll, so a busy producer (a like a millisecond) is
    numbered a few rows a round and not one: every round is a transaction
    of three statements. Each round numbers up to 500
    unpublished rows in one transaction, commits, then sends each as two
    frames: "<producer>.<topic>" and the msgpack map {producer, seq, topic,
    request_id, created_ms, payload}. A crash between commit and send loses
    only the live copy: consumers find the event by replay.

    Subscriber thread (zactor). Owns a connection to the consumer's schema,
    a SUB socket subscribed to "<producer>." for every producer named in the
    routes, and an rpc client for events.replay. Events run in one
    transaction per batch of one producer's events (a replay page, or the
    run of live events waiting on the socket, at most EVENTS_HANDLE_BATCH,
    gathered for EVENTS_LINGER_MS first while the stream is busy):
    lock the producer's offset row (inserted at 0 when missing), and for
    each event compare, run the route's handler; then store the new
    offset, commit. So the handlers' effects and the offset commit or roll
    back together, and several instances of one consumer (scaled out)
    serialize on the offset row: each event's effect happens once. A
    backlog costs one commit per batch, not per event (measured in
    docs/benchmarks.md, "Seeding"). When a handler fails inside a batch,
    the batch is rolled back and its events go again one transaction
    each, which commits those before the failing one and stalls on it. A cached lower
    bound of the offset lets duplicates be dropped without a round trip.
    A gap (seq > last + 1) triggers a replay at once; a replay also runs at
    start and every EVENTS_REPLAY_MS (default 3000), which catches the last
    event of a burst whose live copy was lost. A failing handler stalls its
    producer: the event is kept and retried with a doubling backoff (100 ms
    to 5 s), live events of that producer are dropped meanwhile (replay
    brings them back once the stall clears). Frames that do not parse, or
    whose fields do not agree, are logged and dropped.
*/
#include "events.h"

#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "msgjson.h"
#include "protocol.h"
#include "rpc.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_BATCH 500           // rows numbered per publisher round
#define EVENTS_PUBLISH_ROUNDS 20   // rounds per wake-up before looking at the pipe
#define EVENTS_POLL_MS 500         // the leader's safety-net poll
#define EVENTS_ELECTION_MS 1000    // how often a follower tries to lead
#define EVENTS_REPLAY_MS 3000      // subscriber's periodic replay (EVENTS_REPLAY_MS)
#define EVENTS_REPLAY_LIMIT 500    // default and page size of a replay
#define EVENTS_HANDLE_BATCH 500    // events of one producer handled in one transaction
#define EVENTS_LINGER_MS 10        // how long a busy stream is gathered before a batch
#define EVENTS_PUBLISH_LINGER_MS 5 // least time between publisher rounds while busy
#define EVENTS_TRIM_BATCHED 10000  // events handled in batches before an idle subscriber trims
#define EVENTS_REPLAY_LIMIT_MAX 1000
#define EVENTS_REPLAY_PAGES 20      // pages per replay call before looking at the pipe
#define EVENTS_RPC_TIMEOUT_MS 3000  // one replay call
#define EVENTS_REPLAY_RETRY_MS 1000 // after a failed replay call
#define EVENTS_RETRY_MIN_MS 100
#define EVENTS_RETRY_MAX_MS 5000
#define EVENTS_TOPIC_MAX 128
#define EVENTS_PUB_HWM 100000
//  Same key as db.c's migration lock: table creation and migrations of one
//  schema never run at the same time.
#define EVENTS_SCHEMA_LOCK "7301"

//  ---- tables and emit ---------------------------------------------------------

int events_ensure_tables(db_t *db)
{
    assert(db);
    bool own_transaction = !db_in_transaction(db);
    if (own_transaction && db_begin(db) != 0) return -1;
    const char *params[] = {EVENTS_SCHEMA_LOCK, db_schema(db)};
    int rc = -1;
    //  Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog,
    //  hence the lock.
    if (db_exec(db, "SELECT pg_advisory_xact_lock($1::int, hashtext($2))", 2, params) >= 0 &&
        db_exec_script(db, "CREATE TABLE IF NOT EXISTS outbox ("
                           " id bigserial PRIMARY KEY,"
                           " seq bigint UNIQUE,"
                           " topic text NOT NULL,"
                           " payload bytea NOT NULL,"
                           " request_id text NOT NULL DEFAULT '',"
                           " created_at timestamptz NOT NULL DEFAULT now());"
                           "CREATE INDEX IF NOT EXISTS outbox_unpublished"
                           " ON outbox (id) WHERE seq IS NULL;"
                           "CREATE TABLE IF NOT EXISTS event_offsets ("
                           " producer text PRIMARY KEY,"
                           " last_seq bigint NOT NULL)") == 0)
        rc = 0;
    if (own_transaction) {
        if (rc == 0)
            rc = db_commit(db);
        else
            db_rollback(db);
    }
    return rc;
}

//  The NOTIFY channel of a producer. Returns -1 if the name does not fit.
static int s_channel(const char *producer, char *channel, size_t size)
{
    int length = snprintf(channel, size, "events_%s", producer);
    return length > 0 && (size_t)length < size && length <= 63 ? 0 : -1;
}

//  bytea hex input text for data: "\x" then two hex digits per byte.
static char *s_bytea_text(const char *data, size_t size)
{
    static const char digits[] = "0123456789abcdef";
    char *text = (char *)zmalloc(2 * size + 3);
    text[0] = '\\';
    text[1] = 'x';
    for (size_t i = 0; i < size; i++) {
        text[2 + 2 * i] = digits[(unsigned char)data[i] >> 4];
        text[3 + 2 * i] = digits[(unsigned char)data[i] & 15];
    }
    return text;
}

//  What every emitter checks first: a topic of 1..EVENTS_TOPIC_MAX bytes, a
//  payload of the right shape (shape_ok) and a producer name that makes a
//  NOTIFY channel (into channel). 0 or -1. events_emit and events_emit_many
//  add their own statement to the caller's transaction, which must be open.
static int s_emit_check(db_t *db, const char *topic, bool shape_ok, const char *who, char *channel,
                        size_t size)
{
    assert(db);
    assert(topic);
    size_t topic_length = strlen(topic);
    if (topic_length == 0 || topic_length > EVENTS_TOPIC_MAX || !shape_ok ||
        s_channel(db_schema(db), channel, size) != 0) {
        log_error("%s: bad topic, payload or producer name", who);
        return -1;
    }
    return 0;
}

//  Checks topic and payload and fills self for them; who names the caller
//  in the log. 0, or -1 with nothing to clear.
static int s_inline_fill(events_inline_t *self, db_t *db, const char *topic, const json_t *payload,
                         const char *who)
{
    assert(self);
    memset(self, 0, sizeof *self);
    if (s_emit_check(db, topic, json_is_object(payload), who, self->channel, sizeof self->channel))
        return -1;
    size_t size = 0;
    char *packed = msgjson_encode(payload, &size);
    if (!packed) {
        log_error("%s: cannot encode the payload of %s", who, topic);
        return -1;
    }
    self->payload = s_bytea_text(packed, size);
    free(packed);
    self->topic = topic;
    self->request_id = log_request_id();
    return 0;
}

//  The outbox row of one event, as its own statement in the caller's
//  transaction: EVENTS_INLINE_INSERT over a one-row source.
// clang-format off
#define EMIT_SQL                                                                                   \
    "WITH one AS (SELECT 1),"                                                                      \
    " emitted AS (" EVENTS_INLINE_INSERT("one", "$1", "$2", "$3", "$4") ")"                        \
    " SELECT 1 FROM emitted"
// clang-format on

int events_emit(db_t *db, const char *topic, const json_t *payload)
{
    assert(db_in_transaction(db));
    events_inline_t event;
    if (s_inline_fill(&event, db, topic, payload, "events_emit") != 0) return -1;
    const char *params[] = {event.topic, event.payload, event.request_id, event.channel};
    long rows = db_exec(db, EMIT_SQL, 4, params);
    events_inline_clear(&event);
    return rows == 1 ? 0 : -1;
}

int events_inline_init(events_inline_t *self, db_t *db, const char *topic, const json_t *payload)
{
    return s_inline_fill(self, db, topic, payload, "events_inline_init");
}

void events_inline_clear(events_inline_t *self)
{
    if (self) freen(self->payload);
}

int events_emit_many(db_t *db, const char *topic, const json_t *payloads)
{
    assert(db_in_transaction(db));
    char channel[72];
    if (s_emit_check(db, topic, json_is_array(payloads), "events_emit_many", channel,
                     sizeof channel))
        return -1;
    size_t count = json_array_size(payloads);
    if (count == 0) return 0;
    //  One text parameter: the payloads' msgpack bytes in hex, separated by
    //  commas (hex never holds one), split and decoded by the statement.
    //  No array-literal quoting, and the rows keep the array's order.
    static const char digits[] = "0123456789abcdef";
    size_t used = 0, capacity = count * 256;
    char *hex = (char *)zmalloc(capacity);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const json_t *payload = json_array_get(payloads, i);
        size_t size = 0;
        char *packed = json_is_object(payload) ? msgjson_encode(payload, &size) : NULL;
        if (!packed) {
            log_error("events_emit_many: payload %zu of %s is not an encodable object", i, topic);
            rc = -1;
            break;
        }
        if (used + 2 * size + 2 > capacity) {
            capacity = 2 * (used + 2 * size + 2);
            hex = (char *)realloc(hex, capacity);
            assert(hex);
        }
        if (i > 0) hex[used++] = ',';
        for (size_t b = 0; b < size; b++) {
            hex[used++] = digits[(unsigned char)packed[b] >> 4];
            hex[used++] = digits[(unsigned char)packed[b] & 15];
        }
        hex[used] = '\0';
        free(packed);
    }
    if (rc == 0) {
        const char *params[] = {topic, hex, log_request_id(), channel};
        long rows = db_exec(db,
                            "WITH inserted AS ("
                            " INSERT INTO outbox (topic, payload, request_id)"
                            " SELECT $1, decode(h, 'hex'), $3"
                            " FROM unnest(string_to_array($2, ',')) WITH ORDINALITY AS x(h, n)"
                            " ORDER BY n RETURNING id)"
                            " SELECT pg_notify($4, '') FROM (SELECT 1 FROM inserted LIMIT 1) one",
                            4, params);
        rc = rows == 1 ? 0 : -1;
        if (rc != 0) log_error("events_emit_many: cannot insert %zu %s events", count, topic);
    }
    freen(hex);
    return rc;
}

//  ---- replay ------------------------------------------------------------------

//  Decodes a bytea column (text form) holding msgpack into a value; an
//  undecodable payload becomes {} (logged) so one bad row cannot wedge
//  every consumer.
static json_t *s_payload_value(const char *text, int64_t seq)
{
    size_t size = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)text, &size);
    json_t *value = bytes ? msgjson_decode(bytes, size) : NULL;
    if (bytes) PQfreemem(bytes);
    if (!json_is_object(value)) {
        log_error("events: outbox row seq %" PRId64 " has an unreadable payload", seq);
        json_decref(value);
        value = json_object();
    }
    return value;
}

json_t *events_replay(db_t *db, const json_t *args)
{
    assert(db);
    json_t *fields = json_object();
    json_t *since_value = json_object_get(args, "since");
    json_t *limit_value = json_object_get(args, "limit");
    json_int_t since = 0, limit = EVENTS_REPLAY_LIMIT;
    if (!json_is_object(args))
        json_object_set_new(fields, "since", json_string("required"));
    else if (!json_is_integer(since_value) || json_integer_value(since_value) < 0)
        json_object_set_new(fields, "since", json_string("must be an integer >= 0"));
    else
        since = json_integer_value(since_value);
    if (limit_value && !json_is_null(limit_value)) {
        if (!json_is_integer(limit_value) || json_integer_value(limit_value) < 1)
            json_object_set_new(fields, "limit", json_string("must be an integer >= 1"));
        else
            limit = json_integer_value(limit_value);
        if (limit > EVENTS_REPLAY_LIMIT_MAX) limit = EVENTS_REPLAY_LIMIT_MAX;
    }
    if (json_object_size(fields) > 0) return reply_invalid(fields, "invalid replay arguments");
    json_decref(fields);

    char since_text[24], limit_text[24];
    snprintf(since_text, sizeof since_text, "%" JSON_INTEGER_FORMAT, since);
    snprintf(limit_text, sizeof limit_text, "%" JSON_INTEGER_FORMAT, limit);
    const char *params[] = {since_text, limit_text};
    PGresult *rows = db_query(db,
                              "SELECT seq, topic, request_id,"
                              " (extract(epoch FROM created_at) * 1000)::bigint, payload"
                              " FROM outbox WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int",
                              2, params);
    //  Read after the rows, so last_seq is never below the last row sent.
    PGresult *last =
        rows ? db_query(db, "SELECT coalesce(max(seq), 0) FROM outbox", 0, NULL) : NULL;
    if (!rows || !last) {
        PQclear(rows);
        return reply_error(500, ERR_INTERNAL, "cannot read the outbox");
    }
    json_t *events = json_array();
    for (int row = 0; row < PQntuples(rows); row++) {
        int64_t seq = strtoll(PQgetvalue(rows, row, 0), NULL, 10);
        json_t *event = json_object();
        json_object_set_new(event, "seq", json_integer(seq));
        json_object_set_new(event, "topic", json_string(PQgetvalue(rows, row, 1)));
        json_object_set_new(event, "request_id", json_string(PQgetvalue(rows, row, 2)));
        json_object_set_new(event, "created_ms",
                            json_integer(strtoll(PQgetvalue(rows, row, 3), NULL, 10)));
        json_object_set_new(event, "payload", s_payload_value(PQgetvalue(rows, row, 4), seq));
        json_array_append_new(events, event);
    }
    json_t *body = json_object();
    json_object_set_new(body, "events", events);
    json_object_set_new(body, "last_seq", json_integer(strtoll(PQgetvalue(last, 0, 0), NULL, 10)));
    PQclear(rows);
    PQclear(last);
    return reply_ok(200, body);
}

//  ---- publisher ---------------------------------------------------------------

struct events_publisher_t {
    zactor_t *actor;
};

typedef struct {
    db_t *db;
    zsock_t *pub;
    char *producer;
    char channel[72];
    bool leader;
    int backend_pid;    // of the session that holds the lock
    int64_t linger_ms;  // EVENTS_PUBLISH_LINGER_MS
    int64_t last_round; // zclock_mono() after the last round that published
} publisher_t;

static void s_publisher_free(publisher_t **self_p)
{
    publisher_t *self = *self_p;
    if (!self) return;
    db_destroy(&self->db);
    zsock_destroy(&self->pub);
    freen(self->producer);
    freen(self);
    *self_p = NULL;
}

static void s_pack_string(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    msgpack_pack_str(packer, length);
    msgpack_pack_str_body(packer, text, length);
}

//  Sends one numbered row (seq, topic, request_id, created_ms, payload).
static void s_publish_row(publisher_t *self, PGresult *rows, int row)
{
    const char *topic = PQgetvalue(rows, row, 1);
    size_t payload_size = 0;
    unsigned char *payload =
        PQunescapeBytea((const unsigned char *)PQgetvalue(rows, row, 4), &payload_size);
    if (!payload) {
        log_error("events: cannot read the payload of %s seq %s", topic, PQgetvalue(rows, row, 0));
        return; // consumers find it by replay, which copes
    }
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 6);
    s_pack_string(&packer, "producer");
    s_pack_string(&packer, self->producer);
    s_pack_string(&packer, "seq");
    msgpack_pack_int64(&packer, strtoll(PQgetvalue(rows, row, 0), NULL, 10));
    s_pack_string(&packer, "topic");
    s_pack_string(&packer, topic);
    s_pack_string(&packer, "request_id");
    s_pack_string(&packer, PQgetvalue(rows, row, 2));
    s_pack_string(&packer, "created_ms");
    msgpack_pack_int64(&packer, strtoll(PQgetvalue(rows, row, 3), NULL, 10));
    s_pack_string(&packer, "payload");
    //  The stored bytes are already one msgpack value: append them as is.
    msgpack_sbuffer_write(&buffer, (const char *)payload, payload_size);
    PQfreemem(payload);

    zmsg_t *msg = zmsg_new();
    zmsg_addstrf(msg, "%s.%s", self->producer, topic);
    zmsg_addmem(msg, buffer.data, buffer.size);
    msgpack_sbuffer_destroy(&buffer);
    if (zmsg_send(&msg, self->pub) != 0) {
        log_warn("events: cannot send %s.%s", self->producer, topic);
        zmsg_destroy(&msg);
    }
}

//  Numbers up to EVENTS_BATCH unpublished rows and sends them. Returns how
//  many were sent, or -1.
static int s_publish_batch(publisher_t *self)
{
    db_t *db = self->db;
    if (db_begin(db) != 0) return -1;
    const char *params[] = {self->producer};
    PGresult *rows = NULL;
    if (db_exec(db, "SELECT pg_advisory_xact_lock(hashtext('outbox-seq:' || $1))", 1, params) >= 0)
        rows = db_query(db,
                        "WITH todo AS ("
                        "  SELECT id FROM outbox WHERE seq IS NULL ORDER BY id LIMIT 500"
                        "  FOR UPDATE),"
                        " base AS (SELECT coalesce(max(seq), 0) AS last FROM outbox),"
                        " numbered AS ("
                        "  SELECT todo.id, base.last + row_number() OVER (ORDER BY todo.id) AS seq"
                        "  FROM todo, base),"
                        " assigned AS ("
                        "  UPDATE outbox SET seq = numbered.seq FROM numbered"
                        "  WHERE outbox.id = numbered.id"
                        "  RETURNING outbox.seq, outbox.topic, outbox.request_id,"
                        "   (extract(epoch FROM outbox.created_at) * 1000)::bigint AS created_ms,"
                        "   outbox.payload)"
                        " SELECT seq, topic, request_id, created_ms, payload"
                        " FROM assigned ORDER BY seq",
                        0, NULL);
    if (!rows) {
        db_rollback(db);
        return -1;
    }
    int count = PQntuples(rows);
    if (count == 0) {
        db_rollback(db);
        PQclear(rows);
        return 0;
    }
    if (db_commit(db) != 0) {
        PQclear(rows);
        return -1;
    }
    for (int row = 0; row < count; row++)
        s_publish_row(self, rows, row);
    PQclear(rows);
    return count;
}

//  Publishes what is pending, at most EVENTS_PUBLISH_ROUNDS batches so the
//  actor keeps answering its pipe during a large backlog. True when more
//  rows may be waiting.
static bool s_publish_pending(publisher_t *self)
{
    bool more = true;
    int total = 0;
    for (int round = 0; round < EVENTS_PUBLISH_ROUNDS && more; round++) {
        int sent = s_publish_batch(self);
        if (sent < 0) log_warn("events: publishing %s failed; retrying", self->producer);
        if (sent > 0) total += sent;
        more = sent >= EVENTS_BATCH;
    }
    //  Only a round that found rows makes the stream busy: the safety-net
    //  polls of an idle producer must not hold back its next commit.
    if (total > 0) self->last_round = zclock_mono();
    return more;
}

//  Tries to become the producer's publisher. True when this thread leads.
static bool s_elect(publisher_t *self)
{
    const char *params[] = {self->producer};
    PGresult *result =
        db_query(self->db, "SELECT pg_try_advisory_lock(hashtext('outbox:' || $1))", 1, params);
    bool won = result && streq(PQgetvalue(result, 0, 0), "t");
    PQclear(result);
    if (!won) return false;
    PGconn *conn = db_conn(self->db);
    char *quoted = PQescapeIdentifier(conn, self->channel, strlen(self->channel));
    char *listen = quoted ? zsys_sprintf("LISTEN %s", quoted) : NULL;
    int rc = listen ? db_exec_script(self->db, listen) : -1;
    if (quoted) PQfreemem(quoted);
    zstr_free(&listen);
    if (rc != 0) {
        db_exec(self->db, "SELECT pg_advisory_unlock(hashtext('outbox:' || $1))", 1, params);
        return false;
    }
    self->backend_pid = PQbackendPID(db_conn(self->db));
    log_info("events: publishing %s", self->producer);
    return true;
}

//  True while the session that took the lock is still ours.
static bool s_still_leader(publisher_t *self)
{
    PGconn *conn = db_conn(self->db);
    return PQstatus(conn) == CONNECTION_OK && PQbackendPID(conn) == self->backend_pid;
}

//  Drains notifications; true when at least one arrived.
static bool s_drain_notifications(publisher_t *self)
{
    PGconn *conn = db_conn(self->db);
    if (PQstatus(conn) != CONNECTION_OK || !PQconsumeInput(conn)) return false;
    bool any = false;
    PGnotify *notify;
    while ((notify = PQnotifies(conn))) {
        any = true;
        PQfreemem(notify);
    }
    return any;
}

static void s_publisher_actor(zsock_t *pipe, void *args)
{
    publisher_t *self = (publisher_t *)args;
    zsock_signal(pipe, 0);
    int64_t next_election = 0, next_poll = 0;
    bool wake = true;
    while (true) {
        int64_t now = zclock_mono();
        if (self->leader && !s_still_leader(self)) {
            log_warn("events: lost the publisher lock of %s", self->producer);
            self->leader = false;
            next_election = now;
        }
        if (!self->leader && now >= next_election) {
            self->leader = s_elect(self);
            next_election = now + EVENTS_ELECTION_MS;
            wake = self->leader;
        }
        //  Busy: the last round that published was under linger_ms ago
        //  (see the top).
        int64_t gather_until = self->last_round + self->linger_ms;
        bool gathering = self->leader && wake && now < gather_until;
        if (self->leader && !gathering && (wake || now >= next_poll)) {
            //  Notifications so far are covered by this round; any that
            //  libpq reads while the round runs mean a later commit.
            s_drain_notifications(self);
            wake = s_publish_pending(self);
            wake = s_drain_notifications(self) || wake;
            next_poll = zclock_mono() + EVENTS_POLL_MS;
        }
        now = zclock_mono();
        int64_t until = !self->leader ? next_election
                        : gathering   ? gather_until
                        : wake        ? now
                                      : next_poll;
        long timeout = until > now ? (long)(until - now) : 0;
        zmq_pollitem_t items[2] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}};
        int count = 1;
        PGconn *conn = db_conn(self->db);
        if (self->leader && !gathering && PQstatus(conn) == CONNECTION_OK && PQsocket(conn) >= 0) {
            items[1] = (zmq_pollitem_t){NULL, PQsocket(conn), ZMQ_POLLIN, 0};
            count = 2;
        }
        if (zmq_poll(items, count, timeout) < 0) continue; // EINTR
        if (items[0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv(pipe);
            bool stop = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (stop) break;
        }
        if (count == 2 && (items[1].revents & ZMQ_POLLIN))
            wake = s_drain_notifications(self) || PQstatus(conn) != CONNECTION_OK || wake;
    }
    s_publisher_free(&self);
}

events_publisher_t *events_publisher_new(const char *database_url, const char *producer,
                                         const char *pub_endpoint)
{
    assert(database_url && producer && pub_endpoint);
    publisher_t *state = (publisher_t *)zmalloc(sizeof(publisher_t));
    state->producer = strdup(producer);
    if (!protocol_valid_service(producer, strlen(producer)) || strchr(producer, '.') ||
        s_channel(producer, state->channel, sizeof state->channel) != 0) {
        log_error("events: invalid producer name '%s'", producer);
        s_publisher_free(&state);
        return NULL;
    }
    state->linger_ms = config_int("EVENTS_PUBLISH_LINGER_MS", EVENTS_PUBLISH_LINGER_MS);
    if (state->linger_ms < 0 || state->linger_ms > 1000)
        state->linger_ms = EVENTS_PUBLISH_LINGER_MS;
    state->last_round = INT64_MIN / 2; // no round yet: the first commit goes at once
    state->db = db_new(database_url, producer);
    if (!state->db || events_ensure_tables(state->db) != 0) {
        s_publisher_free(&state);
        return NULL;
    }
    state->pub = zsock_new(ZMQ_PUB);
    if (!state->pub) {
        s_publisher_free(&state);
        return NULL;
    }
    zsock_set_sndhwm(state->pub, EVENTS_PUB_HWM);
    zsock_set_linger(state->pub, 500); // the last events of a clean stop still leave
    if (zsock_connect(state->pub, "%s", pub_endpoint) != 0) {
        log_error("events: cannot connect the publisher to %s", pub_endpoint);
        s_publisher_free(&state);
        return NULL;
    }
    events_publisher_t *self = (events_publisher_t *)zmalloc(sizeof(events_publisher_t));
    //  From here the actor thread owns state (and frees it).
    self->actor = zactor_new(s_publisher_actor, state);
    if (!self->actor) {
        s_publisher_free(&state);
        freen(self);
        return NULL;
    }
    return self;
}

void events_publisher_destroy(events_publisher_t **self_p)
{
    assert(self_p);
    events_publisher_t *self = *self_p;
    if (!self) return;
    zactor_destroy(&self->actor);
    freen(self);
    *self_p = NULL;
}

//  ---- subscriber --------------------------------------------------------------

struct events_subscriber_t {
    zactor_t *actor;
};

typedef struct {
    char *name;
    int64_t last_known; // lower bound of the stored offset (others may be ahead)
    json_t *pending;    // an event whose handler failed, retried at retry_at
    int64_t retry_at;   // mono ms
    int backoff_ms;
    bool replay_wanted;
    bool replay_failing; // to log a failing replay once, not every round
} producer_t;

typedef struct {
    db_t *db;
    zsock_t *sub;
    rpc_client_t *rpc;
    events_route_t *routes; // copy; topics owned
    size_t route_count;
    producer_t *producers;
    size_t producer_count;
    void *state;
    int64_t replay_ms;
    size_t batch_max;              // events a transaction (EVENTS_HANDLE_BATCH; 1 = one each)
    int64_t linger_ms;             // EVENTS_LINGER_MS: gather a busy stream this long
    int64_t last_drain;            // when the last drain ended (zclock_mono)
    size_t batched;                // events handled in batches since the last trim
    events_handler_fn batch_end;   // EVENTS_BATCH_END route, or NULL
    events_handler_fn batch_reset; // EVENTS_BATCH_RESET route, or NULL
} subscriber_t;

typedef enum { HANDLED, DUPLICATE, GAP, FAILED } outcome_t;

static void s_subscriber_free(subscriber_t **self_p)
{
    subscriber_t *self = *self_p;
    if (!self) return;
    db_destroy(&self->db);
    zsock_destroy(&self->sub);
    rpc_client_destroy(&self->rpc);
    for (size_t i = 0; i < self->route_count; i++)
        free((char *)self->routes[i].topic);
    freen(self->routes);
    for (size_t i = 0; i < self->producer_count; i++) {
        freen(self->producers[i].name);
        json_decref(self->producers[i].pending);
    }
    freen(self->producers);
    freen(self);
    *self_p = NULL;
}

static producer_t *s_find_producer(subscriber_t *self, const char *name, size_t length)
{
    for (size_t i = 0; i < self->producer_count; i++)
        if (strlen(self->producers[i].name) == length &&
            memcmp(self->producers[i].name, name, length) == 0)
            return &self->producers[i];
    return NULL;
}

static const events_route_t *s_find_route(subscriber_t *self, const event_t *event)
{
    size_t producer_length = strlen(event->producer);
    for (size_t i = 0; i < self->route_count; i++) {
        const char *topic = self->routes[i].topic;
        if (strncmp(topic, event->producer, producer_length) == 0 &&
            topic[producer_length] == '.' && streq(topic + producer_length + 1, event->topic))
            return &self->routes[i];
    }
    return NULL;
}

//  Rolls the handling transaction back and tells the consumer (its
//  EVENTS_BATCH_RESET hook) to forget what the rolled-back events deferred.
static void s_abort(subscriber_t *self)
{
    db_rollback(self->db);
    if (self->batch_reset) self->batch_reset(self->db, NULL, self->state);
}

//  Runs the EVENTS_BATCH_END hook inside the handling transaction, before
//  the offset update and the commit. 0, or -1 when it failed (or ended the
//  transaction): the caller aborts as for a failing handler.
static int s_batch_end(subscriber_t *self)
{
    if (!self->batch_end) return 0;
    int rc = self->batch_end(self->db, NULL, self->state);
    if (rc == 0 && db_in_transaction(self->db)) return 0;
    log_warn("events: the batch end hook failed");
    return -1;
}

//  A string member without NUL bytes, or NULL.
static const char *s_text(const json_t *object, const char *key, size_t max)
{
    json_t *value = json_object_get(object, key);
    if (!json_is_string(value)) return NULL;
    const char *text = json_string_value(value);
    size_t length = json_string_length(value);
    return strlen(text) == length && length <= max ? text : NULL;
}

//  Fills event from a decoded event object; borrowed pointers into it.
//  -1 when a field is missing, of the wrong type or out of range.
static int s_event_parse(const json_t *object, event_t *event)
{
    json_t *seq = json_object_get(object, "seq");
    json_t *created = json_object_get(object, "created_ms");
    json_t *payload = json_object_get(object, "payload");
    event->producer = s_text(object, "producer", PROTOCOL_SERVICE_MAX);
    event->topic = s_text(object, "topic", EVENTS_TOPIC_MAX);
    event->request_id = s_text(object, "request_id", 64);
    if (!json_is_object(object) || !event->producer || !event->topic || !*event->topic ||
        !event->request_id || !json_is_integer(seq) || json_integer_value(seq) < 1 ||
        !json_is_integer(created) || !json_is_object(payload))
        return -1;
    event->seq = json_integer_value(seq);
    event->created_ms = json_integer_value(created);
    event->payload = payload;
    return 0;
}

//  The stored offset of producer, or -1 on error.
static int64_t s_stored_offset(subscriber_t *self, producer_t *producer)
{
    const char *params[] = {producer->name};
    PGresult *result =
        db_query(self->db, "SELECT last_seq FROM event_offsets WHERE producer = $1", 1, params);
    if (!result) return -1;
    int64_t last = PQntuples(result) ? strtoll(PQgetvalue(result, 0, 0), NULL, 10) : 0;
    PQclear(result);
    if (last > producer->last_known) producer->last_known = last;
    return last;
}

//  Runs one event through offset check, handler and offset update, all in
//  one transaction.
static outcome_t s_handle(subscriber_t *self, producer_t *producer, const event_t *event)
{
    if (event->seq <= producer->last_known) return DUPLICATE;
    db_t *db = self->db;
    if (db_begin(db) != 0) return FAILED;
    char seq_text[24];
    snprintf(seq_text, sizeof seq_text, "%" PRId64, event->seq);
    const char *params[] = {producer->name, seq_text};
    //  Inserts the row at 0 if missing and locks it either way; the no-op
    //  update makes RETURNING give the current value.
    PGresult *result = db_query(db,
                                "INSERT INTO event_offsets (producer, last_seq) VALUES ($1, 0)"
                                " ON CONFLICT (producer) DO UPDATE"
                                " SET last_seq = event_offsets.last_seq RETURNING last_seq",
                                1, params);
    if (!result || PQntuples(result) != 1) {
        PQclear(result);
        s_abort(self);
        return FAILED;
    }
    int64_t last = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
    PQclear(result);
    if (last > producer->last_known) producer->last_known = last;
    if (event->seq <= last) {
        s_abort(self);
        return DUPLICATE;
    }
    if (event->seq > last + 1) {
        s_abort(self);
        return GAP;
    }
    const events_route_t *route = s_find_route(self, event);
    if (route && route->handler) {
        log_set_request_id(event->request_id);
        int rc = route->handler(db, event, self->state);
        bool open = db_in_transaction(db);
        if (rc != 0 || !open) {
            log_warn("events: handler for %s.%s seq %" PRId64 " failed%s", event->producer,
                     event->topic, event->seq, open ? "" : " (it ended the transaction)");
            s_abort(self);
            log_set_request_id(NULL);
            return FAILED;
        }
    }
    if (s_batch_end(self) != 0 ||
        db_exec(db, "UPDATE event_offsets SET last_seq = $2::bigint WHERE producer = $1", 2,
                params) != 1 ||
        db_commit(db) != 0) {
        s_abort(self);
        log_set_request_id(NULL);
        return FAILED;
    }
    log_set_request_id(NULL);
    producer->last_known = event->seq;
    return HANDLED;
}

//  Runs events[0..count) of one producer, in the order given (increasing
//  seq), through the same steps as s_handle but in one transaction: the
//  offset row is locked and read once, each event at last + 1 runs its
//  handler, duplicates are skipped, and the offset is stored once before
//  the commit. So a backlog costs one commit (and two offset statements)
//  per batch instead of per event, with the same guarantees: the effects
//  and the offset commit or roll back together, and other instances of
//  the consumer wait on the offset row.
//
//  Returns HANDLED (all handled or duplicates; *done = count); GAP when
//  events[*done] is above the offset + 1 (the ones before it are
//  committed); FAILED when a handler or the database failed: the whole
//  batch is rolled back, *done = 0, and the caller goes event by event
//  with s_handle, which commits the ones before the failing event and
//  stalls on it exactly as before.
static outcome_t s_handle_batch(subscriber_t *self, producer_t *producer, const event_t *events,
                                size_t count, size_t *done)
{
    *done = 0;
    size_t first = 0;
    while (first < count && events[first].seq <= producer->last_known)
        first++;
    if (first == count) {
        *done = count;
        return HANDLED; // all duplicates: no round trip
    }
    if (count - first == 1) {
        //  One event: the single path (same statements, no batch bookkeeping).
        outcome_t outcome = s_handle(self, producer, &events[first]);
        *done = outcome == GAP ? first : outcome == FAILED ? 0 : count;
        return outcome == DUPLICATE ? HANDLED : outcome;
    }
    db_t *db = self->db;
    if (db_begin(db) != 0) return FAILED;
    const char *params[] = {producer->name, NULL};
    PGresult *result = db_query(db,
                                "INSERT INTO event_offsets (producer, last_seq) VALUES ($1, 0)"
                                " ON CONFLICT (producer) DO UPDATE"
                                " SET last_seq = event_offsets.last_seq RETURNING last_seq",
                                1, params);
    if (!result || PQntuples(result) != 1) {
        PQclear(result);
        s_abort(self);
        return FAILED;
    }
    int64_t stored = strtoll(PQgetvalue(result, 0, 0), NULL, 10), last = stored;
    PQclear(result);
    outcome_t outcome = HANDLED;
    size_t index = first;
    for (; index < count; index++) {
        const event_t *event = &events[index];
        if (event->seq <= last) continue;
        if (event->seq > last + 1) {
            outcome = GAP;
            break;
        }
        const events_route_t *route = s_find_route(self, event);
        if (route && route->handler) {
            log_set_request_id(event->request_id);
            int rc = route->handler(db, event, self->state);
            bool open = db_in_transaction(db);
            log_set_request_id(NULL);
            if (rc != 0 || !open) {
                log_warn("events: handler for %s.%s seq %" PRId64 " failed in a batch%s; going"
                         " event by event",
                         event->producer, event->topic, event->seq,
                         open ? "" : " (it ended the transaction)");
                s_abort(self);
                return FAILED;
            }
        }
        last = event->seq;
    }
    char seq_text[24];
    snprintf(seq_text, sizeof seq_text, "%" PRId64, last);
    params[1] = seq_text;
    if (s_batch_end(self) != 0 ||
        (last > stored &&
         db_exec(db, "UPDATE event_offsets SET last_seq = $2::bigint WHERE producer = $1", 2,
                 params) != 1) ||
        db_commit(db) != 0) {
        s_abort(self);
        return FAILED;
    }
    if (last > producer->last_known) producer->last_known = last;
    *done = index;
    self->batched += index - first;
    return outcome;
}

//  Keeps event_object (a reference is taken) for a retry after the backoff.
static void s_stall(producer_t *producer, json_t *event_object)
{
    json_decref(producer->pending);
    producer->pending = json_incref(event_object);
    producer->backoff_ms = producer->backoff_ms ? producer->backoff_ms * 2 : EVENTS_RETRY_MIN_MS;
    if (producer->backoff_ms > EVENTS_RETRY_MAX_MS) producer->backoff_ms = EVENTS_RETRY_MAX_MS;
    producer->retry_at = zclock_mono() + producer->backoff_ms;
    log_warn("events: %s stalled; retrying in %d ms", producer->name, producer->backoff_ms);
}

//  Asks the producer for everything after the stored offset and handles
//  it, page after page (at most EVENTS_REPLAY_PAGES per call, so the actor
//  keeps answering its pipe).
static void s_replay(subscriber_t *self, producer_t *producer)
{
    producer->replay_wanted = false;
    for (int page = 0; page < EVENTS_REPLAY_PAGES; page++) {
        int64_t since = s_stored_offset(self, producer);
        if (since < 0) {
            producer->replay_wanted = true;
            producer->retry_at = zclock_mono() + EVENTS_RETRY_MAX_MS;
            return;
        }
        json_t *args =
            json_pack("{sIsi}", "since", (json_int_t)since, "limit", EVENTS_REPLAY_LIMIT);
        json_t *reply = rpc_call(self->rpc, producer->name, "events.replay", 0, args, NULL,
                                 envelope_now_ms() + EVENTS_RPC_TIMEOUT_MS);
        json_decref(args);
        json_t *body = reply_body(reply);
        json_t *events = json_object_get(body, "events");
        if (reply_status(reply) != 200 || !json_is_array(events)) {
            //  The next periodic replay tries again.
            if (!producer->replay_failing)
                log_warn("events: replay from %s failed (status %d %s)", producer->name,
                         reply_status(reply),
                         reply_error_code(reply) ? reply_error_code(reply) : "");
            producer->replay_failing = true;
            //  Try again in a second, not at every live event meanwhile.
            producer->replay_wanted = true;
            producer->retry_at = zclock_mono() + EVENTS_REPLAY_RETRY_MS;
            json_decref(reply);
            return;
        }
        if (producer->replay_failing)
            log_info("events: replay from %s works again", producer->name);
        producer->replay_failing = false;
        json_t *last_seq = json_object_get(body, "last_seq");
        if (json_is_integer(last_seq) && json_integer_value(last_seq) < since)
            log_warn("events: %s is at seq %" JSON_INTEGER_FORMAT " but we handled %" PRId64
                     " (was its outbox reset?)",
                     producer->name, json_integer_value(last_seq), since);
        //  The page's well-formed prefix, in one transaction per
        //  EVENTS_HANDLE_BATCH events; a batch that fails goes again
        //  event by event, which stalls on the failing one.
        size_t count = json_array_size(events), parsed = 0;
        event_t *parsed_events = (event_t *)zmalloc((count + 1) * sizeof(event_t));
        bool malformed = false;
        for (; parsed < count; parsed++) {
            json_t *object = json_array_get(events, parsed);
            if (json_is_object(object))
                json_object_set_new(object, "producer", json_string(producer->name));
            if (s_event_parse(object, &parsed_events[parsed]) != 0) {
                malformed = true;
                break;
            }
        }
        bool stop = false;
        for (size_t start = 0; start < parsed && !stop; start += self->batch_max) {
            size_t size = parsed - start < self->batch_max ? parsed - start : self->batch_max;
            size_t done = 0;
            outcome_t outcome = s_handle_batch(self, producer, parsed_events + start, size, &done);
            if (outcome == FAILED) {
                outcome = HANDLED;
                for (size_t i = start; i < start + size; i++) {
                    outcome_t one = s_handle(self, producer, &parsed_events[i]);
                    if (one == FAILED) {
                        s_stall(producer, json_array_get(events, i));
                        outcome = FAILED;
                        break;
                    }
                    if (one == GAP) {
                        done = i - start;
                        outcome = GAP;
                        break;
                    }
                }
            }
            if (outcome == GAP)
                log_error("events: replay from %s skips from %" PRId64 " to %" PRId64,
                          producer->name, producer->last_known, parsed_events[start + done].seq);
            stop = outcome != HANDLED;
        }
        freen(parsed_events);
        if (malformed && !stop)
            log_warn("events: malformed event in a replay from %s", producer->name);
        if (stop || malformed) {
            json_decref(reply);
            return;
        }
        json_decref(reply);
        if (count < EVENTS_REPLAY_LIMIT) {
            //  Caught up after at least one full page: the backlog's
            //  decoded pages are freed, give their memory back instead of
            //  keeping the catch-up's peak as RSS.
            if (page > 0) malloc_trim(0);
            return;
        }
    }
    producer->replay_wanted = true; // more pages: go on after a look at the pipe
}

//  Retries a stalled producer's event.
static void s_retry(subscriber_t *self, producer_t *producer)
{
    event_t event;
    json_t *pending = producer->pending;
    producer->pending = NULL;
    outcome_t outcome =
        s_event_parse(pending, &event) == 0 ? s_handle(self, producer, &event) : DUPLICATE;
    if (outcome == FAILED)
        s_stall(producer, pending);
    else {
        log_info("events: %s resumed", producer->name);
        producer->backoff_ms = 0;
        producer->retry_at = 0;
        producer->replay_wanted = true; // what was dropped during the stall
    }
    json_decref(pending);
}

//  Checks one message from the SUB socket: two frames, a well-formed event
//  of a producer we consume, the topic frame exactly "<producer>.<topic>".
//  Returns the decoded event object (new reference; *event borrows from
//  it, *producer_out is set), or NULL after logging and dropping it.
static json_t *s_parse_message(subscriber_t *self, zmsg_t *msg, event_t *event,
                               producer_t **producer_out)
{
    zframe_t *topic_frame = zmsg_first(msg);
    zframe_t *event_frame = zmsg_next(msg);
    if (zmsg_size(msg) != 2) {
        log_warn("events: dropped a message of %zu frames", zmsg_size(msg));
        return NULL;
    }
    json_t *object = msgjson_decode(zframe_data(event_frame), zframe_size(event_frame));
    producer_t *producer = NULL;
    if (object && s_event_parse(object, event) == 0)
        producer = s_find_producer(self, event->producer, strlen(event->producer));
    if (producer) {
        size_t producer_length = strlen(event->producer), topic_length = strlen(event->topic);
        const char *frame = (const char *)zframe_data(topic_frame);
        if (zframe_size(topic_frame) != producer_length + 1 + topic_length ||
            memcmp(frame, event->producer, producer_length) != 0 || frame[producer_length] != '.' ||
            memcmp(frame + producer_length + 1, event->topic, topic_length) != 0)
            producer = NULL;
    }
    if (!producer) {
        log_warn("events: dropped a malformed event (%zu bytes)", zframe_size(event_frame));
        json_decref(object);
        return NULL;
    }
    *producer_out = producer;
    return object;
}

//  What a live event's outcome leads to: a gap asks for a replay (at once
//  unless a failed one waits for retry_at), a failure stalls the producer
//  on object.
static void s_after_live(subscriber_t *self, producer_t *producer, outcome_t outcome,
                         const event_t *event, json_t *object)
{
    if (outcome == GAP && zclock_mono() >= producer->retry_at) {
        log_info("events: gap from %s before seq %" PRId64 "; replaying", producer->name,
                 event->seq);
        s_replay(self, producer);
    } else if (outcome == GAP)
        producer->replay_wanted = true; // a failed replay is retried at retry_at
    else if (outcome == FAILED)
        s_stall(producer, object);
}

//  Live events objects[0..count) of one producer, in arrival order: one
//  transaction for the run (s_handle_batch); when it fails, event by event
//  as before. After a stall the rest are dropped (replay brings them back).
static void s_on_live(subscriber_t *self, producer_t *producer, json_t **objects, event_t *events,
                      size_t count)
{
    if (producer->pending) {
        producer->replay_wanted = true; // stalled: replay brings them back later
        return;
    }
    size_t done = 0;
    outcome_t outcome = s_handle_batch(self, producer, events, count, &done);
    if (outcome == GAP) {
        s_after_live(self, producer, outcome, &events[done], objects[done]);
        return;
    }
    for (size_t i = 0; outcome == FAILED && i < count; i++) {
        if (producer->pending) {
            producer->replay_wanted = true;
            return;
        }
        outcome_t one = s_handle(self, producer, &events[i]);
        s_after_live(self, producer, one, &events[i], objects[i]);
        if (one == GAP) return; // the replay covered the rest
    }
}

//  Drains up to 1000 waiting messages (then back to the pipe and the
//  timers), handling each run of one producer's events together. Returns
//  how many messages it read.
static int s_drain(subscriber_t *self)
{
    json_t *objects[EVENTS_HANDLE_BATCH];
    event_t events[EVENTS_HANDLE_BATCH];
    producer_t *run = NULL;
    size_t count = 0;
    int read = 0;
    for (int i = 0; i < 1000 && (zsock_events(self->sub) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv(self->sub);
        if (!msg) break;
        read++;
        producer_t *producer = NULL;
        event_t event;
        json_t *object = s_parse_message(self, msg, &event, &producer);
        zmsg_destroy(&msg);
        if (!object) continue;
        if (count > 0 && (producer != run || count == self->batch_max)) {
            s_on_live(self, run, objects, events, count);
            for (size_t k = 0; k < count; k++)
                json_decref(objects[k]);
            count = 0;
        }
        run = producer;
        objects[count] = object;
        events[count++] = event;
    }
    if (count > 0) s_on_live(self, run, objects, events, count);
    for (size_t k = 0; k < count; k++)
        json_decref(objects[k]);
    return read;
}

//  True when events arrive again soon after the last drain that read some: the stream is
//  busy, and waiting EVENTS_LINGER_MS lets the events of those milliseconds
//  share one transaction and each handler's one statement per batch. Under
//  the bench's like load the batches held 1.6 rows on average, and the
//  consumers' statements cost more per call than the request's own insert
//  (docs/benchmarks.md, session 6). An event after a quiet spell is handled
//  at once, so a lone post or like does not wait.
static bool s_stream_is_busy(const subscriber_t *self)
{
    return self->linger_ms > 0 && zclock_mono() - self->last_drain < self->linger_ms;
}

static void s_subscriber_actor(zsock_t *pipe, void *args)
{
    subscriber_t *self = (subscriber_t *)args;
    zsock_signal(pipe, 0);
    int64_t next_replay = 0; // at start
    while (true) {
        int64_t now = zclock_mono();
        if (now >= next_replay) {
            for (size_t i = 0; i < self->producer_count; i++)
                self->producers[i].replay_wanted = true;
            next_replay = now + self->replay_ms;
        }
        int64_t wake = next_replay;
        for (size_t i = 0; i < self->producer_count; i++) {
            producer_t *producer = &self->producers[i];
            if (producer->pending && zclock_mono() >= producer->retry_at) s_retry(self, producer);
            if (!producer->pending && producer->replay_wanted &&
                zclock_mono() >= producer->retry_at)
                s_replay(self, producer);
            if (producer->pending || producer->replay_wanted)
                wake = producer->retry_at < wake ? producer->retry_at : wake;
        }
        now = zclock_mono();
        long timeout = wake > now ? (long)(wake - now) : 0;
        zmq_pollitem_t items[2] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
                                   {zsock_resolve(self->sub), 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, timeout) < 0) continue; // EINTR
        if (items[0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv(pipe);
            bool stop = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (stop) break;
        }
        if ((items[1].revents & ZMQ_POLLIN) && s_stream_is_busy(self))
            zmq_poll(items, 1, self->linger_ms); // a command cuts it short
        if (s_drain(self) > 0)
            self->last_drain = zclock_mono();
        else if (self->batched >= EVENTS_TRIM_BATCHED) {
            //  Idle after a backlog: a catch-up's batches leave their freed
            //  memory in the thread's malloc arena, and glibc keeps it (feed
            //  held 58 MiB after the bench's seed, 15 MiB once restarted:
            //  docs/benchmarks.md, session 8). common/service.c trims its
            //  workers the same way after large requests.
            malloc_trim(0);
            self->batched = 0;
        }
    }
    s_subscriber_free(&self);
}

events_subscriber_t *events_subscriber_new(const char *database_url, const char *schema,
                                           const char *sub_endpoint, const char *broker_endpoint,
                                           const events_route_t *routes, void *state)
{
    assert(database_url && schema && sub_endpoint && broker_endpoint && routes);
    subscriber_t *sub = (subscriber_t *)zmalloc(sizeof(subscriber_t));
    sub->state = state;
    sub->replay_ms = config_int("EVENTS_REPLAY_MS", EVENTS_REPLAY_MS);
    int64_t batch_max = config_int("EVENTS_HANDLE_BATCH", EVENTS_HANDLE_BATCH);
    sub->batch_max = batch_max >= 1 && batch_max <= EVENTS_HANDLE_BATCH ? (size_t)batch_max
                                                                        : EVENTS_HANDLE_BATCH;
    if (sub->replay_ms < 10) sub->replay_ms = EVENTS_REPLAY_MS;
    sub->linger_ms = config_int("EVENTS_LINGER_MS", EVENTS_LINGER_MS);
    if (sub->linger_ms < 0 || sub->linger_ms > 1000) sub->linger_ms = EVENTS_LINGER_MS;
    size_t count = 0;
    while (routes[count].topic)
        count++;
    sub->routes = (events_route_t *)zmalloc((count + 1) * sizeof(events_route_t));
    sub->producers = (producer_t *)zmalloc((count + 1) * sizeof(producer_t));
    for (size_t i = 0; i < count; i++) {
        const char *topic = routes[i].topic;
        if (streq(topic, EVENTS_BATCH_END) || streq(topic, EVENTS_BATCH_RESET)) {
            events_handler_fn *hook =
                streq(topic, EVENTS_BATCH_END) ? &sub->batch_end : &sub->batch_reset;
            if (*hook || !routes[i].handler) {
                log_error("events: batch hook '%s' twice or without a handler", topic);
                s_subscriber_free(&sub);
                return NULL;
            }
            *hook = routes[i].handler;
            continue;
        }
        const char *dot = strchr(topic, '.');
        if (!dot || !dot[1] || !protocol_valid_service(topic, (size_t)(dot - topic))) {
            log_error("events: invalid route topic '%s'", topic);
            s_subscriber_free(&sub);
            return NULL;
        }
        sub->routes[sub->route_count].topic = (const char *)strdup(topic);
        sub->routes[sub->route_count].handler = routes[i].handler;
        sub->route_count++;
        if (!s_find_producer(sub, topic, (size_t)(dot - topic)))
            sub->producers[sub->producer_count++].name = strndup(topic, (size_t)(dot - topic));
    }
    if (sub->route_count == 0) {
        log_error("events: a subscriber needs at least one route");
        s_subscriber_free(&sub);
        return NULL;
    }
    sub->db = db_new(database_url, schema);
    if (!sub->db || events_ensure_tables(sub->db) != 0) {
        s_subscriber_free(&sub);
        return NULL;
    }
    sub->rpc = rpc_client_new(broker_endpoint);
    sub->sub = zsock_new(ZMQ_SUB);
    if (sub->sub)
        zsock_set_rcvhwm(sub->sub, EVENTS_PUB_HWM); // before connect: applies to that pipe
    if (!sub->rpc || !sub->sub || zsock_connect(sub->sub, "%s", sub_endpoint) != 0) {
        log_error("events: cannot set up the subscriber (%s, %s)", sub_endpoint, broker_endpoint);
        s_subscriber_free(&sub);
        return NULL;
    }
    for (size_t i = 0; i < sub->producer_count; i++) {
        char *prefix = zsys_sprintf("%s.", sub->producers[i].name);
        zsock_set_subscribe(sub->sub, prefix);
        zstr_free(&prefix);
    }
    events_subscriber_t *self = (events_subscriber_t *)zmalloc(sizeof(events_subscriber_t));
    //  From here the actor thread owns sub (and frees it).
    self->actor = zactor_new(s_subscriber_actor, sub);
    if (!self->actor) {
        s_subscriber_free(&sub);
        freen(self);
        return NULL;
    }
    return self;
}

void events_subscriber_destroy(events_subscriber_t **self_p)
{
    assert(self_p);
    events_subscriber_t *self = *self_p;
    if (!self) return;
    zactor_destroy(&self->actor);
    freen(self);
    *self_p = NULL;
}
