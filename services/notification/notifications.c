/*  notifications: what a signed-in user reads about themself.

      notifications.list         {limit?, cursor?}  200 {items, next_cursor}, newest first
      notifications.unread_count {}                 200 {count}
      notifications.read         {up_to_id?}        204 (all when absent; inclusive)
      notifications.unread       {} (internal)      200 {notifications, messages}

    Every query is keyed by call->viewer_id: nobody can name another user's
    notifications, so there is nothing to authorize beyond being signed in.
    A page is one query on (user_id, id DESC) plus one identity users.batch
    for its actors. Marking read pushes the new unread count to the
    user's open sockets (other devices see the badge clear).

    Unread counts are read from unread_counts, one row per user that the
    triggers of schemas/notification/002_unread_counts.sql keep in step
    with notifications and unread_messages in the writer's own transaction
    (no row: nothing unread), not counted from the rows: a popular account
    has thousands of unread notifications.
*/
#include "notification.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

static json_t *s_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

static json_t *s_need_viewer(void)
{
    return reply_error(401, ERR_UNAUTHENTICATED, "an access token is required");
}

json_t *notification_compact_user(const json_t *user)
{
    json_t *compact = json_object();
    json_t *avatar = json_object_get(user, "avatar_url");
    json_object_set(compact, "id", json_object_get(user, "id"));
    json_object_set(compact, "username", json_object_get(user, "username"));
    json_object_set_new(compact, "avatar_url", avatar ? json_incref(avatar) : json_null());
    return compact;
}

//  Sets object[name] to the column's text when it is not NULL.
static void s_optional(json_t *object, const char *name, const PGresult *res, int row, int column)
{
    if (!PQgetisnull(res, row, column))
        json_object_set_new(object, name, json_string(PQgetvalue(res, row, column)));
}

json_t *notification_json(const PGresult *res, int row, const json_t *actors)
{
    json_t *actor = json_object_get(actors, PQgetvalue(res, row, NOTE_ACTOR));
    if (!actor) return NULL;
    json_t *object = json_pack("{s:s, s:s, s:O, s:s, s:b}", "id", PQgetvalue(res, row, NOTE_ID),
                               "type", PQgetvalue(res, row, NOTE_TYPE), "actor", actor,
                               "created_at", PQgetvalue(res, row, NOTE_CREATED_AT), "read",
                               streq(PQgetvalue(res, row, NOTE_READ), "t"));
    if (!object) return NULL;
    s_optional(object, "post_id", res, row, NOTE_POST);
    s_optional(object, "comment_id", res, row, NOTE_COMMENT);
    s_optional(object, "conversation_id", res, row, NOTE_CONVERSATION);
    s_optional(object, "text", res, row, NOTE_TEXT);
    return object;
}

//  Actors of rows [0, count): id -> compact user, one identity call. NULL
//  with a reply in *error_out when identity does not answer.
static json_t *s_actors(call_t *call, const PGresult *res, int count, json_t **error_out)
{
    json_t *ids = json_array();
    for (int row = 0; row < count; row++) {
        const char *id = PQgetvalue(res, row, NOTE_ACTOR);
        bool seen = false;
        for (size_t i = 0; i < json_array_size(ids) && !seen; i++)
            seen = streq(json_string_value(json_array_get(ids, i)), id);
        if (!seen) json_array_append_new(ids, json_string(id));
    }
    json_t *actors = json_object();
    if (count > 0) {
        json_t *args = json_pack("{s:o}", "ids", ids);
        ids = NULL;
        json_t *reply = rpc_call(call->rpc, "identity", "users.batch", call->viewer_id, args, NULL,
                                 call->request->deadline_ms);
        json_decref(args);
        if (reply_status(reply) != 200) {
            log_warn("identity users.batch answered %d", reply_status(reply));
            *error_out = reply_status(reply) == 504
                             ? reply_error(504, ERR_TIMEOUT, "a service took too long")
                             : reply_error(503, ERR_UNAVAILABLE, "a service is unavailable");
            json_decref(reply);
            json_decref(actors);
            return NULL;
        }
        size_t index;
        json_t *user;
        json_array_foreach(json_object_get(reply_body(reply), "users"), index, user)
        {
            const char *id = json_string_value(json_object_get(user, "id"));
            if (id) json_object_set_new(actors, id, notification_compact_user(user));
        }
        json_decref(reply);
    }
    json_decref(ids);
    return actors;
}

json_t *notifications_list(call_t *call)
{
    if (call->viewer_id <= 0) return s_need_viewer();
    json_t *fields = json_object();
    int limit = 20;
    args_limit(call->args, &limit, fields);
    const char *cursor = NULL;
    args_string(call->args, "cursor", false, 0, CURSOR_TEXT_MAX, &cursor, fields);
    int64_t before = INT64_MAX, ignored = 0;
    if (cursor && cursor_decode(cursor, &before, &ignored) != 0)
        json_object_set_new(fields, "cursor", json_string("is not a cursor this server issued"));
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], before_text[21], limit_text[16];
    ids_format(call->viewer_id, viewer, sizeof viewer);
    snprintf(before_text, sizeof before_text, "%lld", (long long)before);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    const char *params[] = {viewer, before_text, limit_text};
    PGresult *res = db_query(call->db,
                             "SELECT " NOTIFICATION_COLUMNS " FROM notifications"
                             " WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                             3, params);
    if (!res) return s_internal("notification list");
    int rows = PQntuples(res);
    int count = rows > limit ? limit : rows;
    json_t *error = NULL;
    json_t *actors = s_actors(call, res, count, &error);
    json_t *reply = error;
    if (actors) {
        json_t *items = json_array();
        for (int row = 0; row < count; row++) {
            //  An actor identity no longer knows was deleted a moment ago:
            //  its notifications go when user.deleted arrives.
            json_t *item = notification_json(res, row, actors);
            if (item) json_array_append_new(items, item);
        }
        json_t *next = json_null();
        if (rows > limit) {
            char text[CURSOR_TEXT_MAX];
            cursor_encode(strtoll(PQgetvalue(res, count - 1, NOTE_ID), NULL, 10), 0, text);
            next = json_string(text);
        }
        reply = reply_ok(200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
        json_decref(actors);
    }
    PQclear(res);
    return reply;
}

json_t *notifications_unread_count(call_t *call)
{
    if (call->viewer_id <= 0) return s_need_viewer();
    char viewer[21];
    ids_format(call->viewer_id, viewer, sizeof viewer);
    const char *params[] = {viewer};
    PGresult *res = db_query(call->db,
                             "SELECT coalesce(c.notifications, 0)"
                             " FROM (VALUES ($1::bigint)) AS u (id)"
                             " LEFT JOIN unread_counts c ON c.user_id = u.id",
                             1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return s_internal("unread count");
    }
    json_t *reply = reply_ok(
        200, json_pack("{s:I}", "count", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    PQclear(res);
    return reply;
}

json_t *notifications_unread(call_t *call)
{
    if (call->viewer_id <= 0) return s_need_viewer();
    char viewer[21];
    ids_format(call->viewer_id, viewer, sizeof viewer);
    const char *params[] = {viewer};
    PGresult *res = db_query(call->db,
                             "SELECT coalesce(c.notifications, 0), coalesce(c.messages, 0)"
                             " FROM (VALUES ($1::bigint)) AS u (id)"
                             " LEFT JOIN unread_counts c ON c.user_id = u.id",
                             1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return s_internal("unread counts");
    }
    json_t *reply =
        reply_ok(200, json_pack("{s:I, s:I}", "notifications",
                                (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "messages",
                                (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
    PQclear(res);
    return reply;
}

json_t *notifications_read(call_t *call)
{
    if (call->viewer_id <= 0) return s_need_viewer();
    json_t *fields = json_object();
    int64_t up_to = INT64_MAX;
    args_id(call->args, "up_to_id", false, &up_to, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], up_to_text[21];
    ids_format(call->viewer_id, viewer, sizeof viewer);
    snprintf(up_to_text, sizeof up_to_text, "%lld", (long long)up_to);
    const char *params[] = {viewer, up_to_text};
    if (db_begin(call->db) != 0) return s_internal("begin");
    //  The user's counter first, then their rows. The UPDATE locks the
    //  rows it marks and its trigger then the counter; the consumer may
    //  hold that counter from an earlier statement of its batch and next
    //  want one of those rows (conversation.read marks message
    //  notifications right after its unread_messages moved the counter):
    //  a deadlock, this request or the batch aborted. Waiting for the
    //  counter while holding nothing avoids it. A user without a counter
    //  row has nothing unread for the UPDATE to mark.
    long locked =
        db_exec(call->db, "SELECT 1 FROM unread_counts WHERE user_id = $1 FOR UPDATE", 1, params);
    long marked = locked < 0 ? -1
                             : db_exec(call->db,
                                       "UPDATE notifications SET read = true"
                                       " WHERE user_id = $1 AND NOT read AND id <= $2",
                                       2, params);
    //  Only a change is worth a frame to the user's other devices.
    if (marked < 0 || (marked > 0 && push_unread(call->db, viewer) != 0) ||
        db_commit(call->db) != 0) {
        db_rollback(call->db);
        return s_internal("mark read");
    }
    return reply_ok(204, NULL);
}
