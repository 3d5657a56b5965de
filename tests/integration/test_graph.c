/*  test_graph: every graph endpoint and error, through the gateway, against
    a fresh stack (Postgres database, broker, identity, graph, gateway; see
    harness.h). Ports 17600-17609. media is not started: users_decorate
    degrades (posts_count 0), which this suite also relies on.

    Each test makes its own users (names unique within the run), so tests
    do not depend on each other's order. What graph learns from identity's
    events (an account turning private or public, a deletion) arrives
    asynchronously: the tests wait for it, bounded, by polling graph's
    relations.batch or the public API. Events graph emits are read back with
    its events.replay. The last test checks the stack still answers; then
    harness_stop fails the run if any program crashed, did not stop cleanly
    or printed a sanitizer report.
*/
#include "errors.h"
#include "fixtures.h"
#include "harness.h"
#include "rpc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#define PASSWORD "correct horse battery"
#define WAIT_MS 10000 // longest wait for an event to take effect
#define CONCURRENT 20

static rpc_client_t *s_client; // main thread only

//  ---- helpers ---------------------------------------------------------------

static long s_status(const char *method, const char *path, const char *token)
{
    http_response_t r;
    long status = fx_call(method, path, token, NULL, &r);
    http_response_clear(&r);
    return status;
}

static void s_expect_error(const http_response_t *r, long status, const char *code)
{
    if (r->status != status)
        fprintf(stderr, "expected %ld, got %ld: %s\n", status, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_string_equal(http_error_code(r), code);
}

static void s_call_error(const char *method, const char *path, const char *token, long status,
                         const char *code)
{
    http_response_t r;
    fx_call(method, path, token, NULL, &r);
    s_expect_error(&r, status, code);
    http_response_clear(&r);
}

static json_t *s_register(const char *username)
{
    json_t *session = harness_register(username, PASSWORD);
    assert_non_null(session);
    return session;
}

static const char *s_token(const json_t *session)
{
    return harness_str(session, "access_token");
}

static const char *s_id(const json_t *session)
{
    return harness_str(json_object_get(session, "user"), "id");
}

//  POST or DELETE /users/{name}/follow; expects 200 and the state.
static void s_follow(const char *method, const char *token, const char *name, const char *state)
{
    char path[256];
    http_response_t r;
    fx_call(method, fx_path(path, sizeof path, "/api/v1/users/%s/follow", name), token, NULL, &r);
    if (r.status != 200) fprintf(stderr, "%s %s: %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_string_equal(harness_str(r.json, "follow_state"), state);
    assert_int_equal(json_object_size(r.json), 1);
    http_response_clear(&r);
}

static long s_action(const char *method, const char *token, const char *fmt, const char *name)
{
    char path[256];
    fx_path(path, sizeof path, fmt, name);
    return s_status(method, path, token);
}

//  GET /users/{name} as token (NULL: anonymous); the user (caller decrefs)
//  or NULL when not 200.
static json_t *s_profile(const char *token, const char *name)
{
    char path[256];
    http_response_t r;
    fx_call("GET", fx_path(path, sizeof path, "/api/v1/users/%s", name), token, NULL, &r);
    json_t *user = r.status == 200 ? json_incref(r.json) : NULL;
    http_response_clear(&r);
    return user;
}

static json_int_t s_int(const json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    assert_true(json_is_integer(value));
    return json_integer_value(value);
}

static bool s_bool(const json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    assert_true(json_is_boolean(value));
    return json_is_true(value);
}

//  Checks name's profile as token sees it.
static void s_expect_relation(const char *token, const char *name, json_int_t followers,
                              json_int_t following, bool followed_by_me, bool follows_me,
                              const char *state)
{
    json_t *user = s_profile(token, name);
    assert_non_null(user);
    if (s_int(user, "followers_count") != followers || s_int(user, "following_count") != following)
        fprintf(stderr, "%s: %s\n", name, json_dumps(user, JSON_COMPACT));
    assert_int_equal(s_int(user, "followers_count"), followers);
    assert_int_equal(s_int(user, "following_count"), following);
    assert_int_equal(s_int(user, "posts_count"), 0); // media is not running: degraded
    assert_int_equal(s_bool(user, "followed_by_me"), followed_by_me);
    assert_int_equal(s_bool(user, "follows_me"), follows_me);
    assert_string_equal(harness_str(user, "follow_state"), state);
    json_decref(user);
}

//  The usernames of list.items, comma-separated, into buf.
static const char *s_names(const json_t *list, char *buf, size_t size)
{
    buf[0] = '\0';
    size_t index;
    json_t *user;
    json_array_foreach(json_object_get(list, "items"), index, user)
    {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", index ? "," : "", harness_str(user, "username"));
    }
    return buf;
}

//  GET path (a list of users) and compare the usernames.
static void s_expect_names(const char *path, const char *token, const char *expected)
{
    json_t *list = fx_get_page(path, token);
    char names[1024];
    s_names(list, names, sizeof names);
    if (strcmp(names, expected) != 0) fprintf(stderr, "GET %s: %s\n", path, names);
    assert_string_equal(names, expected);
    json_decref(list);
}

static json_t *s_rpc(const char *service, const char *method, int64_t viewer, json_t *args_stolen)
{
    json_t *reply = rpc_call(s_client, service, method, viewer, args_stolen, NULL, 0);
    json_decref(args_stolen);
    return reply;
}

static int64_t s_id_number(const char *id)
{
    return strtoll(id, NULL, 10);
}

//  Polls graph's relations.batch (anonymous) until can_view of id is
//  !is_private: graph has seen the account's privacy change.
static void s_wait_private(const char *id, bool is_private)
{
    int64_t until = zclock_mono() + WAIT_MS;
    while (true) {
        json_t *reply = s_rpc("graph", "relations.batch", 0, json_pack("{s:[s]}", "ids", id));
        json_t *relation = json_object_get(json_object_get(reply_body(reply), "relations"), id);
        bool can_view = json_is_true(json_object_get(relation, "can_view"));
        json_decref(reply);
        if (can_view == !is_private) return;
        assert_true(zclock_mono() < until);
        zclock_sleep(20);
    }
}

static void s_set_private(const json_t *session, bool is_private)
{
    http_response_t r;
    fx_call("PATCH", "/api/v1/me", s_token(session), json_pack("{s:b}", "is_private", is_private),
            &r);
    assert_int_equal(r.status, 200);
    http_response_clear(&r);
    s_wait_private(s_id(session), is_private);
}

//  Counts graph events of topic whose payload has a_name == a and
//  b_name == b (any when NULL).
static int s_count_events(const char *topic, const char *a_name, const char *a, const char *b_name,
                          const char *b)
{
    int count = 0;
    int64_t since = 0;
    while (true) {
        json_t *reply = s_rpc("graph", "events.replay", 0,
                              json_pack("{s:I, s:i}", "since", since, "limit", 1000));
        assert_int_equal(reply_status(reply), 200);
        json_t *events = json_object_get(reply_body(reply), "events");
        size_t index;
        json_t *event;
        json_array_foreach(events, index, event)
        {
            json_t *payload = json_object_get(event, "payload");
            const char *event_topic = harness_str(event, "topic");
            since = json_integer_value(json_object_get(event, "seq"));
            if (!event_topic || strcmp(event_topic, topic) != 0) continue;
            const char *va = harness_str(payload, a_name);
            const char *vb = b_name ? harness_str(payload, b_name) : NULL;
            if (va && strcmp(va, a) == 0 && (!b_name || (vb && strcmp(vb, b) == 0))) count++;
        }
        size_t got = json_array_size(events);
        json_decref(reply);
        if (got < 1000) break;
    }
    return count;
}

//  Waits until the outbox holds expected events of that kind (the
//  publisher numbers them shortly after their commit).
static void s_expect_events(int expected, const char *topic, const char *a_name, const char *a,
                            const char *b_name, const char *b)
{
    int64_t until = zclock_mono() + WAIT_MS;
    int count;
    while ((count = s_count_events(topic, a_name, a, b_name, b)) < expected &&
           zclock_mono() < until)
        zclock_sleep(50);
    if (count != expected)
        fprintf(stderr, "%s %s=%s: %d events, expected %d\n", topic, a_name, a, count, expected);
    assert_int_equal(count, expected);
}

//  ---- follow and unfollow ------------------------------------------------------

static void test_follow_public(void **state)
{
    (void)state;
    json_t *ann = s_register("ann"), *bob = s_register("bob");
    const char *ta = s_token(ann), *tb = s_token(bob);

    //  Before: nothing.
    s_expect_relation(ta, "bob", 0, 0, false, false, "none");
    s_follow("POST", ta, "bob", "following");
    s_follow("POST", ta, "BOB", "following"); // idempotent, case-insensitive
    s_expect_relation(ta, "bob", 1, 0, true, false, "following");
    s_expect_relation(tb, "ann", 0, 1, false, true, "none");
    //  Anonymous: counts, no viewer fields.
    json_t *anonymous = s_profile(NULL, "bob");
    assert_non_null(anonymous);
    assert_int_equal(s_int(anonymous, "followers_count"), 1);
    assert_null(json_object_get(anonymous, "followed_by_me"));
    assert_null(json_object_get(anonymous, "follow_state"));
    json_decref(anonymous);
    //  /me carries the counts too.
    http_response_t r;
    assert_int_equal(fx_call("GET", "/api/v1/me", ta, NULL, &r), 200);
    assert_int_equal(s_int(r.json, "following_count"), 1);
    assert_int_equal(s_int(r.json, "followers_count"), 0);
    assert_non_null(harness_str(r.json, "email"));
    http_response_clear(&r);

    //  Both ways.
    s_follow("POST", tb, "ann", "following");
    s_expect_relation(ta, "bob", 1, 1, true, true, "following");

    //  Unfollow, twice.
    s_follow("DELETE", ta, "bob", "none");
    s_follow("DELETE", ta, "bob", "none");
    s_expect_relation(ta, "bob", 0, 1, false, true, "none");
    s_expect_relation(tb, "ann", 1, 0, true, false, "following");

    //  Events: one follow.created (the second POST changed nothing), one
    //  follow.deleted (likewise).
    s_expect_events(1, "follow.created", "follower_id", s_id(ann), "followee_id", s_id(bob));
    s_expect_events(1, "follow.deleted", "follower_id", s_id(ann), "followee_id", s_id(bob));
    json_decref(ann);
    json_decref(bob);
}

static void test_follow_errors(void **state)
{
    (void)state;
    json_t *cat = s_register("cat");
    const char *token = s_token(cat);
    http_response_t r;
    //  Yourself: 400 invalid naming username, both ways.
    fx_call("POST", "/api/v1/users/cat/follow", token, NULL, &r);
    s_expect_error(&r, 400, "invalid");
    assert_true(http_error_names(&r, "username"));
    http_response_clear(&r);
    s_call_error("POST", "/api/v1/users/CAT/follow", token, 400, "invalid");
    s_call_error("DELETE", "/api/v1/users/cat/follow", token, 400, "invalid");
    //  Unknown or impossible names: 404.
    s_call_error("POST", "/api/v1/users/nobody_here/follow", token, 404, "not_found");
    s_call_error("DELETE", "/api/v1/users/nobody_here/follow", token, 404, "not_found");
    s_call_error("POST", "/api/v1/users/not%20valid/follow", token, 404, "not_found");
    //  No token, bad token: 401.
    s_call_error("POST", "/api/v1/users/cat/follow", NULL, 401, "unauthenticated");
    s_call_error("DELETE", "/api/v1/users/cat/follow", NULL, 401, "unauthenticated");
    s_call_error("POST", "/api/v1/users/cat/follow", "garbage", 401, "unauthenticated");
    s_call_error("GET", "/api/v1/users/cat/followers", NULL, 401, "unauthenticated");
    s_call_error("GET", "/api/v1/users/cat/following", NULL, 401, "unauthenticated");
    s_call_error("GET", "/api/v1/me/follow-requests", NULL, 401, "unauthenticated");
    s_call_error("POST", "/api/v1/me/follow-requests/cat/approve", NULL, 401, "unauthenticated");
    s_call_error("POST", "/api/v1/me/follow-requests/cat/deny", NULL, 401, "unauthenticated");
    s_call_error("POST", "/api/v1/users/cat/block", NULL, 401, "unauthenticated");
    s_call_error("DELETE", "/api/v1/users/cat/block", NULL, 401, "unauthenticated");
    s_call_error("GET", "/api/v1/me/blocked", NULL, 401, "unauthenticated");
    //  Wrong methods.
    s_call_error("PUT", "/api/v1/users/cat/follow", token, 405, "method_not_allowed");
    s_call_error("DELETE", "/api/v1/me/blocked", token, 405, "method_not_allowed");
    json_decref(cat);
}

//  ---- private accounts -----------------------------------------------------------

static void test_private_flow(void **state)
{
    (void)state;
    json_t *pia = s_register("pia"), *fay = s_register("fay"), *gus = s_register("gus"),
           *hal = s_register("hal"), *cy = s_register("cy");
    const char *tp = s_token(pia), *tf = s_token(fay), *tg = s_token(gus), *th = s_token(hal),
               *tc = s_token(cy);
    s_set_private(pia, true);

    //  A follow is a request, idempotent.
    s_follow("POST", tf, "pia", "requested");
    s_follow("POST", tf, "pia", "requested");
    s_expect_relation(tf, "pia", 0, 0, false, false, "requested");
    s_follow("POST", tg, "pia", "requested");
    s_follow("POST", th, "pia", "requested");
    //  The profile of a private account is visible; its lists are not.
    json_t *profile = s_profile(NULL, "pia");
    assert_non_null(profile);
    assert_true(s_bool(profile, "is_private"));
    json_decref(profile);
    s_call_error("GET", "/api/v1/users/pia/followers", tf, 403, "forbidden");
    s_call_error("GET", "/api/v1/users/pia/following", tf, 403, "forbidden");
    s_call_error("GET", "/api/v1/users/pia/followers", tc, 403, "forbidden");
    //  ...except to itself.
    s_expect_names("/api/v1/users/pia/followers", tp, "");
    s_expect_names("/api/v1/me/follow-requests", tp, "hal,gus,fay");
    json_t *requests = fx_get_page("/api/v1/me/follow-requests", tp);
    json_t *first = json_array_get(json_object_get(requests, "items"), 0);
    assert_string_equal(harness_str(first, "follow_state"), "none");
    assert_true(s_bool(first, "follows_me") == false); // requested, not following
    json_decref(requests);
    s_expect_names("/api/v1/me/follow-requests", tf, "");

    //  Someone else cannot decide pia's requests: cy has none of its own.
    s_call_error("POST", "/api/v1/me/follow-requests/fay/approve", tc, 404, "not_found");
    s_call_error("POST", "/api/v1/me/follow-requests/fay/deny", tc, 404, "not_found");
    //  Nor can the requester approve itself.
    s_call_error("POST", "/api/v1/me/follow-requests/pia/approve", tf, 404, "not_found");
    s_call_error("POST", "/api/v1/me/follow-requests/fay/approve", tf, 404, "not_found");
    s_expect_names("/api/v1/me/follow-requests", tp, "hal,gus,fay");

    //  Approve fay.
    assert_int_equal(s_action("POST", tp, "/api/v1/me/follow-requests/%s/approve", "fay"), 204);
    s_call_error("POST", "/api/v1/me/follow-requests/fay/approve", tp, 404, "not_found");
    s_call_error("POST", "/api/v1/me/follow-requests/fay/deny", tp, 404, "not_found");
    s_expect_relation(tf, "pia", 1, 0, true, false, "following");
    s_follow("POST", tf, "pia", "following");
    s_expect_names("/api/v1/users/pia/followers", tf, "fay");
    s_expect_names("/api/v1/users/pia/following", tf, "");
    s_call_error("GET", "/api/v1/users/pia/followers", tg, 403, "forbidden");

    //  Deny gus.
    assert_int_equal(s_action("POST", tp, "/api/v1/me/follow-requests/%s/deny", "gus"), 204);
    s_call_error("POST", "/api/v1/me/follow-requests/gus/deny", tp, 404, "not_found");
    s_expect_relation(tg, "pia", 1, 0, false, false, "none");

    //  hal cancels.
    s_follow("DELETE", th, "pia", "none");
    s_expect_relation(th, "pia", 1, 0, false, false, "none");
    s_call_error("POST", "/api/v1/me/follow-requests/hal/approve", tp, 404, "not_found");
    s_expect_names("/api/v1/me/follow-requests", tp, "");

    //  Unknown names and yourself.
    s_call_error("POST", "/api/v1/me/follow-requests/nobody_at_all/approve", tp, 404, "not_found");
    s_call_error("POST", "/api/v1/me/follow-requests/pia/approve", tp, 404, "not_found");

    //  fay unfollows: back to requesting.
    s_follow("DELETE", tf, "pia", "none");
    s_follow("POST", tf, "pia", "requested");

    //  Events.
    s_expect_events(2, "follow.requested", "follower_id", s_id(fay), "followee_id", s_id(pia));
    s_expect_events(1, "follow.accepted", "follower_id", s_id(fay), "followee_id", s_id(pia));
    s_expect_events(1, "follow.created", "follower_id", s_id(fay), "followee_id", s_id(pia));
    s_expect_events(1, "follow.request_deleted", "follower_id", s_id(gus), "followee_id",
                    s_id(pia));
    s_expect_events(1, "follow.request_deleted", "follower_id", s_id(hal), "followee_id",
                    s_id(pia));
    s_expect_events(0, "follow.accepted", "follower_id", s_id(gus), "followee_id", s_id(pia));
    json_decref(pia);
    json_decref(fay);
    json_decref(gus);
    json_decref(hal);
    json_decref(cy);
}

static void test_public_switch_approves(void **state)
{
    (void)state;
    json_t *pam = s_register("pam"), *xi = s_register("xi"), *yu = s_register("yu");
    s_set_private(pam, true);
    s_follow("POST", s_token(xi), "pam", "requested");
    s_follow("POST", s_token(yu), "pam", "requested");
    s_expect_names("/api/v1/me/follow-requests", s_token(pam), "yu,xi");

    s_set_private(pam, false);
    //  The approval runs in the same transaction as the projection change
    //  s_set_private waited for.
    s_expect_relation(s_token(xi), "pam", 2, 0, true, false, "following");
    s_expect_relation(s_token(yu), "pam", 2, 0, true, false, "following");
    s_expect_names("/api/v1/me/follow-requests", s_token(pam), "");
    s_expect_names("/api/v1/users/pam/followers", s_token(xi), "yu,xi");
    s_expect_events(1, "follow.accepted", "follower_id", s_id(xi), "followee_id", s_id(pam));
    s_expect_events(1, "follow.created", "follower_id", s_id(yu), "followee_id", s_id(pam));
    //  Public now: a new follow is immediate.
    json_t *zed = s_register("zed");
    s_follow("POST", s_token(zed), "pam", "following");
    s_expect_relation(s_token(zed), "pam", 3, 0, true, false, "following");
    json_decref(pam);
    json_decref(xi);
    json_decref(yu);
    json_decref(zed);
}

//  identity tells graph of a switch before it answers PATCH /me (graph
//  users.privacy), so nothing here waits for the user.updated event.
static void test_privacy_switch_immediate(void **state)
{
    (void)state;
    json_t *ivy = s_register("ulla"), *jo = s_register("vic");
    for (int round = 0; round < 6; round++) {
        bool private_now = round % 2 == 0;
        http_response_t r;
        fx_call("PATCH", "/api/v1/me", s_token(ivy), json_pack("{s:b}", "is_private", private_now),
                &r);
        assert_int_equal(r.status, 200);
        http_response_clear(&r);
        assert_int_equal(s_status("GET", "/api/v1/users/ulla/followers", s_token(jo)),
                         private_now ? 403 : 200);
    }
    //  A request made while private is approved by the very switch to public.
    s_set_private(ivy, true);
    s_follow("POST", s_token(jo), "ulla", "requested");
    http_response_t r;
    fx_call("PATCH", "/api/v1/me", s_token(ivy), json_pack("{s:b}", "is_private", 0), &r);
    assert_int_equal(r.status, 200);
    http_response_clear(&r);
    s_expect_relation(s_token(jo), "ulla", 1, 0, true, false, "following");

    //  The method itself: the viewer's own flag only, a boolean.
    json_t *reply = s_rpc("graph", "users.privacy", 0, json_pack("{s:b}", "is_private", 1));
    assert_int_equal(reply_status(reply), 401);
    json_decref(reply);
    reply = s_rpc("graph", "users.privacy", s_id_number(s_id(jo)),
                  json_pack("{s:s}", "is_private", "yes"));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    reply = s_rpc("graph", "users.privacy", s_id_number(s_id(jo)), json_object());
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    json_decref(ivy);
    json_decref(jo);
}

//  ---- lists -------------------------------------------------------------------------

static void test_lists_pagination(void **state)
{
    (void)state;
    json_t *star = s_register("star");
    json_t *fans[5];
    char name[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "fan%d", i);
        fans[i] = s_register(name);
        s_follow("POST", s_token(fans[i]), "star", "following");
        //  star follows fan0 and fan1, in that order.
        if (i < 2) s_follow("POST", s_token(star), name, "following");
    }
    const char *token = s_token(fans[0]);
    s_expect_names("/api/v1/users/star/followers", token, "fan4,fan3,fan2,fan1,fan0");
    s_expect_names("/api/v1/users/star/following", token, "fan1,fan0");
    s_expect_names("/api/v1/users/fan0/followers", token, "star");

    //  Items are full user objects as the viewer sees them.
    json_t *list = fx_get_page("/api/v1/users/star/following", token);
    json_t *item = json_array_get(json_object_get(list, "items"), 1); // fan0: the viewer
    assert_string_equal(harness_str(item, "username"), "fan0");
    assert_non_null(harness_str(item, "id"));
    assert_int_equal(s_int(item, "followers_count"), 1);
    assert_int_equal(s_int(item, "following_count"), 1);
    assert_int_equal(s_int(item, "posts_count"), 0);
    assert_false(s_bool(item, "is_private"));
    item = json_array_get(json_object_get(list, "items"), 0); // fan1
    assert_true(s_bool(item, "follows_me") == false);
    assert_true(json_is_null(json_object_get(list, "next_cursor")));
    json_decref(list);
    list = fx_get_page("/api/v1/users/star/followers", token);
    item = json_array_get(json_object_get(list, "items"), 3); // fan1 follows star, star follows it
    assert_string_equal(harness_str(item, "username"), "fan1");
    assert_false(s_bool(item, "followed_by_me"));
    assert_string_equal(harness_str(item, "follow_state"), "none");
    assert_true(s_bool(json_array_get(json_object_get(list, "items"), 4), "followed_by_me") ==
                false); // fan0 is the viewer itself
    json_decref(list);

    //  Pages of two, newest first; a follow made between pages does not
    //  shift the later pages (no duplicates, no skips).
    char path[512];
    json_t *page1 = fx_get_page("/api/v1/users/star/followers?limit=2", token);
    char names[256];
    assert_string_equal(s_names(page1, names, sizeof names), "fan4,fan3");
    const char *cursor = harness_str(page1, "next_cursor");
    assert_non_null(cursor);
    json_t *late = s_register("late_fan");
    s_follow("POST", s_token(late), "star", "following");
    json_t *page2 = fx_get_page(
        fx_path(path, sizeof path, "/api/v1/users/star/followers?limit=2&cursor=%s", cursor),
        token);
    assert_string_equal(s_names(page2, names, sizeof names), "fan2,fan1");
    //  A cursor stays valid when its row goes: fan1 unfollows.
    const char *cursor2 = harness_str(page2, "next_cursor");
    assert_non_null(cursor2);
    s_follow("DELETE", s_token(fans[1]), "star", "none");
    json_t *page3 = fx_get_page(
        fx_path(path, sizeof path, "/api/v1/users/star/followers?limit=2&cursor=%s", cursor2),
        token);
    assert_string_equal(s_names(page3, names, sizeof names), "fan0");
    assert_true(json_is_null(json_object_get(page3, "next_cursor")));
    //  The same cursor on the same list again gives the same page.
    json_t *again = fx_get_page(
        fx_path(path, sizeof path, "/api/v1/users/star/followers?limit=2&cursor=%s", cursor2),
        token);
    assert_string_equal(s_names(again, names, sizeof names), "fan0");
    json_decref(again);
    s_expect_names("/api/v1/users/star/followers?limit=1", token, "late_fan");
    s_expect_names("/api/v1/users/star/followers?limit=500", token,
                   "late_fan,fan4,fan3,fan2,fan0"); // clamped to 100
    s_expect_names("/api/v1/users/star/followers?cursor=", token, "late_fan,fan4,fan3,fan2,fan0");
    //  Any positive integer is clamped, however many digits (API.md "Lists").
    s_expect_names("/api/v1/users/star/followers?limit=99999999999999999999", token,
                   "late_fan,fan4,fan3,fan2,fan0");

    //  Bad limits and cursors: 400 naming the field.
    const char *bad_limits[] = {"0", "-1", "abc", "1.5", "", "00000000000000000000", NULL};
    for (int i = 0; bad_limits[i]; i++) {
        http_response_t r;
        fx_call("GET",
                fx_path(path, sizeof path, "/api/v1/users/star/followers?limit=%s", bad_limits[i]),
                token, NULL, &r);
        s_expect_error(&r, 400, "invalid");
        assert_true(http_error_names(&r, "limit"));
        http_response_clear(&r);
    }
    //  A forged cursor, a truncated one, one with a flipped character.
    char tampered[128];
    snprintf(tampered, sizeof tampered, "%s", cursor);
    tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
    char truncated[128];
    snprintf(truncated, sizeof truncated, "%.*s", (int)strlen(cursor) - 2, cursor);
    const char *bad_cursors[] = {"garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", tampered,
                                 truncated, NULL};
    const char *lists[] = {"/api/v1/users/star/followers", "/api/v1/users/star/following",
                           "/api/v1/me/follow-requests", "/api/v1/me/blocked", NULL};
    for (int i = 0; bad_cursors[i]; i++)
        for (int j = 0; lists[j]; j++) {
            http_response_t r;
            fx_call("GET", fx_path(path, sizeof path, "%s?cursor=%s", lists[j], bad_cursors[i]),
                    token, NULL, &r);
            s_expect_error(&r, 400, "invalid");
            assert_true(http_error_names(&r, "cursor"));
            http_response_clear(&r);
        }
    //  Unknown users.
    s_call_error("GET", "/api/v1/users/nobody_star/followers", token, 404, "not_found");
    s_call_error("GET", "/api/v1/users/nobody_star/following", token, 404, "not_found");

    json_decref(page1);
    json_decref(page2);
    json_decref(page3);
    json_decref(late);
    json_decref(star);
    for (int i = 0; i < 5; i++)
        json_decref(fans[i]);
}

//  ---- blocks --------------------------------------------------------------------------

static void test_blocks(void **state)
{
    (void)state;
    json_t *ada = s_register("ada"), *ben = s_register("ben"), *eve = s_register("eve");
    const char *ta = s_token(ada), *tb = s_token(ben), *te = s_token(eve);
    s_follow("POST", ta, "ben", "following");
    s_follow("POST", tb, "ada", "following");
    s_follow("POST", te, "ben", "following");
    s_expect_relation(te, "ben", 2, 1, true, false, "following");

    //  ada blocks ben: follows go both ways, counters follow.
    assert_int_equal(s_action("POST", ta, "/api/v1/users/%s/block", "ben"), 204);
    assert_int_equal(s_action("POST", ta, "/api/v1/users/%s/block", "ben"), 204); // idempotent
    s_expect_relation(te, "ben", 1, 0, true, false, "following");
    s_expect_relation(te, "ada", 0, 0, false, false, "none");
    //  Not found to each other: profile, follow, lists.
    s_call_error("GET", "/api/v1/users/ben", ta, 404, "not_found");
    s_call_error("GET", "/api/v1/users/ada", tb, 404, "not_found");
    s_call_error("POST", "/api/v1/users/ben/follow", ta, 404, "not_found");
    s_call_error("POST", "/api/v1/users/ada/follow", tb, 404, "not_found");
    s_call_error("DELETE", "/api/v1/users/ada/follow", tb, 404, "not_found");
    s_call_error("GET", "/api/v1/users/ben/followers", ta, 404, "not_found");
    s_call_error("GET", "/api/v1/users/ada/following", tb, 404, "not_found");
    //  Others still see both; lists leave out whom the viewer blocked.
    json_t *profile = s_profile(NULL, "ben");
    assert_non_null(profile);
    json_decref(profile);
    s_expect_names("/api/v1/users/ben/followers", te, "eve");
    s_follow("POST", ta, "eve", "following");
    s_follow("POST", tb, "eve", "following");
    s_expect_names("/api/v1/users/eve/followers", te, "ben,ada");
    s_expect_names("/api/v1/users/eve/followers", ta, "ada");
    s_expect_names("/api/v1/users/eve/followers", tb, "ben");

    //  The block list.
    s_expect_names("/api/v1/me/blocked", ta, "ben");
    s_expect_names("/api/v1/me/blocked", tb, "");
    json_t *blocked = fx_get_page("/api/v1/me/blocked", ta);
    json_t *item = json_array_get(json_object_get(blocked, "items"), 0);
    assert_string_equal(harness_str(item, "follow_state"), "none");
    assert_int_equal(s_int(item, "followers_count"), 1);
    json_decref(blocked);
    //  ben may block ada back; it is a second wall.
    assert_int_equal(s_action("POST", tb, "/api/v1/users/%s/block", "ada"), 204);
    s_expect_names("/api/v1/me/blocked", tb, "ada");

    //  Errors.
    s_call_error("POST", "/api/v1/users/ada/block", ta, 400, "invalid");
    s_call_error("DELETE", "/api/v1/users/ada/block", ta, 400, "invalid");
    s_call_error("POST", "/api/v1/users/nobody_block/block", ta, 404, "not_found");
    s_call_error("DELETE", "/api/v1/users/nobody_block/block", ta, 404, "not_found");

    //  Unblocking (both) does not restore the follows.
    assert_int_equal(s_action("DELETE", ta, "/api/v1/users/%s/block", "ben"), 204);
    assert_int_equal(s_action("DELETE", ta, "/api/v1/users/%s/block", "ben"), 204);
    s_call_error("GET", "/api/v1/users/ben", ta, 404, "not_found"); // ben's block still stands
    assert_int_equal(s_action("DELETE", tb, "/api/v1/users/%s/block", "ada"), 204);
    s_expect_relation(ta, "ben", 1, 1, false, false, "none");
    s_expect_names("/api/v1/me/blocked", ta, "");
    s_follow("POST", ta, "ben", "following");

    //  Events.
    s_expect_events(1, "block.created", "blocker_id", s_id(ada), "blocked_id", s_id(ben));
    s_expect_events(1, "block.deleted", "blocker_id", s_id(ada), "blocked_id", s_id(ben));
    s_expect_events(1, "follow.deleted", "follower_id", s_id(ada), "followee_id", s_id(ben));
    s_expect_events(1, "follow.deleted", "follower_id", s_id(ben), "followee_id", s_id(ada));
    json_decref(ada);
    json_decref(ben);
    json_decref(eve);
}

static void test_block_removes_requests(void **state)
{
    (void)state;
    json_t *pri = s_register("pri"), *req = s_register("req");
    s_set_private(pri, true);
    s_follow("POST", s_token(req), "pri", "requested");
    assert_int_equal(s_action("POST", s_token(pri), "/api/v1/users/%s/block", "req"), 204);
    s_expect_names("/api/v1/me/follow-requests", s_token(pri), "");
    s_call_error("POST", "/api/v1/me/follow-requests/req/approve", s_token(pri), 404, "not_found");
    //  The blocked one cannot ask again, and the blocker cannot follow.
    s_call_error("POST", "/api/v1/users/pri/follow", s_token(req), 404, "not_found");
    s_call_error("POST", "/api/v1/users/req/follow", s_token(pri), 404, "not_found");
    //  After unblocking the request is gone for good.
    assert_int_equal(s_action("DELETE", s_token(pri), "/api/v1/users/%s/block", "req"), 204);
    s_expect_relation(s_token(req), "pri", 0, 0, false, false, "none");
    s_expect_events(1, "follow.request_deleted", "follower_id", s_id(req), "followee_id",
                    s_id(pri));
    json_decref(pri);
    json_decref(req);
}

//  ---- counters under concurrency -----------------------------------------------------

typedef struct {
    const char *method;
    const char *token;
    const char *target;
    long status;
} follow_job_t;

static void *s_follow_thread(void *arg)
{
    follow_job_t *job = arg;
    char path[256];
    snprintf(path, sizeof path, "/api/v1/users/%s/follow", job->target);
    http_response_t r;
    job->status = http_json(job->method, path, job->token, NULL, &r);
    http_response_clear(&r);
    return NULL;
}

static void s_run_jobs(follow_job_t *jobs, int count)
{
    pthread_t threads[CONCURRENT * 2];
    for (int i = 0; i < count; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_follow_thread, &jobs[i]), 0);
    for (int i = 0; i < count; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < count; i++) {
        if (jobs[i].status != 200) fprintf(stderr, "job %d: %ld\n", i, jobs[i].status);
        assert_int_equal(jobs[i].status, 200);
    }
}

static void test_concurrent_counts(void **state)
{
    (void)state;
    json_t *idol = s_register("idol");
    json_t *crowd[CONCURRENT];
    follow_job_t jobs[CONCURRENT * 2];
    char name[32];
    for (int i = 0; i < CONCURRENT; i++) {
        snprintf(name, sizeof name, "crowd%d", i);
        crowd[i] = s_register(name);
    }
    //  20 different followers at once, and each of them twice (duplicates
    //  racing each other must count once).
    for (int i = 0; i < CONCURRENT; i++) {
        jobs[2 * i] = (follow_job_t){"POST", s_token(crowd[i]), "idol", 0};
        jobs[2 * i + 1] = (follow_job_t){"POST", s_token(crowd[i]), "idol", 0};
    }
    s_run_jobs(jobs, CONCURRENT * 2);
    s_expect_relation(s_token(crowd[0]), "idol", CONCURRENT, 0, true, false, "following");
    s_expect_relation(s_token(idol), "crowd7", 0, 1, false, true, "none");
    s_expect_events(1, "follow.created", "follower_id", s_id(crowd[3]), "followee_id", s_id(idol));

    //  idol follows all of them while they all unfollow idol: counters
    //  touching the same rows from both sides, no deadlock, exact.
    for (int i = 0; i < CONCURRENT; i++) {
        snprintf(name, sizeof name, "crowd%d", i);
        jobs[2 * i] = (follow_job_t){"DELETE", s_token(crowd[i]), "idol", 0};
        jobs[2 * i + 1] = (follow_job_t){"POST", s_token(idol), strdup(name), 0};
    }
    s_run_jobs(jobs, CONCURRENT * 2);
    for (int i = 0; i < CONCURRENT; i++)
        free((char *)jobs[2 * i + 1].target);
    s_expect_relation(s_token(crowd[0]), "idol", 0, CONCURRENT, false, true, "none");
    json_t *me = s_profile(s_token(idol), "crowd5");
    assert_int_equal(s_int(me, "followers_count"), 1);
    assert_int_equal(s_int(me, "following_count"), 0);
    json_decref(me);
    json_decref(idol);
    for (int i = 0; i < CONCURRENT; i++)
        json_decref(crowd[i]);
}

//  ---- internal methods ----------------------------------------------------------------

static void test_internal_methods(void **state)
{
    (void)state;
    json_t *owl = s_register("owl"), *fox = s_register("fox"), *elk = s_register("elk");
    const char *owl_id = s_id(owl), *fox_id = s_id(fox), *elk_id = s_id(elk);
    s_set_private(owl, true);
    s_follow("POST", s_token(fox), "owl", "requested");
    assert_int_equal(s_action("POST", s_token(owl), "/api/v1/me/follow-requests/%s/approve", "fox"),
                     204);
    assert_int_equal(s_action("POST", s_token(elk), "/api/v1/users/%s/block", "fox"), 204);

    //  relations.batch, as fox: every field, in the shape of the contract.
    json_t *reply = s_rpc("graph", "relations.batch", s_id_number(fox_id),
                          json_pack("{s:[s,s,s,s]}", "ids", owl_id, elk_id, fox_id, "999"));
    assert_int_equal(reply_status(reply), 200);
    json_t *relations = json_object_get(reply_body(reply), "relations");
    json_t *to_owl = json_object_get(relations, owl_id);
    assert_int_equal(s_int(to_owl, "followers_count"), 1);
    assert_int_equal(s_int(to_owl, "following_count"), 0);
    assert_true(s_bool(to_owl, "followed_by_me"));
    assert_false(s_bool(to_owl, "follows_me"));
    assert_string_equal(harness_str(to_owl, "follow_state"), "following");
    assert_false(s_bool(to_owl, "blocked"));
    assert_true(s_bool(to_owl, "can_view"));
    json_t *to_elk = json_object_get(relations, elk_id);
    assert_true(s_bool(to_elk, "blocked"));
    assert_false(s_bool(to_elk, "can_view"));
    assert_true(s_bool(json_object_get(relations, fox_id), "can_view"));
    assert_false(s_bool(json_object_get(relations, "999"), "can_view"));
    json_decref(reply);
    //  Anonymous: a private account cannot be viewed.
    reply = s_rpc("graph", "relations.batch", 0, json_pack("{s:[s,s]}", "ids", owl_id, elk_id));
    relations = json_object_get(reply_body(reply), "relations");
    assert_false(s_bool(json_object_get(relations, owl_id), "can_view"));
    assert_true(s_bool(json_object_get(relations, elk_id), "can_view"));
    assert_false(s_bool(json_object_get(relations, owl_id), "followed_by_me"));
    json_decref(reply);

    //  relations.visible: in the order asked, each once.
    reply = s_rpc("graph", "relations.visible", s_id_number(fox_id),
                  json_pack("{s:[s,s,s,s]}", "ids", elk_id, owl_id, fox_id, owl_id));
    assert_int_equal(reply_status(reply), 200);
    json_t *visible = json_object_get(reply_body(reply), "visible");
    assert_int_equal(json_array_size(visible), 2);
    assert_string_equal(json_string_value(json_array_get(visible, 0)), owl_id);
    assert_string_equal(json_string_value(json_array_get(visible, 1)), fox_id);
    json_decref(reply);
    reply = s_rpc("graph", "relations.visible", s_id_number(elk_id),
                  json_pack("{s:[s,s]}", "ids", owl_id, fox_id));
    assert_int_equal(json_array_size(json_object_get(reply_body(reply), "visible")), 0);
    json_decref(reply);
    //  relations.visible reads less than relations.batch (graph_visibility)
    //  but must decide the same: for every viewer, the visible ids are
    //  exactly those whose can_view is true.
    const char *viewers[] = {owl_id, fox_id, elk_id, "0"};
    for (size_t v = 0; v < sizeof viewers / sizeof viewers[0]; v++) {
        int64_t viewer = s_id_number(viewers[v]);
        json_t *batch = s_rpc("graph", "relations.batch", viewer,
                              json_pack("{s:[s,s,s]}", "ids", owl_id, fox_id, elk_id));
        json_t *seen = s_rpc("graph", "relations.visible", viewer,
                             json_pack("{s:[s,s,s]}", "ids", owl_id, fox_id, elk_id));
        assert_int_equal(reply_status(seen), 200);
        json_t *can = json_object_get(reply_body(batch), "relations");
        size_t expected = 0;
        const char *ids[] = {owl_id, fox_id, elk_id};
        for (size_t i = 0; i < 3; i++) {
            if (!s_bool(json_object_get(can, ids[i]), "can_view")) continue;
            json_t *at = json_array_get(json_object_get(reply_body(seen), "visible"), expected++);
            assert_non_null(at);
            assert_string_equal(json_string_value(at), ids[i]);
        }
        assert_int_equal(json_array_size(json_object_get(reply_body(seen), "visible")), expected);
        json_decref(batch);
        json_decref(seen);
    }

    //  A user graph has not heard of yet is looked up in identity.
    json_t *newbie = s_register("newbie");
    reply = s_rpc("graph", "relations.visible", 0, json_pack("{s:[s]}", "ids", s_id(newbie)));
    assert_int_equal(json_array_size(json_object_get(reply_body(reply), "visible")), 1);
    json_decref(reply);
    json_decref(newbie);

    //  Bad arguments.
    json_t *bad[] = {json_object(), json_pack("{s:s}", "ids", "1"), json_pack("{s:[b]}", "ids", 1),
                     json_pack("{s:[s]}", "ids", "-4"), json_pack("{s:[s]}", "ids", "x")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *copy = json_deep_copy(bad[i]);
        reply = s_rpc("graph", "relations.batch", 0, bad[i]);
        assert_int_equal(reply_status(reply), 400);
        json_decref(reply);
        reply = s_rpc("graph", "relations.visible", 0, copy);
        assert_int_equal(reply_status(reply), 400);
        json_decref(reply);
    }
    json_t *many = json_array();
    for (int i = 0; i < 1001; i++)
        json_array_append_new(many, json_string("1"));
    reply = s_rpc("graph", "relations.batch", 0, json_pack("{s:o}", "ids", many));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);

    //  follows.following_ids, newest follow first, paged.
    json_t *gnu = s_register("gnu"), *yak = s_register("yak");
    s_follow("POST", s_token(fox), "gnu", "following");
    s_follow("POST", s_token(fox), "yak", "following");
    reply = s_rpc("graph", "follows.following_ids", 0,
                  json_pack("{s:s, s:s}", "user_id", fox_id, "limit", "2"));
    assert_int_equal(reply_status(reply), 200);
    json_t *items = json_object_get(reply_body(reply), "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_array_get(items, 0)), s_id(yak));
    assert_string_equal(json_string_value(json_array_get(items, 1)), s_id(gnu));
    const char *cursor = harness_str(reply_body(reply), "next_cursor");
    assert_non_null(cursor);
    json_t *next = s_rpc("graph", "follows.following_ids", 0,
                         json_pack("{s:s, s:s}", "user_id", fox_id, "cursor", cursor));
    items = json_object_get(reply_body(next), "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_array_get(items, 0)), owl_id);
    assert_true(json_is_null(json_object_get(reply_body(next), "next_cursor")));
    json_decref(next);
    json_decref(reply);
    json_t *bad_following[] = {json_object(), json_pack("{s:i}", "user_id", 5),
                               json_pack("{s:s, s:s}", "user_id", fox_id, "cursor", "nope"),
                               json_pack("{s:s, s:i}", "user_id", fox_id, "limit", 0)};
    for (size_t i = 0; i < sizeof bad_following / sizeof bad_following[0]; i++) {
        reply = s_rpc("graph", "follows.following_ids", 0, bad_following[i]);
        assert_int_equal(reply_status(reply), 400);
        json_decref(reply);
    }
    json_decref(gnu);
    json_decref(yak);
    json_decref(owl);
    json_decref(fox);
    json_decref(elk);
}

//  identity's users.batch decorates on request, with graph's relations.
static void test_identity_decoration(void **state)
{
    (void)state;
    json_t *ivy = s_register("ivy"), *jon = s_register("jon"), *kai = s_register("kai");
    const char *ivy_id = s_id(ivy), *jon_id = s_id(jon), *kai_id = s_id(kai);
    s_follow("POST", s_token(jon), "ivy", "following");
    assert_int_equal(s_action("POST", s_token(kai), "/api/v1/users/%s/block", "jon"), 204);

    //  As jon: kai is gone (blocked), ivy and jon carry counts and relations.
    json_t *reply =
        s_rpc("identity", "users.batch", s_id_number(jon_id),
              json_pack("{s:[s,s,s], s:b}", "ids", ivy_id, kai_id, jon_id, "decorate", 1));
    assert_int_equal(reply_status(reply), 200);
    json_t *users = json_object_get(reply_body(reply), "users");
    assert_int_equal(json_array_size(users), 2);
    json_t *first = json_array_get(users, 0), *second = json_array_get(users, 1);
    assert_string_equal(harness_str(first, "id"), ivy_id);
    assert_int_equal(s_int(first, "followers_count"), 1);
    assert_true(s_bool(first, "followed_by_me"));
    assert_string_equal(harness_str(first, "follow_state"), "following");
    assert_int_equal(s_int(first, "posts_count"), 0);
    assert_string_equal(harness_str(second, "id"), jon_id);
    assert_int_equal(s_int(second, "following_count"), 1);
    json_decref(reply);
    //  Anonymous: nobody dropped, no viewer fields.
    reply = s_rpc("identity", "users.batch", 0,
                  json_pack("{s:[s,s], s:b}", "ids", ivy_id, kai_id, "decorate", 1));
    users = json_object_get(reply_body(reply), "users");
    assert_int_equal(json_array_size(users), 2);
    assert_int_equal(s_int(json_array_get(users, 0), "followers_count"), 1);
    assert_null(json_object_get(json_array_get(users, 0), "followed_by_me"));
    json_decref(reply);
    //  Undecorated (what graph itself calls): base users only.
    reply = s_rpc("identity", "users.batch", s_id_number(jon_id),
                  json_pack("{s:[s,s]}", "ids", ivy_id, kai_id));
    users = json_object_get(reply_body(reply), "users");
    assert_int_equal(json_array_size(users), 2);
    assert_int_equal(s_int(json_array_get(users, 0), "followers_count"), 0);
    assert_null(json_object_get(json_array_get(users, 0), "followed_by_me"));
    json_decref(reply);
    //  skip graph: the caller fills graph's part itself, nobody is dropped.
    reply = s_rpc(
        "identity", "users.batch", s_id_number(jon_id),
        json_pack("{s:[s,s], s:b, s:[s]}", "ids", ivy_id, kai_id, "decorate", 1, "skip", "graph"));
    users = json_object_get(reply_body(reply), "users");
    assert_int_equal(json_array_size(users), 2);
    assert_int_equal(s_int(json_array_get(users, 0), "followers_count"), 0);
    json_decref(reply);
    //  Bad arguments.
    json_t *bad[] = {
        json_pack("{s:[s], s:s}", "ids", ivy_id, "decorate", "yes"),
        json_pack("{s:[s], s:b, s:s}", "ids", ivy_id, "decorate", 1, "skip", "graph"),
        json_pack("{s:[s], s:b, s:[s]}", "ids", ivy_id, "decorate", 1, "skip", "feed")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply = s_rpc("identity", "users.batch", 0, bad[i]);
        assert_int_equal(reply_status(reply), 400);
        json_decref(reply);
    }
    json_decref(ivy);
    json_decref(jon);
    json_decref(kai);
}

//  ---- deletion ----------------------------------------------------------------------------

static void test_user_deleted(void **state)
{
    (void)state;
    json_t *dan = s_register("dan"), *amy = s_register("amy"), *kim = s_register("kim"),
           *pat = s_register("pat");
    s_set_private(pat, true);
    s_follow("POST", s_token(dan), "amy", "following");
    s_follow("POST", s_token(amy), "dan", "following");
    s_follow("POST", s_token(dan), "pat", "requested");
    assert_int_equal(s_action("POST", s_token(dan), "/api/v1/users/%s/block", "kim"), 204);
    s_expect_relation(s_token(kim), "amy", 1, 1, false, false, "none");

    http_response_t r;
    fx_call("DELETE", "/api/v1/me", s_token(dan), json_pack("{s:s}", "password", PASSWORD), &r);
    assert_int_equal(r.status, 204);
    http_response_clear(&r);
    //  Every edge of dan goes, with an event each; amy's counters follow.
    s_expect_events(1, "follow.deleted", "follower_id", s_id(dan), "followee_id", s_id(amy));
    s_expect_events(1, "follow.deleted", "follower_id", s_id(amy), "followee_id", s_id(dan));
    s_expect_events(1, "follow.request_deleted", "follower_id", s_id(dan), "followee_id",
                    s_id(pat));
    s_expect_relation(s_token(kim), "amy", 0, 0, false, false, "none");
    s_expect_names("/api/v1/me/follow-requests", s_token(pat), "");
    s_expect_names("/api/v1/users/amy/followers", s_token(kim), "");
    s_call_error("POST", "/api/v1/users/dan/follow", s_token(kim), 404, "not_found");
    //  A new account may take the name; it starts from nothing.
    json_t *dan2 = s_register("dan");
    s_expect_relation(s_token(kim), "dan", 0, 0, false, false, "none");
    s_follow("POST", s_token(kim), "dan", "following");
    s_expect_relation(s_token(amy), "dan", 1, 0, false, false, "none");
    json_decref(dan);
    json_decref(dan2);
    json_decref(amy);
    json_decref(kim);
    json_decref(pat);
}

int main(int argc, char **argv)
{
    (void)argc;
    static const char *const services[] = {"identity", "graph", NULL};
    harness_config_t config = {.name = "graph", .base_port = 17600, .services = services};
    if (harness_start(&config, argv[0]) != 0) return 1;
    zsys_handler_set(NULL);
    s_client = rpc_client_new(harness_broker_url());
    if (!s_client) {
        harness_stop(1);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow_public),
        cmocka_unit_test(test_follow_errors),
        cmocka_unit_test(test_private_flow),
        cmocka_unit_test(test_public_switch_approves),
        cmocka_unit_test(test_privacy_switch_immediate),
        cmocka_unit_test(test_lists_pagination),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_block_removes_requests),
        cmocka_unit_test(test_concurrent_counts),
        cmocka_unit_test(test_internal_methods),
        cmocka_unit_test(test_identity_decoration),
        cmocka_unit_test(test_user_deleted),
        cmocka_unit_test(fx_test_still_healthy),
    };
    int failed = cmocka_run_group_tests_name("graph", tests, NULL, NULL);
    rpc_client_destroy(&s_client);
    int problems = harness_stop(failed);
    return (failed || problems) ? 1 : 0;
}
