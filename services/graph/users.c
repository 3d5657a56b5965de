/*  users: graph's projection of identity's users (id, username,
    is_private) and the handlers of identity's user events.

    The projection answers "who is @ann" and "is she private" without a
    round trip to identity. It is fed by identity.user.created / updated /
    deleted; when a lookup misses (the event has not arrived yet, a few
    milliseconds after a registration), graph asks identity
    (users.by_username or users.batch, never decorated, so identity does not
    call graph back) and keeps the answer with INSERT … ON CONFLICT DO
    NOTHING: the event, when it comes, is the authority.

    Event ordering against the fallback: user.created is the oldest state
    of an account, so it never overwrites a row the fallback already wrote
    (which may say private); user.updated always overwrites. Deleted ids go
    to deleted_users, so a fallback answer that raced the deletion cannot
    bring the user back. Usernames never change in identity and are unique
    there, so a row holding the same username under another id belongs to
    a deleted account whose event is still on its way: it is replaced.

    user.updated with is_private false approves every pending request to
    the account (API.md: making an account public approves its pending
    requests), in the event's own transaction. It runs whenever the account
    is public, not only on a change, so it is idempotent and also catches a
    request created while the projection still said private.

    user.deleted removes every follow (emitting follow.deleted for each, so
    feeds drop the posts), request and block of the user, with set-based
    statements and one counts update for everyone affected.
*/
#include "graph.h"
#include "args.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

#define USERNAME_MAX 30

//  ---- projection writes ---------------------------------------------------------

//  Replaces a stale row holding username under another id. 0 or -1.
static int s_drop_stale_username(db_t *db, const char *id_text, const char *username)
{
    const char *params[] = {id_text, username};
    return db_exec(db, "DELETE FROM users WHERE username = $2 AND id <> $1::bigint", 2, params) < 0
               ? -1
               : 0;
}

int graph_users_remember(db_t *db, const json_t *users)
{
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        const char *id = json_string_value(json_object_get(user, "id"));
        const char *username = json_string_value(json_object_get(user, "username"));
        json_t *is_private = json_object_get(user, "is_private");
        int64_t parsed = 0;
        if (!id || !username || !json_is_boolean(is_private) || !ids_parse(id, &parsed)) continue;
        const char *params[] = {id, username, json_is_true(is_private) ? "true" : "false"};
        if (s_drop_stale_username(db, id, username) != 0 ||
            db_exec(db,
                    "INSERT INTO users (id, username, is_private)"
                    " SELECT $1::bigint, $2, $3::boolean"
                    " WHERE NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = $1::bigint)"
                    " ON CONFLICT DO NOTHING",
                    3, params) < 0)
            return -1;
    }
    return 0;
}

//  ---- lookups --------------------------------------------------------------------

//  An error reply standing for identity's failed reply.
static json_t *s_identity_failure(const json_t *reply)
{
    int status = reply_status(reply);
    if (status == 503) return reply_error(503, ERR_UNAVAILABLE, "a service is unavailable");
    if (status == 504) return reply_error(504, ERR_TIMEOUT, "a service did not answer in time");
    log_error("identity answered %d to a lookup", status);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

//  Whether text can be a username; lower-cases it into out.
static bool s_username_shape(const char *text, size_t length, char *out)
{
    if (length == 0 || length > USERNAME_MAX) return false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
            return false;
        out[i] = c;
    }
    out[length] = '\0';
    return true;
}

json_t *graph_user_by_username_arg(call_t *call, graph_user_t *user)
{
    json_t *fields = json_object();
    const char *text = NULL;
    if (args_string(call->args, "username", true, 0, SIZE_MAX, &text, fields) != 1)
        return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    //  A name that cannot be valid cannot exist: unknown, not invalid.
    char username[USERNAME_MAX + 1];
    if (!s_username_shape(text, strlen(text), username)) return graph_not_found();

    const char *params[] = {username};
    PGresult *res =
        db_query(call->db, "SELECT id, is_private FROM users WHERE username = $1", 1, params);
    if (!res) return graph_internal("username lookup");
    if (PQntuples(res) == 1) {
        ids_parse(PQgetvalue(res, 0, 0), &user->id);
        user->is_private = PQgetvalue(res, 0, 1)[0] == 't';
        PQclear(res);
        return NULL;
    }
    PQclear(res);

    //  Not (yet) in the projection: ask identity.
    json_t *args = json_pack("{s:s}", "username", username);
    json_t *reply = rpc_call(call->rpc, "identity", "users.by_username", 0, args, NULL,
                             call->request->deadline_ms);
    json_decref(args);
    json_t *found = reply_body(reply);
    json_t *result = NULL;
    if (reply_status(reply) == 404) {
        result = graph_not_found();
    } else if (reply_status(reply) != 200 || !json_is_object(found)) {
        result = s_identity_failure(reply);
    } else {
        const char *id = json_string_value(json_object_get(found, "id"));
        if (!id || !ids_parse(id, &user->id)) {
            result = graph_internal("identity users.by_username reply");
        } else {
            user->is_private = json_is_true(json_object_get(found, "is_private"));
            json_t *list = json_pack("[O]", found);
            if (graph_users_remember(call->db, list) != 0) result = graph_internal("remember user");
            json_decref(list);
        }
    }
    json_decref(reply);
    return result;
}

//  Locks and reads the rows of a and b. Returns how many of the two were
//  found (a == b counts twice), or -1.
static int s_lock_rows(db_t *db, int64_t a, int64_t b, graph_user_t *out_a, graph_user_t *out_b,
                       bool *has_a, bool *has_b)
{
    int64_t pair[2] = {a, b};
    char *array = graph_id_array(2, pair);
    const char *params[] = {array};
    PGresult *res = db_query(db,
                             "SELECT id, is_private FROM users WHERE id = ANY($1::bigint[])"
                             " ORDER BY id FOR SHARE",
                             1, params);
    free(array);
    if (!res) return -1;
    *has_a = *has_b = false;
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t id = 0;
        ids_parse(PQgetvalue(res, row, 0), &id);
        bool is_private = PQgetvalue(res, row, 1)[0] == 't';
        if (id == a) {
            *has_a = true;
            if (out_a) *out_a = (graph_user_t){id, is_private};
        }
        if (id == b) {
            *has_b = true;
            if (out_b) *out_b = (graph_user_t){id, is_private};
        }
    }
    PQclear(res);
    return (*has_a ? 1 : 0) + (*has_b ? 1 : 0);
}

json_t *graph_begin_pair(call_t *call, int64_t a, int64_t b, graph_user_t *out_a,
                         graph_user_t *out_b)
{
    db_t *db = call->db;
    bool has_a = false, has_b = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (db_begin(db) != 0) return graph_internal("begin");
        if (s_lock_rows(db, a, b, out_a, out_b, &has_a, &has_b) < 0) {
            db_rollback(db);
            return graph_internal("lock users");
        }
        if (has_a && has_b) {
            //  Step 2 of the locking order (graph.h), after the rows.
            if (graph_lock_pair(db, a, b) == 0) return NULL;
            db_rollback(db);
            return graph_internal("lock pair");
        }
        db_rollback(db);
        if (attempt == 1) break;
        //  One of them is not in the projection yet: ask identity once.
        json_t *ids = json_array();
        char text[GRAPH_ID_TEXT];
        if (!has_a) {
            ids_format(a, text, sizeof text);
            json_array_append_new(ids, json_string(text));
        }
        if (!has_b && b != a) {
            ids_format(b, text, sizeof text);
            json_array_append_new(ids, json_string(text));
        }
        json_t *args = json_pack("{s:o}", "ids", ids);
        json_t *reply = rpc_call(call->rpc, "identity", "users.batch", 0, args, NULL,
                                 call->request->deadline_ms);
        json_decref(args);
        json_t *users = json_object_get(reply_body(reply), "users");
        if (reply_status(reply) != 200 || !json_is_array(users)) {
            json_t *failure = s_identity_failure(reply);
            json_decref(reply);
            return failure;
        }
        int rc = graph_users_remember(db, users);
        json_decref(reply);
        if (rc != 0) return graph_internal("remember users");
    }
    //  The viewer first: a deleted account acting with a token still valid.
    if (!has_a) return graph_signed_out();
    return graph_not_found();
}

//  ---- identity events ------------------------------------------------------------

//  Reads {id, username, is_private} of a user event. false when malformed.
static bool s_user_payload(const event_t *event, const char **id, const char **username,
                           bool *is_private)
{
    const json_t *payload = event->payload;
    *id = json_string_value(json_object_get(payload, "id"));
    *username = json_string_value(json_object_get(payload, "username"));
    json_t *flag = json_object_get(payload, "is_private");
    int64_t parsed = 0;
    char ignored[USERNAME_MAX + 1];
    if (!*id || !ids_parse(*id, &parsed) || !*username ||
        !s_username_shape(*username, strlen(*username), ignored) || !json_is_boolean(flag)) {
        log_error("identity.%s seq %lld: malformed payload, skipped", event->topic,
                  (long long)event->seq);
        return false;
    }
    *is_private = json_is_true(flag);
    return true;
}

//  Writes the event's user into the projection. user.created never
//  changes is_private of a row already there; user.updated does unless the
//  row holds a newer version (users.privacy got there first). Sets
//  *is_private_out to the flag the row holds afterwards. 0, or -1 to retry.
static int s_upsert(db_t *db, const event_t *event, bool overwrite_private, int64_t *id_out,
                    bool *is_private_out)
{
    const char *id = NULL, *username = NULL;
    bool is_private = false;
    *id_out = 0;
    if (!s_user_payload(event, &id, &username, &is_private)) return 0; // skipped
    json_t *version_value = json_object_get(event->payload, "version");
    char version[24];
    snprintf(version, sizeof version, "%lld",
             json_is_integer(version_value) ? (long long)json_integer_value(version_value) : 0LL);
    const char *params[] = {id, username, is_private ? "true" : "false", version};
    PGresult *res = db_query(db, "SELECT 1 FROM deleted_users WHERE id = $1::bigint", 1, params);
    if (!res) return -1;
    bool deleted = PQntuples(res) > 0;
    PQclear(res);
    if (deleted) return 0;
    if (s_drop_stale_username(db, id, username) != 0) return -1;
    const char *sql =
        overwrite_private
            ? "INSERT INTO users (id, username, is_private, version)"
              " VALUES ($1::bigint, $2, $3::boolean, $4::bigint) ON CONFLICT (id) DO UPDATE"
              " SET username = EXCLUDED.username,"
              " is_private = CASE WHEN EXCLUDED.version >= users.version"
              "  THEN EXCLUDED.is_private ELSE users.is_private END,"
              " version = greatest(users.version, EXCLUDED.version)"
              " RETURNING is_private"
            : "INSERT INTO users (id, username, is_private, version)"
              " VALUES ($1::bigint, $2, $3::boolean, $4::bigint) ON CONFLICT (id) DO UPDATE"
              " SET username = EXCLUDED.username RETURNING is_private";
    PGresult *written = db_query(db, sql, 4, params);
    if (!written) return -1;
    *is_private_out = PQntuples(written) == 1 ? PQgetvalue(written, 0, 0)[0] == 't' : is_private;
    PQclear(written);
    ids_parse(id, id_out);
    return 0;
}

int users_on_created(db_t *db, const event_t *event, void *state)
{
    int64_t id = 0;
    bool is_private = false;
    return s_upsert(db, event, false, &id, &is_private);
}

int users_on_updated(db_t *db, const event_t *event, void *state)
{
    int64_t id = 0;
    bool is_private = false;
    if (s_upsert(db, event, true, &id, &is_private) != 0) return -1;
    if (id > 0 && !is_private) return requests_approve_all(db, id);
    return 0;
}

//  users.privacy {is_private}: identity's PATCH /me tells graph of the
//  viewer's own privacy switch before it answers. Without it graph would
//  learn of the switch only from user.updated, some milliseconds after the
//  client has its 200 and may already be asking again: a post of an
//  account just made private would still show to a non-follower, whose
//  access graph decides (relations.visible). Same effect as the event's
//  handler, which still runs later and finds nothing left to do. Both
//  carry identity's row version (schemas/graph/002_user_version.sql), so
//  whichever comes second cannot set an older value back. A row graph
//  does not hold yet is left to user.created.
json_t *users_privacy(call_t *call)
{
    if (call->viewer_id <= 0) return graph_signed_out();
    json_t *fields = json_object();
    bool is_private = false;
    int64_t version = 0;
    args_bool(call->args, "is_private", true, &is_private, fields);
    args_int(call->args, "version", true, 0, INT64_MAX, &version, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    char id[GRAPH_ID_TEXT], version_text[24];
    ids_format(call->viewer_id, id, sizeof id);
    snprintf(version_text, sizeof version_text, "%lld", (long long)version);
    const char *params[] = {id, is_private ? "true" : "false", version_text};
    db_t *db = call->db;
    if (db_begin(db) != 0) return graph_internal("begin");
    json_t *error = NULL;
    //  Only over an older version: a later switch may have been applied
    //  already (its event, or its own call) while this one was on its way.
    int changed = db_exec(db,
                          "UPDATE users SET is_private = $2::boolean, version = $3::bigint"
                          " WHERE id = $1::bigint AND version <= $3::bigint",
                          3, params);
    if (changed < 0 ||
        (changed == 1 && !is_private && requests_approve_all(db, call->viewer_id) != 0))
        error = graph_internal("privacy switch");
    else if (db_commit(db) != 0)
        error = graph_internal("commit");
    if (db_in_transaction(db)) db_rollback(db);
    return error ? error : reply_ok(200, json_object());
}

//  The counter changes a deletion causes to the other side of each edge.
typedef struct {
    size_t count, size;
    int64_t *users;
    int *followers;
    int *following;
} changes_t;

static void s_changes_add(changes_t *self, int64_t user, int followers, int following)
{
    if (self->count == self->size) {
        self->size = self->size ? 2 * self->size : 64;
        self->users = realloc(self->users, self->size * sizeof *self->users);
        self->followers = realloc(self->followers, self->size * sizeof *self->followers);
        self->following = realloc(self->following, self->size * sizeof *self->following);
        assert(self->users && self->followers && self->following);
    }
    self->users[self->count] = user;
    self->followers[self->count] = followers;
    self->following[self->count] = following;
    self->count++;
}

//  Deletes with sql ($1 the user) returning (a, b) pairs and emits topic
//  {a_name, b_name} for each. For follows (changes not NULL), also
//  collects the counter changes of the other side. Returns rows or -1.
static int s_delete_pairs(db_t *db, const char *sql, const char *id_text, const char *topic,
                          const char *a_name, const char *b_name, int64_t user, changes_t *changes)
{
    const char *params[] = {id_text};
    PGresult *res = db_query(db, sql, 1, params);
    if (!res) return -1;
    int rows = PQntuples(res);
    for (int row = 0; row < rows; row++) {
        int64_t a = 0, b = 0;
        ids_parse(PQgetvalue(res, row, 0), &a);
        ids_parse(PQgetvalue(res, row, 1), &b);
        if (graph_emit_pair(db, topic, a_name, a, b_name, b, 0) != 0) {
            PQclear(res);
            return -1;
        }
        //  The deleted user's own counters go with its counts row; the
        //  other side loses a follower (a == user) or a followee.
        if (changes)
            s_changes_add(changes, a == user ? b : a, a == user ? -1 : 0, a == user ? 0 : -1);
    }
    PQclear(res);
    return rows;
}

int users_on_deleted(db_t *db, const event_t *event, void *state)
{
    const char *id = json_string_value(json_object_get(event->payload, "id"));
    int64_t user = 0;
    if (!id || !ids_parse(id, &user)) {
        log_error("identity.user.deleted seq %lld: malformed payload, skipped",
                  (long long)event->seq);
        return 0;
    }
    const char *params[] = {id};
    //  The projection row first: its lock makes in-flight follows to this
    //  user finish (or fail) before the edges are collected.
    if (db_exec(db, "DELETE FROM users WHERE id = $1::bigint", 1, params) < 0 ||
        db_exec(db, "INSERT INTO deleted_users (id) VALUES ($1::bigint) ON CONFLICT DO NOTHING", 1,
                params) < 0)
        return -1;

    changes_t changes = {0, 0, NULL, NULL, NULL};
    int rc = -1;
    if (s_delete_pairs(
            db,
            "DELETE FROM follows WHERE follower_id = $1::bigint OR followee_id = $1::bigint"
            " RETURNING follower_id, followee_id",
            id, "follow.deleted", "follower_id", "followee_id", user, &changes) < 0 ||
        s_delete_pairs(db,
                       "DELETE FROM follow_requests WHERE follower_id = $1::bigint"
                       " OR followee_id = $1::bigint RETURNING follower_id, followee_id",
                       id, "follow.request_deleted", "follower_id", "followee_id", user,
                       NULL) < 0 ||
        s_delete_pairs(db,
                       "DELETE FROM blocks WHERE blocker_id = $1::bigint OR blocked_id = $1::bigint"
                       " RETURNING blocker_id, blocked_id",
                       id, "block.deleted", "blocker_id", "blocked_id", user, NULL) < 0 ||
        db_exec(db, "DELETE FROM counts WHERE user_id = $1::bigint", 1, params) < 0)
        goto cleanup;

    if (graph_counts_apply(db, changes.count, changes.users, changes.followers,
                           changes.following) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    free(changes.users);
    free(changes.followers);
    free(changes.following);
    return rc;
}
