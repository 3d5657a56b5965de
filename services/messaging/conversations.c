/*  conversations: start one, list mine, read one.

      conversations.create {participants:[username…]}   201 new | 200 existing 1:1
      conversations.list   {limit?, cursor?}             200 {items, next_cursor}
      conversations.get    {id}                          200 | 404

    A conversation with one other person is a 1:1: its pair_key makes a
    second start find the first one (200) even when both people start it at
    the same moment. More people make a group (at most MESSAGING_GROUP_MAX
    with the creator), always new. Every name must be a user who has not
    blocked the caller and whom the caller has not blocked; otherwise 404
    and nothing is created (a blocked person looks exactly like an unknown
    one).

    One SQL statement reads a page of conversations with everything the
    object needs (participants, last message, my unread count, both
    skipping messages hidden from me: see messages.c on blocks); one
    identity call and one media call hydrate the whole page.
*/
#include "messaging.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <ctype.h>
#include <czmq.h>
#include <string.h>

//  Everything a conversation object needs, one row per conversation, for
//  the participant p (the viewer).
#define CONVERSATION_SELECT                                                                        \
    "SELECT c.id, c.is_group, " SQL_TIME("c.created_at") ", " SQL_TIME(                            \
        "c.updated_at") ", p.activity_id,"                                                         \
                        " (SELECT string_agg(q.user_id::text, ',' ORDER BY q.user_id)"             \
                        "    FROM participants q WHERE q.conversation_id = c.id),"                 \
                        " (SELECT count(*) FROM messages u WHERE u.conversation_id = c.id"         \
                        "    AND u.id > p.last_read_id AND u.sender_id <> p.user_id"               \
                        "    AND NOT (p.user_id = ANY (u.hidden_from))), " MESSAGE_COLUMNS(        \
                            "m") " FROM participants p JOIN conversations c ON c.id = "            \
                                 "p.conversation_id"                                               \
                                 " LEFT JOIN LATERAL (SELECT * FROM messages l"                    \
                                 "   WHERE l.conversation_id = c.id"                               \
                                 "   AND NOT (p.user_id = ANY (l.hidden_from))"                    \
                                 "   ORDER BY l.id DESC LIMIT 1) m"                                \
                                 " ON true"

enum {
    CONV_ID,
    CONV_IS_GROUP,
    CONV_CREATED_AT,
    CONV_UPDATED_AT,
    CONV_ACTIVITY,
    CONV_MEMBERS,
    CONV_UNREAD,
    CONV_MESSAGE // first of MESSAGE_COLUMNS
};

//  ---------------------------------------------------------------------
//  Objects

//  Adds the ids of a comma-separated list to array.
static void s_add_members(json_t *array, const char *members)
{
    char *copy = strdup(members);
    if (!copy) return;
    char *save = NULL;
    for (char *id = strtok_r(copy, ",", &save); id; id = strtok_r(NULL, ",", &save))
        messaging_add_id(array, id);
    free(copy);
}

//  The conversation objects of rows [0, count) of res, hydrated with one
//  identity and one media call. NULL with *error_out on a peer failure.
static json_t *s_objects(call_t *call, const PGresult *res, int count, json_t **error_out)
{
    json_t *user_ids = json_array(), *post_ids = json_array();
    for (int row = 0; row < count; row++) {
        s_add_members(user_ids, PQgetvalue(res, row, CONV_MEMBERS));
        if (!PQgetisnull(res, row, CONV_MESSAGE + MSG_POST))
            messaging_add_id(post_ids, PQgetvalue(res, row, CONV_MESSAGE + MSG_POST));
    }
    json_t *items = NULL, *posts = NULL;
    json_t *users = peers_users(call, user_ids, error_out);
    if (!users) goto cleanup;
    //  Participants are full user objects (counts, follow state): decorate
    //  the page's users in place, once. Blocked members of a group stay
    //  listed: they are in it.
    json_t *everyone = json_array();
    const char *key;
    json_t *value;
    json_object_foreach(users, key, value) json_array_append(everyone, value);
    users_decorate(call->rpc, call->viewer_id, everyone, USERS_KEEP_BLOCKED,
                   call->request->deadline_ms);
    json_decref(everyone);
    posts = peers_posts(call, call->viewer_id, post_ids, error_out);
    if (!posts) goto cleanup;

    items = json_array();
    for (int row = 0; row < count; row++) {
        json_t *participants = json_array();
        json_t *members = json_array();
        s_add_members(members, PQgetvalue(res, row, CONV_MEMBERS));
        size_t index;
        json_t *member;
        json_array_foreach(members, index, member)
        {
            //  A user identity no longer knows (deleted a moment ago) is left
            //  out; messaging drops them when it handles user.deleted.
            json_t *user = json_object_get(users, json_string_value(member));
            if (user) json_array_append(participants, user);
        }
        json_decref(members);
        json_t *last = PQgetisnull(res, row, CONV_MESSAGE + MSG_ID)
                           ? json_null()
                           : message_json(res, row, CONV_MESSAGE, users, posts);
        json_t *object =
            json_pack("{s:s, s:o, s:o, s:I, s:b, s:s, s:s}", "id", PQgetvalue(res, row, CONV_ID),
                      "participants", participants, "last_message", last, "unread_count",
                      (json_int_t)strtoll(PQgetvalue(res, row, CONV_UNREAD), NULL, 10), "is_group",
                      streq(PQgetvalue(res, row, CONV_IS_GROUP), "t"), "created_at",
                      PQgetvalue(res, row, CONV_CREATED_AT), "updated_at",
                      PQgetvalue(res, row, CONV_UPDATED_AT));
        if (object) json_array_append_new(items, object);
    }

cleanup:
    json_decref(user_ids);
    json_decref(post_ids);
    json_decref(users);
    json_decref(posts);
    return items;
}

json_t *conversations_reply(call_t *call, int64_t id, int status)
{
    char viewer[21], conversation[21];
    messaging_id_text(call->viewer_id, viewer);
    messaging_id_text(id, conversation);
    const char *params[] = {viewer, conversation};
    PGresult *res =
        db_query(call->db, CONVERSATION_SELECT " WHERE p.user_id = $1 AND p.conversation_id = $2",
                 2, params);
    if (!res) return messaging_internal("conversation lookup");
    json_t *reply = NULL;
    if (PQntuples(res) == 0) {
        reply = reply_error(404, ERR_NOT_FOUND, "no such conversation");
    } else {
        json_t *error = NULL;
        json_t *items = s_objects(call, res, 1, &error);
        reply = items ? reply_ok(status, json_incref(json_array_get(items, 0))) : error;
        json_decref(items);
    }
    PQclear(res);
    return reply;
}

//  ---------------------------------------------------------------------
//  Creating

int conversations_pair(db_t *db, int64_t viewer_id, int64_t other_id, int64_t *id_out,
                       bool *created)
{
    char pair_key[48], new_id[21], viewer[21], other[21];
    snprintf(pair_key, sizeof pair_key, "%lld:%lld",
             (long long)(viewer_id < other_id ? viewer_id : other_id),
             (long long)(viewer_id < other_id ? other_id : viewer_id));
    messaging_id_text(ids_next(), new_id);
    messaging_id_text(viewer_id, viewer);
    messaging_id_text(other_id, other);
    *created = false;

    //  ON CONFLICT waits for a concurrent insert of the same pair and then
    //  does nothing, so exactly one of two simultaneous starts creates it.
    const char *insert[] = {new_id, pair_key, viewer};
    PGresult *res = db_query(db,
                             "INSERT INTO conversations (id, is_group, pair_key, created_by,"
                             " activity_id) VALUES ($1, false, $2, $3, $1)"
                             " ON CONFLICT (pair_key) DO NOTHING RETURNING id",
                             3, insert);
    if (!res) return -1;
    bool inserted = PQntuples(res) == 1;
    PQclear(res);
    if (inserted) {
        const char *members[] = {new_id, viewer, other};
        if (db_exec(db,
                    "INSERT INTO participants (conversation_id, user_id, activity_id)"
                    " VALUES ($1, $2, $1), ($1, $3, $1)",
                    3, members) != 2)
            return -1;
        *created = true;
        return ids_parse(new_id, id_out) ? 0 : -1;
    }
    const char *find[] = {pair_key};
    res = db_query(db, "SELECT id FROM conversations WHERE pair_key = $1", 1, find);
    int rc = -1;
    if (res && PQntuples(res) == 1 && ids_parse(PQgetvalue(res, 0, 0), id_out)) rc = 0;
    PQclear(res);
    return rc;
}

//  A new group of viewer and others (decimal strings). 0 or -1.
static int s_group(db_t *db, int64_t viewer_id, const json_t *others, int64_t *id_out)
{
    int64_t id = ids_next();
    char id_text[21], viewer[21];
    messaging_id_text(id, id_text);
    messaging_id_text(viewer_id, viewer);
    //  An array literal of validated decimal ids: nothing from the client
    //  reaches SQL unchecked.
    char *literal = NULL;
    size_t size = 0;
    FILE *stream = open_memstream(&literal, &size);
    if (!stream) return -1;
    fprintf(stream, "{%s", viewer);
    size_t index;
    json_t *value;
    json_array_foreach(others, index, value) fprintf(stream, ",%s", json_string_value(value));
    fputc('}', stream);
    fclose(stream);

    const char *conversation[] = {id_text, viewer};
    int rc = -1;
    if (db_exec(db,
                "INSERT INTO conversations (id, is_group, pair_key, created_by, activity_id)"
                " VALUES ($1, true, NULL, $2, $1)",
                2, conversation) == 1) {
        const char *members[] = {id_text, literal};
        if (db_exec(db,
                    "INSERT INTO participants (conversation_id, user_id, activity_id)"
                    " SELECT $1, unnest($2::bigint[]), $1",
                    2, members) == (long)json_array_size(others) + 1) {
            *id_out = id;
            rc = 0;
        }
    }
    free(literal);
    return rc;
}

//  Lower-cases ASCII letters of name into out (sized); false when too long.
static bool s_lower(const char *name, char *out, size_t size)
{
    size_t length = strlen(name);
    if (length >= size) return false;
    for (size_t i = 0; i <= length; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    return true;
}

json_t *messaging_resolve_names(call_t *call, const json_t *names, json_t **error_out)
{
    json_t *by_name = peers_users_by_names(call, names, error_out);
    if (!by_name) return NULL;
    char viewer[21];
    messaging_id_text(call->viewer_id, viewer);
    json_t *others = json_array();
    size_t index;
    json_t *value;
    json_array_foreach(names, index, value)
    {
        char lower[64];
        json_t *user = s_lower(json_string_value(value), lower, sizeof lower)
                           ? json_object_get(by_name, lower)
                           : NULL;
        const char *id = json_string_value(json_object_get(user, "id"));
        if (!id) {
            *error_out = reply_error(404, ERR_NOT_FOUND, "no such user");
            json_decref(others);
            others = NULL;
            break;
        }
        if (!streq(id, viewer)) messaging_add_id(others, id);
    }
    json_decref(by_name);
    return others;
}

int messaging_names_arg(const json_t *args, const char *name, json_t *fields)
{
    json_t *names = json_object_get(args, name);
    if (!names) {
        json_object_set_new(fields, name, json_string("is required"));
        return -1;
    }
    if (!json_is_array(names) || json_array_size(names) == 0 ||
        json_array_size(names) > MESSAGING_NAMES_MAX) {
        json_object_set_new(fields, name,
                            json_string("must be an array of 1 to 64 usernames (strings)"));
        return -1;
    }
    size_t index;
    json_t *value;
    json_array_foreach(names, index, value)
    {
        if (!json_is_string(value) || json_string_length(value) == 0 ||
            memchr(json_string_value(value), '\0', json_string_length(value))) {
            json_object_set_new(fields, name, json_string("must hold usernames (strings)"));
            return -1;
        }
    }
    return 1;
}

json_t *conversations_create(call_t *call)
{
    json_t *fields = json_object();
    if (messaging_names_arg(call->args, "participants", fields) != 1)
        return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    json_t *error = NULL;
    json_t *others =
        messaging_resolve_names(call, json_object_get(call->args, "participants"), &error);
    if (!others) return error;
    json_t *reply = NULL;
    if (json_array_size(others) == 0) {
        reply =
            reply_invalid(json_pack("{s:s}", "participants", "must name someone other than you"),
                          "some fields are not valid");
        goto cleanup;
    }
    if (json_array_size(others) + 1 > MESSAGING_GROUP_MAX) {
        reply = reply_invalid(
            json_pack("{s:s}", "participants", "a conversation holds at most 32 people"),
            "some fields are not valid");
        goto cleanup;
    }
    if (peers_any_blocked(call, others)) {
        reply = reply_error(404, ERR_NOT_FOUND, "no such user");
        goto cleanup;
    }

    int64_t id = 0;
    bool created = true;
    if (db_begin(call->db) != 0) {
        reply = messaging_internal("begin");
        goto cleanup;
    }
    int rc;
    if (json_array_size(others) == 1) {
        int64_t other = 0;
        ids_parse(json_string_value(json_array_get(others, 0)), &other);
        rc = conversations_pair(call->db, call->viewer_id, other, &id, &created);
    } else {
        rc = s_group(call->db, call->viewer_id, others, &id);
    }
    if (rc != 0 || db_commit(call->db) != 0) {
        db_rollback(call->db);
        reply = messaging_internal("conversation insert");
        goto cleanup;
    }
    reply = conversations_reply(call, id, created ? 201 : 200);

cleanup:
    json_decref(others);
    return reply;
}

//  ---------------------------------------------------------------------
//  Reading

json_t *conversations_list(call_t *call)
{
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
    messaging_id_text(call->viewer_id, viewer);
    snprintf(before_text, sizeof before_text, "%lld", (long long)before);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    const char *params[] = {viewer, before_text, limit_text};
    PGresult *res = db_query(call->db,
                             CONVERSATION_SELECT " WHERE p.user_id = $1 AND p.activity_id < $2"
                                                 " ORDER BY p.activity_id DESC LIMIT $3",
                             3, params);
    if (!res) return messaging_internal("conversation list");
    int rows = PQntuples(res);
    int count = rows > limit ? limit : rows;
    json_t *error = NULL;
    json_t *items = s_objects(call, res, count, &error);
    json_t *reply = error;
    if (items) {
        json_t *next = json_null();
        if (rows > limit) {
            char text[CURSOR_TEXT_MAX];
            cursor_encode(strtoll(PQgetvalue(res, count - 1, CONV_ACTIVITY), NULL, 10), 0, text);
            next = json_string(text);
        }
        reply = reply_ok(200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
    }
    PQclear(res);
    return reply;
}

json_t *conversations_get(call_t *call)
{
    int64_t id = 0;
    if (!messaging_path_id(call->args, "id", &id))
        return reply_error(404, ERR_NOT_FOUND, "no such conversation");
    return conversations_reply(call, id, 200);
}
