/*  test_events: outbox, publisher, replay and subscriber against a real
    PostgreSQL and real ZeroMQ sockets.

    The server is TEST_DATABASE_URL when set, else one this binary starts
    with scripts/pg.sh on the first free port of 17110..17119. Each test uses
    its own producer and consumer schemas (tev<pid><letter>…), dropped at
    the end.

    The bus is built in-process so the suite depends on nothing else being
    built: a zproxy (XSUB 17121 <- publishers, XPUB 17122 -> subscribers)
    and a fake broker on 17120 that speaks the client half of the broker
    protocol and answers every events.replay by calling events_replay() on
    the named producer's schema. The last test runs the real path instead:
    the broker binary built next to this test (skipped when it is not
    there), a worker thread on worker.h answering events.replay, a publisher
    and a late subscriber.

    Every wait is bounded.
*/
#include "envelope.h"
#include "errors.h"
#include "events.h"
#include "log.h"
#include "msgjson.h"
#include "protocol.h"
#include "worker.h"

#include <czmq.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define PG_PORT_FIRST 17110
#define PG_PORT_LAST 17119
//  The bus: TEST_EVENTS_PORT (17120) + 0, 1, 2 (fake broker, bus in, bus
//  out) and + 10, 11, 12 (the real broker's), so parallel runs can move it.
static char s_endpoints[6][40];
#define FAKE_BROKER s_endpoints[0]
#define BUS_IN s_endpoints[1]
#define BUS_OUT s_endpoints[2]
#define REAL_BROKER s_endpoints[3]
#define REAL_BUS_IN s_endpoints[4]
#define REAL_BUS_OUT s_endpoints[5]
//  Time for a new SUB's subscription to travel through the proxy.
#define SETTLE_MS 500

static char s_url[256];
static char s_pg_dir[128];
static char s_pg_sh[512];
static char s_prefix[32]; // of every schema this run makes
static zactor_t *s_proxy;
static zactor_t *s_fake_broker;

//  ---- fixture ---------------------------------------------------------------

static int s_find_near_binary(const char *relative, char *out, size_t size, int max_up)
{
    if (access(relative, R_OK) == 0) {
        snprintf(out, size, "%s", relative);
        return 0;
    }
    char exe[400];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (length <= 0) return -1;
    exe[length] = '\0';
    for (int up = 0; up < max_up; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = '\0';
        snprintf(out, size, "%s/%s", exe, relative);
        if (access(out, R_OK) == 0) return 0;
    }
    return -1;
}

static int s_pg(const char *verb, int port)
{
    char command[1024];
    if (port)
        snprintf(command, sizeof command, "PG_FAST=1 bash %s %s %s/data %d >%s/pg.out 2>&1",
                 s_pg_sh, verb, s_pg_dir, port, s_pg_dir);
    else
        snprintf(command, sizeof command, "bash %s %s %s/data >>%s/pg.out 2>&1", s_pg_sh, verb,
                 s_pg_dir, s_pg_dir);
    return system(command) == 0 ? 0 : -1;
}

//  A schema name for this run: prefix + tag.
static char *s_name(const char *tag)
{
    return zsys_sprintf("%s%s", s_prefix, tag);
}

//  The fake broker: answers ["", SC01, service, correlation, deadline,
//  envelope] with events_replay on that schema, or 503 while unavailable.
static atomic_int s_fake_broker_up = 1;
static atomic_int s_fake_broker_calls = 0;

static void s_fake_broker_actor(zsock_t *pipe, void *args)
{
    char bind[48];
    snprintf(bind, sizeof bind, "@%s", FAKE_BROKER);
    zsock_t *router = zsock_new_router(bind);
    assert(router);
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    zsock_signal(pipe, 0);
    while (true) {
        void *which = zpoller_wait(poller, 1000);
        if (which == pipe) break; // $TERM
        if (which != router) continue;
        zmsg_t *msg = zmsg_recv(router);
        if (!msg) break;
        zframe_t *identity = zmsg_pop(msg);
        zframe_t *empty = zmsg_pop(msg);
        zframe_t *protocol = zmsg_pop(msg);
        char *service = zmsg_popstr(msg);
        zframe_t *correlation = zmsg_pop(msg);
        zframe_t *deadline = zmsg_pop(msg);
        zframe_t *envelope = zmsg_pop(msg);
        json_t *reply = NULL;
        envelope_request_t request;
        if (envelope && service &&
            envelope_request_decode(zframe_data(envelope), zframe_size(envelope), &request) == 0) {
            atomic_fetch_add(&s_fake_broker_calls, 1);
            if (!atomic_load(&s_fake_broker_up))
                reply = reply_error(503, ERR_UNAVAILABLE, "no worker");
            else if (streq(request.method, "events.replay")) {
                db_t *db = db_new(s_url, service);
                reply = db ? events_replay(db, request.args)
                           : reply_error(500, ERR_INTERNAL, "no database");
                db_destroy(&db);
            } else
                reply = reply_error(404, ERR_NOT_FOUND, "unknown method");
            envelope_request_clear(&request);
        }
        if (reply && correlation) {
            size_t size = 0;
            char *bytes = envelope_reply_encode(reply, &size);
            zmsg_t *answer = zmsg_new();
            zmsg_append(answer, &identity);
            zmsg_addmem(answer, "", 0);
            zmsg_addstr(answer, PROTOCOL_CLIENT);
            zmsg_addstr(answer, service);
            zmsg_append(answer, &correlation);
            zmsg_addmem(answer, bytes, size);
            zmsg_send(&answer, router);
            free(bytes);
        }
        json_decref(reply);
        zframe_destroy(&identity);
        zframe_destroy(&empty);
        zframe_destroy(&protocol);
        zstr_free(&service);
        zframe_destroy(&correlation);
        zframe_destroy(&deadline);
        zframe_destroy(&envelope);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

static int s_group_setup(void **state)
{
    log_init("test_events");
    const char *base_text = getenv("TEST_EVENTS_PORT");
    int base = base_text && atoi(base_text) > 0 ? atoi(base_text) : 17120;
    static const int offsets[6] = {0, 1, 2, 10, 11, 12};
    for (int i = 0; i < 6; i++)
        snprintf(s_endpoints[i], sizeof s_endpoints[i], "tcp://127.0.0.1:%d", base + offsets[i]);
    const char *shared = getenv("TEST_DATABASE_URL");
    if (shared && *shared)
        snprintf(s_url, sizeof s_url, "%s", shared);
    else {
        if (s_find_near_binary("scripts/pg.sh", s_pg_sh, sizeof s_pg_sh, 6) != 0) {
            fprintf(stderr, "test_events: scripts/pg.sh not found\n");
            return -1;
        }
        snprintf(s_pg_dir, sizeof s_pg_dir, "/tmp/test_events.XXXXXX");
        if (!mkdtemp(s_pg_dir)) return -1;
        chmod(s_pg_dir, 0755); // the server runs as another user when we are root
        int port = PG_PORT_FIRST;
        while (port <= PG_PORT_LAST && s_pg("start", port) != 0)
            port++;
        if (port > PG_PORT_LAST) {
            fprintf(stderr, "test_events: cannot start postgres (see %s/pg.out)\n", s_pg_dir);
            return -1;
        }
        snprintf(s_url, sizeof s_url, "postgresql://app@127.0.0.1:%d/app", port);
    }
    snprintf(s_prefix, sizeof s_prefix, "tev%d%u", (int)getpid(),
             (unsigned)(zclock_usecs() % 1000));
    s_proxy = zactor_new(zproxy, NULL);
    char bind_in[48], bind_out[48];
    snprintf(bind_in, sizeof bind_in, "@%s", BUS_IN);
    snprintf(bind_out, sizeof bind_out, "@%s", BUS_OUT);
    zstr_sendx(s_proxy, "FRONTEND", "XSUB", bind_in, NULL);
    zsock_wait(s_proxy);
    zstr_sendx(s_proxy, "BACKEND", "XPUB", bind_out, NULL);
    zsock_wait(s_proxy);
    s_fake_broker = zactor_new(s_fake_broker_actor, NULL);
    return s_proxy && s_fake_broker ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    zactor_destroy(&s_fake_broker);
    zactor_destroy(&s_proxy);
    db_t *db = db_new(s_url, "public");
    if (db) {
        char *pattern = zsys_sprintf("%s%%", s_prefix);
        const char *params[] = {pattern};
        PGresult *result =
            db_query(db, "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", 1, params);
        for (int row = 0; result && row < PQntuples(result); row++) {
            char *drop = zsys_sprintf("DROP SCHEMA \"%s\" CASCADE", PQgetvalue(result, row, 0));
            db_exec_script(db, drop);
            zstr_free(&drop);
        }
        PQclear(result);
        zstr_free(&pattern);
        db_destroy(&db);
    }
    if (*s_pg_dir) {
        s_pg("destroy", 0);
        char command[256];
        snprintf(command, sizeof command, "rm -rf %s", s_pg_dir);
        if (system(command) != 0) fprintf(stderr, "test_events: cannot remove %s\n", s_pg_dir);
    }
    return 0;
}

//  ---- helpers ---------------------------------------------------------------

static db_t *s_db(const char *schema)
{
    db_t *db = db_new(s_url, schema);
    assert_non_null(db);
    assert_int_equal(events_ensure_tables(db), 0);
    return db;
}

static long s_count(db_t *db, const char *sql)
{
    PGresult *result = db_query(db, sql, 0, NULL);
    assert_non_null(result);
    //  No row yet (an offset not stored so far) reads as -1.
    long count = PQntuples(result) > 0 ? atol(PQgetvalue(result, 0, 0)) : -1;
    PQclear(result);
    return count;
}

//  Waits (bounded) until sql returns expected; returns the last value.
static long s_wait_count(db_t *db, const char *sql, long expected, int timeout_ms)
{
    int64_t until = zclock_mono() + timeout_ms;
    long count = s_count(db, sql);
    while (count != expected && zclock_mono() < until) {
        zclock_sleep(20);
        count = s_count(db, sql);
    }
    return count;
}

//  Emits count events "item.created" {i: first..} in one transaction.
static void s_emit(db_t *db, int first, int count, const char *topic)
{
    assert_int_equal(db_begin(db), 0);
    for (int i = first; i < first + count; i++) {
        json_t *payload = json_pack("{si}", "i", i);
        assert_int_equal(events_emit(db, topic, payload), 0);
        json_decref(payload);
    }
    assert_int_equal(db_commit(db), 0);
}

//  A SUB socket on the bus's output, subscribed to producer's events.
static zsock_t *s_producer_sub(const char *producer)
{
    zsock_t *sub = zsock_new(ZMQ_SUB);
    assert_non_null(sub);
    assert_int_equal(zsock_connect(sub, "%s", BUS_OUT), 0);
    char *prefix = zsys_sprintf("%s.", producer);
    zsock_set_subscribe(sub, prefix);
    zstr_free(&prefix);
    return sub;
}

//  Receives one event from a SUB socket within timeout_ms; NULL if none.
//  *topic_out gets the first frame (caller frees).
static json_t *s_receive(zsock_t *sub, int timeout_ms, char **topic_out)
{
    zsock_set_rcvtimeo(sub, timeout_ms);
    zmsg_t *msg = zmsg_recv(sub);
    if (!msg) return NULL;
    assert_int_equal(zmsg_size(msg), 2);
    char *topic = zmsg_popstr(msg);
    zframe_t *frame = zmsg_pop(msg);
    json_t *event = msgjson_decode(zframe_data(frame), zframe_size(frame));
    zframe_destroy(&frame);
    zmsg_destroy(&msg);
    if (topic_out)
        *topic_out = topic;
    else
        zstr_free(&topic);
    return event;
}

static int64_t s_int(const json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    assert_true(json_is_integer(value));
    return json_integer_value(value);
}

//  The consumer side: effects(seq, topic, value) written by the handler.
typedef struct {
    atomic_int fail_seq;   // this seq fails...
    atomic_int fail_times; // ...this many times
    atomic_int calls_of_fail_seq;
    atomic_int deferred;       // events since the last batch end or reset (the hooks' test)
    atomic_int resets;         // EVENTS_BATCH_RESET calls
    atomic_int end_fail_times; // EVENTS_BATCH_END fails this many times
} handler_state_t;

static int s_record_effect(db_t *db, const event_t *event, void *state)
{
    handler_state_t *handler = (handler_state_t *)state;
    char seq[24], value[24];
    snprintf(seq, sizeof seq, "%lld", (long long)event->seq);
    json_t *i = json_object_get(event->payload, "i");
    snprintf(value, sizeof value, "%lld",
             json_is_integer(i) ? (long long)json_integer_value(i) : -1LL);
    const char *params[] = {event->producer, seq, event->topic, value};
    if (db_exec(db, "INSERT INTO effects (producer, seq, topic, value) VALUES ($1, $2, $3, $4)", 4,
                params) != 1)
        return -1;
    if (handler && event->seq == atomic_load(&handler->fail_seq)) {
        atomic_fetch_add(&handler->calls_of_fail_seq, 1);
        if (atomic_load(&handler->fail_times) > 0) {
            atomic_fetch_sub(&handler->fail_times, 1);
            return -1; // after writing: the rollback must undo it
        }
    }
    return 0;
}

static db_t *s_consumer_db(const char *schema)
{
    db_t *db = s_db(schema);
    assert_int_equal(db_exec_script(db, "CREATE TABLE IF NOT EXISTS effects ("
                                        " position serial, producer text, seq bigint,"
                                        " topic text, value int)"),
                     0);
    return db;
}

//  Sends a hand-made event frame pair on pub.
static void s_send_event(zsock_t *pub, const char *producer, int64_t seq, const char *topic,
                         int value)
{
    json_t *event = json_pack("{sssIsssssIs{si}}", "producer", producer, "seq", (json_int_t)seq,
                              "topic", topic, "request_id", "", "created_ms",
                              (json_int_t)envelope_now_ms(), "payload", "i", value);
    size_t size = 0;
    char *bytes = msgjson_encode(event, &size);
    zmsg_t *msg = zmsg_new();
    zmsg_addstrf(msg, "%s.%s", producer, topic);
    zmsg_addmem(msg, bytes, size);
    zmsg_send(&msg, pub);
    free(bytes);
    json_decref(event);
}

//  Numbers every unnumbered outbox row, as a publisher would, without
//  sending anything.
static void s_number_outbox(db_t *db)
{
    assert_true(db_exec(db,
                        "UPDATE outbox SET seq = numbered.n FROM"
                        " (SELECT id, row_number() OVER (ORDER BY id) AS n FROM outbox) numbered"
                        " WHERE outbox.id = numbered.id AND outbox.seq IS NULL",
                        0, NULL) >= 0);
}

//  ---- tests -----------------------------------------------------------------

static void test_replay_arguments(void **state)
{
    char *producer = s_name("a");
    db_t *db = s_db(producer);
    const char *bad[] = {"{}",
                         "{\"since\": \"1\"}",
                         "{\"since\": -1}",
                         "{\"since\": 1.5}",
                         "{\"since\": 0, \"limit\": 0}",
                         "{\"since\": 0, \"limit\": \"5\"}",
                         "[]",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        json_t *args = json_loads(bad[i], 0, NULL);
        assert_non_null(args);
        json_t *reply = events_replay(db, args);
        assert_int_equal(reply_status(reply), 400);
        assert_string_equal(reply_error_code(reply), ERR_INVALID);
        json_decref(reply);
        json_decref(args);
    }
    json_t *reply = events_replay(db, NULL);
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    json_t *args = json_pack("{si}", "since", 0);
    reply = events_replay(db, args);
    assert_int_equal(reply_status(reply), 200);
    assert_int_equal(json_array_size(json_object_get(reply_body(reply), "events")), 0);
    assert_int_equal(s_int(reply_body(reply), "last_seq"), 0);
    json_decref(reply);
    json_decref(args);
    //  Emitting outside a transaction is a programming error (asserted), so
    //  not tested here; a non-object payload is refused.
    assert_int_equal(db_begin(db), 0);
    json_t *not_object = json_integer(3);
    assert_int_equal(events_emit(db, "x.y", not_object), -1);
    assert_int_equal(events_emit(db, "", NULL), -1);
    json_decref(not_object);
    db_rollback(db);
    db_destroy(&db);
    zstr_free(&producer);
}

static void test_publish_in_order_and_replay(void **state)
{
    char *producer = s_name("b");
    db_t *db = s_db(producer);
    zsock_t *sub = s_producer_sub(producer);
    events_publisher_t *publisher = events_publisher_new(s_url, producer, BUS_IN);
    assert_non_null(publisher);
    zclock_sleep(SETTLE_MS);

    //  Rolled back: never published, never numbered.
    assert_int_equal(db_begin(db), 0);
    json_t *payload = json_pack("{ss}", "what", "ghost");
    assert_int_equal(events_emit(db, "ghost.created", payload), 0);
    json_decref(payload);
    db_rollback(db);

    log_set_request_id("req-test-1");
    s_emit(db, 0, 3, "item.created"); // three in one transaction
    for (int i = 3; i < 50; i++)
        s_emit(db, i, 1, "item.created");
    log_set_request_id(NULL);
    int64_t now = envelope_now_ms();
    for (int i = 0; i < 50; i++) {
        char *topic = NULL;
        json_t *event = s_receive(sub, 5000, &topic);
        assert_non_null(event);
        char *expected = zsys_sprintf("%s.item.created", producer);
        assert_string_equal(topic, expected);
        zstr_free(&expected);
        zstr_free(&topic);
        assert_string_equal(json_string_value(json_object_get(event, "producer")), producer);
        assert_string_equal(json_string_value(json_object_get(event, "topic")), "item.created");
        assert_string_equal(json_string_value(json_object_get(event, "request_id")), "req-test-1");
        assert_int_equal(s_int(event, "seq"), i + 1);
        assert_int_equal(s_int(json_object_get(event, "payload"), "i"), i);
        assert_true(llabs(s_int(event, "created_ms") - now) < 60000);
        json_decref(event);
    }
    //  Nothing more: no duplicate, no ghost.
    assert_null(s_receive(sub, 300, NULL));
    assert_int_equal(s_count(db, "SELECT count(*) FROM outbox"), 50);
    assert_int_equal(s_count(db, "SELECT count(*) FROM outbox WHERE seq IS NULL"), 0);

    //  Latency: a commit wakes the publisher through NOTIFY.
    int64_t started = zclock_mono();
    s_emit(db, 50, 1, "item.created");
    json_t *event = s_receive(sub, 5000, NULL);
    assert_non_null(event);
    assert_int_equal(s_int(event, "seq"), 51);
    json_decref(event);
    log_info("commit-to-receive latency %lld ms", (long long)(zclock_mono() - started));

    //  Replay serves ranges from the same table.
    json_t *args = json_pack("{sisi}", "since", 10, "limit", 5);
    json_t *reply = events_replay(db, args);
    json_decref(args);
    assert_int_equal(reply_status(reply), 200);
    json_t *events = json_object_get(reply_body(reply), "events");
    assert_int_equal(json_array_size(events), 5);
    for (size_t index = 0; index < 5; index++) {
        json_t *item = json_array_get(events, index);
        assert_int_equal(s_int(item, "seq"), 11 + (int64_t)index);
        assert_int_equal(s_int(json_object_get(item, "payload"), "i"), 10 + (int64_t)index);
        assert_string_equal(json_string_value(json_object_get(item, "topic")), "item.created");
        assert_string_equal(json_string_value(json_object_get(item, "request_id")), "req-test-1");
        assert_true(s_int(item, "created_ms") > 0);
    }
    assert_int_equal(s_int(reply_body(reply), "last_seq"), 51);
    json_decref(reply);
    args = json_pack("{sisi}", "since", 1, "limit", 5000); // clamped, not refused
    reply = events_replay(db, args);
    json_decref(args);
    assert_int_equal(json_array_size(json_object_get(reply_body(reply), "events")), 50);
    json_decref(reply);
    args = json_pack("{si}", "since", 51);
    reply = events_replay(db, args);
    json_decref(args);
    assert_int_equal(json_array_size(json_object_get(reply_body(reply), "events")), 0);
    json_decref(reply);

    events_publisher_destroy(&publisher);
    assert_null(publisher);
    events_publisher_destroy(&publisher);
    zsock_destroy(&sub);
    db_destroy(&db);
    zstr_free(&producer);
}

//  An event emitted by the statement of its change (events_inline_t): one
//  outbox row per row of the named CTE, published like any other, and
//  nothing when the CTE is empty or the statement fails.
static void test_inline_event(void **state)
{
    char *producer = s_name("i");
    db_t *db = s_db(producer);
    zsock_t *sub = s_producer_sub(producer);
    events_publisher_t *publisher = events_publisher_new(s_url, producer, BUS_IN);
    assert_non_null(publisher);
    zclock_sleep(SETTLE_MS);

    json_t *not_object = json_integer(3);
    events_inline_t event;
    assert_int_equal(events_inline_init(&event, db, "x.y", not_object), -1);
    json_decref(not_object);
    json_t *payload = json_pack("{ss}", "what", "inline");
    assert_int_equal(events_inline_init(&event, db, "", payload), -1);
    log_set_request_id("req-inline");
    assert_int_equal(events_inline_init(&event, db, "item.inlined", payload), 0);
    json_decref(payload);
    //  $1: how many rows the change made; $2: a divisor (0 fails the
    //  statement after its CTEs ran).
    const char *sql =
        "WITH changed AS (SELECT g FROM generate_series(1, $1::int) g),"
        " emitted AS (" EVENTS_INLINE_INSERT(
            "changed", "$3", "$4", "$5", "$6") ")"
                                               " SELECT (SELECT count(*) FROM emitted) / $2::int";
    const char *none[] = {"0", "1", event.topic, event.payload, event.request_id, event.channel};
    const char *failing[] = {"1", "0", event.topic, event.payload, event.request_id, event.channel};
    const char *one[] = {"1", "1", event.topic, event.payload, event.request_id, event.channel};
    PGresult *res = db_query(db, sql, 6, none);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    PQclear(res);
    assert_null(db_query(db, sql, 6, failing));
    assert_int_equal(s_count(db, "SELECT count(*) FROM outbox"), 0);
    assert_null(s_receive(sub, 300, NULL));

    res = db_query(db, sql, 6, one);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    log_set_request_id(NULL);
    events_inline_clear(&event);
    assert_null(event.payload);
    char *topic = NULL;
    json_t *published = s_receive(sub, 5000, &topic);
    assert_non_null(published);
    char *expected = zsys_sprintf("%s.item.inlined", producer);
    assert_string_equal(topic, expected);
    assert_int_equal(s_int(published, "seq"), 1);
    assert_string_equal(json_string_value(json_object_get(published, "request_id")), "req-inline");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(published, "payload"), "what")),
        "inline");
    json_decref(published);
    zstr_free(&expected);
    zstr_free(&topic);
    assert_null(s_receive(sub, 300, NULL));

    events_publisher_destroy(&publisher);
    zsock_destroy(&sub);
    db_destroy(&db);
    zstr_free(&producer);
}

static void test_one_publisher_leads(void **state)
{
    char *producer = s_name("c");
    db_t *db = s_db(producer);
    zsock_t *sub = zsock_new(ZMQ_SUB);
    assert_int_equal(zsock_connect(sub, "%s", BUS_OUT), 0);
    zsock_set_subscribe(sub, "");
    events_publisher_t *first = events_publisher_new(s_url, producer, BUS_IN);
    events_publisher_t *second = events_publisher_new(s_url, producer, BUS_IN);
    assert_non_null(first);
    assert_non_null(second);
    zclock_sleep(SETTLE_MS);
    for (int i = 0; i < 20; i++)
        s_emit(db, i, 1, "item.created");
    for (int i = 0; i < 20; i++) {
        json_t *event = s_receive(sub, 5000, NULL);
        assert_non_null(event);
        assert_int_equal(s_int(event, "seq"), i + 1);
        json_decref(event);
    }
    assert_null(s_receive(sub, 500, NULL)); // not published twice
    //  The leader's connection dies: it loses the lock, someone leads again.
    const char *params[] = {producer};
    assert_int_equal(db_exec(db,
                             "SELECT pg_terminate_backend(pid) FROM pg_locks"
                             " WHERE locktype = 'advisory' AND objsubid = 1"
                             " AND ((classid::bigint << 32) | objid::bigint)"
                             "  = hashtext('outbox:' || $1)::bigint",
                             1, params),
                     1);
    zclock_sleep(100);
    s_emit(db, 20, 10, "item.created");
    for (int i = 20; i < 30; i++) {
        json_t *event = s_receive(sub, 5000, NULL);
        assert_non_null(event);
        assert_int_equal(s_int(event, "seq"), i + 1);
        json_decref(event);
    }
    //  Whichever leads, the other takes over once it is gone.
    events_publisher_destroy(&first);
    s_emit(db, 30, 10, "item.created");
    for (int i = 30; i < 40; i++) {
        json_t *event = s_receive(sub, 5000, NULL);
        assert_non_null(event);
        assert_int_equal(s_int(event, "seq"), i + 1);
        json_decref(event);
    }
    assert_null(s_receive(sub, 300, NULL));
    //  A backlog larger than one batch goes out whole and in order.
    s_emit(db, 40, 1234, "item.created");
    for (int i = 40; i < 1274; i++) {
        json_t *event = s_receive(sub, 5000, NULL);
        assert_non_null(event);
        assert_int_equal(s_int(event, "seq"), i + 1);
        assert_int_equal(s_int(json_object_get(event, "payload"), "i"), i);
        json_decref(event);
    }
    assert_null(s_receive(sub, 300, NULL));
    events_publisher_destroy(&second);
    zsock_destroy(&sub);
    db_destroy(&db);
    zstr_free(&producer);
}

static void test_late_subscriber_catches_up(void **state)
{
    char *producer = s_name("d");
    char *consumer = s_name("dc");
    db_t *db = s_db(producer);
    db_t *consumer_db = s_consumer_db(consumer);
    events_publisher_t *publisher = events_publisher_new(s_url, producer, BUS_IN);
    assert_non_null(publisher);
    //  Published before anyone listens: only replay can deliver these.
    s_emit(db, 0, 5, "item.created");
    assert_int_equal(s_wait_count(db, "SELECT count(*) FROM outbox WHERE seq IS NOT NULL", 5, 5000),
                     5);
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {{route_topic, s_record_effect}, {NULL, NULL}};
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, NULL);
    assert_non_null(subscriber);
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 5, 5000), 5);
    //  Then live: five more and one unrouted topic that only moves the offset.
    zclock_sleep(SETTLE_MS);
    s_emit(db, 5, 5, "item.created");
    s_emit(db, 100, 1, "item.ignored");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 11, 5000), 11);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM effects"), 10);
    PGresult *result =
        db_query(consumer_db, "SELECT seq, value FROM effects ORDER BY position", 0, NULL);
    assert_non_null(result);
    for (int row = 0; row < 10; row++) {
        assert_int_equal(atoi(PQgetvalue(result, row, 0)), row + 1);
        assert_int_equal(atoi(PQgetvalue(result, row, 1)), row);
    }
    PQclear(result);
    events_subscriber_destroy(&subscriber);
    assert_null(subscriber);
    events_publisher_destroy(&publisher);
    zstr_free(&route_topic);
    db_destroy(&consumer_db);
    db_destroy(&db);
    zstr_free(&consumer);
    zstr_free(&producer);
}

static void test_duplicates_gaps_and_garbage(void **state)
{
    char *producer = s_name("e");
    char *consumer = s_name("ec");
    db_t *db = s_db(producer);
    db_t *consumer_db = s_consumer_db(consumer);
    //  No periodic replay during this test: only a gap may trigger one.
    setenv("EVENTS_REPLAY_MS", "600000", 1);
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {{route_topic, s_record_effect}, {NULL, NULL}};
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, NULL);
    unsetenv("EVENTS_REPLAY_MS");
    assert_non_null(subscriber);
    zsock_t *pub = zsock_new(ZMQ_PUB);
    assert_int_equal(zsock_connect(pub, "%s", BUS_IN), 0);
    zclock_sleep(SETTLE_MS); // also lets the start-up replay (of nothing) finish

    //  Rows 1..3 exist, only 3 arrives live: the gap is filled by replay.
    s_emit(db, 0, 3, "item.created");
    s_number_outbox(db);
    int calls_before = atomic_load(&s_fake_broker_calls);
    s_send_event(pub, producer, 3, "item.created", 2);
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 3, 2000), 3);
    assert_true(atomic_load(&s_fake_broker_calls) > calls_before);

    //  Duplicates and garbage change nothing and do not stop the thread.
    s_send_event(pub, producer, 2, "item.created", 1);
    s_send_event(pub, producer, 1, "item.created", 0);
    zstr_sendf(pub, "%s.item.created", producer); // one frame
    zstr_sendx(pub, route_topic, "not msgpack", NULL);
    json_t *bad =
        json_pack("{sssssssssIs{}}", "producer", producer, "seq", "4", "topic", "item.created",
                  "request_id", "", "created_ms", (json_int_t)1, "payload");
    size_t size = 0;
    char *bytes = msgjson_encode(bad, &size);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, route_topic);
    zmsg_addmem(msg, bytes, size);
    zmsg_send(&msg, pub);
    free(bytes);
    json_decref(bad);
    char *other = zsys_sprintf("%s.other", producer);
    s_send_event(pub, other, 4, "item.created", 99); // unknown producer, same prefix
    zstr_free(&other);
    msg = zmsg_new(); // topic frame disagrees with the event
    zmsg_addstrf(msg, "%s.item.deleted", producer);
    json_t *mismatch =
        json_pack("{sssIsssssIs{}}", "producer", producer, "seq", (json_int_t)4, "topic",
                  "item.created", "request_id", "", "created_ms", (json_int_t)1, "payload");
    bytes = msgjson_encode(mismatch, &size);
    zmsg_addmem(msg, bytes, size);
    zmsg_send(&msg, pub);
    free(bytes);
    json_decref(mismatch);

    //  The real next event is handled after all of that (same socket, in order).
    s_emit(db, 3, 1, "item.created");
    s_number_outbox(db);
    s_send_event(pub, producer, 4, "item.created", 3);
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 4, 2000), 4);
    zclock_sleep(100);
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT seq) FROM effects"), 4);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM effects"), 4);
    assert_int_equal(s_count(consumer_db, "SELECT last_seq FROM event_offsets"), 4);
    PGresult *result =
        db_query(consumer_db, "SELECT seq, value FROM effects ORDER BY position", 0, NULL);
    assert_non_null(result);
    for (int row = 0; row < 4; row++) {
        assert_int_equal(atoi(PQgetvalue(result, row, 0)), row + 1);
        assert_int_equal(atoi(PQgetvalue(result, row, 1)), row);
    }
    PQclear(result);

    //  A gap while the producer cannot be reached is filled once it can.
    s_emit(db, 4, 2, "item.created");
    s_number_outbox(db);
    atomic_store(&s_fake_broker_up, 0);
    s_send_event(pub, producer, 6, "item.created", 5);
    zclock_sleep(300);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM effects"), 4);
    atomic_store(&s_fake_broker_up, 1);
    s_emit(db, 6, 1, "item.created");
    s_number_outbox(db);
    s_send_event(pub, producer, 7, "item.created", 6); // the next live one meets the gap again
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 7, 2000), 7);

    events_subscriber_destroy(&subscriber);
    zsock_destroy(&pub);
    zstr_free(&route_topic);
    db_destroy(&consumer_db);
    db_destroy(&db);
    zstr_free(&consumer);
    zstr_free(&producer);
}

static void test_failing_handler_is_retried(void **state)
{
    char *producer = s_name("f");
    char *consumer = s_name("fc");
    db_t *db = s_db(producer);
    db_t *consumer_db = s_consumer_db(consumer);
    handler_state_t handler = {0};
    atomic_store(&handler.fail_seq, 2);
    atomic_store(&handler.fail_times, 3);
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {{route_topic, s_record_effect}, {NULL, NULL}};
    events_publisher_t *publisher = events_publisher_new(s_url, producer, BUS_IN);
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, &handler);
    assert_non_null(publisher);
    assert_non_null(subscriber);
    zclock_sleep(SETTLE_MS);
    s_emit(db, 0, 4, "item.created");
    //  Backoff 100 + 200 + 400 ms, then through.
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 4, 8000), 4);
    assert_int_equal(atomic_load(&handler.calls_of_fail_seq), 4);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM effects WHERE seq = 2"), 1);
    assert_int_equal(s_count(consumer_db, "SELECT last_seq FROM event_offsets"), 4);
    PGresult *result = db_query(consumer_db, "SELECT seq FROM effects ORDER BY position", 0, NULL);
    assert_non_null(result);
    for (int row = 0; row < 4; row++)
        assert_int_equal(atoi(PQgetvalue(result, row, 0)), row + 1);
    PQclear(result);
    events_subscriber_destroy(&subscriber);
    events_publisher_destroy(&publisher);
    zstr_free(&route_topic);
    db_destroy(&consumer_db);
    db_destroy(&db);
    zstr_free(&consumer);
    zstr_free(&producer);
}

static void test_two_consumer_instances_handle_once(void **state)
{
    char *producer = s_name("g");
    char *consumer = s_name("gc");
    db_t *db = s_db(producer);
    db_t *consumer_db = s_consumer_db(consumer);
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {{route_topic, s_record_effect}, {NULL, NULL}};
    events_publisher_t *publisher = events_publisher_new(s_url, producer, BUS_IN);
    events_subscriber_t *one =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, NULL);
    events_subscriber_t *two =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, NULL);
    assert_non_null(one);
    assert_non_null(two);
    zclock_sleep(SETTLE_MS);
    for (int i = 0; i < 30; i++)
        s_emit(db, i, 1, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 30, 8000), 30);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM effects"), 30);
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT seq) FROM effects"), 30);
    events_subscriber_destroy(&one);
    events_subscriber_destroy(&two);
    events_publisher_destroy(&publisher);
    zstr_free(&route_topic);
    db_destroy(&consumer_db);
    db_destroy(&db);
    zstr_free(&consumer);
    zstr_free(&producer);
}

//  Records (seq, the id of the transaction it ran in) in batch_effects, with
//  handler_state_t's failure injection.
static int s_record_transaction(db_t *db, const event_t *event, void *state)
{
    handler_state_t *handler = (handler_state_t *)state;
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", (long long)event->seq);
    const char *params[] = {seq};
    if (db_exec(db, "INSERT INTO batch_effects (seq, tx) VALUES ($1, txid_current())", 1, params) !=
        1)
        return -1;
    if (handler) atomic_fetch_add(&handler->deferred, 1);
    if (handler && event->seq == atomic_load(&handler->fail_seq)) {
        atomic_fetch_add(&handler->calls_of_fail_seq, 1);
        if (atomic_load(&handler->fail_times) > 0) {
            atomic_fetch_sub(&handler->fail_times, 1);
            return -1; // after writing: the batch's rollback must undo it
        }
    }
    return 0;
}

//  EVENTS_BATCH_END: writes (the transaction, the events handled since the
//  last end or reset) to batch_ends, inside the batch's transaction.
static int s_batch_end(db_t *db, const event_t *event, void *state)
{
    handler_state_t *handler = (handler_state_t *)state;
    assert_null(event);
    if (atomic_load(&handler->end_fail_times) > 0) {
        atomic_fetch_sub(&handler->end_fail_times, 1);
        return -1;
    }
    char count[24];
    snprintf(count, sizeof count, "%d", atomic_exchange(&handler->deferred, 0));
    const char *params[] = {count};
    return db_exec(db, "INSERT INTO batch_ends (tx, events) VALUES (txid_current(), $1)", 1,
                   params) == 1
               ? 0
               : -1;
}

//  EVENTS_BATCH_RESET: forgets what the rolled-back events counted.
static int s_batch_reset(db_t *db, const event_t *event, void *state)
{
    handler_state_t *handler = (handler_state_t *)state;
    assert_null(event);
    atomic_fetch_add(&handler->resets, 1);
    atomic_store(&handler->deferred, 0);
    return 0;
}

//  The batch hooks saw exactly the committed transactions: each one that
//  handled events ran the end hook once, inside it, counting exactly its
//  events (so what rolled-back events counted was reset), expected in all.
static void s_assert_batch_ends(db_t *consumer_db, long expected)
{
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM (SELECT DISTINCT tx"
                                          " FROM batch_effects) e WHERE (SELECT count(*)"
                                          " FROM batch_ends b WHERE b.tx = e.tx) <> 1"),
                     0);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM batch_ends b WHERE events <>"
                                          " (SELECT count(*) FROM batch_effects e"
                                          "  WHERE e.tx = b.tx)"),
                     0);
    assert_int_equal(s_count(consumer_db, "SELECT coalesce(sum(events), 0) FROM batch_ends"),
                     expected);
}

//  A producer with its publisher and a consumer schema with the tables of
//  s_record_transaction and s_batch_end: what the batch tests share.
typedef struct {
    char *producer, *consumer;
    db_t *db, *consumer_db;
    events_publisher_t *publisher;
} batch_fixture_t;

static batch_fixture_t s_batch_fixture(const char *tag)
{
    batch_fixture_t self = {0};
    self.producer = s_name(tag);
    char *consumer_tag = zsys_sprintf("%sc", tag);
    self.consumer = s_name(consumer_tag);
    zstr_free(&consumer_tag);
    self.db = s_db(self.producer);
    self.consumer_db = s_db(self.consumer);
    assert_int_equal(db_exec_script(self.consumer_db,
                                    "CREATE TABLE batch_effects (seq bigint, tx bigint);"
                                    "CREATE TABLE batch_ends (tx bigint, events int)"),
                     0);
    self.publisher = events_publisher_new(s_url, self.producer, BUS_IN);
    assert_non_null(self.publisher);
    return self;
}

static void s_batch_fixture_free(batch_fixture_t *self)
{
    events_publisher_destroy(&self->publisher);
    db_destroy(&self->consumer_db);
    db_destroy(&self->db);
    zstr_free(&self->consumer);
    zstr_free(&self->producer);
}

//  A backlog is handled many events per transaction (replay pages and live
//  bursts), each exactly once; a handler failing inside a batch undoes the
//  whole batch, which then goes event by event: the events before the
//  failing one commit, the failing one is retried, nothing is lost or
//  doubled, and the offset ends at the last seq.
static void test_backlog_is_handled_in_batches(void **state)
{
    batch_fixture_t fixture = s_batch_fixture("batch");
    const char *producer = fixture.producer, *consumer = fixture.consumer;
    db_t *db = fixture.db, *consumer_db = fixture.consumer_db;
    //  1,200 events before anyone listens (replay pages of 500), emitted
    //  with events_emit_many, in order.
    json_t *payloads = json_array();
    for (int i = 0; i < 1200; i++)
        json_array_append_new(payloads, json_pack("{si}", "i", i));
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(events_emit_many(db, "item.created", payloads), 0);
    json_t *none = json_array();
    assert_int_equal(events_emit_many(db, "item.created", none), 0); // empty: no-op
    json_decref(none);
    assert_int_equal(db_commit(db), 0);
    json_decref(payloads);
    assert_int_equal(
        s_wait_count(db, "SELECT count(*) FROM outbox WHERE seq IS NOT NULL", 1200, 10000), 1200);
    json_t *replay_args = json_pack("{si si}", "since", 699, "limit", 1);
    json_t *replay = events_replay(db, replay_args);
    json_decref(replay_args);
    json_t *first = json_array_get(json_object_get(reply_body(replay), "events"), 0);
    assert_int_equal(s_int(first, "seq"), 700);
    assert_int_equal(s_int(json_object_get(first, "payload"), "i"), 699);
    json_decref(replay);

    handler_state_t handler = {0};
    atomic_store(&handler.fail_seq, 700);
    atomic_store(&handler.fail_times, 1);
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    //  Hooks may stand anywhere in the table, before the routes too.
    events_route_t routes[] = {{EVENTS_BATCH_END, s_batch_end},
                               {EVENTS_BATCH_RESET, s_batch_reset},
                               {route_topic, s_record_transaction},
                               {NULL, NULL}};
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, &handler);
    assert_non_null(subscriber);
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 1200, 20000),
                     1200);
    s_assert_batch_ends(consumer_db, 1200);
    assert_true(atomic_load(&handler.resets) >= 1); // the failing batch
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM batch_effects"), 1200);
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT seq) FROM batch_effects"), 1200);
    //  The failing batch was undone and its events went one by one.
    assert_int_equal(atomic_load(&handler.calls_of_fail_seq), 2);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM batch_effects WHERE seq = 700"), 1);
    long pages_tx = s_count(consumer_db, "SELECT count(DISTINCT tx) FROM batch_effects"
                                         " WHERE seq <= 500 OR seq > 1000");
    assert_true(pages_tx >= 1 && pages_tx <= 4); // 1..500 and 1001..1200: a batch each
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT tx) FROM batch_effects"
                                          " WHERE seq BETWEEN 501 AND 1000"),
                     500); // event by event after the failure

    //  A live burst of 300 events in one commit is drained in runs.
    zclock_sleep(SETTLE_MS);
    s_emit(db, 1200, 300, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 1500, 20000),
                     1500);
    s_assert_batch_ends(consumer_db, 1500);
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT seq) FROM batch_effects"), 1500);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM batch_effects"), 1500);
    long live_tx =
        s_count(consumer_db, "SELECT count(DISTINCT tx) FROM batch_effects WHERE seq > 1200");
    print_message("live burst of 300 events: %ld transactions\n", live_tx);
    assert_true(live_tx >= 1 && live_tx < 300);

    //  An end hook that fails rolls its batch back like a failing handler
    //  (reset, then event by event): nothing lost, nothing counted twice.
    int resets_before = atomic_load(&handler.resets);
    atomic_store(&handler.end_fail_times, 1);
    s_emit(db, 1500, 50, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 1550, 20000),
                     1550);
    assert_int_equal(atomic_load(&handler.end_fail_times), 0);
    assert_true(atomic_load(&handler.resets) > resets_before);
    assert_int_equal(s_count(consumer_db, "SELECT count(*) FROM batch_effects"), 1550);
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT seq) FROM batch_effects"), 1550);
    s_assert_batch_ends(consumer_db, 1550);

    events_subscriber_destroy(&subscriber);
    zstr_free(&route_topic);
    s_batch_fixture_free(&fixture);
}

//  EVENTS_LINGER_MS: an event after a quiet spell is handled at once; events
//  arriving while the stream is busy are gathered for that long and share
//  one transaction. (Linger 1 s here so the timing is unmistakable; the
//  default is 10 ms.)
static void test_busy_stream_is_gathered(void **state)
{
    batch_fixture_t fixture = s_batch_fixture("linger");
    const char *producer = fixture.producer, *consumer = fixture.consumer;
    db_t *db = fixture.db, *consumer_db = fixture.consumer_db;
    handler_state_t handler = {0};
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {
        {route_topic, s_record_transaction}, {EVENTS_BATCH_END, s_batch_end}, {NULL, NULL}};
    setenv("EVENTS_LINGER_MS", "1000", 1);
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, &handler);
    unsetenv("EVENTS_LINGER_MS");
    assert_non_null(subscriber);
    zclock_sleep(SETTLE_MS);

    //  A lone event: not held for the linger.
    int64_t started = zclock_mono();
    s_emit(db, 0, 1, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 1, 5000), 1);
    int64_t took = zclock_mono() - started;
    print_message("lone event handled after %lld ms\n", (long long)took);
    assert_true(took < 800);

    //  Five commits 30 ms apart, right after: one transaction gathers them.
    for (int i = 1; i <= 5; i++) {
        s_emit(db, i, 1, "item.created");
        zclock_sleep(30);
    }
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 6, 10000), 6);
    long transactions =
        s_count(consumer_db, "SELECT count(DISTINCT tx) FROM batch_effects WHERE seq > 1");
    print_message("five busy events: %ld transactions\n", transactions);
    assert_true(transactions <= 2);
    s_assert_batch_ends(consumer_db, 6);

    events_subscriber_destroy(&subscriber);
    zstr_free(&route_topic);
    s_batch_fixture_free(&fixture);
}

//  EVENTS_PUBLISH_LINGER_MS: a commit after a quiet spell is published at
//  once; one within the linger of the last publisher round waits for it,
//  and the commits of that wait go out in one round. (1 s here, so the
//  timing is unmistakable; the default is 5 ms.)
static void test_busy_producer_is_gathered(void **state)
{
    setenv("EVENTS_PUBLISH_LINGER_MS", "1000", 1);
    batch_fixture_t fixture = s_batch_fixture("publinger");
    unsetenv("EVENTS_PUBLISH_LINGER_MS");
    const char *producer = fixture.producer, *consumer = fixture.consumer;
    db_t *db = fixture.db, *consumer_db = fixture.consumer_db;
    handler_state_t handler = {0};
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {
        {route_topic, s_record_transaction}, {EVENTS_BATCH_END, s_batch_end}, {NULL, NULL}};
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, BUS_OUT, FAKE_BROKER, routes, &handler);
    assert_non_null(subscriber);
    zclock_sleep(SETTLE_MS);

    int64_t started = zclock_mono();
    s_emit(db, 0, 1, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 1, 5000), 1);
    int64_t lone = zclock_mono() - started;
    print_message("lone commit handled after %lld ms\n", (long long)lone);
    assert_true(lone < 800);

    //  Three commits right after: none before the linger has passed since
    //  the first one's round, which began after `started`.
    for (int i = 1; i <= 3; i++)
        s_emit(db, i, 1, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT last_seq FROM event_offsets", 4, 5000), 4);
    int64_t busy = zclock_mono() - started;
    print_message("busy commits handled %lld ms after the first\n", (long long)busy);
    assert_true(busy >= 1000);
    //  Published in one round, they came to the consumer together (one
    //  transaction, or two if it woke between their frames).
    assert_true(
        s_count(consumer_db, "SELECT count(DISTINCT tx) FROM batch_effects WHERE seq > 1") <= 2);

    events_subscriber_destroy(&subscriber);
    zstr_free(&route_topic);
    s_batch_fixture_free(&fixture);
}

static void test_bad_arguments(void **state)
{
    assert_null(events_publisher_new(s_url, "Bad Name", BUS_IN));
    assert_null(events_publisher_new(s_url, "has.dot", BUS_IN));
    assert_null(
        events_publisher_new("postgresql://app@127.0.0.1:1/app?connect_timeout=2", "ok", BUS_IN));
    events_route_t no_dot[] = {{"nodot", s_record_effect}, {NULL, NULL}};
    assert_null(events_subscriber_new(s_url, "x", BUS_OUT, FAKE_BROKER, no_dot, NULL));
    events_route_t none[] = {{NULL, NULL}};
    assert_null(events_subscriber_new(s_url, "x", BUS_OUT, FAKE_BROKER, none, NULL));
    //  Batch hooks are no routes; each at most once, with a handler.
    events_route_t hooks_only[] = {{EVENTS_BATCH_END, s_batch_end}, {NULL, NULL}};
    assert_null(events_subscriber_new(s_url, "x", BUS_OUT, FAKE_BROKER, hooks_only, NULL));
    events_route_t twice[] = {{"p.item.created", s_record_effect},
                              {EVENTS_BATCH_RESET, s_batch_reset},
                              {EVENTS_BATCH_RESET, s_batch_reset},
                              {NULL, NULL}};
    assert_null(events_subscriber_new(s_url, "x", BUS_OUT, FAKE_BROKER, twice, NULL));
    events_route_t no_handler[] = {
        {"p.item.created", s_record_effect}, {EVENTS_BATCH_END, NULL}, {NULL, NULL}};
    assert_null(events_subscriber_new(s_url, "x", BUS_OUT, FAKE_BROKER, no_handler, NULL));
    events_subscriber_t *subscriber = NULL;
    events_subscriber_destroy(&subscriber);
}

//  ---- the real broker -------------------------------------------------------

typedef struct {
    const char *service;
    atomic_int stop;
} replay_worker_t;

static void *s_replay_worker(void *arg)
{
    replay_worker_t *self = (replay_worker_t *)arg;
    worker_t *worker = worker_new(REAL_BROKER, self->service);
    db_t *db = db_new(s_url, self->service);
    while (worker && db && !atomic_load(&self->stop)) {
        worker_request_t work;
        if (worker_recv(worker, &work, 100) != 1) continue;
        envelope_request_t request;
        json_t *reply;
        if (envelope_request_decode(work.envelope, work.envelope_size, &request) != 0)
            reply = reply_error(400, ERR_INVALID, "bad envelope");
        else {
            reply = streq(request.method, "events.replay")
                        ? events_replay(db, request.args)
                        : reply_error(404, ERR_NOT_FOUND, "unknown method");
            envelope_request_clear(&request);
        }
        size_t size = 0;
        char *bytes = envelope_reply_encode(reply, &size);
        worker_send(worker, &work, bytes, size);
        free(bytes);
        json_decref(reply);
    }
    db_destroy(&db);
    worker_destroy(&worker);
    return NULL;
}

static pid_t s_broker_pid;

//  Teardown of the real-broker case: runs even when the test failed.
static int s_stop_broker(void **state)
{
    if (s_broker_pid <= 0) return 0;
    kill(s_broker_pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && waitpid(s_broker_pid, &status, WNOHANG) == 0; i++)
        zclock_sleep(50);
    if (waitpid(s_broker_pid, &status, WNOHANG) == 0) {
        kill(s_broker_pid, SIGKILL);
        waitpid(s_broker_pid, &status, 0);
    }
    s_broker_pid = 0;
    return 0;
}

static void test_through_the_real_broker(void **state)
{
    char broker_path[600];
    if (s_find_near_binary("bin/broker", broker_path, sizeof broker_path, 4) != 0 &&
        s_find_near_binary("build/bin/broker", broker_path, sizeof broker_path, 1) != 0) {
        fprintf(stderr, "test_events: no broker binary; skipping the end-to-end case\n");
        skip();
    }
    pid_t parent = getpid();
    s_broker_pid = fork();
    assert_true(s_broker_pid >= 0);
    if (s_broker_pid == 0) {
        //  Dies with the test, whatever way the test ends.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        setenv("BROKER_URL", REAL_BROKER, 1);
        setenv("EVENTS_PUB_URL", REAL_BUS_IN, 1);
        setenv("EVENTS_SUB_URL", REAL_BUS_OUT, 1);
        setenv("LOG_LEVEL", "warn", 1);
        execl(broker_path, broker_path, (char *)NULL);
        _exit(127);
    }
    char *producer = s_name("h");
    char *consumer = s_name("hc");
    db_t *db = s_db(producer);
    db_t *consumer_db = s_consumer_db(consumer);
    replay_worker_t worker = {.service = producer};
    pthread_t thread;
    pthread_create(&thread, NULL, s_replay_worker, &worker);
    events_publisher_t *publisher = events_publisher_new(s_url, producer, REAL_BUS_IN);
    assert_non_null(publisher);
    s_emit(db, 0, 5, "item.created");
    assert_int_equal(s_wait_count(db, "SELECT count(*) FROM outbox WHERE seq IS NOT NULL", 5, 5000),
                     5);
    char *route_topic = zsys_sprintf("%s.item.created", producer);
    events_route_t routes[] = {{route_topic, s_record_effect}, {NULL, NULL}};
    events_subscriber_t *subscriber =
        events_subscriber_new(s_url, consumer, REAL_BUS_OUT, REAL_BROKER, routes, NULL);
    assert_non_null(subscriber);
    //  Caught up by replay through broker and worker (within a replay period).
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 5, 8000), 5);
    zclock_sleep(SETTLE_MS);
    s_emit(db, 5, 5, "item.created");
    assert_int_equal(s_wait_count(consumer_db, "SELECT count(*) FROM effects", 10, 8000), 10);
    assert_int_equal(s_count(consumer_db, "SELECT count(DISTINCT seq) FROM effects"), 10);
    events_subscriber_destroy(&subscriber);
    events_publisher_destroy(&publisher);
    atomic_store(&worker.stop, 1);
    pthread_join(thread, NULL);
    zstr_free(&route_topic);
    db_destroy(&consumer_db);
    db_destroy(&db);
    zstr_free(&consumer);
    zstr_free(&producer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_arguments),
        cmocka_unit_test(test_publish_in_order_and_replay),
        cmocka_unit_test(test_inline_event),
        cmocka_unit_test(test_one_publisher_leads),
        cmocka_unit_test(test_late_subscriber_catches_up),
        cmocka_unit_test(test_duplicates_gaps_and_garbage),
        cmocka_unit_test(test_failing_handler_is_retried),
        cmocka_unit_test(test_two_consumer_instances_handle_once),
        cmocka_unit_test(test_backlog_is_handled_in_batches),
        cmocka_unit_test(test_busy_stream_is_gathered),
        cmocka_unit_test(test_busy_producer_is_gathered),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_teardown(test_through_the_real_broker, s_stop_broker),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
