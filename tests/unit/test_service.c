/*  test_service: service_dispatch, and worker.c and rpc.c against a fake
    broker (a ROUTER socket in this process), so each side of the protocol
    is checked frame by frame, including what a real broker never sends.

    Ports: 127.0.0.1:17020-17029. Every receive has a timeout.
*/
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "rpc.h"
#include "service.h"
#include "worker.h"

#include <czmq.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define FAKE_BROKER_WORKER "tcp://127.0.0.1:17020"
#define FAKE_BROKER_RPC "tcp://127.0.0.1:17021"

//  ---------------------------------------------------------------------
//  service_dispatch

static json_t *s_hello(call_t *call)
{
    return reply_ok(200, json_pack("{s:I, s:s}", "viewer", (json_int_t)call->viewer_id, "state",
                                   (const char *)call->state));
}

static json_t *s_returns_null(call_t *call)
{
    return NULL;
}

static json_t *s_returns_junk(call_t *call)
{
    return json_pack("{s:s}", "status", "fine");
}

static json_t *s_returns_error(call_t *call)
{
    return reply_error(409, ERR_CONFLICT, "taken");
}

static const service_method_t s_methods[] = {{"hello", s_hello},
                                             {"null", s_returns_null},
                                             {"junk", s_returns_junk},
                                             {"conflict", s_returns_error},
                                             {NULL, NULL}};

static json_t *s_dispatch(const char *method, bool produces_events)
{
    service_def_t def = {.name = "test",
                         .methods = s_methods,
                         .state = (void *)"the state",
                         .produces_events = produces_events};
    envelope_request_t request = {.v = 1, .viewer_id = 42, .args = json_object()};
    snprintf(request.method, sizeof request.method, "%s", method);
    call_t call = {.request = &request, .args = request.args, .viewer_id = 42, .state = def.state};
    json_t *reply = service_dispatch(&def, &call);
    envelope_request_clear(&request);
    return reply;
}

static void test_dispatch(void **state)
{
    json_t *reply = s_dispatch("hello", false);
    assert_int_equal(reply_status(reply), 200);
    assert_int_equal(json_integer_value(json_object_get(reply_body(reply), "viewer")), 42);
    assert_string_equal(json_string_value(json_object_get(reply_body(reply), "state")),
                        "the state");
    json_decref(reply);

    reply = s_dispatch("conflict", false);
    assert_int_equal(reply_status(reply), 409);
    assert_string_equal(reply_error_code(reply), ERR_CONFLICT);
    json_decref(reply);

    const char *cases[][2] = {{"nope", ERR_NOT_FOUND},
                              {"null", ERR_INTERNAL},
                              {"junk", ERR_INTERNAL},
                              {"events.replay", ERR_NOT_FOUND}, // not a producer
                              {"hello.", ERR_NOT_FOUND}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply = s_dispatch(cases[i][0], false);
        assert_string_equal(reply_error_code(reply), cases[i][1]);
        assert_int_equal(reply_status(reply), errors_status_for_code(cases[i][1]));
        json_decref(reply);
    }
}

//  ---------------------------------------------------------------------
//  worker.c against a fake broker

static zsock_t *s_fake_broker(const char *endpoint)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    assert_non_null(router);
    zsock_set_linger(router, 0);
    zsock_set_rcvtimeo(router, 3000);
    assert_true(zsock_bind(router, "%s", endpoint) != -1);
    return router;
}

//  Receives the next worker message that is not a HEARTBEAT (unless
//  want_heartbeat). Returns it with the routing id first; NULL on timeout.
static zmsg_t *s_next(zsock_t *router, bool want_heartbeat)
{
    while (true) {
        zmsg_t *msg = zmsg_recv(router);
        if (!msg) return NULL;
        assert_true(zmsg_size(msg) >= 4);
        zframe_t *command = zmsg_first(msg);
        for (int i = 0; i < 3; i++)
            command = zmsg_next(msg);
        if (want_heartbeat || !zframe_streq(command, PROTOCOL_HEARTBEAT)) return msg;
        zmsg_destroy(&msg);
    }
}

static void s_assert_frame(zmsg_t *msg, int index, const char *text)
{
    zframe_t *frame = zmsg_first(msg);
    for (int i = 0; i < index; i++)
        frame = zmsg_next(msg);
    assert_non_null(frame);
    char *actual = zframe_strdup(frame);
    assert_string_equal(actual, text);
    freen(actual);
}

//  Sends [address, "", SW01, parts...] (strings; NULL ends the list).
static void s_to_worker(zsock_t *router, zframe_t *address, ...)
{
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(address)});
    zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, PROTOCOL_WORKER);
    va_list ap;
    va_start(ap, address);
    for (const char *part = va_arg(ap, const char *); part; part = va_arg(ap, const char *))
        zmsg_addstr(msg, part);
    va_end(ap);
    zmsg_send(&msg, router);
}

//  Runs the worker in short slices until the fake broker sees READY.
//  Returns that message's routing id, or NULL after within_ms.
static zframe_t *s_wait_ready(zsock_t *router, worker_t *worker, int within_ms)
{
    zsock_set_rcvtimeo(router, 0);
    zframe_t *address = NULL;
    int64_t until = zclock_mono() + within_ms;
    while (!address && zclock_mono() < until) {
        worker_request_t request;
        if (worker_recv(worker, &request, 20) == 1) worker_request_clear(&request);
        zmsg_t *msg;
        while (!address && (msg = zmsg_recv(router))) {
            zframe_t *command = zmsg_first(msg);
            for (int i = 0; i < 3; i++)
                command = zmsg_next(msg);
            if (zframe_streq(command, PROTOCOL_READY)) address = zframe_dup(zmsg_first(msg));
            zmsg_destroy(&msg);
        }
    }
    zsock_set_rcvtimeo(router, 3000);
    return address;
}

static void test_worker_protocol(void **state)
{
    zsock_t *router = s_fake_broker(FAKE_BROKER_WORKER);
    assert_null(worker_new(FAKE_BROKER_WORKER, "Not A Name"));
    worker_t *worker = worker_new(FAKE_BROKER_WORKER, "svc");
    assert_non_null(worker);

    //  READY first, with the service name.
    zmsg_t *msg = s_next(router, true);
    assert_non_null(msg);
    assert_int_equal(zmsg_size(msg), 5);
    s_assert_frame(msg, 1, "");
    s_assert_frame(msg, 2, PROTOCOL_WORKER);
    s_assert_frame(msg, 3, PROTOCOL_READY);
    s_assert_frame(msg, 4, "svc");
    zframe_t *address = zframe_dup(zmsg_first(msg));
    zmsg_destroy(&msg);

    //  Junk from the broker is ignored; a REQUEST comes through whole.
    s_to_worker(router, address, "BOGUS", NULL);
    s_to_worker(router, address, PROTOCOL_REQUEST, "too few", NULL);
    s_to_worker(router, address, PROTOCOL_REQUEST, "client-1", "corr-1", "envelope", NULL);
    worker_request_t request;
    assert_int_equal(worker_recv(worker, &request, 2000), 1);
    assert_int_equal(request.client_size, 8);
    assert_memory_equal(request.client, "client-1", 8);
    assert_memory_equal(request.correlation, "corr-1", 6);
    assert_memory_equal(request.envelope, "envelope", 8);
    assert_null(request.blob); // none sent: not the empty delimiter frame
    assert_int_equal(request.blob_size, 0);
    assert_int_equal(worker_send(worker, &request, "reply", 5), 0);
    assert_null(request.client);
    //  With a blob: its bytes, an empty one included.
    s_to_worker(router, address, PROTOCOL_REQUEST, "client-2", "corr-2", "envelope", PROTOCOL_BLOB,
                "bytes", NULL);
    assert_int_equal(worker_recv(worker, &request, 2000), 1);
    assert_non_null(request.blob);
    assert_int_equal(request.blob_size, 5);
    assert_memory_equal(request.blob, "bytes", 5);
    worker_request_clear(&request);
    s_to_worker(router, address, PROTOCOL_REQUEST, "client-3", "corr-3", "envelope", PROTOCOL_BLOB,
                "", NULL);
    assert_int_equal(worker_recv(worker, &request, 2000), 1);
    assert_non_null(request.blob);
    assert_int_equal(request.blob_size, 0);
    worker_request_clear(&request);
    msg = s_next(router, false);
    assert_non_null(msg);
    assert_int_equal(zmsg_size(msg), 7);
    s_assert_frame(msg, 3, PROTOCOL_REPLY);
    s_assert_frame(msg, 4, "client-1");
    s_assert_frame(msg, 5, "corr-1");
    s_assert_frame(msg, 6, "reply");
    zmsg_destroy(&msg);

    //  Heartbeats while idle: one within ~1 s, and worker_recv times out.
    int64_t started = zclock_mono();
    assert_int_equal(worker_recv(worker, &request, 1300), 0);
    assert_in_range(zclock_mono() - started, 1250, 1600);
    msg = s_next(router, true);
    assert_non_null(msg);
    s_assert_frame(msg, 3, PROTOCOL_HEARTBEAT);
    zmsg_destroy(&msg);

    //  DISCONNECT: a new socket (new routing id) says READY again. Then a
    //  silent broker (we never heartbeat) makes it reconnect after the
    //  liveness window, counted from that connection.
    s_to_worker(router, address, PROTOCOL_DISCONNECT, NULL);
    zframe_t *new_address = s_wait_ready(router, worker, 2000);
    assert_non_null(new_address);
    assert_false(zframe_eq(address, new_address));
    started = zclock_mono();
    zframe_destroy(&new_address);
    new_address = s_wait_ready(router, worker, 6000);
    assert_non_null(new_address);
    int64_t silence = zclock_mono() - started;
    assert_in_range(silence, 2900, 3400);
    zframe_destroy(&new_address);

    //  destroy says DISCONNECT.
    zframe_destroy(&address);
    worker_destroy(&worker);
    assert_null(worker);
    msg = s_next(router, false);
    assert_non_null(msg);
    s_assert_frame(msg, 3, PROTOCOL_DISCONNECT);
    zmsg_destroy(&msg);
    zsock_destroy(&router);
}

//  ---------------------------------------------------------------------
//  rpc.c against a fake broker

typedef struct {
    zsock_t *router;
    int scenario;
    bool request_ok; // the request had the expected frames and envelope
} fake_t;

//  Answers one client request ["", SC01, service, correlation, deadline,
//  envelope] the way the scenario says, from a thread.
static void *s_fake_answer(void *arg)
{
    fake_t *fake = (fake_t *)arg;
    zmsg_t *msg = zmsg_recv(fake->router);
    if (!msg) return NULL;
    zframe_t *client = zmsg_pop(msg);
    zframe_t *empty = zmsg_pop(msg);
    zframe_t *protocol = zmsg_pop(msg);
    zframe_t *service = zmsg_pop(msg);
    zframe_t *correlation = zmsg_pop(msg);
    zframe_t *deadline = zmsg_pop(msg);
    zframe_t *envelope = zmsg_pop(msg);
    //  No cmocka assertions in this thread (they longjmp): record instead.
    envelope_request_t request;
    char *deadline_text = zframe_strdup(deadline);
    fake->request_ok =
        envelope && zframe_size(empty) == 0 && zframe_streq(protocol, PROTOCOL_CLIENT) &&
        zframe_streq(service, "svc") &&
        envelope_request_decode(zframe_data(envelope), zframe_size(envelope), &request) == 0 &&
        streq(request.method, "m.get") && request.viewer_id == 7 &&
        atoll(deadline_text) == request.deadline_ms;
    freen(deadline_text);
    if (!fake->request_ok) {
        memset(&request, 0, sizeof request);
        snprintf(request.request_id, sizeof request.request_id, "bad");
    }

    json_t *good = reply_ok(200, json_pack("{s:s}", "request_id", request.request_id));
    size_t size;
    char *bytes = envelope_reply_encode(good, &size);
    zmsg_t *reply = zmsg_new();
    zmsg_addmem(reply, zframe_data(client), zframe_size(client));
    zmsg_addmem(reply, "", 0);
    zmsg_addstr(reply, PROTOCOL_CLIENT);
    zmsg_addmem(reply, zframe_data(service), zframe_size(service));
    if (fake->scenario == 1) {
        //  Stale and malformed messages first; then the real one.
        zmsg_t *stale = zmsg_dup(reply);
        zmsg_addstr(stale, "0");
        zmsg_addmem(stale, bytes, size);
        zmsg_send(&stale, fake->router);
        zmsg_t *short_one = zmsg_dup(reply);
        zmsg_send(&short_one, fake->router);
        zmsg_t *other_service = zmsg_new();
        zmsg_addmem(other_service, zframe_data(client), zframe_size(client));
        zmsg_addmem(other_service, "", 0);
        zmsg_addstr(other_service, PROTOCOL_CLIENT);
        zmsg_addstr(other_service, "another");
        zmsg_addmem(other_service, zframe_data(correlation), zframe_size(correlation));
        zmsg_addmem(other_service, bytes, size);
        zmsg_send(&other_service, fake->router);
    }
    zmsg_addmem(reply, zframe_data(correlation), zframe_size(correlation));
    if (fake->scenario == 2)
        zmsg_addstr(reply, "\xc1 not msgpack");
    else
        zmsg_addmem(reply, bytes, size);
    if (fake->scenario != 3) // 3: never answer
        zmsg_send(&reply, fake->router);
    zmsg_destroy(&reply);
    free(bytes);
    json_decref(good);
    envelope_request_clear(&request);
    zframe_destroy(&client);
    zframe_destroy(&empty);
    zframe_destroy(&protocol);
    zframe_destroy(&service);
    zframe_destroy(&correlation);
    zframe_destroy(&deadline);
    zframe_destroy(&envelope);
    zmsg_destroy(&msg);
    return NULL;
}

static json_t *s_call_fake(rpc_client_t *client, zsock_t *router, int scenario, int timeout_ms)
{
    fake_t fake = {router, scenario, false};
    pthread_t thread;
    pthread_create(&thread, NULL, s_fake_answer, &fake);
    json_t *reply =
        rpc_call(client, "svc", "m.get", 7, NULL, "req-1", envelope_now_ms() + timeout_ms);
    pthread_join(thread, NULL);
    assert_true(fake.request_ok);
    return reply;
}

static void test_rpc_client(void **state)
{
    zsock_t *router = s_fake_broker(FAKE_BROKER_RPC);
    rpc_client_t *client = rpc_client_new(FAKE_BROKER_RPC);
    assert_non_null(client);

    json_t *reply = s_call_fake(client, router, 0, 2000);
    assert_int_equal(reply_status(reply), 200);
    assert_string_equal(json_string_value(json_object_get(reply_body(reply), "request_id")),
                        "req-1");
    json_decref(reply);

    //  Stale correlation, short message and wrong service are skipped.
    reply = s_call_fake(client, router, 1, 2000);
    assert_int_equal(reply_status(reply), 200);
    json_decref(reply);

    reply = s_call_fake(client, router, 2, 2000);
    assert_int_equal(reply_status(reply), 500);
    assert_string_equal(reply_error_code(reply), ERR_INTERNAL);
    json_decref(reply);

    int64_t started = zclock_mono();
    reply = s_call_fake(client, router, 3, 400);
    int64_t took = zclock_mono() - started;
    assert_int_equal(reply_status(reply), 504);
    assert_in_range(took, 380, 600);
    json_decref(reply);

    //  A deadline already past and bad names answer at once.
    reply = rpc_call(client, "svc", "m.get", 0, NULL, NULL, envelope_now_ms() - 1);
    assert_int_equal(reply_status(reply), 504);
    json_decref(reply);
    reply = rpc_call(client, "Bad Service", "m.get", 0, NULL, NULL, 0);
    assert_int_equal(reply_status(reply), 500);
    json_decref(reply);
    char long_method[100];
    memset(long_method, 'm', sizeof long_method - 1);
    long_method[sizeof long_method - 1] = '\0';
    reply = rpc_call(client, "svc", long_method, 0, NULL, NULL, 0);
    assert_int_equal(reply_status(reply), 500);
    json_decref(reply);

    //  The thread's log request id is used when none is given.
    log_set_request_id("from-the-log");
    fake_t fake = {router, 0, false};
    pthread_t thread;
    pthread_create(&thread, NULL, s_fake_answer, &fake);
    reply = rpc_call(client, "svc", "m.get", 7, NULL, NULL, 0);
    pthread_join(thread, NULL);
    assert_true(fake.request_ok);
    assert_string_equal(json_string_value(json_object_get(reply_body(reply), "request_id")),
                        "from-the-log");
    json_decref(reply);
    log_set_request_id(NULL);

    rpc_client_destroy(&client);
    assert_null(client);
    rpc_client_destroy(&client); // twice is fine
    zsock_destroy(&router);
}

int main(void)
{
    setenv("LOG_LEVEL", "error", 0);
    log_init("test_service");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_worker_protocol),
        cmocka_unit_test(test_rpc_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
