/*  test_users: users_decorate() and its halves (common/users.h) against a
    fake broker in this process (a ROUTER socket answering SC01 requests
    for "graph" and "media" as each test configures: 200 with computed
    relations and counts, 503, 404 unknown method, or silence until the
    deadline), so every path is checked without a database.

    Ports: 127.0.0.1:17650-17659. Every wait is bounded.
*/
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "rpc.h"
#include "users.h"

#include <czmq.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FAKE_BROKER "tcp://127.0.0.1:17650"

typedef enum { ANSWER_OK, ANSWER_503, ANSWER_404, ANSWER_SILENT } answer_t;

static struct {
    answer_t graph, media;
    int graph_calls, media_calls;
    size_t largest_batch;
    int64_t last_viewer;
    volatile bool stop;
    pthread_mutex_t lock;
} s_fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

//  Relations the fake graph computes from an id: id % 10 == 7 is blocked,
//  even ids are followed.
static json_t *s_relations(const json_t *ids)
{
    json_t *map = json_object();
    size_t index;
    json_t *value;
    json_array_foreach(ids, index, value)
    {
        int64_t id = strtoll(json_string_value(value), NULL, 10);
        bool followed = id % 2 == 0;
        json_object_set_new(map, json_string_value(value),
                            json_pack("{s:I, s:I, s:b, s:b, s:s, s:b, s:b}", "followers_count",
                                      (json_int_t)(id * 2), "following_count", (json_int_t)(id * 3),
                                      "followed_by_me", followed, "follows_me", id % 3 == 0,
                                      "follow_state", followed ? "following" : "none", "blocked",
                                      id % 10 == 7, "can_view", true));
    }
    return reply_ok(200, json_pack("{s:o}", "relations", map));
}

static json_t *s_counts(const json_t *ids)
{
    json_t *map = json_object();
    size_t index;
    json_t *value;
    json_array_foreach(ids, index, value)
    {
        int64_t id = strtoll(json_string_value(value), NULL, 10);
        json_object_set_new(map, json_string_value(value), json_integer(id + 100));
    }
    return reply_ok(200, json_pack("{s:o}", "counts", map));
}

static void *s_fake_broker(void *arg)
{
    (void)arg;
    zsock_t *router = zsock_new_router(FAKE_BROKER);
    assert_non_null(router);
    zpoller_t *poller = zpoller_new(router, NULL);
    while (!s_fake.stop) {
        if (!zpoller_wait(poller, 50)) continue;
        zmsg_t *msg = zmsg_recv(router);
        if (!msg) break;
        //  [client, "", SC01, service, correlation, deadline, envelope]
        zframe_t *client = zmsg_pop(msg);
        zframe_t *empty = zmsg_pop(msg);
        char *protocol = zmsg_popstr(msg);
        char *service = zmsg_popstr(msg);
        zframe_t *correlation = zmsg_pop(msg);
        char *deadline = zmsg_popstr(msg);
        zframe_t *envelope = zmsg_pop(msg);
        envelope_request_t request;
        json_t *reply = NULL;
        if (envelope &&
            envelope_request_decode(zframe_data(envelope), zframe_size(envelope), &request) == 0) {
            json_t *ids = json_object_get(request.args, "ids");
            pthread_mutex_lock(&s_fake.lock);
            bool graph = streq(service, "graph");
            answer_t answer = graph ? s_fake.graph : s_fake.media;
            if (graph)
                s_fake.graph_calls++;
            else
                s_fake.media_calls++;
            if (json_array_size(ids) > s_fake.largest_batch)
                s_fake.largest_batch = json_array_size(ids);
            s_fake.last_viewer = request.viewer_id;
            pthread_mutex_unlock(&s_fake.lock);
            bool method_ok = graph ? streq(request.method, "relations.batch")
                                   : streq(request.method, "posts.counts");
            if (!method_ok || answer == ANSWER_404)
                reply = reply_error(404, ERR_NOT_FOUND, "unknown method");
            else if (answer == ANSWER_503)
                reply = reply_error(503, ERR_UNAVAILABLE, "no worker");
            else if (answer == ANSWER_OK)
                reply = graph ? s_relations(ids) : s_counts(ids);
            envelope_request_clear(&request);
        }
        if (reply) {
            size_t size = 0;
            char *bytes = envelope_reply_encode(reply, &size);
            zmsg_t *out = zmsg_new();
            zmsg_append(out, &client);
            zmsg_addstr(out, "");
            zmsg_addstr(out, PROTOCOL_CLIENT);
            zmsg_addstr(out, service);
            zmsg_append(out, &correlation);
            zmsg_addmem(out, bytes, size);
            zmsg_send(&out, router);
            free(bytes);
            json_decref(reply);
        }
        zframe_destroy(&client);
        zframe_destroy(&empty);
        zframe_destroy(&correlation);
        zframe_destroy(&envelope);
        zstr_free(&protocol);
        zstr_free(&service);
        zstr_free(&deadline);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
    return NULL;
}

static pthread_t s_thread;
static rpc_client_t *s_client;

static int s_setup(void **state)
{
    (void)state;
    s_fake.stop = false;
    //  CZMQ sets itself up on the first socket, and two threads making
    //  their first sockets at once (the fake broker's and the client's)
    //  can trip its assertions: set it up before the thread starts.
    rpc_zsys_init_once();
    if (pthread_create(&s_thread, NULL, s_fake_broker, NULL) != 0) return -1;
    s_client = rpc_client_new(FAKE_BROKER);
    return s_client ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    rpc_client_destroy(&s_client);
    s_fake.stop = true;
    pthread_join(s_thread, NULL);
    return 0;
}

static void s_configure(answer_t graph, answer_t media)
{
    pthread_mutex_lock(&s_fake.lock);
    s_fake.graph = graph;
    s_fake.media = media;
    s_fake.graph_calls = s_fake.media_calls = 0;
    s_fake.largest_batch = 0;
    s_fake.last_viewer = -1;
    pthread_mutex_unlock(&s_fake.lock);
}

//  count base users with ids first, first + 1, …
static json_t *s_users(int64_t first, size_t count)
{
    json_t *users = json_array();
    for (size_t i = 0; i < count; i++) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)(first + (int64_t)i));
        json_array_append_new(users, json_pack("{s:s, s:s, s:i, s:i, s:i}", "id", id, "username",
                                               "someone", "followers_count", 0, "following_count",
                                               0, "posts_count", 0));
    }
    return users;
}

static json_int_t s_int(const json_t *user, const char *key)
{
    json_t *value = json_object_get(user, key);
    assert_true(json_is_integer(value));
    return json_integer_value(value);
}

static int64_t s_user_id(const json_t *user)
{
    return strtoll(json_string_value(json_object_get(user, "id")), NULL, 10);
}

//  ---- tests ----------------------------------------------------------------

static void test_decorate_full(void **state)
{
    (void)state;
    s_configure(ANSWER_OK, ANSWER_OK);
    json_t *users = s_users(1, 20); // ids 1..20: 7 and 17 are blocked
    assert_int_equal(users_decorate(s_client, 42, users, 0, 0), 0);
    assert_int_equal(json_array_size(users), 18);
    assert_int_equal(s_fake.graph_calls, 1);
    assert_int_equal(s_fake.media_calls, 1);
    assert_int_equal(s_fake.last_viewer, 42);
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        int64_t id = s_user_id(user);
        assert_true(id % 10 != 7);
        assert_int_equal(s_int(user, "followers_count"), id * 2);
        assert_int_equal(s_int(user, "following_count"), id * 3);
        assert_int_equal(s_int(user, "posts_count"), id + 100);
        assert_int_equal(json_is_true(json_object_get(user, "followed_by_me")), id % 2 == 0);
        assert_int_equal(json_is_true(json_object_get(user, "follows_me")), id % 3 == 0);
        assert_string_equal(json_string_value(json_object_get(user, "follow_state")),
                            id % 2 == 0 ? "following" : "none");
    }
    //  The order of the rest is kept.
    assert_int_equal(s_user_id(json_array_get(users, 5)), 6);
    assert_int_equal(s_user_id(json_array_get(users, 6)), 8);
    json_decref(users);
}

static void test_decorate_anonymous_and_flags(void **state)
{
    (void)state;
    s_configure(ANSWER_OK, ANSWER_OK);
    json_t *users = s_users(5, 4); // 5, 6, 7 (blocked), 8
    assert_int_equal(users_decorate(s_client, 0, users, USERS_KEEP_BLOCKED, 0), 0);
    assert_int_equal(json_array_size(users), 4);
    assert_null(json_object_get(json_array_get(users, 0), "followed_by_me"));
    assert_null(json_object_get(json_array_get(users, 0), "follow_state"));
    assert_int_equal(s_int(json_array_get(users, 2), "followers_count"), 14);
    json_decref(users);

    //  Skipping graph: no graph call, nothing dropped, graph fields as they were.
    s_configure(ANSWER_OK, ANSWER_OK);
    users = s_users(5, 4);
    assert_int_equal(users_decorate(s_client, 9, users, USERS_SKIP_GRAPH, 0), 0);
    assert_int_equal(s_fake.graph_calls, 0);
    assert_int_equal(s_fake.media_calls, 1);
    assert_int_equal(json_array_size(users), 4);
    assert_int_equal(s_int(json_array_get(users, 0), "followers_count"), 0);
    assert_int_equal(s_int(json_array_get(users, 0), "posts_count"), 105);
    json_decref(users);

    //  Skipping media: posts_count untouched.
    s_configure(ANSWER_OK, ANSWER_OK);
    users = s_users(5, 2);
    json_object_set_new(json_array_get(users, 0), "posts_count", json_integer(77));
    assert_int_equal(users_decorate(s_client, 9, users, USERS_SKIP_MEDIA, 0), 0);
    assert_int_equal(s_fake.media_calls, 0);
    assert_int_equal(s_int(json_array_get(users, 0), "posts_count"), 77);
    assert_int_equal(s_int(json_array_get(users, 0), "followers_count"), 10);
    json_decref(users);

    //  Nothing to do, and not an array.
    s_configure(ANSWER_OK, ANSWER_OK);
    users = json_array();
    assert_int_equal(users_decorate(s_client, 9, users, 0, 0), 0);
    assert_int_equal(s_fake.graph_calls + s_fake.media_calls, 0);
    json_decref(users);
    json_t *object = json_object();
    assert_int_equal(users_decorate(s_client, 9, object, 0, 0), -1);
    json_decref(object);
}

//  One call per peer per 1000 users, blocked ones dropped across chunks.
static void test_decorate_chunks(void **state)
{
    (void)state;
    s_configure(ANSWER_OK, ANSWER_OK);
    json_t *users = s_users(1, 2500); // 250 blocked (ids ending in 7)
    assert_int_equal(users_decorate(s_client, 3, users, 0, 0), 0);
    assert_int_equal(s_fake.graph_calls, 3);
    assert_int_equal(s_fake.media_calls, 3);
    assert_int_equal(s_fake.largest_batch, USERS_BATCH_MAX);
    assert_int_equal(json_array_size(users), 2250);
    int64_t previous = 0;
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        int64_t id = s_user_id(user);
        assert_true(id > previous && id % 10 != 7);
        assert_int_equal(s_int(user, "posts_count"), id + 100);
        previous = id;
    }
    json_decref(users);
}

//  A peer that is down, does not know the method, or does not answer in
//  time: 0 / false / "none", nobody dropped, and the call is bounded.
static void test_decorate_degrades(void **state)
{
    (void)state;
    answer_t answers[] = {ANSWER_503, ANSWER_404, ANSWER_SILENT};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        s_configure(answers[i], answers[i]);
        json_t *users = s_users(6, 3); // 6, 7 (blocked if graph answered), 8
        json_object_set_new(json_array_get(users, 0), "followers_count", json_integer(99));
        int64_t started = zclock_mono();
        //  A 600 ms deadline: each peer gets at most a third of what is left.
        assert_int_equal(users_decorate(s_client, 5, users, 0, envelope_now_ms() + 600), 0);
        assert_true(zclock_mono() - started < 600);
        assert_int_equal(json_array_size(users), 3);
        size_t index;
        json_t *user;
        json_array_foreach(users, index, user)
        {
            assert_int_equal(s_int(user, "followers_count"), 0);
            assert_int_equal(s_int(user, "following_count"), 0);
            assert_int_equal(s_int(user, "posts_count"), 0);
            assert_false(json_is_true(json_object_get(user, "followed_by_me")));
            assert_false(json_is_true(json_object_get(user, "follows_me")));
            assert_string_equal(json_string_value(json_object_get(user, "follow_state")), "none");
        }
        json_decref(users);
    }
    //  One peer down, the other up: each part on its own.
    s_configure(ANSWER_503, ANSWER_OK);
    json_t *users = s_users(6, 2);
    assert_int_equal(users_decorate(s_client, 5, users, 0, 0), 0);
    assert_int_equal(json_array_size(users), 2);
    assert_int_equal(s_int(json_array_get(users, 1), "posts_count"), 107);
    assert_int_equal(s_int(json_array_get(users, 1), "followers_count"), 0);
    json_decref(users);
}

//  The halves, as graph and media use them directly.
static void test_apply(void **state)
{
    (void)state;
    json_t *users = s_users(1, 3);
    json_t *relations =
        json_pack("{s:{s:i, s:i, s:b, s:b, s:s, s:b}, s:{s:b}}", "1", "followers_count", 4,
                  "following_count", 5, "followed_by_me", 0, "follows_me", 1, "follow_state",
                  "requested", "blocked", 0, "2", "blocked", 1);
    users_apply_relations(users, relations, 8, 0);
    assert_int_equal(json_array_size(users), 2); // 2 was blocked
    json_t *first = json_array_get(users, 0), *third = json_array_get(users, 1);
    assert_int_equal(s_int(first, "followers_count"), 4);
    assert_string_equal(json_string_value(json_object_get(first, "follow_state")), "requested");
    assert_true(json_is_true(json_object_get(first, "follows_me")));
    //  An id the relations do not mention: zeros.
    assert_int_equal(s_int(third, "followers_count"), 0);
    assert_string_equal(json_string_value(json_object_get(third, "follow_state")), "none");
    json_t *counts = json_pack("{s:i}", "3", 12);
    users_apply_post_counts(users, counts);
    assert_int_equal(s_int(first, "posts_count"), 0);
    assert_int_equal(s_int(third, "posts_count"), 12);
    users_apply_post_counts(users, NULL);
    assert_int_equal(s_int(third, "posts_count"), 0);
    json_decref(counts);
    json_decref(relations);
    json_decref(users);
}

int main(void)
{
    setenv("LOG_LEVEL", "error", 0);
    log_init("test_users");
    zsys_handler_set(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decorate_full),   cmocka_unit_test(test_decorate_anonymous_and_flags),
        cmocka_unit_test(test_decorate_chunks), cmocka_unit_test(test_decorate_degrades),
        cmocka_unit_test(test_apply),
    };
    return cmocka_run_group_tests_name("users", tests, s_setup, s_teardown);
}
