/*  test_feed: the feed service's event handlers, page queries and argument
    checks against a real PostgreSQL, without the rest of the system.

    The Makefile links unit tests with libcommon only, so this file includes
    the feed's sources (all but main.c) directly: the handlers are called as
    the subscriber calls them (inside a transaction, with an event_t), the
    page queries as the handlers do, and service_dispatch runs the methods
    up to the point where they would call another service (argument errors
    answer before any RPC).

    The server is TEST_DATABASE_URL when set, else one this binary starts
    with scripts/pg.sh on the first free port of 17780..17789. Each run makes
    its own database (feed_unit_<pid>), migrates schemas/feed into it and
    drops it at the end. User ids are small integers, post ids increase
    with time as real ids do. test_batch_equals_one_by_one runs one
    interleaved sequence twice, in two id ranges, one transaction per event
    and all in one transaction (the hot handlers then defer and flush
    set-based), and compares every table.
*/
#include "../../services/feed/activity.c"
#include "../../services/feed/fanout.c"
#include "../../services/feed/interactions.c"
#include "../../services/feed/timeline.c"
#include "../../services/feed/util.c"

#include "unit_pg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#define PORT_FIRST 17780
#define PORT_LAST 17789

static unit_pg_t *s_pg; // the server (its "app" database)
static char s_url[300]; // this run's database
static char s_database[64];
static db_t *s_db;
static feed_t s_config = {.fanout_threshold = 2, .timeline_max = 100, .backfill = 3};
static int64_t s_seq;
static int64_t s_next_post = 1000000;

//  ---- fixture ---------------------------------------------------------------

//  Runs one statement on the server's own database (CREATE/DROP DATABASE).
static int s_server_exec(const char *sql)
{
    db_t *db = db_new(unit_pg_url(s_pg), "public");
    if (!db) return -1;
    int rc = db_exec_script(db, sql);
    db_destroy(&db);
    return rc;
}

static int s_setup(void **state)
{
    log_init("test_feed");
    s_pg = unit_pg_new("test_feed", "schemas/feed/001_init.sql", PORT_FIRST, PORT_LAST);
    if (!s_pg) return -1;
    const char *server_url = unit_pg_url(s_pg);
    snprintf(s_database, sizeof s_database, "feed_unit_%d", (int)getpid());
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", s_database);
    s_server_exec(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", s_database);
    if (s_server_exec(sql) != 0) return -1;
    //  Same server, our database: replace the path of the URL.
    const char *slash = strrchr(server_url, '/');
    const char *query = strchr(slash, '?');
    snprintf(s_url, sizeof s_url, "%.*s/%s%s", (int)(slash - server_url), server_url, s_database,
             query ? query : "");
    s_db = db_new(s_url, "feed");
    if (!s_db) return -1;
    char schemas[600];
    snprintf(schemas, sizeof schemas, "%s/schemas", unit_pg_root(s_pg));
    if (db_migrate(s_db, schemas) < 0) return -1;
    return 0;
}

static int s_teardown(void **state)
{
    db_destroy(&s_db);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", s_database);
    s_server_exec(sql);
    unit_pg_destroy(&s_pg);
    return 0;
}

//  ---- helpers ----------------------------------------------------------------

static bool s_in_batch; // between s_batch_begin and s_batch_end

//  Runs handler on topic with payload (stolen) as the subscriber does:
//  inside one transaction, which ends with the batch end hook
//  (activity_flush), or inside the open batch. Asserts it succeeded.
static void s_handle(events_handler_fn handler, const char *topic, json_t *payload)
{
    event_t event = {.producer = "test",
                     .seq = ++s_seq,
                     .topic = topic,
                     .request_id = "",
                     .created_ms = envelope_now_ms(),
                     .payload = payload};
    if (!s_in_batch) assert_int_equal(db_begin(s_db), 0);
    int rc = handler(s_db, &event, &s_config);
    assert_int_equal(rc, 0);
    assert_true(db_in_transaction(s_db));
    if (!s_in_batch) {
        assert_int_equal(activity_flush(s_db, NULL, &s_config), 0);
        assert_int_equal(db_commit(s_db), 0);
    }
    json_decref(payload);
}

//  Several events in one transaction, as a backlog is handled.
static void s_batch_begin(void)
{
    assert_int_equal(db_begin(s_db), 0);
    s_in_batch = true;
}

static void s_batch_end(void)
{
    s_in_batch = false;
    assert_int_equal(activity_flush(s_db, NULL, &s_config), 0);
    assert_int_equal(db_commit(s_db), 0);
}

static const char *s_id(int64_t id)
{
    static char buffers[8][21];
    static int next;
    char *buf = buffers[next++ % 8];
    ids_format(id, buf, 21);
    return buf;
}

static void s_follow(int64_t follower, int64_t followee)
{
    s_handle(fanout_on_follow_created, "follow.created",
             json_pack("{ssssss}", "follower_id", s_id(follower), "followee_id", s_id(followee),
                       "created_at", "2026-11-27T10:00:00.000Z"));
}

static void s_unfollow_event(int64_t follower, int64_t followee)
{
    s_handle(fanout_on_follow_deleted, "follow.deleted",
             json_pack("{ssss}", "follower_id", s_id(follower), "followee_id", s_id(followee)));
}

//  A new post by author (mentions: NULL or a JSON array, stolen). Returns its id.
static int64_t s_post(int64_t author, json_t *mentions)
{
    int64_t id = ++s_next_post;
    s_handle(fanout_on_post_created, "post.created",
             json_pack("{sssssss[]soss}", "id", s_id(id), "author_id", s_id(author), "caption",
                       "hi", "hashtags", "mentions", mentions ? mentions : json_array(),
                       "created_at", "2026-11-27T10:00:00.000Z"));
    return id;
}

static void s_delete_post(int64_t id, int64_t author)
{
    s_handle(fanout_on_post_deleted, "post.deleted",
             json_pack("{sssss[]}", "id", s_id(id), "author_id", s_id(author), "hashtags"));
}

static void s_like(int64_t user, int64_t post, int64_t author, const char *at)
{
    s_handle(interactions_on_like_created, "like.created",
             json_pack("{ssssssss}", "post_id", s_id(post), "post_author_id", s_id(author),
                       "user_id", s_id(user), "created_at", at));
}

static void s_unlike(int64_t user, int64_t post, int64_t author)
{
    s_handle(interactions_on_like_deleted, "like.deleted",
             json_pack("{ssssss}", "post_id", s_id(post), "post_author_id", s_id(author), "user_id",
                       s_id(user)));
}

static void s_comment(int64_t id, int64_t user, int64_t post, int64_t author, json_t *mentions)
{
    s_handle(interactions_on_comment_created, "comment.created",
             json_pack("{sssssssssssoss}", "id", s_id(id), "post_id", s_id(post), "post_author_id",
                       s_id(author), "author_id", s_id(user), "text", "nice", "mentions",
                       mentions ? mentions : json_array(), "created_at",
                       "2026-11-27T11:00:00.000Z"));
}

//  The whole feed of viewer, newest first, read in pages of page_size:
//  writes the ids into out (at most max) and returns the count.
static int s_feed_ids(int64_t viewer, int page_size, int64_t *out, int max)
{
    int count = 0;
    int64_t before = INT64_MAX;
    for (int pages = 0; pages < 1000; pages++) {
        PGresult *res = timeline_page(s_db, viewer, before, page_size + 1);
        assert_non_null(res);
        int rows = PQntuples(res);
        for (int row = 0; row < rows && row < page_size; row++) {
            assert_true(count < max);
            out[count++] = strtoll(PQgetvalue(res, row, 0), NULL, 10);
        }
        bool more = rows > page_size;
        if (more) before = strtoll(PQgetvalue(res, page_size - 1, 0), NULL, 10);
        PQclear(res);
        if (!more) break;
    }
    return count;
}

static bool s_feed_has(int64_t viewer, int64_t post)
{
    int64_t ids[512];
    int count = s_feed_ids(viewer, 100, ids, 512);
    for (int i = 0; i < count; i++)
        if (ids[i] == post) return true;
    return false;
}

static long s_count(const char *sql)
{
    return (long)unit_pg_number(s_db, sql);
}

//  The first (newest) activity group of owner of type (NULL: any), as a
//  result row in *res (caller clears); -1 when none.
static int s_activity_find(int64_t owner, const char *type, int64_t post, PGresult **res)
{
    *res = activity_page(s_db, owner, INT64_MAX, INT64_MAX, 100);
    assert_non_null(*res);
    for (int row = 0; row < PQntuples(*res); row++)
        if ((!type || streq(PQgetvalue(*res, row, COL_TYPE), type)) &&
            strtoll(PQgetvalue(*res, row, COL_POST), NULL, 10) == post)
            return row;
    return -1;
}

static int s_activity_count(int64_t owner, const char *type, int64_t post)
{
    PGresult *res;
    int row = s_activity_find(owner, type, post, &res);
    int count = row < 0 ? -1 : atoi(PQgetvalue(res, row, COL_COUNT));
    PQclear(res);
    return count;
}

//  ---- timelines ---------------------------------------------------------------

static void test_fanout_and_own_posts(void **state)
{
    s_follow(11, 10);
    int64_t post = s_post(10, NULL);
    assert_true(s_feed_has(10, post)); // own
    assert_true(s_feed_has(11, post)); // follower
    assert_false(s_feed_has(12, post));
    //  Replays change nothing.
    s_follow(11, 10);
    assert_int_equal(s_count("SELECT followers FROM follower_counts WHERE user_id = 10"), 1);
    s_handle(fanout_on_post_created, "post.created",
             json_pack("{ssss}", "id", s_id(post), "author_id", s_id(10)));
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM timeline WHERE post_id = %s", s_id(post));
    assert_int_equal(s_count(sql), 2);
}

static void test_backfill_unfollow_delete(void **state)
{
    int64_t posts[5];
    for (int i = 0; i < 5; i++)
        posts[i] = s_post(20, NULL);
    s_follow(21, 20);
    //  The newest FEED_BACKFILL (3 here) arrive, newest first.
    int64_t ids[16];
    int count = s_feed_ids(21, 2, ids, 16);
    assert_int_equal(count, 3);
    assert_true(ids[0] == posts[4] && ids[1] == posts[3] && ids[2] == posts[2]);

    s_delete_post(posts[4], 20);
    assert_false(s_feed_has(21, posts[4]));
    assert_false(s_feed_has(20, posts[4]));
    s_delete_post(posts[4], 20); // replay
    s_unfollow_event(21, 20);
    assert_int_equal(s_feed_ids(21, 10, ids, 16), 0);
    assert_true(s_feed_has(20, posts[3]));
    assert_int_equal(s_count("SELECT followers FROM follower_counts WHERE user_id = 20"), 0);
    s_unfollow_event(21, 20); // replay: the count stays
    assert_int_equal(s_count("SELECT followers FROM follower_counts WHERE user_id = 20"), 0);
}

static void test_block_both_ways(void **state)
{
    s_follow(31, 30);
    s_follow(30, 31);
    int64_t a = s_post(30, NULL), b = s_post(31, NULL);
    assert_true(s_feed_has(31, a) && s_feed_has(30, b));
    s_handle(fanout_on_block_created, "block.created",
             json_pack("{ssss}", "blocker_id", s_id(30), "blocked_id", s_id(31)));
    assert_false(s_feed_has(31, a));
    assert_false(s_feed_has(30, b));
    assert_true(s_feed_has(30, a) && s_feed_has(31, b));
    assert_int_equal(s_count("SELECT count(*) FROM follows WHERE 30 IN (follower_id, followee_id)"),
                     0);
    s_handle(fanout_on_block_deleted, "block.deleted",
             json_pack("{ssss}", "blocker_id", s_id(30), "blocked_id", s_id(31)));
    assert_int_equal(s_count("SELECT count(*) FROM blocks WHERE blocker_id = 30"), 0);
}

static void test_celebrity_merged_at_read(void **state)
{
    //  Threshold 2: 40 has 3 followers, 41 has 1.
    s_follow(42, 40);
    s_follow(43, 40);
    s_follow(44, 40);
    s_follow(42, 41);
    int64_t p0 = s_post(40, NULL); // not fanned out
    int64_t p1 = s_post(41, NULL);
    int64_t p2 = s_post(40, NULL);
    int64_t p3 = s_post(41, NULL);
    int64_t p4 = s_post(40, NULL);
    assert_int_equal(s_count("SELECT count(*) FROM timeline WHERE author_id = 40"), 3); // own only
    assert_int_equal(s_count("SELECT count(*) FROM posts WHERE author_id = 40 AND fanned_out"), 0);
    int64_t ids[16];
    //  One per page: the merge across pages. The first page's pushed rows
    //  (p3, p1) fill it, so p0, older than both, is not read for it, and
    //  still comes on the last page.
    int count = s_feed_ids(42, 1, ids, 16);
    assert_int_equal(count, 5);
    assert_true(ids[0] == p4 && ids[1] == p3 && ids[2] == p2 && ids[3] == p1 && ids[4] == p0);
    count = s_feed_ids(42, 2, ids, 16);
    assert_int_equal(count, 5);
    assert_true(ids[0] == p4 && ids[1] == p3 && ids[2] == p2 && ids[3] == p1 && ids[4] == p0);
    count = s_feed_ids(43, 10, ids, 16);
    assert_int_equal(count, 3);
    assert_true(ids[0] == p4 && ids[1] == p2 && ids[2] == p0);
    assert_true(s_feed_has(40, p4)); // the author's own timeline has them
    //  Unfollow stops the merge; delete removes it from the author's own.
    s_unfollow_event(43, 40);
    assert_false(s_feed_has(43, p4));
    s_delete_post(p4, 40);
    assert_false(s_feed_has(40, p4));
    assert_false(s_feed_has(42, p4));
}

static void test_trim_and_deep_pages(void **state)
{
    feed_t saved = s_config;
    s_config.timeline_max = 100; // the minimum main() allows
    s_follow(51, 50);
    s_follow(51, 52);
    int64_t posts[260];
    for (int i = 0; i < 260; i++)
        posts[i] = s_post(i % 3 == 0 ? 52 : 50, NULL);
    //  A trim of 51's timeline, as a fan-out does.
    const char *trim_params[] = {"100", "51"};
    assert_true(db_exec(s_db, TRIM_SQL("SELECT $2::bigint AS user_id"), 2, trim_params) >= 0);
    assert_int_equal(s_count("SELECT count(*) FROM timeline WHERE user_id = 51"), 100);
    assert_true(s_count("SELECT count(*) FROM timeline_floor WHERE user_id = 51") == 1);
    //  Every post still comes, in order, across the floor, page after page.
    int64_t ids[300];
    int count = s_feed_ids(51, 7, ids, 300);
    assert_int_equal(count, 260);
    for (int i = 0; i < 260; i++)
        assert_true(ids[i] == posts[259 - i]);
    s_config = saved;
}

static void test_user_deleted(void **state)
{
    s_follow(61, 60);
    s_follow(60, 62);
    int64_t post = s_post(60, NULL);
    s_post(62, NULL);
    s_like(61, post, 60, "2026-11-27T12:00:00.000Z");
    s_handle(fanout_on_user_deleted, "user.deleted",
             json_pack("{ssss}", "id", s_id(60), "username", "sixty"));
    assert_false(s_feed_has(61, post));
    assert_int_equal(s_count("SELECT count(*) FROM timeline WHERE user_id = 60"), 0);
    assert_int_equal(s_count("SELECT count(*) FROM follows WHERE 60 IN (follower_id,followee_id)"),
                     0);
    assert_int_equal(s_count("SELECT followers FROM follower_counts WHERE user_id = 62"), 0);
    assert_int_equal(s_count("SELECT count(*) FROM activity_groups WHERE owner_id = 60"), 0);
    assert_int_equal(s_count("SELECT count(*) FROM my_likes WHERE user_id = 61"), 0);
    //  Late events about the deleted user are ignored.
    s_follow(61, 60);
    s_post(60, NULL);
    assert_int_equal(s_count("SELECT count(*) FROM follows WHERE followee_id = 60"), 0);
    assert_int_equal(s_count("SELECT count(*) FROM posts WHERE author_id = 60"), 0);
}

//  ---- activity -------------------------------------------------------------------

static void test_activity_likes_grouped(void **state)
{
    int64_t post = s_post(70, NULL);
    s_like(71, post, 70, "2026-11-27T12:00:00.000Z");
    s_like(72, post, 70, "2026-11-27T12:01:00.000Z");
    s_like(73, post, 70, "2026-11-27T12:02:00.000Z");
    s_like(73, post, 70, "2026-11-27T12:02:00.000Z"); // replay
    s_like(70, post, 70, "2026-11-27T12:03:00.000Z"); // own: nothing
    PGresult *res;
    int row = s_activity_find(70, "like", post, &res);
    assert_true(row >= 0);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, row, COL_COUNT), "3");
    assert_string_equal(PQgetvalue(res, row, COL_ACTORS), "73,72,71");
    char latest[32];
    ids_format_time(strtoll(PQgetvalue(res, row, COL_LATEST), NULL, 10), latest, sizeof latest);
    assert_string_equal(latest, "2026-11-27T12:02:00.000Z");
    PQclear(res);

    s_like(74, post, 70, "2026-11-27T12:04:00.000Z");
    row = s_activity_find(70, "like", post, &res);
    assert_string_equal(PQgetvalue(res, row, COL_COUNT), "4");
    assert_string_equal(PQgetvalue(res, row, COL_ACTORS), "74,73,72"); // up to 3
    PQclear(res);

    //  An unlike removes the actor and moves latest_at back.
    s_unlike(74, post, 70);
    s_unlike(74, post, 70); // replay
    row = s_activity_find(70, "like", post, &res);
    assert_string_equal(PQgetvalue(res, row, COL_COUNT), "3");
    assert_string_equal(PQgetvalue(res, row, COL_ACTORS), "73,72,71");
    ids_format_time(strtoll(PQgetvalue(res, row, COL_LATEST), NULL, 10), latest, sizeof latest);
    assert_string_equal(latest, "2026-11-27T12:02:00.000Z");
    PQclear(res);
    s_unlike(71, post, 70);
    s_unlike(72, post, 70);
    s_unlike(73, post, 70);
    assert_int_equal(s_activity_count(70, "like", post), -1);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM my_likes WHERE post_id = %s", s_id(post));
    assert_int_equal(s_count(sql), 1); // the author's own like is an interaction still

    //  Another day is another group.
    s_like(71, post, 70, "2026-11-27T12:00:00.000Z");
    s_like(72, post, 70, "2026-11-28T12:00:00.000Z");
    res = activity_page(s_db, 70, INT64_MAX, INT64_MAX, 10);
    assert_int_equal(PQntuples(res), 2);
    assert_string_equal(PQgetvalue(res, 0, COL_ACTORS), "72");
    PQclear(res);
    //  A deleted post takes its activity and the likes with it.
    s_delete_post(post, 70);
    res = activity_page(s_db, 70, INT64_MAX, INT64_MAX, 10);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
}

//  In one batch the group counts are written at its end, summed; a removal
//  in the batch works on exact counts (it flushes first), so a group whose
//  only counted actor leaves while a new one is still deferred stays.
static void test_activity_counts_in_a_batch(void **state)
{
    int64_t post = s_post(90, NULL);
    s_like(91, post, 90, "2026-11-27T12:00:00.000Z");
    assert_int_equal(s_activity_count(90, "like", post), 1);
    s_batch_begin();
    s_like(92, post, 90, "2026-11-27T12:01:00.000Z");
    s_like(93, post, 90, "2026-11-27T12:02:00.000Z");
    s_like(93, post, 90, "2026-11-27T12:02:00.000Z"); // replay: counted once
    s_unlike(91, post, 90);
    s_unlike(92, post, 90);
    s_batch_end();
    assert_int_equal(s_activity_count(90, "like", post), 1); // 93
    //  A new group and its counts, all in one batch; then it empties.
    int64_t other = s_post(90, NULL);
    s_batch_begin();
    s_like(94, other, 90, "2026-11-27T12:03:00.000Z");
    s_like(95, other, 90, "2026-11-27T12:04:00.000Z");
    s_batch_end();
    assert_int_equal(s_activity_count(90, "like", other), 2);
    s_batch_begin();
    s_unlike(94, other, 90);
    s_unlike(95, other, 90);
    s_like(96, other, 90, "2026-11-27T12:05:00.000Z");
    s_batch_end();
    assert_int_equal(s_activity_count(90, "like", other), 1);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM activity_groups g WHERE owner_id = %s AND actor_count <>"
             " (SELECT count(*) FROM activity_actors a WHERE a.group_id = g.id)",
             s_id(90));
    assert_int_equal(s_count(sql), 0);
}

static void test_activity_comments_and_mentions(void **state)
{
    int64_t post = s_post(80, json_pack("[ss]", s_id(82), s_id(80)));
    assert_int_equal(s_activity_count(82, "mention", post), 1);
    assert_int_equal(s_activity_count(80, "mention", post), -1); // self-mention
    s_comment(900001, 81, post, 80, json_pack("[s]", s_id(83)));
    s_comment(900002, 81, post, 80, NULL);
    s_comment(900002, 81, post, 80, NULL); // replay
    s_comment(900003, 80, post, 80, NULL); // own
    assert_int_equal(s_activity_count(80, "comment", post), 1);
    assert_int_equal(s_activity_count(83, "mention", post), 1);
    assert_int_equal(s_count("SELECT count(*) FROM my_comments WHERE author_id = 81"), 2);
    s_handle(interactions_on_comment_deleted, "comment.deleted",
             json_pack("{ssssssss}", "id", s_id(900001), "post_id", s_id(post), "post_author_id",
                       s_id(80), "author_id", s_id(81)));
    assert_int_equal(s_activity_count(80, "comment", post), 1); // 81's other comment
    assert_int_equal(s_activity_count(83, "mention", post), -1);
    s_handle(interactions_on_comment_deleted, "comment.deleted",
             json_pack("{ssssssss}", "id", s_id(900002), "post_id", s_id(post), "post_author_id",
                       s_id(80), "author_id", s_id(81)));
    assert_int_equal(s_activity_count(80, "comment", post), -1);
    assert_int_equal(s_count("SELECT count(*) FROM my_comments WHERE author_id = 81"), 0);
    //  An edit that drops a mention drops its activity.
    s_handle(fanout_on_post_updated, "post.updated",
             json_pack("{sssssss[s]}", "id", s_id(post), "author_id", s_id(80), "caption", "x",
                       "mentions", s_id(84)));
    assert_int_equal(s_activity_count(82, "mention", post), -1);
    assert_int_equal(s_activity_count(84, "mention", post), 1);
}

static void test_activity_follows_and_blocks(void **state)
{
    s_handle(fanout_on_follow_requested, "follow.requested",
             json_pack("{ssssss}", "follower_id", s_id(91), "followee_id", s_id(90), "created_at",
                       "2026-11-27T09:00:00.000Z"));
    s_handle(fanout_on_follow_requested, "follow.requested",
             json_pack("{ssssss}", "follower_id", s_id(92), "followee_id", s_id(90), "created_at",
                       "2026-11-27T09:00:01.000Z"));
    assert_int_equal(s_activity_count(90, "follow_request", 0), 2);
    s_handle(fanout_on_follow_request_deleted, "follow.request_deleted",
             json_pack("{ssss}", "follower_id", s_id(92), "followee_id", s_id(90)));
    assert_int_equal(s_activity_count(90, "follow_request", 0), 1);
    s_follow(91, 90); // approval
    assert_int_equal(s_activity_count(90, "follow_request", 0), -1);
    assert_int_equal(s_activity_count(90, "follow", 0), 1);

    //  A block removes what each did to the other, and keeps new activity out.
    int64_t post = s_post(90, NULL);
    s_like(91, post, 90, "2026-11-27T12:00:00.000Z");
    s_like(93, post, 90, "2026-11-27T12:00:00.000Z");
    s_handle(fanout_on_block_created, "block.created",
             json_pack("{ssss}", "blocker_id", s_id(90), "blocked_id", s_id(91)));
    assert_int_equal(s_activity_count(90, "like", post), 1);
    assert_int_equal(s_activity_count(90, "follow", 0), -1);
    s_like(91, post, 90, "2026-11-27T12:00:00.000Z");
    assert_int_equal(s_activity_count(90, "like", post), 1);
}

static void test_activity_pages(void **state)
{
    //  25 groups (likes on 25 posts), read 10 at a time.
    char at[32];
    int64_t posts[25];
    for (int i = 0; i < 25; i++) {
        posts[i] = s_post(100, NULL);
        snprintf(at, sizeof at, "2026-11-27T12:%02d:00.000Z", i);
        s_like(101, posts[i], 100, at);
    }
    int seen = 0;
    int64_t before_ms = INT64_MAX, before_id = INT64_MAX;
    for (int page = 0; page < 5; page++) {
        PGresult *res = activity_page(s_db, 100, before_ms, before_id, 11);
        int rows = PQntuples(res);
        for (int row = 0; row < rows && row < 10; row++) {
            assert_int_equal(strtoll(PQgetvalue(res, row, COL_POST), NULL, 10), posts[24 - seen]);
            seen++;
        }
        bool more = rows > 10;
        if (more) {
            before_ms = strtoll(PQgetvalue(res, 9, COL_LATEST), NULL, 10);
            before_id = strtoll(PQgetvalue(res, 9, COL_ID), NULL, 10);
        }
        PQclear(res);
        if (!more) break;
    }
    assert_int_equal(seen, 25);
}

//  ---- batches: set-based handling equals one by one ------------------------------

//  The state of world w (users w+1.., posts w+101.., comments w+201..) as
//  text with the ids made relative to w, so two worlds compare; groups by
//  key (their ids are drawn when made), with the order they were made in.
static char *s_world(int64_t w)
{
    char base[21];
    const char *params[] = {feed_id_text(w, base)};
    PGresult *res = db_query(
        s_db,
        "WITH r AS (SELECT $1::bigint AS w),"
        " g AS (SELECT g.*, g.owner_id - w AS o, CASE g.post_id WHEN 0 THEN 0"
        "   ELSE g.post_id - w END AS p, rank() OVER (ORDER BY g.id) AS made"
        "   FROM activity_groups g, r WHERE g.owner_id BETWEEN w AND w + 999)"
        " SELECT concat_ws(E'\\n',"
        " 'follows ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s>%s',"
        "   follower_id - w, followee_id - w) t FROM follows, r"
        "   WHERE follower_id BETWEEN w AND w + 999) x),"
        " 'counts ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s=%s',"
        "   user_id - w, followers) t FROM follower_counts, r"
        "   WHERE user_id BETWEEN w AND w + 999) x),"
        " 'timeline ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s:%s:%s',"
        "   user_id - w, post_id - w, author_id - w) t FROM timeline, r"
        "   WHERE user_id BETWEEN w AND w + 999) x),"
        " 'floors ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s:%s',"
        "   user_id - w, floor_id - w) t FROM timeline_floor, r"
        "   WHERE user_id BETWEEN w AND w + 999) x),"
        " 'deleted ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s',"
        "   user_id - w) t FROM deleted_users, r WHERE user_id BETWEEN w AND w + 999) x),"
        " 'posts ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s:%s:%s',"
        "   id - w, author_id - w, fanned_out) t FROM posts, r"
        "   WHERE author_id BETWEEN w AND w + 999) x),"
        " 'likes ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT format('%s:%s@%s',"
        "   user_id - w, post_id - w, liked_ms) t FROM my_likes, r"
        "   WHERE user_id BETWEEN w AND w + 999) x),"
        " 'comments ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT"
        "   format('%s:%s:%s:%s@%s', id - w, author_id - w, post_id - w, text, created_ms) t"
        "   FROM my_comments, r WHERE author_id BETWEEN w AND w + 999) x),"
        " 'groups ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT"
        "   format('%s:%s:%s:%s@%s=%s#%s', o, type, p, day, latest_ms, actor_count, made) t"
        "   FROM g) x),"
        " 'actors ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT"
        "   format('%s:%s:%s:%s/%s@%s', o, type, p, day, a.actor_id - w, a.latest_ms) t"
        "   FROM g JOIN activity_actors a ON a.group_id = g.id, r) x),"
        " 'sources ' || (SELECT string_agg(t, ' ' ORDER BY t) FROM (SELECT"
        "   format('%s:%s:%s:%s/%s/%s', o, type, p, day, s.actor_id - w,"
        "   CASE s.source_id WHEN 0 THEN 0 ELSE s.source_id - w END) t"
        "   FROM g JOIN activity_sources s ON s.group_id = g.id, r) x))"
        " FROM r",
        1, params);
    assert_non_null(res);
    char *text = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return text;
}

static void s_like_at(int64_t user, int64_t post, int64_t author, int day_hour)
{
    char at[32];
    snprintf(at, sizeof at, "2026-11-%02dT12:%02d:00.000Z", 27 + day_hour / 100, day_hour % 100);
    s_like(user, post, author, at);
}

static void s_comment_at(int64_t id, int64_t user, int64_t post, int64_t author, json_t *mentions,
                         const char *text)
{
    s_handle(interactions_on_comment_created, "comment.created",
             json_pack("{sssssssssssoss}", "id", s_id(id), "post_id", s_id(post), "post_author_id",
                       s_id(author), "author_id", s_id(user), "text", text, "mentions",
                       mentions ? mentions : json_array(), "created_at",
                       "2026-11-27T11:00:00.000Z"));
}

//  A post with the given id (mentions: NULL or a JSON array, stolen).
static void s_post_by(int64_t id, int64_t author, json_t *mentions)
{
    s_handle(fanout_on_post_created, "post.created",
             json_pack("{sssssoss}", "id", s_id(id), "author_id", s_id(author), "mentions",
                       mentions ? mentions : json_array(), "created_at",
                       "2026-11-27T10:00:00.000Z"));
}

//  One interleaved sequence in world w, a multiple of 2^29: an id's
//  milliseconds (id >> 23) are then the same modulo FEED_TRIM_ONE_IN in
//  both worlds, so the same posts trim the same timelines. Batched: in one
//  transaction, else one transaction per event.
static void s_interleaved(int64_t w, bool batched)
{
    int64_t a = w + 1, b = w + 2, c = w + 3, d = w + 4, e = w + 5;
    int64_t p1 = w + 101, p4 = w + 104;
    for (int64_t post = w + 101; post <= w + 105; post++)
        s_post_by(post, post < p4 ? b : c, NULL);
    s_handle(fanout_on_follow_requested, "follow.requested",
             json_pack("{ssssss}", "follower_id", s_id(e), "followee_id", s_id(b), "created_at",
                       "2026-11-27T09:00:00.000Z"));
    s_like_at(a, p4, c, 0);
    //  Tiny timelines, so backfills trim.
    s_config.timeline_max = 2;
    if (batched) s_batch_begin();
    s_like_at(a, p1, b, 1);
    s_like_at(a, p1, b, 1); // duplicate
    s_like_at(c, p1, b, 2);
    s_unlike(a, p4, c); // joins the run of likes of p1, and empties p4's group
    s_unlike(a, p1, b); // follows a deferred like of p1: created, deleted, created again
    s_like_at(a, p1, b, 3);
    s_like_at(d, p1, b, 2);
    s_comment_at(w + 201, a, p1, b, json_pack("[ss]", s_id(c), s_id(e)), "first");
    s_comment_at(w + 201, a, p1, b, json_pack("[ss]", s_id(c), s_id(e)), "first"); // duplicate
    s_comment_at(w + 202, c, p1, b, json_pack("[s]", s_id(a)), "second");
    s_follow(a, b);
    s_follow(a, c);
    s_follow(a, b); // duplicate
    s_unfollow_event(a, c);
    s_follow(a, c);
    s_follow(e, b); // approves the request
    s_handle(fanout_on_user_deleted, "user.deleted",
             json_pack("{ssss}", "id", s_id(d), "username", "dee"));
    s_like_at(d, p4, c, 4); // about a deleted user: nothing
    s_unlike(d, p1, b);     // by a deleted user, in a run of likes: nothing
    s_follow(d, b);
    s_follow(c, d);
    s_comment_at(w + 203, d, p1, b, NULL, "late");
    //  Posts: x1 trims its recipients' timelines (b, a, e), x2 and x3 do
    //  not; x4 trims c's and a's; a like between, x3 twice, one by d.
    int64_t ms = INT64_C(1) << 23;
    s_post_by(w + 301, b, NULL);
    s_post_by(w + ms + 302, b, NULL);
    s_like_at(e, p1, b, 6);
    s_post_by(w + 2 * ms + 303, b, NULL);
    s_post_by(w + 2 * ms + 303, b, NULL); // duplicate
    s_post_by(w + 304, d, NULL);          // deleted author: nothing
    s_post_by(w + FEED_TRIM_ONE_IN * ms + 305, c, json_pack("[ss]", s_id(e), s_id(a)));
    s_handle(interactions_on_comment_deleted, "comment.deleted",
             json_pack("{ssssssss}", "id", s_id(w + 202), "post_id", s_id(p1), "post_author_id",
                       s_id(b), "author_id", s_id(c)));
    s_unlike(e, p4, c);       // of nothing, then a like in the same run
    s_like_at(e, p4, c, 100); // the next day
    s_like_at(b, p1, b, 5);   // own post: a like, no activity
    if (batched) s_batch_end();
    s_config.timeline_max = 100;
}

//  An unlike joins a run of likes unless it follows a deferred like of its
//  post, which it then flushes first (interactions.c).
static void test_unlikes_join_the_run(void **state)
{
    const int64_t w = 3 * ((int64_t)FEED_TRIM_ONE_IN << 23); // above the other worlds
    int64_t a = w + 1, b = w + 2, c = w + 3, p = w + 101, q = w + 102;
    s_post_by(p, c, NULL);
    s_post_by(q, c, NULL);
    s_like_at(b, q, c, 0);
    s_batch_begin();
    s_like_at(a, p, c, 1);
    s_unlike(b, q, c);
    assert_int_equal(json_array_size(s_deferred.rows), 2);
    s_unlike(a, p, c);
    assert_int_equal(json_array_size(s_deferred.rows), 1); // the like went in first
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM my_likes WHERE post_id = %s", s_id(p));
    assert_int_equal(s_count(sql), 1); // in the transaction; this unlike is still deferred
    s_like_at(b, q, c, 2);
    assert_int_equal(json_array_size(s_deferred.rows), 2);
    s_batch_end();
    assert_int_equal(s_activity_count(c, "like", p), -1);
    assert_int_equal(s_activity_count(c, "like", q), 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM my_likes WHERE post_id IN (%s, %s) AND liked_ms %% 3600000 ="
             " 120000",
             s_id(p), s_id(q));
    assert_int_equal(s_count(sql), 1); // b's like of q again, at its new time; a's gone
}

static void test_batch_equals_one_by_one(void **state)
{
    //  Two worlds above the other tests' ids (see s_interleaved).
    const int64_t unit = (int64_t)FEED_TRIM_ONE_IN << 23;
    const int64_t one = unit, batch = 2 * unit;
    s_interleaved(one, false);
    s_interleaved(batch, true);
    char *expected = s_world(one);
    char *got = s_world(batch);
    if (!streq(got, expected)) fprintf(stderr, "one by one:\n%s\nbatched:\n%s\n", expected, got);
    assert_string_equal(got, expected);
    free(expected);
    free(got);

    //  And what that is, in the batched world.
    int64_t w = batch, a = w + 1, b = w + 2, c = w + 3, e = w + 5, p1 = w + 101, p4 = w + 104;
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(format('%%s>%%s', follower_id - %s, followee_id - %s), ' '"
             " ORDER BY follower_id, followee_id) FROM follows WHERE follower_id BETWEEN %s AND %s",
             s_id(w), s_id(w), s_id(w), s_id(w + 999));
    PGresult *res = db_query(s_db, sql, 0, NULL);
    assert_string_equal(PQgetvalue(res, 0, 0), "1>2 1>3 5>2"); // d's follows are gone
    PQclear(res);
    snprintf(sql, sizeof sql, "SELECT followers FROM follower_counts WHERE user_id = %s", s_id(b));
    assert_int_equal(s_count(sql), 2);
    snprintf(sql, sizeof sql, "SELECT followers FROM follower_counts WHERE user_id = %s", s_id(c));
    assert_int_equal(s_count(sql), 1);
    //  a's timeline: b's 3 posts and c's 2 trimmed to 2, c's gone with the
    //  unfollow and back with the follow; x1 trims to p5 and x1, x2 and x3
    //  come, x4 trims to x3 and x4 (floor x2). e's: p2 and p3 (b's backfill
    //  trimmed), x1 trims to p3 and x1 (floor p2), x2 and x3 come.
    char a_timeline[48];
    snprintf(a_timeline, sizeof a_timeline, "%" PRId64 " %" PRId64, (INT64_C(2) << 23) + 303,
             ((int64_t)FEED_TRIM_ONE_IN << 23) + 305); // x3 and x4
    const char *timelines[][2] = {{s_id(a), a_timeline}, {s_id(e), "103 301 8388910 16777519"}};
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT string_agg((post_id - %s)::text, ' ' ORDER BY post_id) FROM timeline"
                 " WHERE user_id = %s",
                 s_id(w), timelines[i][0]);
        res = db_query(s_db, sql, 0, NULL);
        assert_string_equal(PQgetvalue(res, 0, 0), timelines[i][1]);
        PQclear(res);
    }
    snprintf(sql, sizeof sql, "SELECT floor_id FROM timeline_floor WHERE user_id = %s", s_id(a));
    assert_int_equal(s_count(sql), w + (INT64_C(1) << 23) + 302);
    snprintf(sql, sizeof sql, "SELECT floor_id FROM timeline_floor WHERE user_id = %s", s_id(e));
    assert_int_equal(s_count(sql), w + 102);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM posts WHERE author_id = %s", s_id(w + 4));
    assert_int_equal(s_count(sql), 0);
    assert_int_equal(s_activity_count(e, "mention", w + ((int64_t)FEED_TRIM_ONE_IN << 23) + 305),
                     1);
    //  Likes: a's again, at its second time; c's; d's gone; b's own; e's.
    snprintf(sql, sizeof sql,
             "SELECT string_agg(format('%%s:%%s', user_id - %s, liked_ms %% 3600000 / 60000), ' '"
             " ORDER BY user_id) FROM my_likes WHERE post_id = %s",
             s_id(w), s_id(p1));
    res = db_query(s_db, sql, 0, NULL);
    assert_string_equal(PQgetvalue(res, 0, 0), "1:3 2:5 3:2 5:6");
    PQclear(res);
    PGresult *page;
    int row = s_activity_find(b, "like", p1, &page);
    assert_true(row >= 0);
    assert_string_equal(PQgetvalue(page, row, COL_COUNT), "3");
    char actors[64];
    snprintf(actors, sizeof actors, "%s,%s,%s", s_id(e), s_id(a), s_id(c)); // newest first
    assert_string_equal(PQgetvalue(page, row, COL_ACTORS), actors);
    char latest[32];
    ids_format_time(strtoll(PQgetvalue(page, row, COL_LATEST), NULL, 10), latest, sizeof latest);
    assert_string_equal(latest, "2026-11-27T12:06:00.000Z");
    PQclear(page);
    assert_int_equal(s_activity_count(b, "comment", p1), 1); // a's; c's deleted, d's ignored
    assert_int_equal(s_activity_count(c, "mention", p1), 1);
    assert_int_equal(s_activity_count(e, "mention", p1), 1);
    assert_int_equal(s_activity_count(a, "mention", p1), -1); // in the deleted comment
    assert_int_equal(s_activity_count(b, "follow", 0), 2);    // a, e
    assert_int_equal(s_activity_count(b, "follow_request", 0), -1);
    assert_int_equal(s_activity_count(c, "follow", 0), 1);
    assert_int_equal(s_activity_count(c, "like", p4), 1); // e's, the next day
    snprintf(sql, sizeof sql, "SELECT count(*) FROM my_comments WHERE post_id = %s", s_id(p1));
    assert_int_equal(s_count(sql), 1);
}

//  ---- methods ----------------------------------------------------------------------

static const service_method_t s_methods[] = {
    {"timeline.get", timeline_get},
    {"activity.list", activity_list},
    {"interactions.list", interactions_list},
    {NULL, NULL},
};

//  Dispatches method as viewer with args (stolen); returns the reply.
static json_t *s_dispatch(const char *method, int64_t viewer, json_t *args)
{
    service_def_t def = {.name = "feed", .methods = s_methods, .state = &s_config};
    envelope_request_t request = {.v = 1, .viewer_id = viewer, .args = args};
    request.deadline_ms = envelope_now_ms() + 2000;
    snprintf(request.method, sizeof request.method, "%s", method);
    call_t call = {.request = &request,
                   .args = request.args,
                   .viewer_id = viewer,
                   .db = s_db,
                   .state = &s_config};
    json_t *reply = service_dispatch(&def, &call);
    envelope_request_clear(&request);
    return reply;
}

static void s_expect_invalid(const char *method, json_t *args, const char *field)
{
    json_t *reply = s_dispatch(method, 5, args);
    assert_int_equal(reply_status(reply), 400);
    assert_string_equal(reply_error_code(reply), "invalid");
    json_t *fields = json_object_get(json_object_get(reply, "error"), "fields");
    if (!json_object_get(fields, field)) fprintf(stderr, "expected field %s\n", field);
    assert_non_null(json_object_get(fields, field));
    json_decref(reply);
}

static void test_method_arguments(void **state)
{
    static const char *const methods[] = {"timeline.get", "activity.list", "interactions.list",
                                          NULL};
    for (size_t i = 0; methods[i]; i++) {
        json_t *reply = s_dispatch(methods[i], 0, json_object());
        assert_int_equal(reply_status(reply), 401);
        json_decref(reply);
        s_expect_invalid(methods[i], json_pack("{ss}", "limit", "0"), "limit");
        s_expect_invalid(methods[i], json_pack("{ss}", "limit", "-3"), "limit");
        s_expect_invalid(methods[i], json_pack("{ss}", "limit", "ten"), "limit");
        s_expect_invalid(methods[i], json_pack("{ss}", "cursor", "not-a-cursor"), "cursor");
        char forged[CURSOR_TEXT_MAX];
        cursor_encode(5, 0, forged);
        forged[3] = forged[3] == 'A' ? 'B' : 'A';
        s_expect_invalid(methods[i], json_pack("{ss}", "cursor", forged), "cursor");
    }
    s_expect_invalid("interactions.list", json_pack("{ss}", "type", "bad"), "type");
    s_expect_invalid("interactions.list", json_pack("{ss}", "type", ""), "type");
    s_expect_invalid("interactions.list", json_pack("{si}", "type", 1), "type");
    //  Empty pages answer without calling another service.
    json_t *reply = s_dispatch("timeline.get", 999, json_object());
    assert_int_equal(reply_status(reply), 200);
    assert_int_equal(json_array_size(json_object_get(reply_body(reply), "items")), 0);
    assert_true(json_is_null(json_object_get(reply_body(reply), "next_cursor")));
    json_decref(reply);
    reply = s_dispatch("interactions.list", 999, json_pack("{ss}", "type", "comments"));
    assert_int_equal(reply_status(reply), 200);
    json_decref(reply);
    reply = s_dispatch("activity.list", 999, json_pack("{ss}", "limit", "500"));
    assert_int_equal(reply_status(reply), 200);
    json_decref(reply);
}

static void test_times(void **state)
{
    event_t event = {.created_ms = 42};
    json_t *payload = json_pack("{ssssss}", "a", "2026-11-27T20:11:53.123Z", "b",
                                "2026-11-27T20:11:53Z", "c", "yesterday");
    event.payload = payload;
    char text[32];
    int64_t ms = feed_payload_time_ms(&event, "a");
    ids_format_time(ms, text, sizeof text);
    assert_string_equal(text, "2026-11-27T20:11:53.123Z");
    assert_int_equal(feed_payload_time_ms(&event, "b") % 1000, 0);
    assert_int_equal(feed_payload_time_ms(&event, "c"), 42);
    assert_int_equal(feed_payload_time_ms(&event, "missing"), 42);
    json_decref(payload);
    feed_ids_t ids;
    feed_ids_init(&ids);
    assert_string_equal(feed_ids_literal(&ids), "{}");
    for (int i = 1; i <= 200; i++)
        feed_ids_add(&ids, i);
    assert_int_equal(ids.count, 200);
    assert_true(strncmp(feed_ids_literal(&ids), "{1,2,3,", 7) == 0);
    assert_true(strstr(feed_ids_literal(&ids), ",200}") != NULL);
    feed_ids_free(&ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_fanout_and_own_posts),
        cmocka_unit_test(test_backfill_unfollow_delete),
        cmocka_unit_test(test_block_both_ways),
        cmocka_unit_test(test_celebrity_merged_at_read),
        cmocka_unit_test(test_trim_and_deep_pages),
        cmocka_unit_test(test_user_deleted),
        cmocka_unit_test(test_activity_likes_grouped),
        cmocka_unit_test(test_activity_counts_in_a_batch),
        cmocka_unit_test(test_activity_comments_and_mentions),
        cmocka_unit_test(test_activity_follows_and_blocks),
        cmocka_unit_test(test_activity_pages),
        cmocka_unit_test(test_batch_equals_one_by_one),
        cmocka_unit_test(test_unlikes_join_the_run),
        cmocka_unit_test(test_method_arguments),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown) ? 1 : 0;
}
