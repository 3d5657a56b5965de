/*  messages: read, send, mark read, share a post.

      messages.list {id, limit?, cursor?}               200 {items, next_cursor}, newest first
      messages.send {id, text?, post_id?, idempotency_key?}  201 message
      messages.read {id, message_id}                    204
      posts.share   {id, to:[username…], text?}         201 {messages:[message]}

    Only participants may read, send or mark read; anyone else gets 404, the
    same answer as for a conversation that does not exist.

    Order. A send locks its conversation row, then takes an id above the
    conversation's activity_id (its newest message), inserts, and moves the
    activity forward before it commits; so within a conversation, id order
    is commit order is the order everyone reads, even with several
    messaging processes whose clocks differ by a little.

    Retries. With an Idempotency-Key (args.idempotency_key, from the
    header) the first successful send of (user, key) is recorded in the same
    transaction as the message; a retry within 24 hours gets that message
    back (201, same body) and sends nothing. Two retries racing each other
    meet on the key's primary key: the loser rolls back and answers the
    winner's message.

    Posts in messages are hydrated per reader with media posts.batch as that
    reader: a post the reader may not see (private, blocked, deleted) is
    null, never leaked. Sending or sharing a post needs the sender to see it
    (404 otherwise).

    Blocks (graph relations.batch, either way, checked at send time). In a
    1:1, a block makes the conversation look gone to a send from either
    side (404), like everything else blocked users do to each other. A
    group keeps working for everyone else: the send succeeds (201, the
    sender is not told who blocked them, as a profile would not tell
    either), and the message is hidden for good from each member blocked
    either way with its sender: messages.hidden_from lists them, they are
    left out of message.created's recipient_ids (so no notification, no
    live frame, no unread count), their conversation does not move up their
    list, and every read (the messages, last_message, unread_count, read
    receipts) skips it for them. As in a 1:1, what was sent before the
    block stays, and unblocking does not deliver what was sent meanwhile.
*/
#include "messaging.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

json_t *message_json(const PGresult *res, int row, int first, const json_t *users,
                     const json_t *posts)
{
    const char *sender_id = PQgetvalue(res, row, first + MSG_SENDER);
    json_t *user = json_object_get(users, sender_id);
    json_t *sender = user ? peers_compact_user(user)
                          : json_pack("{s:s, s:n, s:n}", "id", sender_id, "username", "avatar_url");
    json_t *post = NULL;
    if (!PQgetisnull(res, row, first + MSG_POST))
        post = json_object_get(posts, PQgetvalue(res, row, first + MSG_POST));
    return json_pack("{s:s, s:s, s:o, s:s, s:O, s:s}", "id", PQgetvalue(res, row, first + MSG_ID),
                     "conversation_id", PQgetvalue(res, row, first + MSG_CONVERSATION), "sender",
                     sender, "text", PQgetvalue(res, row, first + MSG_TEXT), "post",
                     post ? post : json_null(), "created_at",
                     PQgetvalue(res, row, first + MSG_CREATED_AT));
}

//  Message objects of rows [0, count) of res (MESSAGE_COLUMNS at 0) as
//  reader sees them: one identity and one media call. NULL with a reply in
//  *error_out.
static json_t *s_objects(call_t *call, int64_t reader_id, const PGresult *res, int count,
                         json_t **error_out)
{
    json_t *user_ids = json_array(), *post_ids = json_array();
    for (int row = 0; row < count; row++) {
        messaging_add_id(user_ids, PQgetvalue(res, row, MSG_SENDER));
        if (!PQgetisnull(res, row, MSG_POST))
            messaging_add_id(post_ids, PQgetvalue(res, row, MSG_POST));
    }
    json_t *items = NULL, *posts = NULL;
    json_t *users = peers_users(call, user_ids, error_out);
    if (users) posts = peers_posts(call, reader_id, post_ids, error_out);
    if (users && posts) {
        items = json_array();
        for (int row = 0; row < count; row++)
            json_array_append_new(items, message_json(res, row, 0, users, posts));
    }
    json_decref(user_ids);
    json_decref(post_ids);
    json_decref(users);
    json_decref(posts);
    return items;
}

//  Whether viewer takes part in conversation: 1 yes, 0 no, -1 error.
//  *is_group and *others (a new array of the other participants' ids) are
//  set when not NULL.
static int s_membership(db_t *db, int64_t conversation_id, int64_t viewer_id, bool *is_group,
                        json_t **others)
{
    char conversation[21], viewer[21];
    messaging_id_text(conversation_id, conversation);
    messaging_id_text(viewer_id, viewer);
    const char *params[] = {conversation};
    PGresult *res = db_query(db,
                             "SELECT c.is_group, p.user_id FROM conversations c"
                             " JOIN participants p ON p.conversation_id = c.id WHERE c.id = $1",
                             1, params);
    if (!res) return -1;
    int member = 0;
    json_t *list = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        if (streq(PQgetvalue(res, row, 1), viewer))
            member = 1;
        else
            json_array_append_new(list, json_string(PQgetvalue(res, row, 1)));
        if (is_group) *is_group = streq(PQgetvalue(res, row, 0), "t");
    }
    PQclear(res);
    if (others && member)
        *others = list;
    else
        json_decref(list);
    return member;
}

static json_t *s_no_conversation(void)
{
    return reply_error(404, ERR_NOT_FOUND, "no such conversation");
}

//  ---------------------------------------------------------------------
//  Listing

json_t *messages_list(call_t *call)
{
    json_t *fields = json_object();
    int limit = 20;
    args_limit(call->args, &limit, fields);
    const char *cursor = NULL;
    args_string(call->args, "cursor", false, 0, CURSOR_TEXT_MAX, &cursor, fields);
    int64_t before = INT64_MAX, ignored = 0;
    if (cursor && cursor_decode(cursor, &before, &ignored) != 0)
        json_object_set_new(fields, "cursor", json_string("is not a cursor this server issued"));
    int64_t id = 0;
    bool known = messaging_path_id(call->args, "id", &id);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    if (!known) return s_no_conversation();

    int member = s_membership(call->db, id, call->viewer_id, NULL, NULL);
    if (member < 0) return messaging_internal("membership");
    if (member == 0) return s_no_conversation();

    char conversation[21], before_text[21], limit_text[16];
    messaging_id_text(id, conversation);
    snprintf(before_text, sizeof before_text, "%lld", (long long)before);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    char viewer[21];
    messaging_id_text(call->viewer_id, viewer);
    const char *params[] = {conversation, before_text, limit_text, viewer};
    //  A message hidden from the viewer (a group member blocked either way
    //  with its sender) is not theirs to see; filtering in SQL keeps pages
    //  full and cursors exact.
    PGresult *res = db_query(call->db,
                             "SELECT " MESSAGE_COLUMNS("m") " FROM messages m"
                                                            " WHERE m.conversation_id = $1 AND "
                                                            "m.id < $2 AND NOT ($4::bigint = ANY "
                                                            "(m.hidden_from))"
                                                            " ORDER BY m.id DESC LIMIT $3",
                             4, params);
    if (!res) return messaging_internal("message list");
    int rows = PQntuples(res);
    int count = rows > limit ? limit : rows;
    json_t *error = NULL;
    json_t *items = s_objects(call, call->viewer_id, res, count, &error);
    json_t *reply = error;
    if (items) {
        json_t *next = json_null();
        if (rows > limit) {
            char text[CURSOR_TEXT_MAX];
            cursor_encode(strtoll(PQgetvalue(res, count - 1, MSG_ID), NULL, 10), 0, text);
            next = json_string(text);
        }
        reply = reply_ok(200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
    }
    PQclear(res);
    return reply;
}

//  ---------------------------------------------------------------------
//  Inserting

//  An id above floor (the conversation's newest): ids are time-ordered, so
//  this only waits when another process's clock ran a little ahead.
static int64_t s_id_after(int64_t floor)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int64_t id = ids_next();
        if (id > floor) return id;
        zclock_sleep(1);
    }
    return floor + 1;
}

//  A Postgres array literal "{1,2}" of ids (decimal strings, checked ids
//  from our own tables or graph's answer), passed as a parameter. Caller
//  frees; NULL when out of memory.
static char *s_id_array(const json_t *ids)
{
    char *literal = NULL;
    size_t size = 0;
    FILE *stream = open_memstream(&literal, &size);
    if (!stream) return NULL;
    fputc('{', stream);
    size_t index;
    json_t *value;
    json_array_foreach(ids, index, value)
        fprintf(stream, "%s%s", index ? "," : "", json_string_value(value));
    fputc('}', stream);
    fclose(stream);
    return literal;
}

//  Whether the id (decimal string) is in ids.
static bool s_listed(const json_t *ids, const char *id)
{
    size_t index;
    json_t *value;
    json_array_foreach(ids, index, value) if (streq(json_string_value(value), id)) return true;
    return false;
}

//  Inside the caller's transaction: appends a message to conversation and
//  emits message.created. hidden (may be NULL): the members (decimal
//  strings) the message is hidden from, left out of its recipients and of
//  the activity update. Returns the inserted row (MESSAGE_COLUMNS) or NULL
//  on error.
static PGresult *s_insert(db_t *db, int64_t conversation_id, int64_t sender_id, const char *text,
                          int64_t post_id, const json_t *hidden)
{
    char conversation[21], sender[21], id_text[21], post[21];
    messaging_id_text(conversation_id, conversation);
    messaging_id_text(sender_id, sender);
    char *hidden_from = s_id_array(hidden);
    if (!hidden_from) return NULL;
    const char *lock_params[] = {conversation};
    //  The row lock orders concurrent sends into this conversation.
    PGresult *res = db_query(db,
                             "SELECT c.activity_id, (SELECT array_agg(p.user_id::text)"
                             " FROM participants p WHERE p.conversation_id = c.id)"
                             " FROM conversations c WHERE c.id = $1 FOR UPDATE OF c",
                             1, lock_params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        free(hidden_from);
        return NULL;
    }
    int64_t activity = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char *members = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (!members) {
        free(hidden_from);
        return NULL;
    }

    messaging_id_text(s_id_after(activity), id_text);
    if (post_id) messaging_id_text(post_id, post);
    const char *insert[] = {id_text,          conversation,          sender,
                            text ? text : "", post_id ? post : NULL, hidden_from};
    PGresult *row = db_query(db,
                             "INSERT INTO messages AS m (id, conversation_id, sender_id, text, "
                             "post_id, hidden_from) VALUES ($1, $2, $3, $4, $5, $6::bigint[])"
                             " RETURNING " MESSAGE_COLUMNS("m"),
                             6, insert);
    const char *move[] = {conversation, id_text, hidden_from};
    //  Members it is hidden from keep their list order: a message they
    //  cannot see must not bring the conversation up.
    if (!row || PQntuples(row) != 1 ||
        db_exec(db, "UPDATE conversations SET activity_id = $2, updated_at = now() WHERE id = $1",
                2, move) != 1 ||
        db_exec(db,
                "UPDATE participants SET activity_id = $2 WHERE conversation_id = $1"
                " AND NOT (user_id = ANY ($3::bigint[]))",
                3, move) < 1)
        goto failed;

    //  message.created {id, conversation_id, sender_id, recipient_ids, text,
    //  post_id|null, created_at}; members is a Postgres text array "{1,2}".
    json_t *recipients = json_array();
    char *save = NULL;
    for (char *member = strtok_r(members + 1, ",}", &save); member;
         member = strtok_r(NULL, ",}", &save))
        if (!streq(member, sender) && !s_listed(hidden, member))
            json_array_append_new(recipients, json_string(member));
    json_t *payload =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:s}", "id", id_text, "conversation_id",
                  conversation, "sender_id", sender, "recipient_ids", recipients, "text",
                  text ? text : "", "post_id", post_id ? json_string(post) : json_null(),
                  "created_at", PQgetvalue(row, 0, MSG_CREATED_AT));
    int emitted = payload ? events_emit(db, "message.created", payload) : -1;
    json_decref(payload);
    if (emitted != 0) goto failed;
    free(members);
    free(hidden_from);
    return row;

failed:
    free(members);
    free(hidden_from);
    PQclear(row);
    return NULL;
}

//  The message recorded for (viewer, key) within 24 h: 1 (reply set), 0
//  none, -1 error.
static int s_idempotent(call_t *call, const char *key, json_t **reply_out)
{
    char viewer[21];
    messaging_id_text(call->viewer_id, viewer);
    const char *params[] = {viewer, key};
    PGresult *res = db_query(call->db,
                             "SELECT " MESSAGE_COLUMNS("m") " FROM idempotency_keys k"
                                                            " JOIN messages m ON m.id = "
                                                            "k.message_id"
                                                            " WHERE k.user_id = $1 AND k.key = $2"
                                                            " AND k.created_at > now() - interval "
                                                            "'24 hours'",
                             2, params);
    if (!res) return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        json_t *error = NULL;
        json_t *items = s_objects(call, call->viewer_id, res, 1, &error);
        *reply_out = items ? reply_ok(201, json_incref(json_array_get(items, 0))) : error;
        json_decref(items);
    }
    PQclear(res);
    return found;
}

//  Records key for message_id inside the transaction: 1 recorded, 0 a
//  live record exists already (another request won), -1 error.
static int s_record_key(db_t *db, int64_t viewer_id, const char *key, const char *message_id)
{
    char viewer[21];
    messaging_id_text(viewer_id, viewer);
    const char *params[] = {viewer, key, message_id};
    //  Housekeeping first: this user's expired keys (primary key prefix).
    if (db_exec(db,
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND key <> $2"
                " AND created_at <= now() - interval '24 hours'",
                2, params) < 0)
        return -1;
    PGresult *res = db_query(db,
                             "INSERT INTO idempotency_keys (user_id, key, message_id)"
                             " VALUES ($1, $2, $3) ON CONFLICT (user_id, key) DO UPDATE"
                             " SET message_id = EXCLUDED.message_id, created_at = now()"
                             " WHERE idempotency_keys.created_at <= now() - interval '24 hours'"
                             " RETURNING 1",
                             3, params);
    if (!res) return -1;
    int recorded = PQntuples(res) == 1;
    PQclear(res);
    return recorded;
}

//  The post post_id as reader sees it (a new reference), or NULL with a
//  reply in *error_out (404 when reader may not see it).
static json_t *s_visible_post(call_t *call, int64_t post_id, json_t **error_out)
{
    char post[21];
    messaging_id_text(post_id, post);
    json_t *ids = json_pack("[s]", post);
    json_t *posts = peers_posts(call, call->viewer_id, ids, error_out);
    json_decref(ids);
    if (!posts) return NULL;
    json_t *found = json_incref(json_object_get(posts, post));
    json_decref(posts);
    if (!found) *error_out = reply_error(404, ERR_NOT_FOUND, "no such post");
    return found;
}

//  The viewer's own user object map {id: user}, or NULL with *error_out.
static json_t *s_viewer_users(call_t *call, json_t **error_out)
{
    char viewer[21];
    messaging_id_text(call->viewer_id, viewer);
    json_t *ids = json_pack("[s]", viewer);
    json_t *users = peers_users(call, ids, error_out);
    json_decref(ids);
    return users;
}

json_t *messages_send(call_t *call)
{
    json_t *fields = json_object();
    const char *text = NULL, *key = NULL;
    int64_t post_id = 0, id = 0;
    args_string(call->args, "text", false, 0, MESSAGING_TEXT_MAX, &text, fields);
    args_id(call->args, "post_id", false, &post_id, fields);
    if (args_string(call->args, "idempotency_key", false, 1, MESSAGING_KEY_MAX, &key, fields) ==
            1 &&
        strlen(key) > MESSAGING_KEY_MAX)
        json_object_set_new(fields, "idempotency_key", json_string("is longer than 255 bytes"));
    if (!json_object_get(fields, "text") && !json_object_get(fields, "post_id") &&
        (!text || !*text) && !post_id)
        json_object_set_new(fields, "text", json_string("send a text or a post_id"));
    bool known = messaging_path_id(call->args, "id", &id);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    if (!known) return s_no_conversation();

    json_t *reply = NULL;
    if (key) {
        int found = s_idempotent(call, key, &reply);
        if (found < 0) return messaging_internal("idempotency lookup");
        if (found) return reply;
    }

    bool is_group = false;
    json_t *others = NULL, *post = NULL, *users = NULL, *error = NULL, *hidden = NULL;
    int member = s_membership(call->db, id, call->viewer_id, &is_group, &others);
    if (member < 0) return messaging_internal("membership");
    if (member == 0) return s_no_conversation();
    //  Blocks: a 1:1 is closed to both sides; in a group the message skips
    //  the members blocked either way with the sender (see the top).
    hidden = peers_blocked_ids(call, others);
    if (!is_group && json_array_size(hidden) > 0) {
        reply = s_no_conversation();
        goto cleanup;
    }
    if (post_id && !(post = s_visible_post(call, post_id, &error))) {
        reply = error;
        goto cleanup;
    }
    if (!(users = s_viewer_users(call, &error))) {
        reply = error;
        goto cleanup;
    }

    if (db_begin(call->db) != 0) {
        reply = messaging_internal("begin");
        goto cleanup;
    }
    PGresult *row = s_insert(call->db, id, call->viewer_id, text, post_id, hidden);
    int recorded = 1;
    if (row && key) recorded = s_record_key(call->db, call->viewer_id, key, PQgetvalue(row, 0, 0));
    if (!row || recorded < 0) {
        db_rollback(call->db);
        PQclear(row);
        reply = messaging_internal("message insert");
        goto cleanup;
    }
    if (recorded == 0) {
        //  A concurrent retry with the same key committed first: answer its
        //  message, send nothing.
        db_rollback(call->db);
        PQclear(row);
        if (s_idempotent(call, key, &reply) != 1)
            reply = reply ? reply : messaging_internal("idempotency lookup");
        goto cleanup;
    }
    if (db_commit(call->db) != 0) {
        PQclear(row);
        reply = messaging_internal("message commit");
        goto cleanup;
    }
    json_t *posts = json_object();
    if (post) json_object_set(posts, json_string_value(json_object_get(post, "id")), post);
    reply = reply_ok(201, message_json(row, 0, 0, users, posts));
    json_decref(posts);
    PQclear(row);

cleanup:
    json_decref(others);
    json_decref(hidden);
    json_decref(post);
    json_decref(users);
    return reply;
}

//  ---------------------------------------------------------------------
//  Read receipts

json_t *messages_read(call_t *call)
{
    json_t *fields = json_object();
    int64_t message_id = 0, id = 0;
    args_id(call->args, "message_id", true, &message_id, fields);
    bool known = messaging_path_id(call->args, "id", &id);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    if (!known) return s_no_conversation();

    char conversation[21], viewer[21], message[21];
    messaging_id_text(id, conversation);
    messaging_id_text(call->viewer_id, viewer);
    messaging_id_text(message_id, message);
    const char *params[] = {conversation, viewer, message};
    if (db_begin(call->db) != 0) return messaging_internal("begin");
    json_t *reply = NULL;
    PGresult *res = db_query(call->db,
                             "SELECT p.last_read_id,"
                             " EXISTS (SELECT 1 FROM messages m WHERE m.id = $3"
                             "   AND m.conversation_id = $1 AND NOT ($2 = ANY (m.hidden_from)))"
                             " FROM participants p WHERE p.conversation_id = $1 AND p.user_id = $2"
                             " FOR UPDATE",
                             3, params);
    if (!res) {
        reply = messaging_internal("read state");
    } else if (PQntuples(res) == 0) {
        reply = s_no_conversation();
    } else if (!streq(PQgetvalue(res, 0, 1), "t")) {
        reply = reply_error(404, ERR_NOT_FOUND, "no such message in this conversation");
    } else if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) >= message_id) {
        reply = reply_ok(204, NULL); // already read that far: nothing changes
    } else {
        json_t *payload = json_pack("{s:s, s:s, s:s}", "conversation_id", conversation, "user_id",
                                    viewer, "message_id", message);
        if (db_exec(call->db,
                    "UPDATE participants SET last_read_id = $3"
                    " WHERE conversation_id = $1 AND user_id = $2",
                    3, params) == 1 &&
            events_emit(call->db, "conversation.read", payload) == 0)
            reply = reply_ok(204, NULL);
        else
            reply = messaging_internal("read update");
        json_decref(payload);
    }
    PQclear(res);
    if (reply_status(reply) == 204) {
        if (db_commit(call->db) != 0) {
            json_decref(reply);
            reply = messaging_internal("read commit");
        }
    } else {
        db_rollback(call->db);
    }
    return reply;
}

//  ---------------------------------------------------------------------
//  Sharing a post

//  Sorts decimal id strings numerically (lock order: see posts_share).
static int s_compare_ids(const void *a, const void *b)
{
    long long x = strtoll(json_string_value(*(json_t *const *)a), NULL, 10);
    long long y = strtoll(json_string_value(*(json_t *const *)b), NULL, 10);
    return (x > y) - (x < y);
}

json_t *posts_share(call_t *call)
{
    json_t *fields = json_object();
    const char *text = NULL;
    int64_t post_id = 0;
    args_string(call->args, "text", false, 0, MESSAGING_TEXT_MAX, &text, fields);
    messaging_names_arg(call->args, "to", fields);
    if (!json_object_get(fields, "to") &&
        json_array_size(json_object_get(call->args, "to")) > MESSAGING_SHARE_MAX)
        json_object_set_new(fields, "to", json_string("share with at most 32 people at once"));
    bool known = messaging_path_id(call->args, "id", &post_id);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    if (!known) return reply_error(404, ERR_NOT_FOUND, "no such post");

    json_t *error = NULL, *reply = NULL, *users = NULL, *recipients = NULL;
    json_t *post = s_visible_post(call, post_id, &error);
    if (!post) return error;
    recipients = messaging_resolve_names(call, json_object_get(call->args, "to"), &error);
    if (!recipients) {
        reply = error;
        goto cleanup;
    }
    if (json_array_size(recipients) == 0) {
        reply = reply_invalid(json_pack("{s:s}", "to", "must name someone other than you"),
                              "some fields are not valid");
        goto cleanup;
    }
    if (peers_any_blocked(call, recipients)) {
        reply = reply_error(404, ERR_NOT_FOUND, "no such user");
        goto cleanup;
    }
    if (!(users = s_viewer_users(call, &error))) {
        reply = error;
        goto cleanup;
    }

    //  One transaction for every recipient, locking their conversations in
    //  recipient id order, so two shares by the same person cannot
    //  deadlock.
    size_t count = json_array_size(recipients);
    json_t **sorted = calloc(count, sizeof *sorted);
    if (!sorted) {
        reply = messaging_internal("share allocation");
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++)
        sorted[i] = json_array_get(recipients, i);
    qsort(sorted, count, sizeof *sorted, s_compare_ids);

    json_t *posts = json_object();
    json_object_set(posts, json_string_value(json_object_get(post, "id")), post);
    json_t *messages = json_array();
    bool ok = db_begin(call->db) == 0;
    for (size_t i = 0; ok && i < count; i++) {
        int64_t other = 0, conversation = 0;
        bool created = false;
        ok = ids_parse(json_string_value(sorted[i]), &other) &&
             conversations_pair(call->db, call->viewer_id, other, &conversation, &created) == 0;
        PGresult *row =
            ok ? s_insert(call->db, conversation, call->viewer_id, text, post_id, NULL) : NULL;
        if (row) json_array_append_new(messages, message_json(row, 0, 0, users, posts));
        ok = ok && row;
        PQclear(row);
    }
    if (ok && db_commit(call->db) == 0) {
        reply = reply_ok(201, json_pack("{s:o}", "messages", messages));
    } else {
        db_rollback(call->db);
        json_decref(messages);
        reply = messaging_internal("share");
    }
    json_decref(posts);
    free(sorted);

cleanup:
    json_decref(post);
    json_decref(users);
    json_decref(recipients);
    return reply;
}
