/*  test_feed_outage: "nothing lost" (issue 4 point 5). The feed service is
    stopped, the graph and the posts change while it is down, it is started
    again, and every home timeline is exactly what it would have been had
    the feed stayed up. Stack: Postgres database, broker, identity, graph,
    media, feed, gateway (harness.h). Ports 18500-18509.

    Two worlds of five users run the same script of follows, posts,
    unfollows and deletions:
      live    every step with the feed up;
      outage  the first phase with the feed up, the second while it is
              stopped (SIGTERM, and the process is waited for).
    Each world keeps a model of what it did (follow edges, posts, deleted
    posts), from which every user's expected timeline follows: own posts
    and those of the accounts followed, not deleted, newest first. Both
    worlds must show exactly that through GET /feed (all pages; once more
    with a page size of 2 so cursors cross the merged sources), hence the
    same timelines as each other. While the feed is down, its own tables
    must not have moved (no offset advanced, none of the new posts is
    known): the new state can only come from the catch-up of DESIGN.md
    decision 3 (the consumer replays the producers' outboxes from its
    stored offsets at start).

    FEED_FANOUT_THRESHOLD=2, so the script takes an author across the
    threshold and back during the outage: both the pushed and the pulled
    paths are caught up. Beyond the API, the feed's projection is checked
    directly: its follow edges and follower counts equal the model's,
    deleted posts are gone from its tables, and every timeline row belongs
    to its owner or to an account the owner follows (the invariant of
    schemas/feed/001_init.sql).

    Then the restarted feed is live again, and a second restart, of a
    running feed while events flow, loses nothing either. The tests run in
    order and share the worlds (each depends on the one before);
    harness_stop fails the run if a program crashed, did not stop cleanly
    (the stopped feed included) or printed a sanitizer report.
*/
#include "db.h"
#include "fixtures.h"
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <czmq.h>

#define BASE_PORT 18500
#define USERS 5
#define MAX_POSTS 32
#define MAX_IDS 64
#define POLL_MS 50
#define SETTLE_MS 10000  // an event reaching the live feed (the promise is 5 s; SAN is slower)
#define CATCHUP_MS 30000 // a restarted feed replaying what it missed
#define EXIT_MS 20000    // the feed exiting after SIGTERM

enum { A, B, C, D, E };
static const char s_letters[] = "abcde";

typedef struct {
    const char *tag;
    fx_user_t user[USERS];
    char *post[MAX_POSTS];
    const char *label[MAX_POSTS];
    int author[MAX_POSTS];
    bool deleted[MAX_POSTS];
    int post_count;
    bool follows[USERS][USERS]; // [follower][followee]
} world_t;

static world_t s_live = {.tag = "lv"}, s_outage = {.tag = "ot"};

//  ---- the worlds: doing things, and what they should show ---------------------------

static void w_register(world_t *w)
{
    for (int u = 0; u < USERS; u++) {
        char name[32];
        snprintf(name, sizeof name, "%s_%c", w->tag, s_letters[u]);
        w->user[u] = fx_user(name);
    }
}

static void w_free(world_t *w)
{
    for (int u = 0; u < USERS; u++)
        fx_user_free(&w->user[u]);
    for (int p = 0; p < w->post_count; p++)
        free(w->post[p]);
    w->post_count = 0;
}

static int w_post(world_t *w, int who, const char *label)
{
    assert_true(w->post_count < MAX_POSTS);
    int p = w->post_count++;
    w->post[p] = fx_post(&w->user[who], label);
    w->label[p] = label;
    w->author[p] = who;
    w->deleted[p] = false;
    return p;
}

static void w_follow(world_t *w, int follower, int followee)
{
    fx_follow(&w->user[follower], &w->user[followee]);
    w->follows[follower][followee] = true;
}

static void w_unfollow(world_t *w, int follower, int followee)
{
    fx_unfollow(&w->user[follower], &w->user[followee]);
    w->follows[follower][followee] = false;
}

//  The post labelled label (each label is used once per world).
static int w_find(const world_t *w, const char *label)
{
    for (int p = 0; p < w->post_count; p++)
        if (streq(w->label[p], label)) return p;
    fail_msg("no post %s", label);
    return -1;
}

static void w_delete(world_t *w, const char *label)
{
    int p = w_find(w, label);
    fx_delete_post(&w->user[w->author[p]], w->post[p]);
    w->deleted[p] = true;
}

//  Phase 1, with the feed up in both worlds: b and c follow a, a follows b.
static void s_phase_one(world_t *w)
{
    w_follow(w, B, A);
    w_follow(w, C, A);
    w_follow(w, A, B);
    w_post(w, A, "a1");
    w_post(w, A, "a2");
    w_post(w, B, "b1");
    w_post(w, C, "c1");
}

//  Phase 2: the outage world does this while its feed is stopped. a goes
//  above the threshold (3 followers) and back; follows bring older posts
//  (backfill), unfollows and deletions take them out, and two pairs of
//  steps cancel out (e follows and unfollows c; b unfollows and follows a
//  again), which a catch-up must not get wrong whatever order it applies
//  graph and media events in.
static void s_phase_two(world_t *w)
{
    w_post(w, A, "a3");
    w_follow(w, D, A);
    w_post(w, A, "a4");
    w_follow(w, E, B);
    w_post(w, B, "b2");
    w_unfollow(w, C, A);
    w_delete(w, "a2");
    w_post(w, D, "d1");
    w_follow(w, E, D);
    w_delete(w, "b1");
    w_post(w, C, "c2");
    w_follow(w, A, C);
    w_follow(w, E, C);
    w_unfollow(w, E, C);
    w_unfollow(w, B, A);
    w_follow(w, B, A);
    w_post(w, E, "e1");
    w_post(w, A, "a5");
}

//  user's expected timeline, newest first: own posts and those of the
//  accounts followed, not deleted. Returns the count; ids points into w.
static int w_expected(const world_t *w, int user, const char *ids[MAX_POSTS])
{
    int count = 0;
    for (int p = 0; p < w->post_count; p++)
        if (!w->deleted[p] && (w->author[p] == user || w->follows[user][w->author[p]]))
            ids[count++] = w->post[p];
    //  Insertion sort, newest (highest id) first.
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && fx_id_cmp(ids[j], ids[j - 1]) > 0; j--) {
            const char *swap = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = swap;
        }
    return count;
}

//  The label of a post id of world w, or "?" (not a post of w).
static const char *w_label(const world_t *w, const char *id)
{
    for (int p = 0; p < w->post_count; p++)
        if (streq(w->post[p], id)) return w->label[p];
    return "?";
}

//  True when user's feed (read with page_limit) is exactly the expected
//  timeline; when verbose, prints both otherwise.
static bool w_user_matches(const world_t *w, int user, int page_limit, bool verbose)
{
    const char *expected[MAX_POSTS];
    int want = w_expected(w, user, expected);
    char got[MAX_IDS][FX_ID_SIZE];
    int have = fx_feed_ids(w->user[user].token, page_limit, got, MAX_IDS);
    bool same = have == want;
    for (int i = 0; same && i < want; i++)
        same = streq(got[i], expected[i]);
    if (!same && verbose) {
        fprintf(stderr, "%s's feed (limit %d): got", w->user[user].name, page_limit);
        for (int i = 0; i < have; i++)
            fprintf(stderr, " %s", w_label(w, got[i]));
        fprintf(stderr, "%s; expected", have < 0 ? " (an error)" : "");
        for (int i = 0; i < want; i++)
            fprintf(stderr, " %s", w_label(w, expected[i]));
        fprintf(stderr, "\n");
    }
    return same;
}

//  Polls (bounded by timeout_ms) until every user's feed of w is exactly
//  what the model says; prints the differences when it never is. Returns
//  the milliseconds it took, or -1.
static int64_t w_wait_converged(const world_t *w, int timeout_ms)
{
    int64_t started = zclock_mono();
    int64_t deadline = started + timeout_ms;
    while (true) {
        bool all = true;
        for (int u = 0; u < USERS && all; u++)
            all = w_user_matches(w, u, 100, false);
        if (all) return zclock_mono() - started;
        if (zclock_mono() >= deadline) break;
        zclock_sleep(POLL_MS);
    }
    fprintf(stderr, "world %s did not converge within %d ms:\n", w->tag, timeout_ms);
    for (int u = 0; u < USERS; u++)
        w_user_matches(w, u, 100, true);
    return -1;
}

//  ---- the feed's own tables --------------------------------------------------------

//  The one value of sql (text) on schema's tables, into out. Asserts a row.
static void s_db_text(db_t *db, const char *sql, int nparams, const char *const *params, char *out,
                      size_t size)
{
    PGresult *res = db_query(db, sql, nparams, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, size, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
}

static long s_db_long(db_t *db, const char *sql, int nparams, const char *const *params)
{
    char text[64];
    s_db_text(db, sql, nparams, params, text, sizeof text);
    return strtol(text, NULL, 10);
}

//  "{id,id,…}": a bigint[] literal of w's user ids.
static void w_users_literal(const world_t *w, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "{");
    for (int u = 0; u < USERS; u++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", u ? "," : "", w->user[u].id);
    snprintf(out + used, size - used, "}");
    assert_true(used + 1 < size);
}

//  The same of w's posts from index first on (only the deleted ones when
//  deleted_only).
static void w_posts_literal(const world_t *w, int first, bool deleted_only, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "{");
    bool any = false;
    for (int p = first; p < w->post_count; p++) {
        if (deleted_only && !w->deleted[p]) continue;
        used += (size_t)snprintf(out + used, size - used, "%s%s", any ? "," : "", w->post[p]);
        any = true;
    }
    snprintf(out + used, size - used, "}");
    assert_true(used + 1 < size);
}

//  "producer:last_seq,…" of the feed's event offsets.
static void s_feed_offsets(db_t *feed, char *out, size_t size)
{
    s_db_text(feed,
              "SELECT coalesce(string_agg(producer || ':' || last_seq, ',' ORDER BY producer), '')"
              " FROM event_offsets",
              0, NULL, out, size);
}

//  The feed's projection of w equals the model: edges, follower counts,
//  no deleted post anywhere, and every timeline row allowed.
static void w_check_projection(const world_t *w)
{
    db_t *feed = db_new(harness_database_url(), "feed");
    assert_non_null(feed);
    char users[USERS * FX_ID_SIZE + 8], deleted[MAX_POSTS * FX_ID_SIZE + 8];
    w_users_literal(w, users, sizeof users);
    w_posts_literal(w, 0, true, deleted, sizeof deleted);

    int edges = 0;
    for (int f = 0; f < USERS; f++)
        for (int e = 0; e < USERS; e++) {
            if (!w->follows[f][e]) continue;
            edges++;
            const char *params[] = {w->user[f].id, w->user[e].id};
            assert_int_equal(s_db_long(feed,
                                       "SELECT count(*) FROM follows"
                                       " WHERE follower_id = $1 AND followee_id = $2",
                                       2, params),
                             1);
        }
    const char *users_param[] = {users};
    assert_int_equal(s_db_long(feed,
                               "SELECT count(*) FROM follows WHERE follower_id = ANY($1::bigint[])",
                               1, users_param),
                     edges);
    for (int e = 0; e < USERS; e++) {
        int followers = 0;
        for (int f = 0; f < USERS; f++)
            followers += w->follows[f][e];
        const char *params[] = {w->user[e].id};
        long counted = s_db_long(feed,
                                 "SELECT coalesce((SELECT followers FROM follower_counts"
                                 " WHERE user_id = $1), 0)",
                                 1, params);
        if (counted != followers)
            fprintf(stderr, "%s: the feed counts %ld followers, the model %d\n", w->user[e].name,
                    counted, followers);
        assert_int_equal(counted, followers);
    }
    const char *deleted_param[] = {deleted};
    assert_int_equal(s_db_long(feed, "SELECT count(*) FROM posts WHERE id = ANY($1::bigint[])", 1,
                               deleted_param),
                     0);
    assert_int_equal(s_db_long(feed,
                               "SELECT count(*) FROM timeline WHERE post_id = ANY($1::bigint[])", 1,
                               deleted_param),
                     0);
    assert_int_equal(
        s_db_long(feed,
                  "SELECT count(*) FROM timeline t WHERE t.user_id = ANY($1::bigint[])"
                  " AND t.user_id <> t.author_id AND NOT EXISTS (SELECT 1 FROM follows f"
                  "   WHERE f.follower_id = t.user_id AND f.followee_id = t.author_id)",
                  1, users_param),
        0);
    //  Activity: each group counts exactly its actors (the feed writes the
    //  counts once per batch of events, also in the catch-up), and the
    //  follows made some.
    assert_int_equal(s_db_long(feed,
                               "SELECT count(*) FROM activity_groups g"
                               " WHERE g.owner_id = ANY($1::bigint[]) AND g.actor_count <>"
                               " (SELECT count(*) FROM activity_actors a WHERE a.group_id = g.id)",
                               1, users_param),
                     0);
    assert_true(s_db_long(feed,
                          "SELECT count(*) FROM activity_groups WHERE owner_id = ANY($1::bigint[])"
                          " AND type = 'follow' AND actor_count > 0",
                          1, users_param) > 0);
    db_destroy(&feed);
}

//  ---- tests --------------------------------------------------------------------------

static void test_phase_one_with_the_feed_up(void **state)
{
    w_register(&s_live);
    w_register(&s_outage);
    s_phase_one(&s_live);
    s_phase_one(&s_outage);
    assert_true(w_wait_converged(&s_live, SETTLE_MS) >= 0);
    assert_true(w_wait_converged(&s_outage, SETTLE_MS) >= 0);
}

static void test_phase_two_with_the_feed_up(void **state)
{
    s_phase_two(&s_live);
    int64_t ms = w_wait_converged(&s_live, SETTLE_MS);
    assert_true(ms >= 0);
    print_message("live world: phase two visible in every feed %lld ms after its last step\n",
                  (long long)ms);
    w_check_projection(&s_live);
}

//  The last seq the feed handled from producer, read from offsets text.
static long s_offset_of(const char *offsets, const char *producer)
{
    char key[64];
    snprintf(key, sizeof key, "%s:", producer);
    const char *at = strstr(offsets, key);
    return at ? strtol(at + strlen(key), NULL, 10) : 0;
}

//  Waits (bounded) until producer has published (numbered) every event it
//  committed, and past seen; returns its last seq.
static long s_published(const char *producer, long seen)
{
    db_t *db = db_new(harness_database_url(), producer);
    assert_non_null(db);
    int64_t deadline = zclock_mono() + SETTLE_MS;
    long last = 0;
    while (true) {
        last = s_db_long(db, "SELECT coalesce(max(seq), 0) FROM outbox", 0, NULL);
        long pending = s_db_long(db, "SELECT count(*) FROM outbox WHERE seq IS NULL", 0, NULL);
        if ((last > seen && pending == 0) || zclock_mono() >= deadline) break;
        zclock_sleep(POLL_MS);
    }
    db_destroy(&db);
    assert_true(last > seen);
    return last;
}

static void test_phase_two_while_the_feed_is_down(void **state)
{
    db_t *feed = db_new(harness_database_url(), "feed");
    assert_non_null(feed);

    assert_int_equal(harness_signal("feed", SIGTERM), 0);
    assert_int_equal(harness_wait_exit("feed", EXIT_MS), 0); // and it exited cleanly
    char before[256], after[256];
    s_feed_offsets(feed, before, sizeof before);

    int first = s_outage.post_count;
    s_phase_two(&s_outage);

    //  The producers published what happened while the feed was down…
    long graph_last = s_published("graph", s_offset_of(before, "graph"));
    long media_last = s_published("media", s_offset_of(before, "media"));
    //  …and none of it reached the feed: whatever it shows later, it
    //  caught up.
    s_feed_offsets(feed, after, sizeof after);
    assert_string_equal(before, after);
    char fresh[MAX_POSTS * FX_ID_SIZE + 8];
    w_posts_literal(&s_outage, first, false, fresh, sizeof fresh);
    const char *fresh_param[] = {fresh};
    assert_int_equal(
        s_db_long(feed, "SELECT count(*) FROM posts WHERE id = ANY($1::bigint[])", 1, fresh_param),
        0);
    assert_int_equal(s_db_long(feed,
                               "SELECT count(*) FROM timeline WHERE post_id = ANY($1::bigint[])", 1,
                               fresh_param),
                     0);
    print_message("feed down at offsets %s; meanwhile graph published up to %ld, media up to %ld\n",
                  before, graph_last, media_last);

    int64_t restarted = zclock_mono();
    assert_int_equal(harness_restart("feed"), 0);
    int64_t ready_ms = zclock_mono() - restarted;
    int64_t caught_ms = w_wait_converged(&s_outage, CATCHUP_MS);
    assert_true(caught_ms >= 0);
    s_feed_offsets(feed, after, sizeof after);
    assert_true(s_offset_of(after, "graph") >= graph_last);
    assert_true(s_offset_of(after, "media") >= media_last);
    print_message("feed restarted: ready after %lld ms, every timeline caught up %lld ms later;"
                  " offsets now %s\n",
                  (long long)ready_ms, (long long)caught_ms, after);
    db_destroy(&feed);
}

static void test_timelines_are_what_they_would_have_been(void **state)
{
    //  Both worlds did the same thing, one of them with the feed up: same
    //  timelines, post for post, and each equal to its model (read again
    //  with small pages, so cursors cross pushed and pulled posts).
    for (int u = 0; u < USERS; u++) {
        const char *live[MAX_POSTS], *outage[MAX_POSTS];
        int live_count = w_expected(&s_live, u, live);
        int outage_count = w_expected(&s_outage, u, outage);
        assert_int_equal(live_count, outage_count);
        for (int i = 0; i < live_count; i++)
            assert_string_equal(w_label(&s_live, live[i]), w_label(&s_outage, outage[i]));
        assert_true(w_user_matches(&s_live, u, 2, true));
        assert_true(w_user_matches(&s_outage, u, 2, true));
    }
    //  Sanity of the script itself: it left something to compare.
    const char *ids[MAX_POSTS];
    assert_int_equal(w_expected(&s_outage, E, ids), 3); // e1, d1, b2 (not b1: deleted)
    w_check_projection(&s_live);
    w_check_projection(&s_outage);
}

static void test_live_again_after_the_restart(void **state)
{
    int p = w_post(&s_outage, B, "b3");
    w_follow(&s_outage, C, E);
    assert_true(w_wait_converged(&s_outage, SETTLE_MS) >= 0);
    //  b3 reached a (follows b) and e, through the live path.
    const char *ids[MAX_POSTS];
    int count = w_expected(&s_outage, E, ids);
    assert_true(count > 0);
    assert_string_equal(ids[0], s_outage.post[p]);
    w_check_projection(&s_outage);
}

//  A restart of a running feed (SIGTERM while events may be in flight,
//  then started again) loses nothing either.
static void test_restart_while_events_flow(void **state)
{
    w_post(&s_outage, A, "a6");
    w_follow(&s_outage, D, B);
    assert_int_equal(harness_restart("feed"), 0);
    w_delete(&s_outage, "a1");
    w_post(&s_outage, D, "d2");
    assert_true(w_wait_converged(&s_outage, CATCHUP_MS) >= 0);
    w_check_projection(&s_outage);
}

int main(int argc, char **argv)
{
    (void)argc;
    zsys_handler_set(NULL);
    static const char *const services[] = {"identity", "graph", "media", "feed", NULL};
    static const char *const env[] = {"AUTH_RATE_LIMIT_PER_MIN=0", "FEED_FANOUT_THRESHOLD=2", NULL};
    harness_config_t config = {
        .name = "feed_outage", .base_port = BASE_PORT, .services = services, .env = env};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phase_one_with_the_feed_up),
        cmocka_unit_test(test_phase_two_with_the_feed_up),
        cmocka_unit_test(test_phase_two_while_the_feed_is_down),
        cmocka_unit_test(test_timelines_are_what_they_would_have_been),
        cmocka_unit_test(test_live_again_after_the_restart),
        cmocka_unit_test(test_restart_while_events_flow),
        cmocka_unit_test(fx_test_still_healthy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    w_free(&s_live);
    w_free(&s_outage);
    int problems = harness_stop(failed);
    return failed || problems ? 1 : 0;
}
