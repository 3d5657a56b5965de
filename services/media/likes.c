/*  likes: like, unlike, and who liked.

      likes.create {id}                  -> 200 {liked: true, like_count}
      likes.delete {id}                  -> 200 {liked: false, like_count}
      likes.list   {id, limit?, cursor?} -> 200 {items: [user], next_cursor}

    Idempotent: liking twice is one like (the primary key (post_id,
    user_id) and ON CONFLICT DO NOTHING); only a like or unlike that
    changed a row moves like_count and emits an event. The count is exact
    under concurrency because the row insert, the counter UPDATE and the
    event are one statement and the UPDATE's row lock serializes the likers
    of one post; the reply's like_count is the value this statement wrote
    (or, for a repeat, the committed value).

    The likers list is newest first by the like's own id (a time-ordered id
    made when the like was), so a cursor is the last like id of a page.
    Users come from identity users.batch, decorated by common/users.c
    (graph relations and counts; posts_count is filled here, as media owns
    it), and users blocked either way with the viewer are left out.
*/
#include "media.h"
#include "args.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

//  One statement makes the change, moves the counter and emits the event
//  (events_inline_t): the like or unlike is a single round trip, atomic on
//  its own. "changed" has a row only when a like row appeared or went, so a
//  repeat moves nothing and emits nothing; the reply's count is then the
//  committed one. A NULL count means the post is gone.
// clang-format off
#define LIKE_SQL                                                                                   \
    "WITH changed AS (INSERT INTO likes (post_id, user_id, id) VALUES ($1, $2, $3)"                \
    " ON CONFLICT DO NOTHING RETURNING post_id),"                                                  \
    " counted AS (UPDATE posts SET like_count = like_count + 1"                                    \
    " WHERE id IN (SELECT post_id FROM changed) RETURNING like_count),"                            \
    " emitted AS (" EVENTS_INLINE_INSERT("counted", "$4", "$5", "$6", "$7") ")"                    \
    " SELECT coalesce((SELECT like_count FROM counted),"                                           \
    " (SELECT like_count FROM posts WHERE id = $1)), (SELECT count(*) FROM emitted)"
#define UNLIKE_SQL                                                                                 \
    "WITH changed AS (DELETE FROM likes WHERE post_id = $1 AND user_id = $2 RETURNING post_id),"   \
    " counted AS (UPDATE posts SET like_count = like_count - 1"                                    \
    " WHERE id IN (SELECT post_id FROM changed) RETURNING like_count),"                            \
    " emitted AS (" EVENTS_INLINE_INSERT("counted", "$3", "$4", "$5", "$6") ")"                    \
    " SELECT coalesce((SELECT like_count FROM counted),"                                           \
    " (SELECT like_count FROM posts WHERE id = $1)), (SELECT count(*) FROM emitted)"
// clang-format on

static json_t *s_like(call_t *call, bool like)
{
    int64_t id = 0, author = 0;
    json_t *reply = posts_visible_arg(call, &id, &author);
    if (reply) return reply;

    int64_t like_id = ids_next();
    char post_id[21], viewer[21], like_text[21], author_text[21], created_at[32];
    media_id_text(id, post_id);
    media_id_text(call->viewer_id, viewer);
    media_id_text(author, author_text);
    //  The like's time is its id's, which orders the likers list.
    ids_format_time(ids_time_ms(like_id), created_at, sizeof created_at);
    json_t *payload = like ? json_pack("{s:s, s:s, s:s, s:s}", "post_id", post_id, "post_author_id",
                                       author_text, "user_id", viewer, "created_at", created_at)
                           : json_pack("{s:s, s:s, s:s}", "post_id", post_id, "post_author_id",
                                       author_text, "user_id", viewer);
    events_inline_t event;
    int rc = events_inline_init(&event, call->db, like ? "like.created" : "like.deleted", payload);
    json_decref(payload);
    if (rc != 0) return media_internal("like event");

    const char *params[] = {post_id,      viewer,        media_id_text(like_id, like_text),
                            event.topic,  event.payload, event.request_id,
                            event.channel};
    //  An unlike binds no like id: its statement starts at the topic.
    const char *unlike_params[] = {post_id,       viewer,           event.topic,
                                   event.payload, event.request_id, event.channel};
    PGresult *res = like ? db_query(call->db, LIKE_SQL, 7, params)
                         : db_query(call->db, UNLIKE_SQL, 6, unlike_params);
    if (!res) {
        //  A post deleted meanwhile makes the insert fail its foreign key.
        bool gone = streq(db_last_sqlstate(call->db), "23503");
        reply = gone ? media_not_found() : media_internal("like");
    } else if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
        reply = media_not_found();
    else
        reply = reply_ok(200, json_pack("{s:b, s:I}", "liked", like, "like_count",
                                        (json_int_t)atoll(PQgetvalue(res, 0, 0))));
    PQclear(res);
    events_inline_clear(&event);
    return reply;
}

json_t *likes_create(call_t *call)
{
    return s_like(call, true);
}

json_t *likes_delete(call_t *call)
{
    return s_like(call, false);
}

//  posts_count of each user, from author_stats (media owns it, so
//  users_decorate is told to skip its own posts.counts call).
static int s_post_counts(call_t *call, json_t *users)
{
    json_t *ids = json_array();
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        json_array_append(ids, json_object_get(user, "id"));
    }
    char *text = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    if (!text) return -1;
    const char *params[] = {text};
    PGresult *res = db_query(call->db,
                             "SELECT author_id, posts_count FROM author_stats WHERE author_id ="
                             " ANY(ARRAY(SELECT json_array_elements_text($1::json)::bigint))",
                             1, params);
    free(text);
    if (!res) return -1;
    json_t *counts = json_object();
    for (int row = 0; row < PQntuples(res); row++)
        json_object_set_new(counts, PQgetvalue(res, row, 0),
                            json_integer(atoll(PQgetvalue(res, row, 1))));
    PQclear(res);
    users_apply_post_counts(users, counts);
    json_decref(counts);
    return 0;
}

json_t *likes_list(call_t *call)
{
    int64_t id = 0, before = INT64_MAX;
    int limit = 20;
    if (!media_post_id_arg(call->args, &id)) return media_not_found();
    json_t *reply = media_page_args(call->args, &limit, &before);
    if (reply) return reply;
    int64_t author = 0;
    reply = posts_check_visible(call, id, &author);
    if (reply) return reply;

    char post_id[21];
    const char *leading[] = {media_id_text(id, post_id)};
    PGresult *res = media_page_query(call->db,
                                     "SELECT user_id, id FROM likes WHERE post_id = $1"
                                     " AND id < $2::bigint ORDER BY id DESC LIMIT $3::int",
                                     1, leading, before, limit);
    if (!res) return media_internal("list likes");
    bool more = false;
    int64_t last = 0;
    int rows = media_page_rows(res, limit, 1, &more, &last);
    int64_t *user_ids = (int64_t *)zmalloc(sizeof(int64_t) * (size_t)(rows ? rows : 1));
    for (int row = 0; row < rows; row++)
        ids_parse(PQgetvalue(res, row, 0), &user_ids[row]);
    json_t *failure = NULL;
    json_t *by_id = render_users(call, user_ids, (size_t)rows, &failure);
    json_t *items = NULL;
    if (!by_id) {
        reply = failure;
        goto cleanup;
    }
    items = json_array();
    for (int row = 0; row < rows; row++) {
        json_t *user = json_object_get(by_id, PQgetvalue(res, row, 0));
        if (user) json_array_append(items, user);
    }
    users_decorate(call->rpc, call->viewer_id, items, USERS_SKIP_MEDIA, call->request->deadline_ms);
    if (s_post_counts(call, items) != 0) {
        reply = media_internal("liker post counts");
        goto cleanup;
    }
    reply = media_page(items, more, last, 0);
    items = NULL;
cleanup:
    PQclear(res);
    json_decref(by_id);
    json_decref(items);
    freen(user_ids);
    return reply;
}
