/*  comments: add, list (oldest first), delete.

      comments.create {id, text, idempotency_key?} -> 201 comment
      comments.list   {id, limit?, cursor?}        -> 200 {items: [comment], next_cursor}
      comments.delete {id}  (the comment's id)     -> 204 | 403 | 404

    A comment object is {id, post_id, author{id, username, avatar_url},
    text, mentions[], created_at}: mentions are the usernames of existing
    users named with @ in the text (an addition to API.md's fields).

    comment_count moves in the same statement as the row, so it is exact;
    the comment.created event is in that statement too (events_inline_t).
    Only the comment's author or the post's author may delete a comment;
    anyone else who can see the post gets 403, someone who cannot 404.
    Comments by users blocked either way with the viewer are left out of
    the list (graph decides; nobody is when graph does not answer).
*/
#include "media.h"
#include "args.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#define COMMENT_COLUMNS                                                                            \
    "c.id, c.post_id, c.author_id, c.text, array_to_json(c.mention_names)::text,"                  \
    " to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
enum { COL_ID, COL_POST_ID, COL_AUTHOR_ID, COL_TEXT, COL_MENTIONS, COL_CREATED_AT };

//  The row, the post's counter and the comment.created event in one
//  statement (events_inline_t). A post deleted meanwhile fails the foreign
//  key (23503).
// clang-format off
#define COMMENT_INSERT_SQL                                                                         \
    "WITH c AS (INSERT INTO comments (id, post_id, author_id, text, mention_ids, mention_names,"   \
    " created_at) VALUES ($1, $2, $3, $4,"                                                         \
    " ARRAY(SELECT json_array_elements_text($5::json)::bigint),"                                   \
    " ARRAY(SELECT json_array_elements_text($6::json)), $7::timestamptz) RETURNING *),"            \
    " counted AS (UPDATE posts SET comment_count = comment_count + 1"                              \
    " WHERE id IN (SELECT post_id FROM c) RETURNING id),"                                          \
    " emitted AS (" EVENTS_INLINE_INSERT("counted", "$8", "$9", "$10", "$11") ")"                  \
    " SELECT " COMMENT_COLUMNS ", (SELECT count(*) FROM emitted) FROM c"
// clang-format on

static json_t *s_comment(const PGresult *res, int row, const json_t *author)
{
    json_t *mentions = json_loads(PQgetvalue(res, row, COL_MENTIONS), JSON_DECODE_ANY, NULL);
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:s}", "id", PQgetvalue(res, row, COL_ID),
                     "post_id", PQgetvalue(res, row, COL_POST_ID), "author", render_author(author),
                     "text", PQgetvalue(res, row, COL_TEXT), "mentions",
                     mentions ? mentions : json_array(), "created_at",
                     PQgetvalue(res, row, COL_CREATED_AT));
}

json_t *comments_create(call_t *call)
{
    if (call->viewer_id <= 0) return media_signed_out();
    json_t *fields = json_object();
    int64_t id = 0;
    if (args_id(call->args, "id", true, &id, fields) != 1) {
        json_decref(fields);
        return media_not_found();
    }
    const char *text = NULL, *idempotency_key = NULL;
    args_string(call->args, "text", true, 1, MEDIA_COMMENT_MAX, &text, fields);
    idempotency_arg(call->args, &idempotency_key, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t author = 0;
    json_t *reply = posts_check_visible(call, id, &author);
    if (reply) return reply;

    db_t *db = call->db;
    media_text_t parsed = {0};
    json_t *users = NULL;
    PGresult *res = NULL;
    events_inline_t event = {0};
    reply = media_text_parse(call, text, false, &parsed);
    if (reply) goto cleanup;
    users = render_users(call, &call->viewer_id, 1, &reply);
    if (!users) goto cleanup;
    char post_id[21], viewer[21], comment_id[21], author_text[21], scope[48];
    media_id_text(id, post_id);
    media_id_text(call->viewer_id, viewer);
    media_id_text(author, author_text);
    const json_t *me = json_object_get(users, viewer);
    if (!me) {
        reply = media_signed_out();
        goto cleanup;
    }
    int64_t comment = ids_next();
    media_id_text(comment, comment_id);
    //  The comment's time is its id's, so the row, the reply and the event
    //  carry the same one.
    char created_at[32];
    ids_format_time(ids_time_ms(comment), created_at, sizeof created_at);
    json_t *payload = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s}", "id", comment_id, "post_id",
                                post_id, "post_author_id", author_text, "author_id", viewer, "text",
                                text, "mentions", parsed.mention_ids, "created_at", created_at);
    int rc = events_inline_init(&event, db, "comment.created", payload);
    json_decref(payload);
    if (rc != 0) {
        reply = media_internal("comment event");
        goto cleanup;
    }
    const char *params[] = {comment_id,      post_id,           viewer,       text,
                            parsed.ids_text, parsed.names_text, created_at,   event.topic,
                            event.payload,   event.request_id,  event.channel};
    //  Without an idempotency key the statement is the whole write; with
    //  one, the claim and the stored reply commit with it.
    if (idempotency_key) {
        if (db_begin(db) != 0) {
            reply = media_internal("begin");
            goto cleanup;
        }
        //  The scope names the post: the same key on another post is a
        //  different request (409), not a replay.
        snprintf(scope, sizeof scope, "comments.create:%s", post_id);
        if (media_idempotency_claim(call, idempotency_key, scope, &reply) != 0) goto cleanup;
    }
    res = db_query(db, COMMENT_INSERT_SQL, 11, params);
    if (!res || PQntuples(res) != 1) {
        bool gone = !res && streq(db_last_sqlstate(db), "23503");
        reply = gone ? media_not_found() : media_internal("insert comment");
        goto cleanup;
    }
    reply = reply_ok(201, s_comment(res, 0, me));
    if (idempotency_key && (idempotency_store(db, call->viewer_id, idempotency_key, reply) != 0 ||
                            db_commit(db) != 0)) {
        json_decref(reply);
        reply = media_internal("create comment");
    }
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(res);
    events_inline_clear(&event);
    media_text_clear(&parsed);
    json_decref(users);
    return reply;
}

json_t *comments_list(call_t *call)
{
    int64_t id = 0, after = 0;
    int limit = 20;
    if (!media_post_id_arg(call->args, &id)) return media_not_found();
    json_t *reply = media_page_args(call->args, &limit, &after);
    if (reply) return reply;
    visibility_t *vis = visibility_new(call);
    int64_t author = 0;
    reply = posts_load_visible(call, vis, id, &author);
    if (reply) {
        visibility_destroy(&vis);
        return reply;
    }
    char post_id[21];
    const char *leading[] = {media_id_text(id, post_id)};
    PGresult *res =
        media_page_query(call->db,
                         "SELECT " COMMENT_COLUMNS " FROM comments c WHERE c.post_id = $1"
                         " AND c.id > $2::bigint ORDER BY c.id LIMIT $3::int",
                         1, leading, after, limit);
    if (!res) {
        visibility_destroy(&vis);
        return media_internal("list comments");
    }
    bool more = false;
    int64_t last = 0;
    int rows = media_page_rows(res, limit, COL_ID, &more, &last);
    int64_t *authors = (int64_t *)zmalloc(sizeof(int64_t) * (size_t)(rows ? rows : 1));
    bool *blocked = (bool *)zmalloc(sizeof(bool) * (size_t)(rows ? rows : 1));
    for (int row = 0; row < rows; row++)
        ids_parse(PQgetvalue(res, row, COL_AUTHOR_ID), &authors[row]);
    json_t *failure = NULL;
    json_t *users = render_users(call, authors, (size_t)rows, &failure);
    if (!users) {
        reply = failure;
        goto cleanup;
    }
    visibility_blocked(vis, authors, (size_t)rows, blocked);
    json_t *items = json_array();
    for (int row = 0; row < rows; row++) {
        json_t *user = json_object_get(users, PQgetvalue(res, row, COL_AUTHOR_ID));
        if (user && !blocked[row]) json_array_append_new(items, s_comment(res, row, user));
    }
    reply = media_page(items, more, last, 0);
cleanup:
    PQclear(res);
    json_decref(users);
    freen(authors);
    freen(blocked);
    visibility_destroy(&vis);
    return reply;
}

json_t *comments_delete(call_t *call)
{
    if (call->viewer_id <= 0) return media_signed_out();
    int64_t id = 0;
    if (!media_post_id_arg(call->args, &id)) return media_not_found(); // the comment's id
    char comment_id[21], viewer[21];
    const char *params[] = {media_id_text(id, comment_id), media_id_text(call->viewer_id, viewer)};
    PGresult *res = db_query(call->db,
                             "SELECT c.author_id, c.post_id, p.author_id FROM comments c"
                             " JOIN posts p ON p.id = c.post_id WHERE c.id = $1",
                             1, params);
    if (!res) return media_internal("load comment");
    int64_t comment_author = 0, post = 0, post_author = 0;
    bool found = PQntuples(res) == 1 && ids_parse(PQgetvalue(res, 0, 0), &comment_author) &&
                 ids_parse(PQgetvalue(res, 0, 1), &post) &&
                 ids_parse(PQgetvalue(res, 0, 2), &post_author);
    PQclear(res);
    if (!found) return media_not_found();
    //  Whoever cannot see the post cannot see its comments either: 404.
    visibility_t *vis = visibility_new(call);
    bool visible = false;
    json_t *failure = NULL;
    int decided = visibility_authors(vis, &post_author, 1, &visible, &failure);
    visibility_destroy(&vis);
    if (decided != 0) return failure;
    if (!visible) return media_not_found();
    if (call->viewer_id != comment_author && call->viewer_id != post_author)
        return reply_error(403, ERR_FORBIDDEN,
                           "only the comment's author or the post's author may delete it");

    db_t *db = call->db;
    json_t *reply = NULL, *payload = NULL;
    char post_text[21], post_author_text[21], comment_author_text[21];
    media_id_text(post, post_text);
    const char *count_params[] = {post_text};
    if (db_begin(db) != 0) return media_internal("begin");
    long deleted = db_exec(db, "DELETE FROM comments WHERE id = $1", 1, params);
    if (deleted < 0) {
        reply = media_internal("delete comment");
        goto cleanup;
    }
    if (deleted == 0) {
        reply = media_not_found(); // deleted meanwhile
        goto cleanup;
    }
    if (db_exec(db, "UPDATE posts SET comment_count = comment_count - 1 WHERE id = $1", 1,
                count_params) < 0) {
        reply = media_internal("count comment");
        goto cleanup;
    }
    payload = json_pack("{s:s, s:s, s:s, s:s}", "id", comment_id, "post_id", post_text,
                        "post_author_id", media_id_text(post_author, post_author_text), "author_id",
                        media_id_text(comment_author, comment_author_text));
    if (events_emit(db, "comment.deleted", payload) != 0 || db_commit(db) != 0) {
        reply = media_internal("delete comment");
        goto cleanup;
    }
    reply = reply_ok(204, NULL);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    json_decref(payload);
    return reply;
}
