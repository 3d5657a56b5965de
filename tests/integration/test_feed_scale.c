/*  test_feed_scale: the home feed at scale (issue 4 point 6). One account
    followed by 100,000 accounts and a reader who follows 1,000: a post by
    the celebrity costs O(1) writes, and a feed page for the reader stays
    fast. Stack: Postgres database, broker, identity, graph, media, feed,
    gateway (harness.h), FEED_FANOUT_THRESHOLD=10000. Ports 18510-18519.

    Seeding. 100,000 registrations through the API would take hours
    (argon2id by design), so the accounts that only need to exist as graph
    edges are seeded straight into the feed's own projections (schemas/
    feed/001_init.sql): the feed owns that schema and builds it from
    events only, so rows that look like what its handlers write are as good
    as replayed events. The test writes them through its own connection; no
    service method exists for it. Seeded ids are small numbers, far below
    any real id (time-ordered, ~2^58 today), so they never collide with real
    accounts and seeded posts are older than every real post:
      - fake followers 1..100,000 follow the celebrity (follower count
        100,000; the reader's real follow makes it 100,001), and each also
        follows one of 987 fake regular authors whose 3 posts each sit in
        its timeline (300,000 timeline rows: the table is not toy-sized);
      - the reader follows 997 fake accounts (+ the celebrity and two real
        authors through the API = 1,000): 987 regular authors, whose newest
        950 posts fill its timeline above a trim floor (as if trimmed), and
        10 fake celebrities with 30 pulled posts each; 990 more pull authors
        that the reader does not follow make pull_authors non-trivial;
      - a second reader, "deep", follows 1,000 fake accounts and has a trim
        floor above all their posts: each of its pages is the pull
        fallback for pages older than the stored timeline;
    then ANALYZE, as a production database would have statistics.
    The celebrity, the readers and two regular authors are real accounts,
    and every post a page shows is a real post made through the API, so
    pages are hydrated by media exactly as in production.

    What is measured (print_message; the numbers and how they were made are
    in docs/benchmarks.md, "## Notes"):
      - a celebrity post: rows added to the timeline table (1: the author's
        own) and to the post projection (1), against a regular author's
        post (followers + 1 timeline rows), and the time until the post
        shows in the reader's feed (read-time merge);
      - GET /feed?limit=20 for the reader: 200 sequential requests after a
        warm-up, p50/p90/p99/max, each a full page of 20 hydrated posts;
      - the same for the deep reader (query work only: its seeded posts
        are not media's, so hydration leaves its pages empty).
    Bounds asserted: exactly 1 timeline row for the celebrity post; reader
    page p99 < 50 ms (400 ms in the SAN build), deep page p99 < 150 ms
    (600 ms SAN); SCALE_PAGE_P99_MS / SCALE_DEEP_P99_MS override them on a
    slower machine. A round whose p99 is over the bound is measured again
    (at most 5 rounds): a stall caused by other programs on the shared
    machine passes in a later round, a slow read path fails them all.
    Times are taken in this process around each request (a new connection
    per request included).
*/
#include "db.h"
#include "fixtures.h"
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <czmq.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define SCALE_SAN 1
#else
#define SCALE_SAN 0
#endif

#define BASE_PORT 18510
#define FOLLOWERS 100000
#define READER_FAKE_FOLLOWS 997 // + star, w1, w2 through the API = 1,000
#define WARMUP 20
#define SAMPLES 200
#define DEEP_SAMPLES 100
#define ROUNDS 5
#define PAGE 20
#define WAIT_MS 15000
#define POLL_MS 20

static fx_user_t s_star, s_reader, s_deep, s_w1, s_w2;
static char *s_newest; // the newest real post in the reader's feed

//  ---- helpers ----------------------------------------------------------------------

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static long s_db_long(db_t *db, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = db_query(db, sql, nparams, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    long value = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return value;
}

static void s_exec(db_t *db, const char *sql, int nparams, const char *const *params)
{
    long rows = db_exec(db, sql, nparams, params);
    if (rows < 0) fprintf(stderr, "seed failed: %s\n", sql);
    assert_true(rows >= 0);
}

//  Polls (bounded) until sql yields at least want. Returns the last value.
static long s_wait_db(db_t *db, const char *sql, int nparams, const char *const *params, long want)
{
    double deadline = s_now_ms() + WAIT_MS;
    long value;
    while ((value = s_db_long(db, sql, nparams, params)) < want && s_now_ms() < deadline)
        zclock_sleep(POLL_MS);
    if (value < want) fprintf(stderr, "%s: %ld, wanted %ld\n", sql, value, want);
    return value;
}

//  The first page of token's feed (limit PAGE): status, item count, and
//  the first item's id into first (may be NULL).
static long s_page(const char *token, size_t *items, char *first, size_t first_size)
{
    http_response_t r;
    http_request("GET", "/api/v1/feed?limit=20", token, NULL, NULL, &r);
    json_t *list = json_object_get(r.json, "items");
    *items = json_array_size(list);
    if (first) {
        const char *id = harness_str(json_array_get(list, 0), "id");
        snprintf(first, first_size, "%s", id ? id : "");
    }
    long status = r.status;
    if (status != 200) fprintf(stderr, "GET /feed: %ld %s\n", r.status, r.body);
    http_response_clear(&r);
    return status;
}

//  Polls (bounded) until the reader's first page starts with post_id.
//  Returns the milliseconds it took, or -1.
static double s_wait_first(const fx_user_t *user, const char *post_id)
{
    double started = s_now_ms();
    while (s_now_ms() < started + WAIT_MS) {
        size_t items;
        char first[FX_ID_SIZE];
        if (s_page(user->token, &items, first, sizeof first) == 200 && streq(first, post_id))
            return s_now_ms() - started;
        zclock_sleep(POLL_MS);
    }
    fprintf(stderr, "%s never became the newest post of %s's feed\n", post_id, user->name);
    return -1;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double p50, p90, p99, max;
} latency_t;

//  Sorts samples and reads the percentiles (nearest rank).
static latency_t s_latency(double *samples, int count)
{
    qsort(samples, (size_t)count, sizeof *samples, s_cmp_double);
    latency_t l = {
        .p50 = samples[(count * 50 + 99) / 100 - 1],
        .p90 = samples[(count * 90 + 99) / 100 - 1],
        .p99 = samples[(count * 99 + 99) / 100 - 1],
        .max = samples[count - 1],
    };
    return l;
}

static double s_bound(const char *name, double normal, double san)
{
    const char *text = getenv(name);
    if (text && atof(text) > 0) return atof(text);
    return SCALE_SAN ? san : normal;
}

//  ---- tests --------------------------------------------------------------------------

static void test_seed(void **state)
{
    s_star = fx_user("sc_star");
    s_reader = fx_user("sc_reader");
    s_deep = fx_user("sc_deep");
    s_w1 = fx_user("sc_w1");
    s_w2 = fx_user("sc_w2");

    db_t *feed = db_new(harness_database_url(), "feed");
    assert_non_null(feed);
    double started = s_now_ms();
    const char *star[] = {s_star.id}, *readers[] = {s_reader.id, s_deep.id};
    assert_int_equal(db_begin(feed), 0);
    //  Edges: the celebrity's 100,000 followers, each also following one of
    //  the regular authors 200011..200997; the readers' fake follows.
    s_exec(feed,
           "INSERT INTO follows (follower_id, followee_id)"
           " SELECT g, $1::bigint FROM generate_series(1, 100000) g"
           " UNION ALL SELECT g, 200011 + g % 987 FROM generate_series(1, 100000) g",
           1, star);
    s_exec(feed,
           "INSERT INTO follows (follower_id, followee_id)"
           " SELECT $1::bigint, f FROM generate_series(200001, 200997) f"
           " UNION ALL SELECT $2::bigint, f FROM generate_series(200001, 200997) f"
           " UNION ALL SELECT $2::bigint, f FROM generate_series(300001, 300003) f",
           2, readers);
    s_exec(feed,
           "INSERT INTO follower_counts (user_id, followers)"
           " SELECT followee_id, count(*) FROM follows WHERE followee_id < 1000000 GROUP BY 1"
           " UNION ALL SELECT $1::bigint, 100000"
           " ON CONFLICT (user_id) DO UPDATE"
           " SET followers = follower_counts.followers + EXCLUDED.followers",
           1, star);
    //  The fake celebrities look like what they are.
    s_exec(feed,
           "UPDATE follower_counts SET followers = 50000 WHERE user_id BETWEEN 200001 AND 200010"
           " OR user_id BETWEEN 300001 AND 300990",
           0, NULL);
    //  Posts: 3 pushed per regular author, 30 pulled per fake celebrity the
    //  readers follow, 1 pulled per other pull author.
    s_exec(
        feed,
        "INSERT INTO posts (id, author_id, fanned_out)"
        " SELECT 10000000 + (a - 200011) * 3 + k, a, true"
        "   FROM generate_series(200011, 200997) a, generate_series(0, 2) k"
        " UNION ALL SELECT 20000000 + (a - 200001) * 30 + k, a, false"
        "   FROM generate_series(200001, 200010) a, generate_series(0, 29) k"
        " UNION ALL SELECT 30000000 + a - 300001, a, false FROM generate_series(300001, 300990) a",
        0, NULL);
    s_exec(feed,
           "INSERT INTO pull_authors (author_id)"
           " SELECT DISTINCT author_id FROM posts WHERE NOT fanned_out ON CONFLICT DO NOTHING",
           0, NULL);
    //  Timelines: each fake follower holds its regular author's 3 posts; the
    //  reader the newest 950 pushed posts of its follows, above a trim floor;
    //  the deep reader nothing above a floor over every seeded post.
    s_exec(feed,
           "INSERT INTO timeline (user_id, post_id, author_id)"
           " SELECT g, p.id, p.author_id FROM generate_series(1, 100000) g"
           " JOIN posts p ON p.author_id = 200011 + g % 987 AND p.fanned_out",
           0, NULL);
    s_exec(feed,
           "INSERT INTO timeline (user_id, post_id, author_id)"
           " SELECT $1::bigint, id, author_id FROM posts"
           " WHERE fanned_out AND author_id BETWEEN 200011 AND 200997 ORDER BY id DESC LIMIT 950",
           1, readers);
    s_exec(feed,
           "INSERT INTO timeline_floor (user_id, floor_id)"
           " SELECT $1::bigint, max(id) FROM (SELECT id FROM posts"
           "   WHERE fanned_out AND author_id BETWEEN 200011 AND 200997"
           "   ORDER BY id DESC OFFSET 950) t"
           " UNION ALL SELECT $2::bigint, 40000000",
           2, readers);
    assert_int_equal(db_commit(feed), 0);
    assert_int_equal(db_exec_script(feed, "ANALYZE follows, follower_counts, posts, pull_authors,"
                                          " timeline, timeline_floor"),
                     0);
    double seed_ms = s_now_ms() - started;

    //  The real edges, through the API: the reader follows the celebrity
    //  and two regular authors (1,000 follows in all).
    fx_follow(&s_reader, &s_star);
    fx_follow(&s_reader, &s_w1);
    fx_follow(&s_reader, &s_w2);
    const char *star_param[] = {s_star.id}, *reader_param[] = {s_reader.id};
    assert_int_equal(s_wait_db(feed, "SELECT followers FROM follower_counts WHERE user_id = $1", 1,
                               star_param, FOLLOWERS + 1),
                     FOLLOWERS + 1);
    assert_int_equal(s_wait_db(feed, "SELECT count(*) FROM follows WHERE follower_id = $1", 1,
                               reader_param, 1000),
                     1000);
    long rows = s_db_long(feed, "SELECT count(*) FROM timeline", 0, NULL);
    print_message("seeded the feed schema in %.0f ms: %d followers of the celebrity, the reader"
                  " follows 1000, %ld timeline rows\n",
                  seed_ms, FOLLOWERS, rows);

    //  Real posts, newest last: enough for a full first page of hydrated
    //  posts from every source (pushed from w1, w2 and the reader's own,
    //  pulled from the celebrity).
    for (int i = 0; i < 8; i++) {
        free(fx_post(&s_w1, "w1"));
        free(fx_post(&s_w2, "w2"));
        if (i < 6) free(fx_post(&s_star, "star"));
        if (i < 2) free(fx_post(&s_reader, "mine"));
    }
    s_newest = fx_post(&s_w1, "w1 last");
    assert_true(s_wait_first(&s_reader, s_newest) >= 0);
    size_t items;
    assert_int_equal(s_page(s_reader.token, &items, NULL, 0), 200);
    assert_int_equal(items, PAGE);
    db_destroy(&feed);
}

//  Rows in the feed's timeline and post projection.
typedef struct {
    long timeline, posts;
} rows_t;

static rows_t s_rows(db_t *feed)
{
    rows_t rows = {s_db_long(feed, "SELECT count(*) FROM timeline", 0, NULL),
                   s_db_long(feed, "SELECT count(*) FROM posts", 0, NULL)};
    return rows;
}

//  Posts as user and waits (bounded) until the feed has handled the post;
//  returns its id (caller frees) and the rows it added into *added.
static char *s_post_counted(db_t *feed, const fx_user_t *user, const char *caption, rows_t *added)
{
    rows_t before = s_rows(feed);
    char *post = fx_post(user, caption);
    const char *post_param[] = {post};
    assert_int_equal(s_wait_db(feed, "SELECT count(*) FROM posts WHERE id = $1", 1, post_param, 1),
                     1);
    rows_t after = s_rows(feed);
    added->timeline = after.timeline - before.timeline;
    added->posts = after.posts - before.posts;
    return post;
}

static void test_celebrity_post_costs_o1_writes(void **state)
{
    db_t *feed = db_new(harness_database_url(), "feed");
    assert_non_null(feed);

    double started = s_now_ms();
    rows_t added;
    char *post = s_post_counted(feed, &s_star, "to 100,001 followers", &added);
    double merged_ms = s_wait_first(&s_reader, post);
    double visible_ms = s_now_ms() - started;
    assert_true(merged_ms >= 0);
    //  Not pushed: in the author's own timeline only, merged at read time.
    const char *post_param[] = {post};
    PGresult *res =
        db_query(feed, "SELECT fanned_out::text FROM posts WHERE id = $1", 1, post_param);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "false");
    PQclear(res);
    assert_int_equal(
        s_db_long(feed, "SELECT count(*) FROM timeline WHERE post_id = $1", 1, post_param), 1);
    assert_int_equal(added.timeline, 1);
    assert_int_equal(added.posts, 1);

    //  Against a regular author's post: one row per follower and its own.
    rows_t regular_added;
    char *regular = s_post_counted(feed, &s_w2, "to 1 follower", &regular_added);
    assert_int_equal(regular_added.timeline, 2);
    assert_true(s_wait_first(&s_reader, regular) >= 0);
    print_message("celebrity post (%d followers): %ld timeline row and %ld post row written;"
                  " first in the reader's feed %.0f ms after POST /posts returned (%.0f ms from"
                  " the request); a post by an author with 1 follower: %ld timeline rows\n",
                  FOLLOWERS + 1, added.timeline, added.posts, merged_ms, visible_ms,
                  regular_added.timeline);
    free(s_newest);
    s_newest = regular;
    free(post);
    db_destroy(&feed);
}

//  One round: count timed GET /feed?limit=20 as user after a warm-up;
//  when first is set, each page must be full and start with it.
static latency_t s_measure(const fx_user_t *user, const char *first, int count)
{
    double samples[SAMPLES];
    assert_true(count <= SAMPLES);
    for (int i = 0; i < WARMUP + count; i++) {
        size_t items;
        char newest[FX_ID_SIZE];
        double started = s_now_ms();
        long status = s_page(user->token, &items, newest, sizeof newest);
        double took = s_now_ms() - started;
        assert_int_equal(status, 200);
        if (first) {
            assert_int_equal(items, PAGE);
            assert_string_equal(newest, first);
        }
        if (i >= WARMUP) samples[i - WARMUP] = took;
    }
    return s_latency(samples, count);
}

//  Up to ROUNDS rounds, until one's p99 is within bound: other programs on
//  a shared machine can stall a round; a slow read path fails them all.
static void s_check_latency(const char *what, const fx_user_t *user, const char *first, int count,
                            double bound)
{
    latency_t best = {.p99 = -1};
    for (int round = 1; round <= ROUNDS; round++) {
        latency_t l = s_measure(user, first, count);
        print_message("%s, round %d (%d requests): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms,"
                      " max %.2f ms (p99 bound %.0f ms%s)\n",
                      what, round, count, l.p50, l.p90, l.p99, l.max, bound,
                      SCALE_SAN ? ", SAN build" : "");
        if (best.p99 < 0 || l.p99 < best.p99) best = l;
        if (l.p99 < bound) break;
    }
    assert_true(best.p99 < bound);
}

static void test_reader_page_latency(void **state)
{
    s_check_latency("GET /feed?limit=20, reader following 1000, 20 hydrated posts a page",
                    &s_reader, s_newest, SAMPLES, s_bound("SCALE_PAGE_P99_MS", 50, 400));
}

static void test_deep_page_latency(void **state)
{
    s_check_latency("GET /feed?limit=20 below the trim floor, pulled from 1000 follows", &s_deep,
                    NULL, DEEP_SAMPLES, s_bound("SCALE_DEEP_P99_MS", 150, 600));
}

static void test_still_healthy(void **state)
{
    http_response_t r;
    http_request("GET", "/readyz", NULL, NULL, NULL, &r);
    if (r.status != 200) fprintf(stderr, "readyz: %s\n", r.body);
    assert_int_equal(r.status, 200);
    http_response_clear(&r);
}

int main(int argc, char **argv)
{
    (void)argc;
    zsys_handler_set(NULL);
    static const char *const services[] = {"identity", "graph", "media", "feed", NULL};
    static const char *const env[] = {"AUTH_RATE_LIMIT_PER_MIN=0", "FEED_FANOUT_THRESHOLD=10000",
                                      NULL};
    harness_config_t config = {
        .name = "feed_scale", .base_port = BASE_PORT, .services = services, .env = env};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_celebrity_post_costs_o1_writes),
        cmocka_unit_test(test_reader_page_latency),
        cmocka_unit_test(test_deep_page_latency),
        cmocka_unit_test(test_still_healthy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(s_newest);
    fx_user_t *users[] = {&s_star, &s_reader, &s_deep, &s_w1, &s_w2};
    for (size_t i = 0; i < sizeof users / sizeof *users; i++)
        fx_user_free(users[i]);
    int problems = harness_stop(failed);
    return failed || problems ? 1 : 0;
}
