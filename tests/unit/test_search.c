/*  test_search: the search service's event handlers and methods against a
    real PostgreSQL, without the other services.

    The service's files are compiled into this binary (included below, all
    but main.c), so the test drives the same code the service runs: events
    go through the handlers of search_consumes inside a transaction, as the
    subscriber runs them, and requests through service_dispatch() with the
    service's own definition. Calls to other services go to a fake
    (search_t.rpc): media posts.batch answers {id} for every id asked and
    identity users.batch answers {id, username} from the projection, and
    both count their calls, so a test sees exactly what was hydrated.

    The server is TEST_DATABASE_URL when set, else a private one started
    with scripts/pg.sh on the first free port of 17900..17909. The schema
    (test_search_<pid>_<n>) is migrated from schemas/search/ and dropped at
    the end.
*/
#include "cursor.h"
#include "db.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "service.h"
#include "unit_pg.h"

#include <czmq.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

//  The service under test (every file but main.c).
#include "../../services/search/hashtags.c"
#include "../../services/search/posts.c"
#include "../../services/search/projections.c"
#include "../../services/search/search.c"
#include "../../services/search/seed.c"
#include "../../services/search/users.c"

#define PORT_FIRST 17900
#define PORT_LAST 17909

static unit_pg_t *s_pg; // the server and our schema
static db_t *s_db;
static search_t s_state;
static const service_def_t *s_def;

//  ---- the fake peers ----------------------------------------------------------

static int s_posts_batches; // posts.batch calls
static int s_users_batches; // users.batch calls
static size_t s_last_batch; // ids in the last batch
static bool s_media_down;   // posts.batch answers 503

static json_t *s_fake_rpc(call_t *call, const char *service, const char *method, const json_t *args)
{
    json_t *ids = json_object_get(args, "ids");
    assert_true(json_is_array(ids));
    s_last_batch = json_array_size(ids);
    size_t index;
    json_t *id;
    if (streq(service, "media") && streq(method, "posts.batch")) {
        s_posts_batches++;
        assert_true(s_last_batch <= 100);
        if (s_media_down) return reply_error(503, ERR_UNAVAILABLE, "media is down");
        json_t *posts = json_array();
        json_array_foreach(ids, index, id)
        {
            json_array_append_new(posts, json_pack("{s:O}", "id", id));
        }
        return reply_ok(200, json_pack("{s:o}", "posts", posts));
    }
    if (streq(service, "identity") && streq(method, "users.batch")) {
        s_users_batches++;
        json_t *users = json_array();
        json_array_foreach(ids, index, id)
        {
            const char *params[] = {json_string_value(id)};
            PGresult *res =
                db_query(call->db, "SELECT username FROM users WHERE id = $1::bigint", 1, params);
            assert_non_null(res);
            if (PQntuples(res) == 1)
                json_array_append_new(
                    users, json_pack("{s:O, s:s}", "id", id, "username", PQgetvalue(res, 0, 0)));
            PQclear(res);
        }
        return reply_ok(200, json_pack("{s:o}", "users", users));
    }
    fail_msg("unexpected call %s.%s", service, method);
    return NULL;
}

//  ---- fixture ---------------------------------------------------------------

static int s_group_setup(void **state)
{
    log_init("test_search");
    s_pg = unit_pg_new("test_search", "schemas/search/001_init.sql", PORT_FIRST, PORT_LAST);
    s_db = s_pg ? unit_pg_schema(s_pg, "search", NULL) : NULL;
    if (!s_db) return -1;
    if (search_init(&s_state, 0, s_fake_rpc) != 0) return -1;
    s_def = search_service_def(&s_state);
    return 0;
}

static int s_group_teardown(void **state)
{
    db_destroy(&s_db);
    search_destroy(&s_state);
    unit_pg_destroy(&s_pg);
    return 0;
}

//  ---- helpers ---------------------------------------------------------------

//  The route of topic (a "producer.event", or a batch hook).
static events_handler_fn s_route(const char *topic)
{
    for (const events_route_t *entry = search_consumes; entry->topic; entry++)
        if (streq(entry->topic, topic)) return entry->handler;
    fail_msg("no route %s", topic);
    return NULL;
}

//  Runs "producer.event" with payload (stolen) through its handler inside
//  the caller's transaction, as the subscriber does within a batch.
static void s_handle(const char *topic, json_t *payload)
{
    const char *dot = strchr(topic, '.');
    char producer[32];
    snprintf(producer, sizeof producer, "%.*s", (int)(dot - topic), topic);
    static int64_t seq = 0;
    event_t event = {.producer = producer,
                     .seq = ++seq,
                     .topic = dot + 1,
                     .request_id = "",
                     .created_ms = envelope_now_ms(),
                     .payload = payload};
    assert_int_equal(s_route(topic)(s_db, &event, &s_state), 0);
    json_decref(payload);
}

//  Ends a batch as the subscriber does: the end hook, then the commit.
static void s_batch_end(void)
{
    assert_int_equal(s_route(EVENTS_BATCH_END)(s_db, NULL, &s_state), 0);
    assert_int_equal(db_commit(s_db), 0);
}

//  Runs one event as a batch of one (its own transaction), as a live
//  event is handled.
static void s_event(const char *topic, json_t *payload)
{
    assert_int_equal(db_begin(s_db), 0);
    s_handle(topic, payload);
    s_batch_end();
}

static const char *s_text_id(int64_t id)
{
    static char buf[8][21];
    static int next = 0;
    char *text = buf[next++ % 8];
    ids_format(id, text, 21);
    return text;
}

static int64_t s_next_user = 1000;

static int64_t s_user(const char *username, const char *display_name, bool is_private)
{
    int64_t id = ++s_next_user;
    s_event("identity.user.created",
            json_pack("{s:s, s:s, s:s, s:b, s:s}", "id", s_text_id(id), "username", username,
                      "display_name", display_name, "is_private", is_private, "created_at",
                      "2026-01-01T00:00:00.000Z"));
    return id;
}

static void s_follow(int64_t follower, int64_t followee)
{
    s_event("graph.follow.created", json_pack("{s:s, s:s}", "follower_id", s_text_id(follower),
                                              "followee_id", s_text_id(followee)));
}

static void s_block(int64_t blocker, int64_t blocked)
{
    s_event("graph.block.created", json_pack("{s:s, s:s}", "blocker_id", s_text_id(blocker),
                                             "blocked_id", s_text_id(blocked)));
}

//  A post id made ms_ago milliseconds ago (unique: a counter fills the
//  shard and sequence bits).
static int64_t s_post_id(int64_t ms_ago)
{
    static int64_t counter = 0;
    int64_t ms = envelope_now_ms() - ms_ago - IDS_EPOCH_MS;
    return (ms << 23) | (++counter & 0x7fffff);
}

//  Creates a post; tags is a NULL-terminated list (or NULL).
static int64_t s_post_at(int64_t author, int64_t ms_ago, const char *caption, const char **tags)
{
    int64_t id = s_post_id(ms_ago);
    json_t *hashtags = json_array();
    for (int i = 0; tags && tags[i]; i++)
        json_array_append_new(hashtags, json_string(tags[i]));
    s_event("media.post.created",
            json_pack("{s:s, s:s, s:s, s:o, s:[], s:s}", "id", s_text_id(id), "author_id",
                      s_text_id(author), "caption", caption, "hashtags", hashtags, "mentions",
                      "created_at", "2026-01-01T00:00:00.000Z"));
    return id;
}

static int64_t s_post(int64_t author, const char *caption)
{
    return s_post_at(author, 0, caption, NULL);
}

static void s_like(int64_t post, int64_t author, int64_t user)
{
    s_event("media.like.created",
            json_pack("{s:s, s:s, s:s, s:s}", "post_id", s_text_id(post), "post_author_id",
                      s_text_id(author), "user_id", s_text_id(user), "created_at",
                      "2026-01-01T00:00:00.000Z"));
}

//  Runs method as viewer with args (stolen); returns the reply.
static json_t *s_call(const char *method, int64_t viewer, json_t *args)
{
    envelope_request_t request = {
        .v = 1, .viewer_id = viewer, .deadline_ms = envelope_now_ms() + 5000, .args = args};
    snprintf(request.method, sizeof request.method, "%s", method);
    call_t call = {.request = &request,
                   .args = args,
                   .viewer_id = viewer,
                   .db = s_db,
                   .rpc = NULL,
                   .state = &s_state};
    json_t *reply = service_dispatch(s_def, &call);
    json_decref(args);
    return reply;
}

//  Calls and expects 200; returns the body (owned by the reply in *reply).
static json_t *s_ok(json_t **reply, const char *method, int64_t viewer, json_t *args)
{
    *reply = s_call(method, viewer, args);
    if (reply_status(*reply) != 200) {
        char *text = json_dumps(*reply, 0);
        fprintf(stderr, "%s: %s\n", method, text);
        free(text);
    }
    assert_int_equal(reply_status(*reply), 200);
    return reply_body(*reply);
}

//  Expects a 400 naming field.
static void s_invalid(const char *method, int64_t viewer, json_t *args, const char *field)
{
    json_t *reply = s_call(method, viewer, args);
    assert_int_equal(reply_status(reply), 400);
    assert_string_equal(reply_error_code(reply), ERR_INVALID);
    json_t *fields = json_object_get(json_object_get(reply, "error"), "fields");
    if (!json_object_get(fields, field)) {
        char *text = json_dumps(reply, 0);
        fprintf(stderr, "expected field %s: %s\n", field, text);
        free(text);
    }
    assert_non_null(json_object_get(fields, field));
    json_decref(reply);
}

//  The items' member key (a string) joined with commas, into a static buffer.
static const char *s_join(const json_t *body, const char *key)
{
    static char buf[4096];
    buf[0] = '\0';
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(body, "items"), index, item)
    {
        size_t used = strlen(buf);
        const char *value = json_string_value(json_object_get(item, key));
        snprintf(buf + used, sizeof buf - used, "%s%s", index ? "," : "", value ? value : "?");
    }
    return buf;
}

//  The post ids given joined with commas (as s_join(body, "id") prints them).
static const char *s_ids(int count, ...)
{
    static char buf[4096];
    buf[0] = '\0';
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, sizeof buf - used, "%s%s", i ? "," : "",
                 s_text_id(va_arg(ap, int64_t)));
    }
    va_end(ap);
    return buf;
}

static const char *s_cursor(const json_t *body)
{
    return json_string_value(json_object_get(body, "next_cursor"));
}

static int64_t s_count(const char *sql)
{
    return unit_pg_number(s_db, sql);
}

//  ---- user search -------------------------------------------------------------

static void test_user_search_ranking(void **state)
{
    int64_t viewer = s_user("viewer_us", "", false);
    int64_t friend = s_user("friend_us", "", false);
    int64_t exact = s_user("mariana", "", false);
    int64_t prefix = s_user("mariana_x", "", false);
    s_user("ana_m", "Ana Mariana", false); // a word of the display name
    int64_t connected = s_user("amriana", "", false);
    s_user("marianne", "", false);
    int64_t blocked = s_user("mariana_blk", "", false);
    int64_t blocker = s_user("mariana_blocker", "", false);
    s_user("unrelated_zz", "", false);
    s_follow(viewer, friend);
    s_follow(friend, connected); // followed by someone the viewer follows
    s_block(viewer, blocked);
    s_block(blocker, viewer);
    (void)exact;
    (void)prefix;

    json_t *reply;
    json_t *body = s_ok(&reply, "search.users", viewer, json_pack("{s:s}", "q", "Mariana"));
    const char *names = s_join(body, "username");
    //  exact > prefix (either order among the two) > connected fuzzy > fuzzy.
    assert_true(strncmp(names, "mariana,", 8) == 0);
    assert_true(strstr(names, "mariana_x") && strstr(names, "ana_m"));
    assert_non_null(strstr(names, ",amriana,marianne"));
    assert_null(strstr(names, "blk"));
    assert_null(strstr(names, "blocker"));
    assert_null(strstr(names, "unrelated"));
    assert_int_equal(json_array_size(json_object_get(body, "items")), 5);
    assert_true(json_is_null(json_object_get(body, "next_cursor")));
    //  Decorated shape (users_decorate's fields, here its "no answer" values).
    json_t *first = json_array_get(json_object_get(body, "items"), 0);
    assert_true(json_is_integer(json_object_get(first, "followers_count")));
    assert_string_equal(json_string_value(json_object_get(first, "follow_state")), "none");
    json_decref(reply);

    //  A blocked user is not found even by exact name, either way.
    body = s_ok(&reply, "search.users", viewer, json_pack("{s:s}", "q", "mariana_blk"));
    assert_null(strstr(s_join(body, "username"), "blk"));
    json_decref(reply);
    body = s_ok(&reply, "search.users", blocker, json_pack("{s:s}", "q", "viewer_us"));
    assert_string_equal(s_join(body, "username"), "");
    json_decref(reply);
    //  The blocked user is found by others; a leading '@' is ignored.
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "@mariana_blk"));
    assert_true(strncmp(s_join(body, "username"), "mariana_blk,", 12) == 0);
    json_decref(reply);
}

static void test_user_search_typos_and_accents(void **state)
{
    s_user("alexandra_ko", "Alexandra Kovač", false);
    s_user("zoe_k", "Zoë Kravitz", false);
    json_t *reply;
    json_t *body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "alexnadra"));
    assert_non_null(strstr(s_join(body, "username"), "alexandra_ko"));
    json_decref(reply);
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "kovac"));
    assert_string_equal(s_join(body, "username"), "alexandra_ko");
    json_decref(reply);
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "ZOE"));
    assert_string_equal(s_join(body, "username"), "zoe_k");
    json_decref(reply);
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "krav"));
    assert_string_equal(s_join(body, "username"), "zoe_k");
    json_decref(reply);
    //  A new display name replaces the old one's words.
    s_event("identity.user.updated",
            json_pack("{s:s, s:s, s:s, s:b}", "id", s_text_id(s_next_user), "username", "zoe_k",
                      "display_name", "Zoë Smithson", "is_private", 0));
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "krav"));
    assert_string_equal(s_join(body, "username"), "");
    json_decref(reply);
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "smiths"));
    assert_string_equal(s_join(body, "username"), "zoe_k");
    json_decref(reply);
    //  LIKE wildcards in the query are plain characters.
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "%"));
    assert_string_equal(s_join(body, "username"), "");
    json_decref(reply);
    body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "_"));
    assert_string_equal(s_join(body, "username"), "");
    json_decref(reply);
}

static void test_user_search_pages_and_errors(void **state)
{
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "pager_%d", i);
        s_user(name, "", false);
    }
    //  Three pages of 3, 3, 1: every user once.
    char seen[512] = "";
    char cursor[CURSOR_TEXT_MAX] = "";
    int pages = 0, users_batches = s_users_batches;
    do {
        json_t *args = json_pack("{s:s, s:s}", "q", "pager", "limit", "3");
        if (*cursor) json_object_set_new(args, "cursor", json_string(cursor));
        json_t *reply;
        json_t *body = s_ok(&reply, "search.users", 0, args);
        assert_true(json_array_size(json_object_get(body, "items")) <= 3);
        size_t used = strlen(seen);
        snprintf(seen + used, sizeof seen - used, "%s;", s_join(body, "username"));
        snprintf(cursor, sizeof cursor, "%s", s_cursor(body) ? s_cursor(body) : "");
        json_decref(reply);
        pages++;
    } while (*cursor && pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(s_users_batches - users_batches, 3); // one batch per page
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "pager_%d", i);
        char *first = strstr(seen, name);
        assert_non_null(first);
        assert_null(strstr(first + 1, name));
    }

    s_invalid("search.users", 0, json_object(), "q");
    s_invalid("search.users", 0, json_pack("{s:s}", "q", "   "), "q");
    s_invalid("search.users", 0, json_pack("{s:s}", "q", "@"), "q");
    s_invalid("search.users", 0, json_pack("{s:i}", "q", 5), "q");
    s_invalid("search.users", 0, json_pack("{s:s, s:s}", "q", "a", "limit", "0"), "limit");
    s_invalid("search.users", 0, json_pack("{s:s, s:s}", "q", "a", "limit", "x"), "limit");
    s_invalid("search.users", 0, json_pack("{s:s, s:s}", "q", "a", "cursor", "forged"), "cursor");
    char *long_query = malloc(SEARCH_QUERY_MAX + 2);
    memset(long_query, 'a', SEARCH_QUERY_MAX + 1);
    long_query[SEARCH_QUERY_MAX + 1] = '\0';
    s_invalid("search.users", 0, json_pack("{s:s}", "q", long_query), "q");
    free(long_query);
    //  limit above 100 is clamped, not refused.
    json_t *reply;
    s_ok(&reply, "search.users", 0, json_pack("{s:s, s:s}", "q", "pager", "limit", "1000"));
    json_decref(reply);
}

//  ---- post search and visibility ------------------------------------------------

static void test_post_search_visibility(void **state)
{
    int64_t author = s_user("ps_public", "", false);
    int64_t secret = s_user("ps_private", "", true);
    int64_t follower = s_user("ps_follower", "", false);
    int64_t stranger = s_user("ps_stranger", "", false);
    int64_t blocker = s_user("ps_blocker", "", false);
    s_follow(follower, secret);
    s_block(blocker, stranger);
    int64_t p1 = s_post(author, "Crème brûlée at the café #dessert");
    int64_t p2 = s_post(secret, "secret crème recipe");
    int64_t p3 = s_post(blocker, "crème from a blocker");
    s_post(author, "nothing to see");

    json_t *reply;
    json_t *body = s_ok(&reply, "search.posts", stranger, json_pack("{s:s}", "q", "creme"));
    assert_string_equal(s_join(body, "id"), s_ids(1, p1)); // not private, not blocked
    json_decref(reply);
    body = s_ok(&reply, "search.posts", follower, json_pack("{s:s}", "q", "CRÈME"));
    assert_string_equal(s_join(body, "id"), s_ids(3, p3, p2, p1)); // newest first
    json_decref(reply);
    body = s_ok(&reply, "search.posts", secret, json_pack("{s:s}", "q", "crème"));
    assert_string_equal(s_join(body, "id"), s_ids(3, p3, p2, p1)); // the author sees its own
    json_decref(reply);
    body = s_ok(&reply, "search.posts", 0, json_pack("{s:s}", "q", "creme"));
    assert_string_equal(s_join(body, "id"), s_ids(2, p3, p1)); // anonymous: public only
    json_decref(reply);
    body = s_ok(&reply, "search.posts", blocker, json_pack("{s:s}", "q", "creme brulee"));
    assert_string_equal(s_join(body, "id"), s_ids(1, p1));
    json_decref(reply);
    //  Hashtags in captions are words; "-word" excludes.
    body = s_ok(&reply, "search.posts", 0, json_pack("{s:s}", "q", "dessert"));
    assert_string_equal(s_join(body, "id"), s_ids(1, p1));
    json_decref(reply);
    body = s_ok(&reply, "search.posts", follower, json_pack("{s:s}", "q", "creme -secret"));
    assert_string_equal(s_join(body, "id"), s_ids(2, p3, p1));
    json_decref(reply);
    //  Only punctuation: no words, no results, no error.
    body = s_ok(&reply, "search.posts", 0, json_pack("{s:s}", "q", "!!!"));
    assert_string_equal(s_join(body, "id"), "");
    json_decref(reply);

    //  Unfollowing hides the private account's post again.
    s_event("graph.follow.deleted", json_pack("{s:s, s:s}", "follower_id", s_text_id(follower),
                                              "followee_id", s_text_id(secret)));
    body = s_ok(&reply, "search.posts", follower, json_pack("{s:s}", "q", "creme"));
    assert_string_equal(s_join(body, "id"), s_ids(2, p3, p1));
    json_decref(reply);

    //  Pages: one posts.batch per page, the page's ids only.
    int batches = s_posts_batches;
    body =
        s_ok(&reply, "search.posts", follower, json_pack("{s:s, s:s}", "q", "creme", "limit", "1"));
    assert_string_equal(s_join(body, "id"), s_ids(1, p3));
    assert_int_equal(s_posts_batches - batches, 1);
    assert_int_equal(s_last_batch, 1);
    char cursor[CURSOR_TEXT_MAX];
    snprintf(cursor, sizeof cursor, "%s", s_cursor(body));
    json_decref(reply);
    body = s_ok(&reply, "search.posts", follower,
                json_pack("{s:s, s:s, s:s}", "q", "creme", "limit", "1", "cursor", cursor));
    assert_string_equal(s_join(body, "id"), s_ids(1, p1));
    assert_true(json_is_null(json_object_get(body, "next_cursor")));
    json_decref(reply);

    //  Media down: 503, not an empty list.
    s_media_down = true;
    reply = s_call("search.posts", 0, json_pack("{s:s}", "q", "creme"));
    assert_int_equal(reply_status(reply), 503);
    json_decref(reply);
    s_media_down = false;
    s_invalid("search.posts", 0, json_object(), "q");
    s_invalid("search.posts", 0, json_pack("{s:s}", "q", ""), "q");
}

//  ---- hashtags ------------------------------------------------------------------

static void test_hashtag_counts_and_pages(void **state)
{
    int64_t author = s_user("tag_author", "", false);
    int64_t secret = s_user("tag_private", "", true);
    int64_t viewer = s_user("tag_viewer", "", false);
    const char *sunset[] = {"sunset", NULL};
    const char *both[] = {"sunset", "sunsetlover", NULL};
    int64_t p1 = s_post_at(author, 3000, "#sunset", sunset);
    int64_t p2 = s_post_at(author, 2000, "#sunset #sunsetlover", both);
    int64_t p3 = s_post_at(secret, 1000, "#sunset", sunset);

    json_t *reply;
    json_t *body = s_ok(&reply, "hashtags.get", 0, json_pack("{s:s}", "tag", "#SunSet"));
    assert_string_equal(json_string_value(json_object_get(body, "tag")), "sunset");
    assert_int_equal(json_integer_value(json_object_get(body, "post_count")), 3);
    json_decref(reply);
    body = s_ok(&reply, "hashtags.get", 0, json_pack("{s:s}", "tag", "neverused"));
    assert_int_equal(json_integer_value(json_object_get(body, "post_count")), 0);
    json_decref(reply);

    //  Newest first; the private account's post only for its followers.
    body = s_ok(&reply, "hashtags.posts", viewer, json_pack("{s:s}", "tag", "sunset"));
    assert_string_equal(s_join(body, "id"), s_ids(2, p2, p1));
    json_decref(reply);
    s_follow(viewer, secret);
    body = s_ok(&reply, "hashtags.posts", viewer,
                json_pack("{s:s, s:s}", "tag", "sunset", "limit", "2"));
    assert_string_equal(s_join(body, "id"), s_ids(2, p3, p2));
    char cursor[CURSOR_TEXT_MAX];
    snprintf(cursor, sizeof cursor, "%s", s_cursor(body));
    json_decref(reply);
    //  The cursor stays valid when the post it names is deleted.
    s_event("media.post.deleted", json_pack("{s:s, s:s, s:[s]}", "id", s_text_id(p2), "author_id",
                                            s_text_id(author), "hashtags", "sunset"));
    body = s_ok(&reply, "hashtags.posts", viewer,
                json_pack("{s:s, s:s, s:s}", "tag", "sunset", "limit", "2", "cursor", cursor));
    assert_string_equal(s_join(body, "id"), s_ids(1, p1));
    assert_true(json_is_null(json_object_get(body, "next_cursor")));
    json_decref(reply);
    body = s_ok(&reply, "hashtags.get", 0, json_pack("{s:s}", "tag", "sunsetlover"));
    assert_int_equal(json_integer_value(json_object_get(body, "post_count")), 0);
    json_decref(reply);

    //  An edit moves the post from one tag to another.
    s_event("media.post.updated", json_pack("{s:s, s:s, s:s, s:[s], s:[]}", "id", s_text_id(p1),
                                            "author_id", s_text_id(author), "caption",
                                            "#sunrise now", "hashtags", "sunrise", "mentions"));
    body = s_ok(&reply, "hashtags.get", 0, json_pack("{s:s}", "tag", "sunset"));
    assert_int_equal(json_integer_value(json_object_get(body, "post_count")), 1);
    json_decref(reply);
    body = s_ok(&reply, "hashtags.posts", 0, json_pack("{s:s}", "tag", "sunrise"));
    assert_string_equal(s_join(body, "id"), s_ids(1, p1));
    json_decref(reply);

    //  Prefix search: the exact tag first, then by count; empty tags left out.
    const char *sun[] = {"sun", NULL};
    s_post(author, "x");
    s_post_at(author, 0, "#sun", sun);
    s_post_at(author, 0, "#sunset again", sunset);
    body = s_ok(&reply, "search.hashtags", 0, json_pack("{s:s}", "q", "#Sun"));
    assert_string_equal(s_join(body, "tag"), "sun,sunset,sunrise");
    json_t *item = json_array_get(json_object_get(body, "items"), 1);
    assert_int_equal(json_integer_value(json_object_get(item, "post_count")), 2);
    json_decref(reply);
    body = s_ok(&reply, "search.hashtags", 0, json_pack("{s:s, s:s}", "q", "sun", "limit", "2"));
    assert_string_equal(s_join(body, "tag"), "sun,sunset");
    snprintf(cursor, sizeof cursor, "%s", s_cursor(body));
    json_decref(reply);
    body = s_ok(&reply, "search.hashtags", 0,
                json_pack("{s:s, s:s, s:s}", "q", "sun", "limit", "2", "cursor", cursor));
    assert_string_equal(s_join(body, "tag"), "sunrise");
    json_decref(reply);
    s_invalid("search.hashtags", 0, json_pack("{s:s}", "q", "#"), "q");
    s_invalid("hashtags.posts", 0, json_pack("{s:s, s:s}", "tag", "sun", "cursor", "x"), "cursor");
}

static void test_trends(void **state)
{
    int64_t author = s_user("trend_author", "", false);
    const char *steady[] = {"steadytag", NULL};
    const char *rising[] = {"risingtag", NULL};
    const char *once[] = {"oncetag", NULL};
    //  steadytag: 10 a day for the 8 days before now; risingtag: 6 in the
    //  last minutes and never before; oncetag: a single post.
    for (int day = 0; day < 8; day++)
        for (int i = 0; i < 10; i++)
            s_post_at(author, (int64_t)day * 86400000 + (int64_t)i * 3600000 + 600000, "", steady);
    for (int i = 0; i < 6; i++)
        s_post_at(author, 60000 + i * 1000, "", rising);
    s_post_at(author, 1000, "", once);

    json_t *reply;
    json_t *body = s_ok(&reply, "trends.hashtags", 0, json_object()); // 24h by default
    const char *tags = s_join(body, "tag");
    assert_true(strncmp(tags, "risingtag,", 10) == 0 || streq(tags, "risingtag"));
    //  A single post of a new tag is listed, below the rising one
    //  (1 / sqrt(4) = 0.5).
    assert_non_null(strstr(tags, "oncetag"));
    json_t *first = json_array_get(json_object_get(body, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(first, "count")), 6);
    assert_true(json_is_real(json_object_get(first, "score")));
    assert_true(json_real_value(json_object_get(first, "score")) > 2.9); // 6 / sqrt(0 + 4)
    //  steadytag is at its baseline: listed low or not at all.
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(body, "items"), index, item)
    {
        if (streq(json_string_value(json_object_get(item, "tag")), "steadytag"))
            assert_true(json_real_value(json_object_get(item, "score")) < 1.0);
    }
    json_decref(reply);

    body = s_ok(&reply, "trends.hashtags", 0, json_pack("{s:s}", "window", "1h"));
    assert_true(strncmp(s_join(body, "tag"), "risingtag", 9) == 0);
    json_decref(reply);
    body =
        s_ok(&reply, "trends.hashtags", 0, json_pack("{s:s, s:s}", "window", "7d", "limit", "1"));
    assert_int_equal(json_array_size(json_object_get(body, "items")), 1);
    json_decref(reply);
    s_invalid("trends.hashtags", 0, json_pack("{s:s}", "window", "2h"), "window");
    s_invalid("trends.hashtags", 0, json_pack("{s:i}", "window", 1), "window");
    s_invalid("trends.hashtags", 0, json_pack("{s:s}", "limit", "-1"), "limit");

    //  A cached list is served until its time is up.
    s_state.trends_ttl_ms = 60000;
    body = s_ok(&reply, "trends.hashtags", 0, json_pack("{s:s}", "window", "1h"));
    json_decref(reply);
    const char *burst[] = {"bursttag", NULL};
    for (int i = 0; i < 20; i++)
        s_post_at(author, 500, "", burst);
    body = s_ok(&reply, "trends.hashtags", 0, json_pack("{s:s}", "window", "1h"));
    assert_null(strstr(s_join(body, "tag"), "bursttag"));
    json_decref(reply);
    s_state.trends_ttl_ms = 0;
    body = s_ok(&reply, "trends.hashtags", 0, json_pack("{s:s}", "window", "1h"));
    assert_true(strncmp(s_join(body, "tag"), "bursttag,", 9) == 0);
    json_decref(reply);

    //  Deleting the posts takes the count back down.
    assert_int_equal(s_count("SELECT sum(count) FROM tag_counts_5m WHERE tag = 'oncetag'"), 1);
    assert_int_equal(s_count("SELECT sum(count) FROM tag_counts_1h WHERE tag = 'oncetag'"), 1);
    s_event("media.post.deleted",
            json_pack("{s:s, s:s, s:[s]}", "id",
                      s_text_id(s_count("SELECT post_id FROM post_tags WHERE tag = 'oncetag'")),
                      "author_id", s_text_id(author), "hashtags", "oncetag"));
    assert_int_equal(s_count("SELECT sum(count) FROM tag_counts_5m WHERE tag = 'oncetag'"), 0);
    assert_int_equal(s_count("SELECT sum(count) FROM tag_counts_1h WHERE tag = 'oncetag'"), 0);
}

//  ---- explore ---------------------------------------------------------------------

static void test_explore_posts(void **state)
{
    int64_t viewer = s_user("ex_viewer", "", false);
    int64_t popular = s_user("ex_popular", "", false);
    int64_t other = s_user("ex_other", "", false);
    int64_t followed = s_user("ex_followed", "", false);
    int64_t secret = s_user("ex_private", "", true);
    int64_t blocker = s_user("ex_blocker", "", false);
    int64_t fan = s_user("ex_fan", "", false);
    s_follow(viewer, followed);
    s_block(blocker, viewer);
    //  Five posts by popular (the oldest much liked), two by other.
    int64_t liked = s_post_at(popular, 50000, "liked", NULL);
    int64_t pop[4];
    for (int i = 0; i < 4; i++)
        pop[i] = s_post_at(popular, 40000 - i * 1000, "p", NULL);
    int64_t o1 = s_post_at(other, 30000, "o1", NULL);
    int64_t o2 = s_post_at(other, 20000, "o2", NULL);
    int64_t mine = s_post(viewer, "mine");
    int64_t f1 = s_post(followed, "followed");
    int64_t s1 = s_post(secret, "private");
    int64_t b1 = s_post(blocker, "blocker");
    for (int i = 0; i < 5; i++) {
        int64_t liker = s_user(i == 0   ? "ex_liker0"
                               : i == 1 ? "ex_liker1"
                               : i == 2 ? "ex_liker2"
                               : i == 3 ? "ex_liker3"
                                        : "ex_liker4",
                               "", false);
        s_like(liked, popular, liker);
    }
    s_like(liked, popular, fan);
    s_like(liked, popular, fan); // a repeated event counts once
    s_event("media.comment.created",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:s}", "id", s_text_id(s_post_id(0)),
                      "post_id", s_text_id(o1), "post_author_id", s_text_id(other), "author_id",
                      s_text_id(fan), "text", "nice", "mentions", "created_at",
                      "2026-01-01T00:00:00.000Z"));
    assert_int_equal(s_count("SELECT like_count FROM posts WHERE id = (SELECT max(post_id) FROM"
                             " likes WHERE user_id = (SELECT id FROM users WHERE username ="
                             " 'ex_fan'))"),
                     6);

    char all[2048] = "";
    char cursor[CURSOR_TEXT_MAX] = "";
    int pages = 0;
    do {
        json_t *args = json_pack("{s:s}", "limit", "4");
        if (*cursor) json_object_set_new(args, "cursor", json_string(cursor));
        json_t *reply;
        json_t *body = s_ok(&reply, "explore.posts", viewer, args);
        //  At most three posts per author on a page.
        size_t index;
        json_t *item;
        int of_popular = 0;
        json_array_foreach(json_object_get(body, "items"), index, item)
        {
            const char *id = json_string_value(json_object_get(item, "id"));
            for (int i = 0; i < 4; i++)
                if (streq(id, s_text_id(pop[i]))) of_popular++;
            if (streq(id, s_text_id(liked))) of_popular++;
        }
        assert_true(of_popular <= 3);
        size_t used = strlen(all);
        snprintf(all + used, sizeof all - used, "%s%s", used ? "," : "", s_join(body, "id"));
        snprintf(cursor, sizeof cursor, "%s", s_cursor(body) ? s_cursor(body) : "");
        json_decref(reply);
        pages++;
    } while (*cursor && pages < 10);
    //  The liked post leads; the others by time; o1 (a comment) before o2?
    //  No: o2 is 10 s newer, a comment is worth far more than 10 s.
    assert_true(strncmp(all, s_text_id(liked), strlen(s_text_id(liked))) == 0);
    const char *excluded[] = {s_text_id(mine), s_text_id(f1), s_text_id(s1), s_text_id(b1)};
    for (size_t i = 0; i < 4; i++)
        assert_null(strstr(all, excluded[i]));
    assert_non_null(strstr(all, s_text_id(o1)));
    assert_non_null(strstr(all, s_text_id(o2)));
    assert_true(strstr(all, s_text_id(o1)) < strstr(all, s_text_id(o2)));
    //  Each post at most once.
    char *copy = strdup(all);
    for (char *token = strtok(copy, ","); token; token = strtok(NULL, ",")) {
        char *first = strstr(all, token);
        assert_null(strstr(first + strlen(token), token));
    }
    free(copy);

    //  Anonymous: public posts only, the viewer's own included.
    json_t *reply;
    json_t *body = s_ok(&reply, "explore.posts", 0, json_pack("{s:s}", "limit", "100"));
    const char *ids = s_join(body, "id");
    assert_non_null(strstr(ids, s_text_id(mine)));
    assert_non_null(strstr(ids, s_text_id(f1)));
    assert_null(strstr(ids, s_text_id(s1)));
    json_decref(reply);
    s_invalid("explore.posts", viewer, json_pack("{s:s}", "cursor", "AAAA"), "cursor");
}

static void test_explore_users(void **state)
{
    int64_t viewer = s_user("eu_viewer", "", false);
    int64_t f1 = s_user("eu_f1", "", false);
    int64_t f2 = s_user("eu_f2", "", false);
    int64_t two = s_user("eu_two", "", false);
    int64_t one = s_user("eu_one", "", false);
    int64_t blocked = s_user("eu_blocked", "", false);
    int64_t star = s_user("eu_star", "", false);
    int64_t hidden = s_user("eu_hidden", "", true); // private: never suggested
    s_follow(viewer, f1);
    s_follow(viewer, f2);
    s_follow(f1, two);
    s_follow(f2, two);
    s_follow(f1, one);
    s_follow(f1, blocked);
    s_follow(f2, blocked);
    s_follow(f1, hidden);
    s_follow(f2, hidden);
    s_follow(f1, viewer); // myself: never suggested
    s_block(viewer, blocked);
    //  eu_star is followed by many others: the most popular account here.
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof name, "eu_fan%d", i);
        s_follow(s_user(name, "", false), star);
    }
    (void)one;

    json_t *reply;
    json_t *body = s_ok(&reply, "explore.users", viewer, json_pack("{s:s}", "limit", "3"));
    assert_string_equal(s_join(body, "username"), "eu_two,eu_one,eu_star");
    char cursor[CURSOR_TEXT_MAX];
    snprintf(cursor, sizeof cursor, "%s", s_cursor(body));
    json_decref(reply);
    //  The rest: popular accounts, never myself, followed or blocked ones.
    char all[8192] = "";
    for (int page = 0; page < 30 && *cursor; page++) {
        body = s_ok(&reply, "explore.users", viewer,
                    json_pack("{s:s, s:s}", "limit", "50", "cursor", cursor));
        size_t used = strlen(all);
        snprintf(all + used, sizeof all - used, ",%s,", s_join(body, "username"));
        snprintf(cursor, sizeof cursor, "%s", s_cursor(body) ? s_cursor(body) : "");
        json_decref(reply);
    }
    assert_null(strstr(all, ",eu_viewer,"));
    assert_null(strstr(all, "eu_f1"));
    assert_null(strstr(all, "eu_f2"));
    assert_null(strstr(all, "eu_blocked"));
    assert_null(strstr(all, "eu_two"));
    assert_null(strstr(all, "eu_star"));
    assert_null(strstr(all, "eu_hidden"));
    assert_non_null(strstr(all, "eu_fan0"));
    (void)two;
    (void)star;
    (void)blocked;

    //  Anonymous: popular accounts first.
    body = s_ok(&reply, "explore.users", 0, json_pack("{s:s}", "limit", "1"));
    assert_string_equal(s_join(body, "username"), "eu_star");
    json_decref(reply);
}

//  ---- batches -------------------------------------------------------------------

//  The interleaved sequence of test_batch_equals_one_by_one for one set of
//  accounts (users[0..4]: a, b, c, gone, late; author; posts[0..4]: x, y,
//  late, late2, gone's) and comment ids, through handle (inside one
//  transaction, or one each). The late account and posts are known only
//  from the sequence; the author's tag is "bt<author id>".
static void s_batch_sequence(void (*handle)(const char *, json_t *), const int64_t *users,
                             int64_t author, const int64_t *posts, int64_t comment)
{
    int64_t a = users[0], b = users[1], c = users[2], gone = users[3], late = users[4];
    int64_t x = posts[0], y = posts[1], late_post = posts[2];
    char tag[32], upper[32];
    snprintf(tag, sizeof tag, "bt%s", s_text_id(author));
    snprintf(upper, sizeof upper, "BT%s", s_text_id(author));
#define POST(id, by, tags)                                                                         \
    handle("media.post.created",                                                                   \
           json_pack("{s:s, s:s, s:s, s:o}", "id", s_text_id(id), "author_id", s_text_id(by),      \
                     "caption", "late", "hashtags", tags))
#define LIKE(topic, post, user)                                                                    \
    handle(topic, json_pack("{s:s, s:s}", "post_id", s_text_id(post), "user_id", s_text_id(user)))
#define FOLLOW(topic, follower, followee)                                                          \
    handle(topic, json_pack("{s:s, s:s}", "follower_id", s_text_id(follower), "followee_id",       \
                            s_text_id(followee)))
#define COMMENT(id, post, user)                                                                    \
    handle("media.comment.created", json_pack("{s:s, s:s, s:s}", "id", s_text_id(id), "post_id",   \
                                              s_text_id(post), "author_id", s_text_id(user)))
    //  The same pair created, deleted and created again, with duplicates.
    LIKE("media.like.created", x, a);
    LIKE("media.like.created", x, a);
    LIKE("media.like.deleted", x, a);
    LIKE("media.like.deleted", x, a);
    LIKE("media.like.created", x, a);
    COMMENT(comment, x, b);
    LIKE("media.like.created", y, b);
    FOLLOW("graph.follow.created", a, author);
    FOLLOW("graph.follow.created", a, author);
    FOLLOW("graph.follow.deleted", a, author);
    FOLLOW("graph.follow.created", a, author);
    FOLLOW("graph.follow.created", b, author);
    COMMENT(comment, x, b); // a duplicate
    COMMENT(comment + 1, y, c);
    handle("media.comment.deleted", json_pack("{s:s}", "id", s_text_id(comment + 1)));
    COMMENT(comment + 1, y, c); // back after its deletion, as singly
    //  Other topics in between: a block, and an account deleted while its
    //  like and follow wait in the buffers; its later events are ignored.
    FOLLOW("graph.follow.created", gone, author);
    LIKE("media.like.created", y, gone);
    handle("graph.block.created",
           json_pack("{s:s, s:s}", "blocker_id", s_text_id(c), "blocked_id", s_text_id(a)));
    handle("identity.user.deleted", json_pack("{s:s}", "id", s_text_id(gone)));
    LIKE("media.like.created", x, gone);
    FOLLOW("graph.follow.created", gone, author);
    COMMENT(comment + 2, x, gone);
    //  A follow of an account before its user.created (which counts the
    //  follows already there), a like of a post before its post.created
    //  (dropped: no such post yet): as singly only if the buffers are
    //  written before those handlers run.
    FOLLOW("graph.follow.created", a, late);
    handle("identity.user.created",
           json_pack("{s:s, s:s}", "id", s_text_id(late), "username", s_text_id(late)));
    LIKE("media.like.created", late_post, a);
    POST(late_post, author, json_pack("[s, s, s]", upper, tag, ""));
    POST(late_post, author, json_pack("[s]", "btignored")); // a duplicate: the first stands
    POST(posts[3], author, json_pack("[s]", tag));
    POST(posts[4], gone, json_pack("[s]", tag)); // by the deleted account: ignored
    LIKE("media.like.created", late_post, b);
    //  A pair that nets to zero, then a like that moves.
    LIKE("media.like.created", y, c);
    LIKE("media.like.deleted", y, c);
    LIKE("media.like.deleted", y, b);
    LIKE("media.like.created", y, c);
    //  Deletions of other pairs join a run of creations (written first):
    //  x moves from a to c, the author's follower from b to c.
    LIKE("media.like.created", x, c);
    LIKE("media.like.deleted", x, a);
    FOLLOW("graph.follow.created", c, author);
    FOLLOW("graph.follow.deleted", b, author);
    FOLLOW("graph.follow.deleted", b, late); // of nothing
#undef LIKE
#undef FOLLOW
#undef COMMENT
#undef POST
}

//  What the projection holds about one set of the sequence's rows, as text.
static const char *s_batch_state(const int64_t *users, int64_t author, const int64_t *posts)
{
    static char buf[1024];
    char sql[2048], tag[32];
    snprintf(tag, sizeof tag, "bt%s", s_text_id(author));
    snprintf(sql, sizeof sql,
             "SELECT concat_ws(' | ',"
             " (SELECT string_agg(concat_ws(',', like_count, comment_count), ';' ORDER BY id)"
             "  FROM posts WHERE id IN (%1$s, %2$s)),"
             " (SELECT followers_count FROM users WHERE id = %3$s),"
             " (SELECT string_agg(concat_ws(',', (post_id = %1$s)::int, (user_id = %4$s)::int), ';'"
             "   ORDER BY post_id, user_id) FROM likes WHERE post_id IN (%1$s, %2$s)),"
             " (SELECT string_agg((post_id = %1$s)::int::text, ';' ORDER BY id) FROM comments"
             "  WHERE post_id IN (%1$s, %2$s)),"
             " (SELECT string_agg((follower_id = %4$s)::int::text, ';' ORDER BY follower_id)"
             "  FROM follows WHERE followee_id = %3$s),"
             " (SELECT count(*) FROM users WHERE id = %5$s),"
             " (SELECT followers_count FROM users WHERE id = %6$s),"
             " (SELECT like_count || ',' || (SELECT count(*) FROM likes WHERE post_id = %7$s)"
             "  FROM posts WHERE id = %7$s),"
             " (SELECT concat_ws(',', post_count,"
             "   (SELECT sum(count) FROM tag_counts_5m WHERE tag = h.tag),"
             "   (SELECT sum(count) FROM tag_counts_1h WHERE tag = h.tag),"
             "   (SELECT count(*) FROM post_tags WHERE tag = h.tag)) FROM hashtags h"
             "  WHERE tag = '%8$s'),"
             " (SELECT (hashtags = ARRAY['%8$s'])::int FROM posts WHERE id = %7$s),"
             " (SELECT count(*) FROM posts WHERE id = %9$s),"
             " (SELECT count(*) FROM hashtags WHERE tag = 'btignored'))",
             s_text_id(posts[0]), s_text_id(posts[1]), s_text_id(author), s_text_id(users[0]),
             s_text_id(users[3]), s_text_id(users[4]), s_text_id(posts[2]), tag,
             s_text_id(posts[4]));
    PGresult *res = db_query(s_db, sql, 0, NULL);
    assert_non_null(res);
    snprintf(buf, sizeof buf, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return buf;
}

//  One set of accounts and posts for the sequence: a, b, c, gone (who
//  already follows the author and likes x), the author, posts x and y;
//  and the ids of the late account and post, not created here.
static void s_batch_world(int64_t *users, int64_t *author, int64_t *posts, const char *prefix)
{
    char name[64];
    for (int index = 0; index < 4; index++) {
        snprintf(name, sizeof name, "%s_%d", prefix, index);
        users[index] = s_user(name, "", false);
    }
    snprintf(name, sizeof name, "%s_author", prefix);
    *author = s_user(name, "", false);
    posts[0] = s_post(*author, "batch x");
    posts[1] = s_post(*author, "batch y");
    users[4] = ++s_next_user;
    posts[2] = s_post_id(0);
    posts[3] = s_post_id(0);
    posts[4] = s_post_id(0);
    s_follow(users[3], *author);
    s_like(posts[0], *author, users[3]);
}

static void test_batch_equals_one_by_one(void **state)
{
    int64_t single_users[5], single_author, single_posts[5];
    int64_t batch_users[5], batch_author, batch_posts[5];
    s_batch_world(single_users, &single_author, single_posts, "bsingle");
    s_batch_world(batch_users, &batch_author, batch_posts, "bbatch");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT changed_xid::text::bigint FROM users WHERE id = %s",
             s_text_id(batch_author));
    int64_t author_xid = s_count(sql);

    s_batch_sequence(s_event, single_users, single_author, single_posts, 910000);
    assert_int_equal(db_begin(s_db), 0);
    s_batch_sequence(s_handle, batch_users, batch_author, batch_posts, 920000);
    s_batch_end();

    //  x: liked by c (gone's like went with the account, a's at the end),
    //  b's comment; y: liked by c, c's comment (created again after its
    //  deletion); the author: followed by a and c (b left at the end);
    //  gone: no row; late: followed by a;
    //  the late post: liked by b only; the tag: the two late posts (in
    //  every count), the late post's tags as first given; gone's post: none.
    const char *expected = "1,1;1,1 | 2 | 1,0;0,0 | 1;0 | 1;0 | 0 | 1 | 1,1 | 2,2,2,2 | 1 | 0 | 0";
    assert_string_equal(s_batch_state(single_users, single_author, single_posts), expected);
    assert_string_equal(s_batch_state(batch_users, batch_author, batch_posts), expected);
    //  Follower counts do not touch changed_xid: the trigger of
    //  schemas/search/004 fires only on UPDATE OF username, display_name.
    assert_int_equal(s_count(sql), author_xid);

    //  An unlike joins a run of likes, unless it undoes one of them: then
    //  the runs are written first. A rollback forgets both.
    assert_int_equal(db_begin(s_db), 0);
    s_handle("media.like.created", json_pack("{s:s, s:s}", "post_id", s_text_id(batch_posts[1]),
                                             "user_id", s_text_id(batch_users[0])));
    s_handle("media.like.deleted", json_pack("{s:s, s:s}", "post_id", s_text_id(batch_posts[0]),
                                             "user_id", s_text_id(batch_users[2])));
    assert_int_equal(s_state.run.count, 1);
    assert_int_equal(s_state.undo.count, 1);
    s_handle("media.like.deleted", json_pack("{s:s, s:s}", "post_id", s_text_id(batch_posts[1]),
                                             "user_id", s_text_id(batch_users[0])));
    assert_int_equal(s_state.run.count, 0);
    assert_int_equal(s_state.undo.count, 1);
    db_rollback(s_db);
    assert_int_equal(s_route(EVENTS_BATCH_RESET)(s_db, NULL, &s_state), 0);
    assert_int_equal(s_state.undo.count, 0);
    assert_string_equal(s_batch_state(batch_users, batch_author, batch_posts), expected);

    //  A rolled-back batch leaves nothing buffered behind (the reset hook).
    assert_int_equal(db_begin(s_db), 0);
    s_handle("media.like.created", json_pack("{s:s, s:s}", "post_id", s_text_id(batch_posts[1]),
                                             "user_id", s_text_id(batch_users[0])));
    db_rollback(s_db);
    assert_int_equal(s_route(EVENTS_BATCH_RESET)(s_db, NULL, &s_state), 0);
    //  A new username still moves changed_xid.
    char renamed[256];
    snprintf(renamed, sizeof renamed, "SELECT changed_xid::text::bigint FROM users WHERE id = %s",
             s_text_id(batch_users[1]));
    int64_t renamed_xid = s_count(renamed);
    s_event("identity.user.updated",
            json_pack("{s:s, s:s}", "id", s_text_id(batch_users[1]), "username", "bbatch_renamed"));
    assert_string_equal(s_batch_state(batch_users, batch_author, batch_posts), expected);
    assert_int_equal(s_count(sql), author_xid);
    assert_true(s_count(renamed) > renamed_xid);
}

//  ---- deletion and idempotency ---------------------------------------------------

static void test_user_deleted(void **state)
{
    int64_t gone = s_user("del_gone", "Gone Soon", false);
    int64_t stays = s_user("del_stays", "", false);
    int64_t other = s_user("del_other", "", false);
    const char *tag[] = {"deltag", NULL};
    int64_t own = s_post_at(gone, 0, "#deltag gone", tag);
    int64_t kept = s_post_at(stays, 0, "#deltag kept", tag);
    s_like(kept, stays, gone);
    s_follow(gone, stays);
    s_follow(other, gone);
    assert_int_equal(s_count("SELECT post_count FROM hashtags WHERE tag = 'deltag'"), 2);
    assert_int_equal(s_count("SELECT like_count FROM posts WHERE id = (SELECT max(post_id)"
                             " FROM post_tags WHERE tag = 'deltag')"),
                     1);
    (void)own;

    s_event("identity.user.deleted",
            json_pack("{s:s, s:s}", "id", s_text_id(gone), "username", "del_gone"));
    s_event("identity.user.deleted", // twice: harmless
            json_pack("{s:s, s:s}", "id", s_text_id(gone), "username", "del_gone"));
    assert_int_equal(s_count("SELECT post_count FROM hashtags WHERE tag = 'deltag'"), 1);
    assert_int_equal(s_count("SELECT like_count FROM posts WHERE id = (SELECT max(post_id)"
                             " FROM post_tags WHERE tag = 'deltag')"),
                     0);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT followers_count FROM users WHERE id = %s", s_text_id(stays));
    assert_int_equal(s_count(sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM users WHERE id = %1$s)"
             " + (SELECT count(*) FROM posts WHERE author_id = %1$s)"
             " + (SELECT count(*) FROM follows WHERE follower_id = %1$s OR followee_id = %1$s)",
             s_text_id(gone));
    assert_int_equal(s_count(sql), 0);
    //  Late events about the account change nothing.
    s_post_at(gone, 0, "#deltag late", tag);
    s_event("identity.user.updated",
            json_pack("{s:s, s:s}", "id", s_text_id(gone), "username", "del_gone"));
    assert_int_equal(s_count(sql), 0);
    assert_int_equal(s_count("SELECT post_count FROM hashtags WHERE tag = 'deltag'"), 1);
    json_t *reply;
    json_t *body = s_ok(&reply, "search.users", 0, json_pack("{s:s}", "q", "del_gone"));
    assert_null(strstr(s_join(body, "username"), "del_gone"));
    json_decref(reply);
}

static void test_bad_events_are_skipped(void **state)
{
    //  Malformed payloads are logged and skipped, never retried forever.
    s_event("media.post.created", json_pack("{s:s}", "caption", "no id"));
    s_event("media.post.created",
            json_pack("{s:s, s:s, s:i}", "id", "1", "author_id", "2", "hashtags", 5));
    s_event("identity.user.created", json_pack("{s:s}", "id", "x"));
    s_event("graph.follow.created", json_pack("{s:s}", "follower_id", "1"));
    s_event("media.like.created", json_pack("{s:s, s:s}", "post_id", "999", "user_id", "1"));
    assert_int_equal(s_count("SELECT count(*) FROM likes WHERE post_id = 999"), 0);
    json_t *reply = s_call("no.such.method", 0, json_object());
    assert_int_equal(reply_status(reply), 404);
    json_decref(reply);
}

//  Last: the seeded rows stay in the schema.
static void test_seed(void **state)
{
    //  Refused unless the service runs with SEARCH_SEED_ENABLED=1.
    json_t *reply = s_call("search.seed", 0, json_pack("{s:i, s:i}", "users", 60, "posts", 400));
    assert_int_equal(reply_status(reply), 403);
    json_decref(reply);
    s_state.seed_enabled = true;
    reply = s_call("search.seed", 0, json_pack("{s:i, s:s}", "users", 0, "posts", "400"));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);

    json_t *body = s_ok(&reply, "search.seed", 0,
                        json_pack("{s:i, s:i, s:i}", "users", 60, "posts", 400, "follows", 3));
    assert_true(json_is_true(json_object_get(body, "seeded")));
    assert_true(json_array_size(json_object_get(body, "viewers")) > 0);
    assert_true(json_array_size(json_object_get(body, "names")) > 0);
    assert_true(json_array_size(json_object_get(body, "words")) > 100);
    assert_true(json_array_size(json_object_get(body, "tags")) > 0);
    char word[64];
    //  The commonest caption word ("sunset"): surely in some post.
    snprintf(word, sizeof word, "%s",
             json_string_value(json_array_get(json_object_get(body, "words"), 0)));
    json_decref(reply);
    assert_int_equal(s_count("SELECT count(*) FROM users WHERE ((id >> 10) & 8191) = 8191"), 60);
    assert_int_equal(s_count("SELECT count(*) FROM posts WHERE ((id >> 10) & 8191) = 8191"), 400);
    //  Every post has a seeded author; tags, counts and buckets agree with
    //  the posts, as the event handlers would have left them.
    assert_int_equal(s_count("SELECT count(*) FROM posts p WHERE ((id >> 10) & 8191) = 8191"
                             " AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.author_id)"),
                     0);
    assert_int_equal(
        s_count("SELECT (SELECT coalesce(sum(cardinality(hashtags)), 0) FROM posts"
                "  WHERE ((id >> 10) & 8191) = 8191)"
                " - (SELECT count(*) FROM post_tags WHERE ((post_id >> 10) & 8191) = 8191)"),
        0);
    assert_true(s_count("SELECT count(*) FROM post_tags WHERE ((post_id >> 10) & 8191) = 8191") >
                0);
    assert_int_equal(s_count("SELECT count(*) FROM post_tags pt JOIN hashtags h USING (tag)"
                             " WHERE h.post_count < 1"),
                     0);
    assert_int_equal(s_count("SELECT (SELECT sum(count) FROM tag_counts_1h)"
                             " - (SELECT sum(count) FROM tag_counts_5m)"),
                     0);
    assert_true(s_count("SELECT count(*) FROM follows WHERE ((follower_id >> 10) & 8191) = 8191") >
                0);
    assert_int_equal(s_count("SELECT count(*) FROM users u WHERE ((id >> 10) & 8191) = 8191"
                             " AND followers_count <> (SELECT count(*) FROM follows"
                             "  WHERE followee_id = u.id)"),
                     0);
    assert_true(s_count("SELECT count(*) FROM user_terms WHERE ((user_id >> 10) & 8191) = 8191") >=
                120);
    //  The endpoints find what was seeded.
    body = s_ok(&reply, "search.posts", 0, json_pack("{s:s}", "q", word));
    assert_true(json_array_size(json_object_get(body, "items")) > 0);
    json_decref(reply);

    //  Again with the same sizes: nothing more, the samples again.
    body = s_ok(&reply, "search.seed", 0, json_pack("{s:i, s:i}", "users", 60, "posts", 400));
    assert_false(json_is_true(json_object_get(body, "seeded")));
    json_decref(reply);
    assert_int_equal(s_count("SELECT count(*) FROM posts WHERE ((id >> 10) & 8191) = 8191"), 400);
    //  Other sizes over a seed: 409.
    reply = s_call("search.seed", 0, json_pack("{s:i, s:i}", "users", 61, "posts", 400));
    assert_int_equal(reply_status(reply), 409);
    json_decref(reply);
    s_state.seed_enabled = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_search_ranking),
        cmocka_unit_test(test_user_search_typos_and_accents),
        cmocka_unit_test(test_user_search_pages_and_errors),
        cmocka_unit_test(test_post_search_visibility),
        cmocka_unit_test(test_hashtag_counts_and_pages),
        cmocka_unit_test(test_trends),
        cmocka_unit_test(test_explore_posts),
        cmocka_unit_test(test_explore_users),
        cmocka_unit_test(test_batch_equals_one_by_one),
        cmocka_unit_test(test_user_deleted),
        cmocka_unit_test(test_bad_events_are_skipped),
        cmocka_unit_test(test_seed),
    };
    return cmocka_run_group_tests_name("search", tests, s_group_setup, s_group_teardown) ? 1 : 0;
}
