/*  test_feed: GET /feed, GET /activity and GET /me/interactions through the
    gateway, against a fresh stack (Postgres database, broker, identity,
    graph, media, feed, gateway; see harness.h). Ports 17700-17709.

    The feed is built from events, so what a test did through graph or
    media reaches it asynchronously: every check of something that must
    appear or go polls, bounded by WAIT_MS (5 s, the feed's promise), and
    checks of something that must not appear wait until a later change of
    the same user has arrived (events of one producer keep their order).

    The stack runs with FEED_FANOUT_THRESHOLD=2, so an author with three
    followers takes the celebrity path (merged at read time); the suite
    checks that path through the API and, to be sure it was taken, in the
    feed's own tables. Each test makes its own users, so tests do not
    depend on each other's order. The last test checks the stack still
    answers; harness_stop then fails the run if any program crashed, did
    not stop cleanly or printed a sanitizer report.
*/
#include "db.h"
#include "errors.h"
#include "fixtures.h"
#include "harness.h"

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#define WAIT_MS 5000
#define POLL_MS 50

//  ---- helpers (users, posts, likes, comments, follows: fixtures.h) ----------

//  Every post id of user's home feed, newest first (pages of 100, at most
//  max); asserts that every page answered well.
static int s_feed(const fx_user_t *user, char (*ids)[FX_ID_SIZE], int max)
{
    int count = fx_feed_ids(user->token, 100, ids, max);
    assert_true(count >= 0);
    return count;
}

static bool s_feed_has(const fx_user_t *user, const char *post_id)
{
    char ids[100][FX_ID_SIZE];
    int count = s_feed(user, ids, 100);
    for (int i = 0; i < count; i++)
        if (streq(ids[i], post_id)) return true;
    return false;
}

//  Polls until post_id is (present) or is not (!present) in user's feed.
static bool s_wait_feed(const fx_user_t *user, const char *post_id, bool present)
{
    int64_t deadline = zclock_mono() + WAIT_MS;
    while (zclock_mono() < deadline) {
        if (s_feed_has(user, post_id) == present) return true;
        zclock_sleep(POLL_MS);
    }
    fprintf(stderr, "post %s still %s %s's feed after %d ms\n", post_id,
            present ? "missing from" : "in", user->name, WAIT_MS);
    return false;
}

//  The activity item of user of type about post_id (NULL: none), as a new
//  reference, or NULL.
static json_t *s_activity_item(const fx_user_t *user, const char *type, const char *post_id)
{
    json_t *page = fx_get_page("/api/v1/activity?limit=100", user->token);
    json_t *found = NULL;
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), index, item)
    {
        const char *item_post = harness_str(item, "post_id");
        if (streq(harness_str(item, "type"), type) &&
            ((!post_id && !item_post) || (post_id && item_post && streq(post_id, item_post)))) {
            found = json_incref(item);
            break;
        }
    }
    json_decref(page);
    return found;
}

static json_int_t s_actor_count(const json_t *item)
{
    json_t *count = json_object_get(item, "actor_count");
    assert_true(json_is_integer(count));
    return json_integer_value(count);
}

//  Polls until user's item (type, post) has actor_count count (0: absent).
static json_t *s_wait_activity(const fx_user_t *user, const char *type, const char *post_id,
                               json_int_t count)
{
    int64_t deadline = zclock_mono() + WAIT_MS;
    while (zclock_mono() < deadline) {
        json_t *item = s_activity_item(user, type, post_id);
        if (count == 0 && !item) return json_object();
        if (item && s_actor_count(item) == count) return item;
        json_decref(item);
        zclock_sleep(POLL_MS);
    }
    fprintf(stderr, "%s's %s activity on %s never reached %lld actors\n", user->name, type,
            post_id ? post_id : "-", (long long)count);
    return NULL;
}

//  Checks an activity item's shape.
static void s_check_item(const json_t *item)
{
    assert_non_null(harness_str(item, "type"));
    json_t *actors = json_object_get(item, "actors");
    assert_true(json_is_array(actors));
    assert_true(json_array_size(actors) <= 3);
    assert_true(json_array_size(actors) <= (size_t)s_actor_count(item));
    size_t index;
    json_t *actor;
    json_array_foreach(actors, index, actor)
    {
        assert_non_null(harness_str(actor, "id"));
        assert_non_null(harness_str(actor, "username"));
        assert_true(json_is_integer(json_object_get(actor, "followers_count")));
    }
    const char *latest = harness_str(item, "latest_at");
    assert_non_null(latest);
    assert_int_equal(strlen(latest), 24);
    assert_int_equal(latest[23], 'Z');
}

//  Runs sql (one bigint) on the feed's own schema.
static long s_feed_db_count(const char *sql, const char *param)
{
    db_t *db = db_new(harness_database_url(), "feed");
    assert_non_null(db);
    const char *params[] = {param};
    PGresult *res = db_query(db, sql, param ? 1 : 0, params);
    assert_non_null(res);
    long value = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    db_destroy(&db);
    return value;
}

//  ---- feed ----------------------------------------------------------------------

static void test_requires_token_and_valid_args(void **state)
{
    static const char *const paths[] = {"/api/v1/feed", "/api/v1/activity",
                                        "/api/v1/me/interactions", NULL};
    fx_user_t ann = fx_user("args_ann");
    char path[256];
    for (size_t i = 0; paths[i]; i++) {
        http_response_t r;
        http_request("GET", paths[i], NULL, NULL, NULL, &r);
        assert_int_equal(r.status, 401);
        assert_string_equal(http_error_code(&r), "unauthenticated");
        http_response_clear(&r);
        http_request("GET", paths[i], "not.a.token", NULL, NULL, &r);
        assert_int_equal(r.status, 401);
        http_response_clear(&r);
        static const char *const bad[] = {"limit=0",
                                          "limit=-1",
                                          "limit=abc",
                                          "cursor=garbage",
                                          "cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                          NULL};
        for (size_t j = 0; bad[j]; j++) {
            http_request("GET", fx_path(path, sizeof path, "%s?%s", paths[i], bad[j]), ann.token,
                         NULL, NULL, &r);
            if (r.status != 400) fprintf(stderr, "%s: %ld %s\n", path, r.status, r.body);
            assert_int_equal(r.status, 400);
            assert_string_equal(http_error_code(&r), "invalid");
            const char *field = strncmp(bad[j], "limit", 5) == 0 ? "limit" : "cursor";
            assert_true(http_error_names(&r, field));
            http_response_clear(&r);
        }
        json_t *page =
            fx_get_page(fx_path(path, sizeof path, "%s?limit=1000", paths[i]), ann.token);
        assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
        assert_true(json_is_null(json_object_get(page, "next_cursor")));
        json_decref(page);
    }
    fx_user_free(&ann);
}

static void test_follow_brings_recent_posts(void **state)
{
    fx_user_t ann = fx_user("bf_ann"), bob = fx_user("bf_bob");
    char *p1 = fx_post(&ann, "one"), *p2 = fx_post(&ann, "two");
    char *own = fx_post(&bob, "mine");
    assert_true(s_wait_feed(&ann, p2, true)); // own posts
    assert_true(s_wait_feed(&bob, own, true));
    assert_false(s_feed_has(&bob, p1));
    fx_follow(&bob, &ann);
    assert_true(s_wait_feed(&bob, p1, true));
    assert_true(s_wait_feed(&bob, p2, true));
    //  Newest first: own post (newest), then p2, then p1.
    char ids[100][FX_ID_SIZE];
    int count = s_feed(&bob, ids, 100);
    assert_int_equal(count, 3);
    assert_string_equal(ids[0], own);
    assert_string_equal(ids[1], p2);
    assert_string_equal(ids[2], p1);
    //  Full post objects.
    json_t *page = fx_get_page("/api/v1/feed", bob.token);
    json_t *post = json_array_get(json_object_get(page, "items"), 1);
    assert_string_equal(harness_str(json_object_get(post, "author"), "username"), "bf_ann");
    assert_string_equal(harness_str(post, "caption"), "two");
    assert_true(json_is_array(json_object_get(post, "images")));
    json_decref(page);
    free(p1);
    free(p2);
    free(own);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

static void test_new_post_reaches_followers(void **state)
{
    fx_user_t ann = fx_user("np_ann"), bob = fx_user("np_bob"), cat = fx_user("np_cat");
    fx_follow(&bob, &ann);
    fx_follow(&cat, &ann);
    //  Let the follows arrive (the feed shows nothing yet: ann has no posts).
    zclock_sleep(300);
    int64_t started = zclock_mono();
    char *post = fx_post(&ann, "hello followers");
    assert_true(s_wait_feed(&bob, post, true));
    assert_true(s_wait_feed(&cat, post, true));
    fprintf(stderr, "post reached both followers in %lld ms\n",
            (long long)(zclock_mono() - started));
    //  dan does not follow ann.
    fx_user_t dan = fx_user("np_dan");
    char *dans = fx_post(&dan, "dan's");
    assert_true(s_wait_feed(&dan, dans, true));
    assert_false(s_feed_has(&dan, post));
    free(post);
    free(dans);
    fx_user_free(&ann);
    fx_user_free(&bob);
    fx_user_free(&cat);
    fx_user_free(&dan);
}

static void test_unfollow_block_delete_remove(void **state)
{
    fx_user_t ann = fx_user("rm_ann"), bob = fx_user("rm_bob");
    fx_follow(&bob, &ann);
    fx_follow(&ann, &bob);
    char *a1 = fx_post(&ann, "a1"), *a2 = fx_post(&ann, "a2"), *b1 = fx_post(&bob, "b1");
    assert_true(s_wait_feed(&bob, a1, true));
    assert_true(s_wait_feed(&bob, a2, true));
    assert_true(s_wait_feed(&ann, b1, true));

    //  A deleted post leaves every feed.
    char path[256];
    fx_delete_post(&ann, a2);
    assert_true(s_wait_feed(&bob, a2, false));
    assert_true(s_wait_feed(&ann, a2, false));

    //  Unfollow: ann's posts leave bob's feed; bob's stay in ann's.
    fx_unfollow(&bob, &ann);
    assert_true(s_wait_feed(&bob, a1, false));
    assert_true(s_feed_has(&ann, b1));

    //  Block: both ways.
    fx_follow(&bob, &ann);
    assert_true(s_wait_feed(&bob, a1, true));
    assert_int_equal(fx_status("POST",
                               fx_path(path, sizeof path, "/api/v1/users/%s/block", bob.name),
                               ann.token, NULL),
                     204);
    assert_true(s_wait_feed(&bob, a1, false));
    assert_true(s_wait_feed(&ann, b1, false));
    assert_true(s_feed_has(&ann, a1)); // own posts stay
    assert_true(s_feed_has(&bob, b1));
    free(a1);
    free(a2);
    free(b1);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

static void test_pagination_under_concurrent_posts(void **state)
{
    fx_user_t ann = fx_user("pg_ann"), bob = fx_user("pg_bob");
    fx_follow(&bob, &ann);
    enum { BEFORE = 11, DURING = 6, PAGE = 4 };
    char *before[BEFORE];
    for (int i = 0; i < BEFORE; i++)
        before[i] = fx_post(&ann, "before");
    assert_true(s_wait_feed(&bob, before[BEFORE - 1], true));
    assert_true(s_wait_feed(&bob, before[0], true));

    //  Page through while ann keeps posting: every post that existed at the
    //  start is seen exactly once, in strictly decreasing order, and new
    //  posts (above the first page) never appear on later pages.
    char seen[64][24];
    int seen_count = 0;
    char cursor[128] = "";
    int during = 0;
    for (int pages = 0; pages < 20; pages++) {
        char path[256];
        fx_page_path(path, sizeof path, "/api/v1/feed", PAGE, cursor);
        json_t *page = fx_get_page(path, bob.token);
        json_t *items = json_object_get(page, "items");
        assert_true(json_array_size(items) <= PAGE);
        size_t index;
        json_t *post;
        json_array_foreach(items, index, post)
        {
            const char *id = harness_str(post, "id");
            if (seen_count > 0) assert_true(fx_id_cmp(id, seen[seen_count - 1]) < 0);
            assert_true(seen_count < 64);
            snprintf(seen[seen_count++], 24, "%s", id);
        }
        if (during < DURING) {
            free(fx_post(&ann, "during"));
            free(fx_post(&ann, "during"));
            during += 2;
        }
        json_t *next = json_object_get(page, "next_cursor");
        if (json_is_null(next)) {
            json_decref(page);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(page);
    }
    assert_int_equal(seen_count, BEFORE);
    for (int i = 0; i < BEFORE; i++)
        assert_string_equal(seen[i], before[BEFORE - 1 - i]);
    for (int i = 0; i < BEFORE; i++)
        free(before[i]);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

static void test_celebrity_merged_at_read_time(void **state)
{
    //  FEED_FANOUT_THRESHOLD=2: star has 3 followers, so star's posts are
    //  not pushed but merged when the followers read.
    fx_user_t star = fx_user("cel_star"), f1 = fx_user("cel_f1"), f2 = fx_user("cel_f2"),
              f3 = fx_user("cel_f3"), other = fx_user("cel_other");
    fx_follow(&f1, &star);
    fx_follow(&f2, &star);
    fx_follow(&f3, &star);
    fx_follow(&f1, &other);
    //  Wait until the feed has counted the 3 followers.
    int64_t deadline = zclock_mono() + WAIT_MS;
    while (zclock_mono() < deadline &&
           s_feed_db_count("SELECT coalesce(max(followers), 0) FROM follower_counts"
                           " WHERE user_id = $1",
                           star.id) < 3)
        zclock_sleep(POLL_MS);
    char *o1 = fx_post(&other, "o1");
    char *s1 = fx_post(&star, "s1");
    char *o2 = fx_post(&other, "o2");
    char *s2 = fx_post(&star, "s2");
    assert_true(s_wait_feed(&f1, s2, true));
    assert_true(s_wait_feed(&f1, o2, true));
    assert_true(s_wait_feed(&f2, s2, true));
    assert_true(s_wait_feed(&star, s2, true));
    //  It took the pull path: not fanned out, one timeline row (star's own).
    assert_int_equal(
        s_feed_db_count("SELECT count(*) FROM posts WHERE id = $1 AND NOT fanned_out", s2), 1);
    assert_int_equal(s_feed_db_count("SELECT count(*) FROM timeline WHERE post_id = $1", s2), 1);
    //  In order with pushed posts, across pages of one.
    const char *expected[] = {s2, o2, s1, o1};
    char cursor[128] = "";
    for (int i = 0; i < 4; i++) {
        char path[256];
        fx_page_path(path, sizeof path, "/api/v1/feed", 1, cursor);
        json_t *page = fx_get_page(path, f1.token);
        assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
        assert_string_equal(harness_str(json_array_get(json_object_get(page, "items"), 0), "id"),
                            expected[i]);
        json_t *next = json_object_get(page, "next_cursor");
        if (i < 3) {
            assert_true(json_is_string(next));
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        }
        json_decref(page);
    }
    //  Unfollowing a celebrity stops the merge; deleting removes it.
    fx_unfollow(&f3, &star);
    assert_true(s_wait_feed(&f3, s2, false));
    fx_delete_post(&star, s1);
    assert_true(s_wait_feed(&f1, s1, false));
    assert_true(s_wait_feed(&star, s1, false));
    free(o1);
    free(o2);
    free(s1);
    free(s2);
    fx_user_free(&star);
    fx_user_free(&f1);
    fx_user_free(&f2);
    fx_user_free(&f3);
    fx_user_free(&other);
}

static void test_private_account_after_approval(void **state)
{
    fx_user_t priv = fx_user("pv_priv"), fan = fx_user("pv_fan");
    assert_int_equal(
        fx_status("PATCH", "/api/v1/me", priv.token, json_pack("{sb}", "is_private", 1)), 200);
    char *post = fx_post(&priv, "secret");
    char path[256];
    //  graph learns is_private from identity's event: wait until it does
    //  (the lists of a private account are 403 to others).
    fx_path(path, sizeof path, "/api/v1/users/%s/followers", priv.name);
    int64_t deadline = zclock_mono() + WAIT_MS;
    http_response_t r;
    while (zclock_mono() < deadline) {
        http_request("GET", path, fan.token, NULL, NULL, &r);
        long status = r.status;
        http_response_clear(&r);
        if (status == 403) break;
        zclock_sleep(POLL_MS);
    }
    http_json("POST", fx_path(path, sizeof path, "/api/v1/users/%s/follow", priv.name), fan.token,
              NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(harness_str(r.json, "follow_state"), "requested");
    http_response_clear(&r);
    //  The request shows in the owner's activity; the post not in the feed.
    json_t *item = s_wait_activity(&priv, "follow_request", NULL, 1);
    assert_non_null(item);
    s_check_item(item);
    assert_string_equal(harness_str(json_array_get(json_object_get(item, "actors"), 0), "id"),
                        fan.id);
    json_decref(item);
    assert_false(s_feed_has(&fan, post));
    assert_int_equal(
        fx_status("POST",
                  fx_path(path, sizeof path, "/api/v1/me/follow-requests/%s/approve", fan.name),
                  priv.token, NULL),
        204);
    assert_true(s_wait_feed(&fan, post, true));
    //  The request became a follow.
    item = s_wait_activity(&priv, "follow", NULL, 1);
    assert_non_null(item);
    json_decref(item);
    item = s_activity_item(&priv, "follow_request", NULL);
    assert_null(item);
    free(post);
    fx_user_free(&priv);
    fx_user_free(&fan);
}

//  ---- activity ------------------------------------------------------------------

static void test_activity_grouped_likes(void **state)
{
    fx_user_t ann = fx_user("act_ann"), b = fx_user("act_b"), c = fx_user("act_c"),
              d = fx_user("act_d"), e = fx_user("act_e");
    char *post = fx_post(&ann, "like me");
    fx_like(&b, post);
    fx_like(&c, post);
    fx_like(&d, post);
    fx_like(&ann, post); // own: no activity
    json_t *item = s_wait_activity(&ann, "like", post, 3);
    assert_non_null(item);
    s_check_item(item);
    assert_int_equal(json_array_size(json_object_get(item, "actors")), 3);
    assert_string_equal(harness_str(item, "post_id"), post);
    //  Newest actor first.
    assert_string_equal(harness_str(json_array_get(json_object_get(item, "actors"), 0), "id"),
                        d.id);
    json_decref(item);
    //  One item for the post, whatever the number of likes.
    json_t *page = fx_get_page("/api/v1/activity", ann.token);
    int likes = 0;
    size_t index;
    json_t *entry;
    json_array_foreach(json_object_get(page, "items"), index, entry)
    {
        s_check_item(entry);
        if (streq(harness_str(entry, "type"), "like")) likes++;
        //  Nothing from ann herself.
        json_t *actor;
        size_t k;
        json_array_foreach(json_object_get(entry, "actors"), k, actor)
            assert_string_not_equal(harness_str(actor, "id"), ann.id);
    }
    assert_int_equal(likes, 1);
    json_decref(page);

    //  A fourth liker: still up to 3 actors, count 4.
    fx_like(&e, post);
    item = s_wait_activity(&ann, "like", post, 4);
    assert_non_null(item);
    assert_int_equal(json_array_size(json_object_get(item, "actors")), 3);
    json_decref(item);
    //  A withdrawn like leaves.
    char path[256];
    assert_int_equal(fx_status("DELETE", fx_path(path, sizeof path, "/api/v1/posts/%s/like", post),
                               e.token, NULL),
                     200);
    item = s_wait_activity(&ann, "like", post, 3);
    assert_non_null(item);
    json_decref(item);

    //  Nobody else sees ann's activity: the list is always the viewer's.
    page = fx_get_page("/api/v1/activity", b.token);
    json_array_foreach(json_object_get(page, "items"), index, entry)
    {
        const char *item_post = harness_str(entry, "post_id");
        assert_true(!item_post || !streq(item_post, post));
    }
    json_decref(page);
    free(post);
    fx_user_free(&ann);
    fx_user_free(&b);
    fx_user_free(&c);
    fx_user_free(&d);
    fx_user_free(&e);
}

static void test_activity_comments_follows_mentions(void **state)
{
    fx_user_t ann = fx_user("acm_ann"), bob = fx_user("acm_bob"), cat = fx_user("acm_cat");
    char *post = fx_post(&ann, "hello @acm_cat");
    json_t *item = s_wait_activity(&cat, "mention", post, 1);
    assert_non_null(item);
    s_check_item(item);
    json_decref(item);
    char *c1 = fx_comment(&bob, post, "first");
    char *c2 = fx_comment(&bob, post, "second");
    char *c3 = fx_comment(&ann, post, "my own");
    item = s_wait_activity(&ann, "comment", post, 1); // bob, once
    assert_non_null(item);
    s_check_item(item);
    json_decref(item);
    fx_follow(&bob, &ann);
    item = s_wait_activity(&ann, "follow", NULL, 1);
    assert_non_null(item);
    assert_null(json_object_get(item, "post_id"));
    json_decref(item);
    //  Newest first by latest_at.
    json_t *page = fx_get_page("/api/v1/activity", ann.token);
    const char *previous = NULL;
    size_t index;
    json_t *entry;
    json_array_foreach(json_object_get(page, "items"), index, entry)
    {
        const char *latest = harness_str(entry, "latest_at");
        if (previous) assert_true(strcmp(latest, previous) <= 0);
        previous = latest;
    }
    json_decref(page);
    //  A block removes bob's activity on ann's content.
    char path[256];
    assert_int_equal(fx_status("POST",
                               fx_path(path, sizeof path, "/api/v1/users/%s/block", bob.name),
                               ann.token, NULL),
                     204);
    item = s_wait_activity(&ann, "comment", post, 0);
    assert_non_null(item);
    json_decref(item);
    assert_null(s_activity_item(&ann, "follow", NULL));
    free(post);
    free(c1);
    free(c2);
    free(c3);
    fx_user_free(&ann);
    fx_user_free(&bob);
    fx_user_free(&cat);
}

static void test_activity_pages(void **state)
{
    fx_user_t ann = fx_user("apg_ann"), bob = fx_user("apg_bob");
    enum { POSTS = 5 };
    char *posts[POSTS];
    for (int i = 0; i < POSTS; i++)
        posts[i] = fx_post(&ann, "p");
    for (int i = 0; i < POSTS; i++)
        fx_like(&bob, posts[i]);
    json_t *item = s_wait_activity(&ann, "like", posts[POSTS - 1], 1);
    assert_non_null(item);
    json_decref(item);
    int seen = 0;
    char cursor[128] = "";
    for (int pages = 0; pages < 10; pages++) {
        char path[256];
        fx_page_path(path, sizeof path, "/api/v1/activity", 2, cursor);
        json_t *page = fx_get_page(path, ann.token);
        size_t index;
        json_t *entry;
        json_array_foreach(json_object_get(page, "items"), index, entry)
        {
            assert_true(seen < POSTS);
            assert_string_equal(harness_str(entry, "post_id"), posts[POSTS - 1 - seen]);
            seen++;
        }
        json_t *next = json_object_get(page, "next_cursor");
        bool more = json_is_string(next);
        if (more) snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(page);
        if (!more) break;
    }
    assert_int_equal(seen, POSTS);
    for (int i = 0; i < POSTS; i++)
        free(posts[i]);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

//  ---- interactions -----------------------------------------------------------------

static void test_interactions(void **state)
{
    fx_user_t ann = fx_user("int_ann"), bob = fx_user("int_bob");
    char *p1 = fx_post(&ann, "p1"), *p2 = fx_post(&ann, "p2");
    fx_like(&bob, p2);
    zclock_sleep(5);   // distinct like times
    fx_like(&bob, p1); // the newest like first, whatever the post ids
    char *comment = fx_comment(&bob, p1, "lovely");

    //  Likes (the default type).
    int64_t deadline = zclock_mono() + WAIT_MS;
    json_t *page = NULL;
    while (zclock_mono() < deadline) {
        json_decref(page);
        page = fx_get_page("/api/v1/me/interactions", bob.token);
        if (json_array_size(json_object_get(page, "items")) == 2) break;
        zclock_sleep(POLL_MS);
    }
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(harness_str(json_array_get(items, 0), "id"), p1);
    assert_string_equal(harness_str(json_array_get(items, 1), "id"), p2);
    assert_non_null(json_object_get(json_array_get(items, 0), "author"));
    json_decref(page);
    page = fx_get_page("/api/v1/me/interactions?type=likes&limit=1", bob.token);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    assert_true(json_is_string(json_object_get(page, "next_cursor")));
    json_decref(page);

    //  Comments.
    deadline = zclock_mono() + WAIT_MS;
    page = NULL;
    while (zclock_mono() < deadline) {
        json_decref(page);
        page = fx_get_page("/api/v1/me/interactions?type=comments", bob.token);
        if (json_array_size(json_object_get(page, "items")) == 1) break;
        zclock_sleep(POLL_MS);
    }
    items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *c = json_array_get(items, 0);
    assert_string_equal(harness_str(c, "id"), comment);
    assert_string_equal(harness_str(c, "post_id"), p1);
    assert_string_equal(harness_str(c, "text"), "lovely");
    assert_string_equal(harness_str(json_object_get(c, "author"), "id"), bob.id);
    assert_string_equal(harness_str(json_object_get(c, "author"), "username"), "int_bob");
    assert_non_null(json_object_get(json_object_get(c, "author"), "avatar_url"));
    assert_int_equal(strlen(harness_str(c, "created_at")), 24);
    json_decref(page);

    //  Another type is 400; ann's interactions do not show bob's.
    http_response_t r;
    http_request("GET", "/api/v1/me/interactions?type=bad", bob.token, NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(http_error_code(&r), "invalid");
    assert_true(http_error_names(&r, "type"));
    http_response_clear(&r);
    page = fx_get_page("/api/v1/me/interactions", ann.token);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    page = fx_get_page("/api/v1/me/interactions?type=comments", ann.token);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);

    //  An unlike and a deleted post leave the list.
    char path[256];
    assert_int_equal(fx_status("DELETE", fx_path(path, sizeof path, "/api/v1/posts/%s/like", p2),
                               bob.token, NULL),
                     200);
    fx_delete_post(&ann, p1);
    deadline = zclock_mono() + WAIT_MS;
    size_t likes = 99, comments = 99;
    while (zclock_mono() < deadline) {
        page = fx_get_page("/api/v1/me/interactions", bob.token);
        likes = json_array_size(json_object_get(page, "items"));
        json_decref(page);
        page = fx_get_page("/api/v1/me/interactions?type=comments", bob.token);
        comments = json_array_size(json_object_get(page, "items"));
        json_decref(page);
        if (likes == 0 && comments == 0) break;
        zclock_sleep(POLL_MS);
    }
    assert_int_equal(likes, 0);
    assert_int_equal(comments, 0);
    free(p1);
    free(p2);
    free(comment);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

static void test_deleted_account_leaves_feeds(void **state)
{
    fx_user_t ann = fx_user("del_ann"), bob = fx_user("del_bob");
    fx_follow(&bob, &ann);
    char *post = fx_post(&ann, "bye");
    assert_true(s_wait_feed(&bob, post, true));
    assert_int_equal(
        fx_status("DELETE", "/api/v1/me", ann.token, json_pack("{ss}", "password", FX_PASSWORD)),
        204);
    assert_true(s_wait_feed(&bob, post, false));
    free(post);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

int main(int argc, char **argv)
{
    (void)argc;
    zsys_handler_set(NULL);
    static const char *const services[] = {"identity", "graph", "media", "feed", NULL};
    static const char *const env[] = {"AUTH_RATE_LIMIT_PER_MIN=0", "FEED_FANOUT_THRESHOLD=2", NULL};
    harness_config_t config = {
        .name = "feed", .base_port = 17700, .services = services, .env = env};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requires_token_and_valid_args),
        cmocka_unit_test(test_follow_brings_recent_posts),
        cmocka_unit_test(test_new_post_reaches_followers),
        cmocka_unit_test(test_unfollow_block_delete_remove),
        cmocka_unit_test(test_pagination_under_concurrent_posts),
        cmocka_unit_test(test_celebrity_merged_at_read_time),
        cmocka_unit_test(test_private_account_after_approval),
        cmocka_unit_test(test_activity_grouped_likes),
        cmocka_unit_test(test_activity_comments_follows_mentions),
        cmocka_unit_test(test_activity_pages),
        cmocka_unit_test(test_interactions),
        cmocka_unit_test(test_deleted_account_leaves_feeds),
        cmocka_unit_test(fx_test_still_healthy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int problems = harness_stop(failed);
    return failed || problems ? 1 : 0;
}
