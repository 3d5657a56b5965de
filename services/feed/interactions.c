/*  interactions: what I did (GET /me/interactions, interactions.list) and
    the media like/comment events, which feed both that list and the
    activity of the post's author (activity.c).

      type=likes     (default) posts I liked, newest like first: my_likes
                     keyed (user, post), listed by (liked_ms, post_id), the
                     cursor carries both; hydrated with one media
                     posts.batch (visibility applies: a post I may no longer
                     see is left out).
      type=comments  comments I wrote, newest first by id: my_comments keeps
                     what a comment object needs from comment.created; the
                     author object is mine, from one identity users.batch;
                     one posts.batch on the page's posts leaves out comments
                     on posts I may no longer see (404 rule of API.md).
      other          400 invalid naming "type".

    Event handlers are idempotent: keyed inserts with ON CONFLICT DO
    NOTHING, deletes by key, and activity_add/remove (idempotent too).
    like.created and comment.created, the hottest topics, are deferred
    (activity_defer): s_flush_likes / s_flush_comments handle a batch's run
    of them with two statements over a JSON array (my likes or comments,
    then activity_add_many), exactly as one by one; a comment's delete
    flushes that run first.

    like.deleted joins the run of likes (a like/unlike mix would otherwise
    be runs of one): s_flush_likes removes the run's unlikes first, then
    adds its likes. That is one by one's order as long as no unlike follows
    a deferred like of the same post (a post's likes share its activity
    group, which one unlike may empty), so such an unlike flushes the run
    first (s_run_posts). Likes of different posts touch different rows.
*/
#include "feed.h"
#include "args.h"
#include "cursor.h"
#include "ids.h"
#include "errors.h"
#include "log.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>

//  ---- events -------------------------------------------------------------------

//  Runs insert_sql over rows (feed_exec_rows), then activity_add_many over
//  the adds add_row appends for each row, in order. 0 or -1.
static int s_store_and_add(db_t *db, const json_t *rows, const char *insert_sql,
                           void (*add_row)(json_t *adds, const json_t *row))
{
    if (feed_exec_rows(db, insert_sql, rows) < 0) return -1;
    json_t *adds = json_array();
    size_t index;
    json_t *row;
    json_array_foreach(rows, index, row)
    {
        add_row(adds, row);
    }
    int rc = activity_add_many(db, adds);
    json_decref(adds);
    return rc;
}

static void s_like_adds(json_t *adds, const json_t *row)
{
    activity_add_to(adds, feed_payload_id(row, "author_id"), "like",
                    feed_payload_id(row, "post_id"), feed_payload_id(row, "user_id"), 0,
                    json_integer_value(json_object_get(row, "at_ms")));
}

static int s_flush_likes(db_t *db, const json_t *rows, const feed_t *feed);

//  The posts the open run of likes has likes of (see the top of the file):
//  the subscriber thread's, emptied when a run starts.
static zhashx_t *s_run_posts;

//  Marks post as liked in the open run of likes, emptying the set first
//  when no such run is open (the last one was flushed or forgotten).
static void s_run_posts_add(int64_t post_id)
{
    if (!s_run_posts) s_run_posts = zhashx_new();
    if (!activity_deferring(s_flush_likes)) zhashx_purge(s_run_posts);
    char key[21];
    zhashx_insert(s_run_posts, feed_id_text(post_id, key), (void *)1);
}

//  The unlikes of a run of likes: my likes gone, and their activity.
static int s_flush_unlikes(db_t *db, const json_t *rows)
{
    feed_ids_t users, posts, owners, owner_posts, actors;
    feed_ids_t *all[] = {&users, &posts, &owners, &owner_posts, &actors};
    for (size_t i = 0; i < 5; i++)
        feed_ids_init(all[i]);
    size_t index;
    json_t *row;
    json_array_foreach(rows, index, row)
    {
        if (!json_is_true(json_object_get(row, "unlike"))) continue;
        int64_t user_id = feed_payload_id(row, "user_id");
        int64_t post_id = feed_payload_id(row, "post_id");
        int64_t author_id = feed_payload_id(row, "author_id");
        feed_ids_add(&users, user_id);
        feed_ids_add(&posts, post_id);
        if (author_id > 0) {
            feed_ids_add(&owners, author_id);
            feed_ids_add(&owner_posts, post_id);
            feed_ids_add(&actors, user_id);
        }
    }
    int rc = 0;
    if (users.count) {
        const char *params[] = {feed_ids_literal(&users), feed_ids_literal(&posts)};
        if (db_exec(db,
                    "DELETE FROM my_likes l USING unnest($1::bigint[], $2::bigint[])"
                    "   AS u (user_id, post_id)"
                    " WHERE l.user_id = u.user_id AND l.post_id = u.post_id",
                    2, params) < 0 ||
            (owners.count &&
             activity_remove_many(db, "like", feed_ids_literal(&owners),
                                  feed_ids_literal(&owner_posts), feed_ids_literal(&actors)) != 0))
            rc = -1;
    }
    for (size_t i = 0; i < 5; i++)
        feed_ids_free(all[i]);
    return rc;
}

//  The deferred likes and unlikes (rows {n, user_id, post_id, author_id,
//  at_ms, unlike}): the unlikes first (s_flush_unlikes), then my likes,
//  the first of duplicates giving the time as ON CONFLICT DO NOTHING would
//  one by one, and their activity.
static int s_flush_likes(db_t *db, const json_t *rows, const feed_t *feed)
{
    if (s_run_posts) zhashx_purge(s_run_posts);
    if (s_flush_unlikes(db, rows) != 0) return -1;
    json_t *likes = json_array();
    size_t index;
    json_t *row;
    json_array_foreach(rows, index, row)
    {
        if (!json_is_true(json_object_get(row, "unlike"))) json_array_append(likes, row);
    }
    int rc =
        json_array_size(likes) == 0
            ? 0
            : s_store_and_add(
                  db, likes,
                  "INSERT INTO my_likes (user_id, post_id, liked_ms)"
                  " SELECT DISTINCT ON (user_id, post_id) user_id, post_id, at_ms"
                  " FROM jsonb_to_recordset($1::jsonb)"
                  "   AS r (n bigint, user_id bigint, post_id bigint, at_ms bigint)"
                  " WHERE NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.user_id = r.user_id)"
                  " ORDER BY user_id, post_id, n"
                  " ON CONFLICT DO NOTHING",
                  s_like_adds);
    json_decref(likes);
    return rc;
}

int interactions_on_like_created(db_t *db, const event_t *event, void *state)
{
    int64_t post_id = feed_payload_id(event->payload, "post_id");
    int64_t author_id = feed_payload_id(event->payload, "post_author_id");
    int64_t user_id = feed_payload_id(event->payload, "user_id");
    if (post_id <= 0 || author_id <= 0 || user_id <= 0) {
        log_warn("feed: media.like.created seq %" PRId64 " malformed; skipped", event->seq);
        return activity_flush_pending(db, state);
    }
    //  Handled with the batch's other likes (s_flush_likes). Nothing for a
    //  deleted account: there, and in activity_add_many, which checks it too.
    s_run_posts_add(post_id);
    return activity_defer(
        db, state, s_flush_likes,
        json_pack("{sIsIsIsIsIsb}", "n", (json_int_t)event->seq, "user_id", (json_int_t)user_id,
                  "post_id", (json_int_t)post_id, "author_id", (json_int_t)author_id, "at_ms",
                  (json_int_t)feed_payload_time_ms(event, "created_at"), "unlike", 0));
}

int interactions_on_like_deleted(db_t *db, const event_t *event, void *state)
{
    int64_t post_id = feed_payload_id(event->payload, "post_id");
    int64_t author_id = feed_payload_id(event->payload, "post_author_id");
    int64_t user_id = feed_payload_id(event->payload, "user_id");
    if (post_id <= 0 || user_id <= 0) {
        log_warn("feed: media.like.deleted seq %" PRId64 " malformed; skipped", event->seq);
        return activity_flush_pending(db, state);
    }
    //  A deferred like of this post goes in before this unlike goes.
    char post[21];
    if (activity_deferring(s_flush_likes) && s_run_posts &&
        zhashx_lookup(s_run_posts, feed_id_text(post_id, post)) &&
        activity_flush_pending(db, state) != 0)
        return -1;
    return activity_defer(db, state, s_flush_likes,
                          json_pack("{sIsIsIsIsIsb}", "n", (json_int_t)event->seq, "user_id",
                                    (json_int_t)user_id, "post_id", (json_int_t)post_id,
                                    "author_id", (json_int_t)author_id, "at_ms", (json_int_t)0,
                                    "unlike", 1));
}

//  A comment's activity: on the post's author, then each mention.
static void s_comment_adds(json_t *adds, const json_t *row)
{
    int64_t comment_id = feed_payload_id(row, "id");
    int64_t post_id = feed_payload_id(row, "post_id");
    int64_t author_id = feed_payload_id(row, "author_id");
    int64_t at_ms = json_integer_value(json_object_get(row, "at_ms"));
    activity_add_to(adds, feed_payload_id(row, "post_author_id"), "comment", post_id, author_id,
                    comment_id, at_ms);
    size_t index;
    json_t *value;
    json_array_foreach(json_object_get(row, "mentions"), index, value)
    {
        activity_add_to(adds, feed_json_id(value), "mention", post_id, author_id, comment_id,
                        at_ms);
    }
}

//  The deferred comments (rows {n, id, author_id, post_id, post_author_id,
//  text, at_ms, mentions}): my comments (the first of duplicates), then the
//  activity of each, in order.
static int s_flush_comments(db_t *db, const json_t *rows, const feed_t *feed)
{
    return s_store_and_add(db, rows,
                           "INSERT INTO my_comments (id, author_id, post_id, text, created_ms)"
                           " SELECT DISTINCT ON (id) id, author_id, post_id, text, at_ms"
                           " FROM jsonb_to_recordset($1::jsonb) AS r (n bigint, id bigint,"
                           "   author_id bigint, post_id bigint, text text, at_ms bigint)"
                           " WHERE NOT EXISTS (SELECT 1 FROM deleted_users d"
                           "   WHERE d.user_id = r.author_id)"
                           " ORDER BY id, n"
                           " ON CONFLICT DO NOTHING",
                           s_comment_adds);
}

int interactions_on_comment_created(db_t *db, const event_t *event, void *state)
{
    const json_t *payload = event->payload;
    int64_t comment_id = feed_payload_id(payload, "id");
    int64_t post_id = feed_payload_id(payload, "post_id");
    int64_t post_author_id = feed_payload_id(payload, "post_author_id");
    int64_t author_id = feed_payload_id(payload, "author_id");
    json_t *text = json_object_get(payload, "text");
    if (comment_id <= 0 || post_id <= 0 || post_author_id <= 0 || author_id <= 0 ||
        !json_is_string(text)) {
        log_warn("feed: media.comment.created seq %" PRId64 " malformed; skipped", event->seq);
        return activity_flush_pending(db, state);
    }
    json_t *mentions = json_object_get(payload, "mentions");
    //  Handled with the batch's other comments (s_flush_comments).
    return activity_defer(
        db, state, s_flush_comments,
        json_pack("{sIsIsIsIsIsosIso}", "n", (json_int_t)event->seq, "id", (json_int_t)comment_id,
                  "author_id", (json_int_t)author_id, "post_id", (json_int_t)post_id,
                  "post_author_id", (json_int_t)post_author_id, "text",
                  json_string(json_string_value(text)), "at_ms",
                  (json_int_t)feed_payload_time_ms(event, "created_at"), "mentions",
                  json_is_array(mentions) ? json_copy(mentions) : json_array()));
}

int interactions_on_comment_deleted(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t comment_id = feed_payload_id(event->payload, "id");
    if (comment_id <= 0) {
        log_warn("feed: media.comment.deleted seq %" PRId64 " malformed; skipped", event->seq);
        return 0;
    }
    char comment[21];
    const char *params[] = {feed_id_text(comment_id, comment)};
    if (db_exec(db, "DELETE FROM my_comments WHERE id = $1", 1, params) < 0) return -1;
    //  The comment's activity: on the post's author, and each mention.
    return activity_remove_source(db, comment_id);
}

//  ---- GET /me/interactions -----------------------------------------------------------

static json_t *s_likes(call_t *call, int limit, int64_t cursor_ms, int64_t cursor_post)
{
    if (cursor_ms == 0) {
        cursor_ms = INT64_MAX;
        cursor_post = INT64_MAX;
    }
    char viewer[21], ms_text[21], post_text[21], limit_text[16];
    snprintf(ms_text, sizeof ms_text, "%" PRId64, cursor_ms);
    snprintf(post_text, sizeof post_text, "%" PRId64, cursor_post);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    const char *params[] = {feed_id_text(call->viewer_id, viewer), ms_text, post_text, limit_text};
    PGresult *res = db_query(call->db,
                             "SELECT post_id, liked_ms FROM my_likes"
                             " WHERE user_id = $1 AND (liked_ms, post_id) < ($2, $3)"
                             " ORDER BY liked_ms DESC, post_id DESC LIMIT $4",
                             4, params);
    if (!res) return feed_internal("likes page");
    int rows = PQntuples(res);
    int shown = rows > limit ? limit : rows;
    json_t *ids = json_array();
    for (int row = 0; row < shown; row++)
        json_array_append_new(ids, json_string(PQgetvalue(res, row, 0)));
    json_t *next = json_null();
    if (rows > limit) {
        char cursor[CURSOR_TEXT_MAX];
        cursor_encode(strtoll(PQgetvalue(res, limit - 1, 1), NULL, 10),
                      strtoll(PQgetvalue(res, limit - 1, 0), NULL, 10), cursor);
        next = json_string(cursor);
    }
    PQclear(res);
    json_t *reply = NULL;
    json_t *posts = feed_hydrate_posts(call, ids, &reply);
    json_decref(ids);
    if (!posts) {
        json_decref(next);
        return reply;
    }
    return reply_ok(200, json_pack("{soso}", "items", posts, "next_cursor", next));
}

//  My {id, username, avatar_url}, from identity. NULL with *reply_out set
//  when identity did not answer or does not know me.
static json_t *s_me_author(call_t *call, json_t **reply_out)
{
    char viewer[21];
    json_t *args = json_pack("{s[s]}", "ids", feed_id_text(call->viewer_id, viewer));
    json_t *reply = rpc_call(call->rpc, "identity", "users.batch", call->viewer_id, args, NULL,
                             call->request->deadline_ms);
    json_decref(args);
    json_t *user = json_array_get(json_object_get(reply_body(reply), "users"), 0);
    if (reply_status(reply) != 200 || !json_is_object(user)) {
        *reply_out = reply_status(reply) == 200
                         ? reply_error(401, ERR_UNAUTHENTICATED, "this account no longer exists")
                         : feed_upstream_error("identity users.batch", reply);
        json_decref(reply);
        return NULL;
    }
    json_t *author = json_object();
    static const char *const keys[] = {"id", "username", "avatar_url", NULL};
    for (size_t i = 0; keys[i]; i++) {
        json_t *value = json_object_get(user, keys[i]);
        json_object_set(author, keys[i], value ? value : json_null());
    }
    json_decref(reply);
    return author;
}

static json_t *s_comments(call_t *call, int limit, int64_t cursor_id)
{
    if (cursor_id == 0) cursor_id = INT64_MAX;
    char viewer[21], cursor_text[21], limit_text[16];
    snprintf(cursor_text, sizeof cursor_text, "%" PRId64, cursor_id);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    const char *params[] = {feed_id_text(call->viewer_id, viewer), cursor_text, limit_text};
    PGresult *res = db_query(call->db,
                             "SELECT id, post_id, text, created_ms FROM my_comments"
                             " WHERE author_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                             3, params);
    if (!res) return feed_internal("comments page");
    int rows = PQntuples(res);
    int shown = rows > limit ? limit : rows;
    json_t *reply = NULL;
    json_t *author = NULL, *posts = NULL, *visible = NULL, *items = NULL, *next = NULL;

    //  The page's posts, each once, to learn which the viewer may see.
    json_t *post_ids = json_array();
    zhash_t *seen = zhash_new();
    for (int row = 0; row < shown; row++) {
        const char *post = PQgetvalue(res, row, 1);
        if (!zhash_lookup(seen, post)) {
            zhash_insert(seen, post, (void *)1);
            json_array_append_new(post_ids, json_string(post));
        }
    }
    zhash_destroy(&seen);
    if (shown > 0) {
        author = s_me_author(call, &reply);
        if (!author) goto cleanup;
        posts = feed_hydrate_posts(call, post_ids, &reply);
        if (!posts) goto cleanup;
    }
    visible = json_object();
    size_t index;
    json_t *post;
    json_array_foreach(posts, index, post)
    {
        const char *id = json_string_value(json_object_get(post, "id"));
        if (id) json_object_set_new(visible, id, json_true());
    }

    items = json_array();
    for (int row = 0; row < shown; row++) {
        if (!json_object_get(visible, PQgetvalue(res, row, 1))) continue;
        char created[32];
        ids_format_time(strtoll(PQgetvalue(res, row, 3), NULL, 10), created, sizeof created);
        json_array_append_new(items,
                              json_pack("{sssssOssss}", "id", PQgetvalue(res, row, 0), "post_id",
                                        PQgetvalue(res, row, 1), "author", author, "text",
                                        PQgetvalue(res, row, 2), "created_at", created));
    }
    next = json_null();
    if (rows > limit) {
        char cursor[CURSOR_TEXT_MAX];
        cursor_encode(strtoll(PQgetvalue(res, limit - 1, 0), NULL, 10), 0, cursor);
        json_decref(next);
        next = json_string(cursor);
    }
    reply = reply_ok(200, json_pack("{sOsO}", "items", items, "next_cursor", next));

cleanup:
    PQclear(res);
    json_decref(post_ids);
    json_decref(author);
    json_decref(posts);
    json_decref(visible);
    json_decref(items);
    json_decref(next);
    return reply;
}

json_t *interactions_list(call_t *call)
{
    json_t *reply = feed_require_viewer(call);
    if (reply) return reply;
    json_t *fields = json_object();
    const char *type = "likes";
    if (args_string(call->args, "type", false, 0, 32, &type, fields) == 1 &&
        !streq(type, "likes") && !streq(type, "comments"))
        json_object_set_new(fields, "type", json_string("must be likes or comments"));
    int limit;
    int64_t key1, key2;
    reply = feed_page_args(call->args, &limit, &key1, &key2);
    if (reply || json_object_size(fields) > 0) {
        //  Name every bad field in one answer.
        if (reply) {
            json_t *more = json_object_get(json_object_get(reply, "error"), "fields");
            json_object_update(fields, more);
            json_decref(reply);
        }
        return reply_invalid(fields, "some fields are not valid");
    }
    json_decref(fields);
    if (streq(type, "comments")) return s_comments(call, limit, key1);
    return s_likes(call, limit, key1, key2);
}
