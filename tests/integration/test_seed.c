/*  test_seed: the benchmark seed methods identity.seed, graph.seed and
    media.seed (services/<name>/seed.c; docs/contracts.md, "Benchmark
    seeding"), called through the broker as tools/bench_seed.c calls them.

    Two stacks, one after the other:
      - switches off (base port 19110): each method answers 403 and writes
        nothing;
      - switches on (base port 19100): bad arguments are 400 naming the
        field; a small dataset (60 accounts, their follows, 300 posts with
        a real image, likes, comments) has the counts asked, each new row
        emitted the event the real handler emits (counted through each
        producer's events.replay), and the consumers built their
        projections from those events the normal way: the seeded password
        signs in, a profile's counters add up, the newest seeded post heads
        its author's home feed (feed) with its image, and search finds a
        seeded account.

    Every wait is bounded.
*/
#include "envelope.h"
#include "errors.h"
#include "fixtures.h"
#include "harness.h"
#include "rpc.h"

#include <czmq.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define BASE_PORT_ON 19100
#define BASE_PORT_OFF 19110
#define PASSWORD "seed-password-1"
#define USERS 60
#define POSTS 300

static rpc_client_t *s_client;

//  Calls service.method with args (stolen) as an anonymous caller, with a
//  generous deadline (seeding is bulk work). Returns the reply.
static json_t *s_call(const char *service, const char *method, json_t *args_stolen)
{
    json_t *reply =
        rpc_call(s_client, service, method, 0, args_stolen, NULL, envelope_now_ms() + 30000);
    json_decref(args_stolen);
    return reply;
}

//  The status of a call; prints the reply when it is not expected.
static int s_status(json_t *reply, int expected)
{
    int status = reply_status(reply);
    if (status != expected) {
        char *text = json_dumps(reply, JSON_COMPACT);
        print_message("reply %d, expected %d: %s\n", status, expected, text ? text : "?");
        free(text);
    }
    return status;
}

//  body.created of a 200 reply (asserted).
static int s_created(json_t *reply)
{
    assert_int_equal(s_status(reply, 200), 200);
    json_t *created = json_object_get(reply_body(reply), "created");
    assert_true(json_is_integer(created));
    int value = (int)json_integer_value(created);
    json_decref(reply);
    return value;
}

//  How many events of topic producer's outbox holds (events.replay, page
//  after page). With last, copies the payload of the last one (new ref).
static int s_count_events(const char *producer, const char *topic, json_t **last)
{
    int count = 0;
    json_int_t since = 0;
    for (int page = 0; page < 100; page++) {
        json_t *reply = s_call(producer, "events.replay",
                               json_pack("{s:I, s:i}", "since", since, "limit", 1000));
        assert_int_equal(s_status(reply, 200), 200);
        json_t *events = json_object_get(reply_body(reply), "events");
        size_t index;
        json_t *event;
        json_array_foreach(events, index, event)
        {
            since = json_integer_value(json_object_get(event, "seq"));
            if (!streq(json_string_value(json_object_get(event, "topic")), topic)) continue;
            count++;
            if (last) {
                json_decref(*last);
                *last = json_incref(json_object_get(event, "payload"));
            }
        }
        size_t size = json_array_size(events);
        json_decref(reply);
        if (size < 1000) break;
    }
    return count;
}

//  s_count_events once the count reaches expected (the publisher numbers
//  committed rows within milliseconds; replay shows only numbered ones),
//  bounded by 10 s.
static int s_wait_events(const char *producer, const char *topic, int expected, json_t **last)
{
    int count = 0;
    for (int tries = 0; tries < 200; tries++) {
        count = s_count_events(producer, topic, last);
        if (count >= expected) break;
        zclock_sleep(50);
    }
    return count;
}

//  ---- switches off ------------------------------------------------------------

static void test_refused_when_off(void **state)
{
    (void)state;
    json_t *reply =
        s_call("identity", "identity.seed",
               json_pack("{s:i, s:i, s:s}", "from", 0, "count", 5, "password", PASSWORD));
    assert_int_equal(s_status(reply, 403), 403);
    assert_string_equal(reply_error_code(reply), "forbidden");
    json_decref(reply);
    reply =
        s_call("graph", "graph.seed",
               json_pack("{s:i, s:i, s:i, s:i}", "users", 5, "from", 0, "count", 5, "follows", 2));
    assert_int_equal(s_status(reply, 403), 403);
    json_decref(reply);
    reply = s_call("media", "media.seed",
                   json_pack("{s:s, s:i, s:i}", "what", "likes", "users", 5, "count", 5));
    assert_int_equal(s_status(reply, 403), 403);
    json_decref(reply);
    //  Nothing was written: no account, no event.
    http_response_t response = {0};
    assert_int_equal(http_request("GET", "/api/v1/users/bench_u0", NULL, NULL, NULL, &response),
                     404);
    http_response_clear(&response);
    assert_int_equal(s_count_events("identity", "user.created", NULL), 0);
}

//  ---- switches on -------------------------------------------------------------

static void test_bad_arguments(void **state)
{
    (void)state;
    json_t *reply = s_call("identity", "identity.seed", json_object());
    assert_int_equal(s_status(reply, 400), 400);
    json_t *fields = json_object_get(json_object_get(reply, "error"), "fields");
    assert_non_null(json_object_get(fields, "from"));
    assert_non_null(json_object_get(fields, "count"));
    assert_non_null(json_object_get(fields, "password"));
    json_decref(reply);
    reply = s_call("identity", "identity.seed",
                   json_pack("{s:s, s:i, s:s}", "from", "0", "count", 100000, "password", "short"));
    assert_int_equal(s_status(reply, 400), 400);
    fields = json_object_get(json_object_get(reply, "error"), "fields");
    assert_non_null(json_object_get(fields, "from"));
    assert_non_null(json_object_get(fields, "count"));
    assert_non_null(json_object_get(fields, "password"));
    json_decref(reply);

    reply =
        s_call("graph", "graph.seed",
               json_pack("{s:i, s:i, s:i, s:i}", "users", 10, "from", 5, "count", 6, "follows", 2));
    assert_int_equal(s_status(reply, 400), 400);
    assert_non_null(
        json_object_get(json_object_get(json_object_get(reply, "error"), "fields"), "count"));
    json_decref(reply);
    reply = s_call(
        "graph", "graph.seed",
        json_pack("{s:i, s:i, s:i, s:i}", "users", 10, "from", 0, "count", 5, "follows", 501));
    assert_int_equal(s_status(reply, 400), 400);
    json_decref(reply);

    reply = s_call("media", "media.seed", json_pack("{s:s, s:i}", "what", "videos", "users", 10));
    assert_int_equal(s_status(reply, 400), 400);
    assert_non_null(
        json_object_get(json_object_get(json_object_get(reply, "error"), "fields"), "what"));
    json_decref(reply);
    reply = s_call("media", "media.seed",
                   json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "what", "posts", "users", 10, "from",
                             0, "count", 10, "total", 10, "image_post", "123456"));
    assert_int_equal(s_status(reply, 400), 400);
    assert_non_null(
        json_object_get(json_object_get(json_object_get(reply, "error"), "fields"), "image_post"));
    json_decref(reply);
    reply = s_call("media", "media.seed",
                   json_pack("{s:s, s:i, s:i}", "what", "likes", "users", 10, "count", 0));
    assert_int_equal(s_status(reply, 400), 400);
    json_decref(reply);
}

//  Waits (bounded) until GET path as token answers 200 with a first item
//  whose id is want. True when it did.
static bool s_wait_first_item(const char *path, const char *token, const char *want)
{
    for (int tries = 0; tries < 300; tries++) {
        http_response_t response = {0};
        http_request("GET", path, token, NULL, NULL, &response);
        json_t *first = json_array_get(json_object_get(response.json, "items"), 0);
        bool seen = response.status == 200 && first &&
                    streq(harness_str(first, "id") ? harness_str(first, "id") : "", want);
        http_response_clear(&response);
        if (seen) return true;
        zclock_sleep(50);
    }
    return false;
}

static void test_seed_end_to_end(void **state)
{
    (void)state;
    //  Accounts: the count asked, one user.created each; a second call
    //  with the same range makes nothing.
    int users = s_created(
        s_call("identity", "identity.seed",
               json_pack("{s:i, s:i, s:s}", "from", 0, "count", USERS / 2, "password", PASSWORD)));
    users += s_created(s_call(
        "identity", "identity.seed",
        json_pack("{s:i, s:i, s:s}", "from", USERS / 2, "count", USERS / 2, "password", PASSWORD)));
    assert_int_equal(users, USERS);
    assert_int_equal(s_created(s_call("identity", "identity.seed",
                                      json_pack("{s:i, s:i, s:s}", "from", 0, "count", USERS,
                                                "password", PASSWORD))),
                     0);
    json_t *last_user = NULL;
    assert_int_equal(s_wait_events("identity", "user.created", USERS, &last_user), USERS);
    assert_string_equal(harness_str(last_user, "username"), "bench_u59");
    json_decref(last_user);

    //  The shared password signs any seeded account in.
    http_response_t response = {0};
    json_t *login = json_pack("{s:s, s:s}", "login", "bench_u7", "password", PASSWORD);
    assert_int_equal(http_json("POST", "/api/v1/auth/login", NULL, login, &response), 200);
    json_decref(login);
    http_response_clear(&response);

    //  Follows: each emitted once; the counters add up to them.
    int follows = s_created(s_call("graph", "graph.seed",
                                   json_pack("{s:i, s:i, s:i, s:i}", "users", USERS, "from", 0,
                                             "count", USERS, "follows", 5)));
    assert_true(follows > USERS); // ~5 a follower, repeats dropped
    assert_int_equal(s_wait_events("graph", "follow.created", follows, NULL), follows);
    json_t *ids = json_array();
    for (int i = 0; i < USERS; i++) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)(((86400000LL + i) << 23) | (8190LL << 10)));
        json_array_append_new(ids, json_string(id));
    }
    json_t *reply = s_call("graph", "relations.batch", json_pack("{s:O}", "ids", ids));
    assert_int_equal(s_status(reply, 200), 200);
    long long followers = 0, following = 0;
    const char *key;
    json_t *relation;
    json_object_foreach(json_object_get(reply_body(reply), "relations"), key, relation)
    {
        followers += json_integer_value(json_object_get(relation, "followers_count"));
        following += json_integer_value(json_object_get(relation, "following_count"));
    }
    json_decref(reply);
    assert_int_equal(followers, follows);
    assert_int_equal(following, follows);

    //  One real post through the API gives the image every seeded post shows.
    fx_user_t owner = fx_user("seed_owner");
    char *image_post = fx_post(&owner, "the image of the seed");
    int posts = s_created(
        s_call("media", "media.seed",
               json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "what", "posts", "users", USERS, "from",
                         0, "count", POSTS / 2, "total", POSTS, "image_post", image_post)));
    posts += s_created(
        s_call("media", "media.seed",
               json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "what", "posts", "users", USERS, "from",
                         POSTS / 2, "count", POSTS / 2, "total", POSTS, "image_post", image_post)));
    assert_int_equal(posts, POSTS);
    int likes = s_created(
        s_call("media", "media.seed",
               json_pack("{s:s, s:i, s:i}", "what", "likes", "users", USERS, "count", 2000)));
    int comments = s_created(
        s_call("media", "media.seed",
               json_pack("{s:s, s:i, s:i}", "what", "comments", "users", USERS, "count", 400)));
    assert_true(likes > 1000 && likes <= 2000); // repeated (post, user) pairs dropped
    assert_true(comments > 350 && comments <= 400);
    json_t *last_post = NULL;
    assert_int_equal(s_wait_events("media", "post.created", POSTS + 1, &last_post), POSTS + 1);
    assert_int_equal(s_wait_events("media", "like.created", likes, NULL), likes);
    assert_int_equal(s_wait_events("media", "comment.created", comments, NULL), comments);
    reply = s_call("media", "posts.counts", json_pack("{s:O}", "ids", ids));
    assert_int_equal(s_status(reply, 200), 200);
    long long counted = 0;
    json_t *value;
    json_object_foreach(json_object_get(reply_body(reply), "counts"), key, value) counted +=
        json_integer_value(value);
    json_decref(reply);
    assert_int_equal(counted, POSTS);
    json_decref(ids);

    //  The newest seeded post (the last post.created) heads its author's
    //  home feed once feed has handled the events, with the real image.
    const char *post_id = harness_str(last_post, "id");
    const char *author_id = harness_str(last_post, "author_id");
    assert_non_null(post_id);
    assert_non_null(author_id);
    long long author_number = (atoll(author_id) >> 23) - 86400000LL;
    char author_name[32];
    snprintf(author_name, sizeof author_name, "bench_u%lld", author_number);
    login = json_pack("{s:s, s:s}", "login", author_name, "password", PASSWORD);
    assert_int_equal(http_json("POST", "/api/v1/auth/login", NULL, login, &response), 200);
    json_decref(login);
    char *token = strdup(harness_str(response.json, "access_token"));
    http_response_clear(&response);
    assert_true(s_wait_first_item("/api/v1/feed?limit=5", token, post_id));
    char path[96];
    snprintf(path, sizeof path, "/api/v1/posts/%s", post_id);
    assert_int_equal(http_request("GET", path, token, NULL, NULL, &response), 200);
    json_t *image = json_array_get(json_object_get(response.json, "images"), 0);
    assert_non_null(harness_str(image, "url"));
    http_response_clear(&response);
    snprintf(path, sizeof path, "/api/v1/posts/%s", image_post);
    assert_int_equal(http_request("GET", path, token, NULL, NULL, &response), 200);
    char *real_url =
        strdup(harness_str(json_array_get(json_object_get(response.json, "images"), 0), "url"));
    http_response_clear(&response);
    snprintf(path, sizeof path, "/api/v1/posts/%s", post_id);
    assert_int_equal(http_request("GET", path, token, NULL, NULL, &response), 200);
    assert_string_equal(
        harness_str(json_array_get(json_object_get(response.json, "images"), 0), "url"), real_url);
    http_response_clear(&response);

    //  Search built its user projection from the seeded user.created events.
    bool found = false;
    for (int tries = 0; tries < 200 && !found; tries++) {
        http_request("GET", "/api/v1/search/users?q=bench_u42", NULL, NULL, NULL, &response);
        json_t *first = json_array_get(json_object_get(response.json, "items"), 0);
        found = first && harness_str(first, "username") &&
                streq(harness_str(first, "username"), "bench_u42");
        http_response_clear(&response);
        if (!found) zclock_sleep(50);
    }
    assert_true(found);

    free(real_url);
    free(token);
    free(image_post);
    json_decref(last_post);
    fx_user_free(&owner);
}

int main(int argc, char **argv)
{
    (void)argc;
    zsys_handler_set(NULL);
    int failed = 0, problems = 0;
    {
        static const char *const services[] = {"identity", "graph", "media", NULL};
        harness_config_t config = {
            .name = "seed_off", .base_port = BASE_PORT_OFF, .services = services};
        if (harness_start(&config, argv[0]) != 0) return 1;
        s_client = rpc_client_new(harness_broker_url());
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_refused_when_off)};
        failed += cmocka_run_group_tests_name("seed, switches off", tests, NULL, NULL);
        rpc_client_destroy(&s_client);
        problems += harness_stop(failed);
    }
    {
        static const char *const services[] = {"identity", "graph",  "media",
                                               "feed",     "search", NULL};
        static const char *const env[] = {"IDENTITY_SEED_ENABLED=1", "GRAPH_SEED_ENABLED=1",
                                          "MEDIA_SEED_ENABLED=1", "AUTH_RATE_LIMIT_PER_MIN=0",
                                          NULL};
        harness_config_t config = {
            .name = "seed", .base_port = BASE_PORT_ON, .services = services, .env = env};
        if (harness_start(&config, argv[0]) != 0) return 1;
        s_client = rpc_client_new(harness_broker_url());
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bad_arguments),
            cmocka_unit_test(test_seed_end_to_end),
        };
        failed += cmocka_run_group_tests_name("seed", tests, NULL, NULL);
        rpc_client_destroy(&s_client);
        problems += harness_stop(failed);
    }
    return failed || problems ? 1 : 0;
}
