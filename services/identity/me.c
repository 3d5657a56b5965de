/*  me: the signed-in user's own account (me.get, me.update, me.password,
    me.delete).

    Every handler acts on call->viewer_id only, which the gateway sets from
    the verified access token; no argument can name another user. A viewer
    whose account no longer exists (deleted while the access token is still
    within its 15 minutes) gets 401 unauthenticated, as if signed out.

    me.update writes every field in one UPDATE with COALESCE over NULL
    parameters, so absent fields keep their value and the statement stays
    one prepared statement whatever combination arrives.

    me.password keeps the session that made it (API.md "Tokens") and
    revokes every other: the access token names its refresh-token family
    (the sid claim, tokens.c), which the gateway passes as args.session_id.
    A client may also name a session by sending its current
    `refresh_token`; that family is kept too. With neither (an access
    token without sid, say one from before sid existed) every session of
    the user is revoked.

    me.avatar_put stores the request's blob (the image of PUT /me/avatar)
    through media images.store {kind: "avatar"} (media checks, crops and
    re-encodes it) and keeps the key it answers; me.avatar_delete forgets
    the key. Both emit user.updated with avatar_key, from which media
    learns which avatar file is in use (the replaced one is collected).

    me.get and me.update answer the decorated user (common/users.h):
    graph's counts and media's posts_count. They decorate as an anonymous
    viewer would: the relation fields of a user to itself say nothing, and
    /me is the public user plus email and created_at.
*/
#include "identity.h"
#include "args.h"
#include "envelope.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>
#include <string.h>

#define REFRESH_TOKEN_MAX 512
//  At most this long for graph or media to take a change handed to them
//  before the answer (s_hand_over).
#define IDENTITY_SYNC_CALL_MS 1000

static json_t *s_signed_out(void)
{
    return reply_error(401, ERR_UNAUTHENTICATED, "sign in first");
}

//  200 with the viewer's own user object (taken), decorated with counts.
static json_t *s_me_reply(call_t *call, json_t *user_stolen)
{
    json_t *users = json_pack("[o]", user_stolen);
    users_decorate(call->rpc, 0, users, 0, call->request->deadline_ms);
    json_t *reply = reply_ok(200, json_incref(json_array_get(users, 0)));
    json_decref(users);
    return reply;
}

//  Loads the viewer's row into *res_p. NULL when it did, else the reply.
static json_t *s_load_viewer(call_t *call, PGresult **res_p)
{
    *res_p = NULL;
    if (call->viewer_id <= 0) return s_signed_out();
    PGresult *res = store_user_by_id(call->db, call->viewer_id, false);
    if (!res) return identity_internal("user lookup");
    if (PQntuples(res) != 1) {
        PQclear(res);
        return s_signed_out();
    }
    *res_p = res;
    return NULL;
}

//  The 400 reply when args checks filled fields, else NULL (fields freed).
static json_t *s_fields_reply(json_t *fields)
{
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    return NULL;
}

//  Loads the viewer's row into *res_p and checks password against it, for
//  the changes that ask for it again. NULL when right, else the reply (401
//  as s_load_viewer; 403 with message when the password is wrong).
static json_t *s_load_viewer_confirmed(call_t *call, const char *password, const char *message,
                                       PGresult **res_p)
{
    json_t *reply = s_load_viewer(call, res_p);
    if (reply) return reply;
    if (password_verify(identity_of(call), PQgetvalue(*res_p, 0, COL_PASSWORD_HASH), password))
        return NULL;
    PQclear(*res_p);
    *res_p = NULL;
    return reply_error(403, ERR_INVALID_CREDENTIALS, message);
}

//  Inside the transaction of a change to the viewer's row: res is what the
//  UPDATE ... RETURNING answered (no row: the account is gone, 401).
//  Emits user.updated with the new row. NULL, or the error reply.
static json_t *s_emit_user_updated(db_t *db, PGresult *res)
{
    if (PQntuples(res) != 1) return s_signed_out();
    json_t *payload = store_user_event(res, 0, true);
    int rc = events_emit(db, "user.updated", payload);
    json_decref(payload);
    return rc == 0 ? NULL : identity_internal("emit user.updated");
}

//  Ends a handler's transaction: with error NULL commits (a failed commit
//  is a 500), else rolls back. Returns error, or NULL once committed.
static json_t *s_finish(db_t *db, json_t *error)
{
    if (!error && db_commit(db) != 0) error = identity_internal("commit");
    if (db_in_transaction(db)) db_rollback(db);
    return error;
}

json_t *me_get(call_t *call)
{
    PGresult *res = NULL;
    json_t *reply = s_load_viewer(call, &res);
    if (reply) return reply;
    reply = s_me_reply(call, store_user_json(res, 0, USER_ME));
    PQclear(res);
    return reply;
}

//  Hands service.method the change this request has just committed, before
//  the answer, so that the client's next request already meets it there
//  instead of waiting for the user.updated event (which still follows and
//  then changes nothing: both carry the row's version). Best effort: a
//  peer that does not answer within IDENTITY_SYNC_CALL_MS gets the change
//  from the event a few milliseconds later. args is stolen.
static void s_hand_over(call_t *call, const char *service, const char *method, json_t *args)
{
    int64_t deadline = envelope_now_ms() + IDENTITY_SYNC_CALL_MS;
    if (call->request->deadline_ms > 0 && call->request->deadline_ms < deadline)
        deadline = call->request->deadline_ms;
    json_t *reply = rpc_call(call->rpc, service, method, call->viewer_id, args, NULL, deadline);
    int status = reply_status(reply);
    if (status != 200)
        log_warn("%s %s answered %d: the change reaches it with user.updated", service, method,
                 status);
    json_decref(args);
    json_decref(reply);
}

//  Graph decides who sees a private account's posts from its own copy of
//  is_private (graph users.privacy); media renders post authors (the
//  avatar) from its projection of user.updated (media users.sync).
static void s_hand_over_change(call_t *call, const PGresult *res, bool privacy_changed)
{
    int64_t version = strtoll(PQgetvalue(res, 0, COL_VERSION), NULL, 10);
    if (privacy_changed)
        s_hand_over(call, "graph", "users.privacy",
                    json_pack("{s:b, s:I}", "is_private",
                              streq(PQgetvalue(res, 0, COL_IS_PRIVATE), "t"), "version",
                              (json_int_t)version));
    s_hand_over(call, "media", "users.sync", store_user_event(res, 0, true));
}

json_t *me_update(call_t *call)
{
    if (call->viewer_id <= 0) return s_signed_out();
    json_t *fields = json_object();
    const char *display_name = NULL, *bio = NULL, *website = NULL, *email = NULL;
    bool is_private = false;
    int present = 0;
    int rc;
    rc = args_string(call->args, "display_name", false, 0, IDENTITY_DISPLAY_NAME_MAX, &display_name,
                     fields);
    present += rc != 0;
    rc = args_string(call->args, "bio", false, 0, IDENTITY_BIO_MAX, &bio, fields);
    present += rc != 0;
    rc = args_string(call->args, "website", false, 0, IDENTITY_WEBSITE_MAX, &website, fields);
    present += rc != 0;
    if (rc == 1) validate_website(website, fields);
    int private_rc = args_bool(call->args, "is_private", false, &is_private, fields);
    present += private_rc != 0;
    rc = args_string(call->args, "email", false, 1, IDENTITY_EMAIL_MAX, &email, fields);
    present += rc != 0;
    if (rc == 1) validate_email(email, fields);
    json_t *reply = s_fields_reply(fields);
    if (reply) return reply;
    if (present == 0) return me_get(call); // an empty PATCH changes nothing

    db_t *db = call->db;
    PGresult *res = NULL;
    char id_text[21];
    ids_format(call->viewer_id, id_text, sizeof id_text);
    const char *params[] = {id_text,
                            display_name,
                            bio,
                            website,
                            private_rc == 1 ? (is_private ? "true" : "false") : NULL,
                            email};
    if (db_begin(db) != 0) return identity_internal("begin");
    res = db_query(db,
                   "UPDATE users SET display_name = COALESCE($2, display_name),"
                   " bio = COALESCE($3, bio), website = COALESCE($4, website),"
                   " is_private = COALESCE($5::boolean, is_private),"
                   " email = COALESCE($6, email), updated_at = now(), version = version + 1"
                   " WHERE id = $1 RETURNING " STORE_USER_COLUMNS,
                   6, params);
    if (!res) {
        bool conflict = db_last_was_unique_violation(db);
        db_rollback(db);
        if (!conflict) {
            reply = identity_internal("update user");
            goto cleanup;
        }
        json_t *taken = json_object();
        if (store_conflicts(db, NULL, email, call->viewer_id, taken) < 0) {
            json_decref(taken);
            reply = identity_internal("conflict check");
        } else {
            reply = identity_conflict(taken);
        }
        goto cleanup;
    }
    reply = s_emit_user_updated(db, res);
cleanup:
    reply = s_finish(db, reply);
    if (!reply) s_hand_over_change(call, res, private_rc == 1);
    if (!reply) reply = s_me_reply(call, store_user_json(res, 0, USER_ME));
    PQclear(res);
    return reply;
}

json_t *me_password(call_t *call)
{
    if (call->viewer_id <= 0) return s_signed_out();
    json_t *fields = json_object();
    const char *current = NULL, *next = NULL, *keep = NULL;
    args_string(call->args, "current_password", true, 1, IDENTITY_PASSWORD_MAX, &current, fields);
    args_string(call->args, "new_password", true, IDENTITY_PASSWORD_MIN, IDENTITY_PASSWORD_MAX,
                &next, fields);
    args_string(call->args, "refresh_token", false, 1, REFRESH_TOKEN_MAX, &keep, fields);
    json_t *reply = s_fields_reply(fields);
    if (reply) return reply;
    //  Set by the gateway from the verified token, never by the client.
    int64_t session = 0;
    const char *session_text = json_string_value(json_object_get(call->args, "session_id"));
    if (session_text && !ids_parse(session_text, &session)) session = 0;

    PGresult *res = NULL;
    reply = s_load_viewer_confirmed(call, current, "the current password is wrong", &res);
    if (reply) return reply;
    db_t *db = call->db;
    char hash[crypto_pwhash_STRBYTES];
    if (password_hash(identity_of(call), next, hash) != 0) {
        reply = identity_internal("password hashing");
        goto cleanup;
    }
    const char *params[] = {PQgetvalue(res, 0, COL_ID), hash};
    if (db_begin(db) != 0) {
        reply = identity_internal("begin");
        goto cleanup;
    }
    if (db_exec(db, "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", 2,
                params) != 1 ||
        tokens_revoke_others(db, call->viewer_id, session, keep) != 0)
        reply = identity_internal("password change");
cleanup:
    reply = s_finish(db, reply);
    if (!reply) {
        log_info("password changed for user %s", PQgetvalue(res, 0, COL_ID));
        reply = reply_ok(204, NULL);
    }
    PQclear(res);
    return reply;
}

json_t *me_delete(call_t *call)
{
    if (call->viewer_id <= 0) return s_signed_out();
    json_t *fields = json_object();
    const char *password = NULL;
    args_string(call->args, "password", true, 1, IDENTITY_PASSWORD_MAX, &password, fields);
    json_t *reply = s_fields_reply(fields);
    if (reply) return reply;

    PGresult *res = NULL;
    reply = s_load_viewer_confirmed(call, password, "the password is wrong", &res);
    if (reply) return reply;
    db_t *db = call->db;
    json_t *payload = NULL;
    const char *params[] = {PQgetvalue(res, 0, COL_ID)};
    if (db_begin(db) != 0) {
        reply = identity_internal("begin");
        goto cleanup;
    }
    //  The tokens go with the user (ON DELETE CASCADE too); deleting them
    //  first keeps the intent visible here.
    long deleted = -1;
    if (db_exec(db, "DELETE FROM refresh_tokens WHERE user_id = $1", 1, params) >= 0)
        deleted = db_exec(db, "DELETE FROM users WHERE id = $1", 1, params);
    if (deleted < 0) {
        reply = identity_internal("delete user");
        goto cleanup;
    }
    if (deleted == 0) { // deleted concurrently by another request
        reply = s_signed_out();
        goto cleanup;
    }
    payload = json_object();
    json_object_set_new(payload, "id", json_string(PQgetvalue(res, 0, COL_ID)));
    json_object_set_new(payload, "username", json_string(PQgetvalue(res, 0, COL_USERNAME)));
    if (events_emit(db, "user.deleted", payload) != 0)
        reply = identity_internal("emit user.deleted");
cleanup:
    reply = s_finish(db, reply);
    if (!reply) {
        log_info("deleted user %s", PQgetvalue(res, 0, COL_ID));
        reply = reply_ok(204, NULL);
    }
    json_decref(payload);
    PQclear(res);
    return reply;
}

//  Sets (key) or clears (NULL) the viewer's avatar; emits user.updated.
static json_t *s_set_avatar(call_t *call, const char *key)
{
    db_t *db = call->db;
    char id_text[21];
    ids_format(call->viewer_id, id_text, sizeof id_text);
    const char *params[] = {id_text, key};
    if (db_begin(db) != 0) return identity_internal("begin");
    PGresult *res =
        db_query(db,
                 "UPDATE users SET avatar_key = $2, updated_at = now(), version = version + 1"
                 " WHERE id = $1"
                 " RETURNING " STORE_USER_COLUMNS,
                 2, params);
    json_t *reply =
        s_finish(db, res ? s_emit_user_updated(db, res) : identity_internal("update avatar"));
    if (!reply) s_hand_over_change(call, res, false);
    if (!reply) reply = s_me_reply(call, store_user_json(res, 0, USER_ME));
    PQclear(res);
    return reply;
}

json_t *me_avatar_put(call_t *call)
{
    if (call->viewer_id <= 0) return s_signed_out();
    if (!call->blob || call->blob_size == 0)
        return reply_invalid(json_pack("{s:s}", "image", "is required"), "no image was sent");
    PGresult *res = NULL;
    json_t *reply = s_load_viewer(call, &res);
    if (reply) return reply;
    PQclear(res);
    json_t *args = json_pack("{s:s}", "kind", "avatar");
    json_t *stored =
        rpc_call_blob(call->rpc, "media", "images.store", call->viewer_id, args, call->blob,
                      call->blob_size, NULL, call->request->deadline_ms, NULL, NULL);
    json_decref(args);
    int status = reply_status(stored);
    const char *key = json_string_value(json_object_get(reply_body(stored), "key"));
    if (status >= 400) return stored; // 413, 415, 503...: the client learns why
    if (!key || !*key || strlen(key) > 64) {
        json_decref(stored);
        return identity_internal("images.store reply");
    }
    reply = s_set_avatar(call, key);
    json_decref(stored);
    return reply;
}

json_t *me_avatar_delete(call_t *call)
{
    if (call->viewer_id <= 0) return s_signed_out();
    return s_set_avatar(call, NULL);
}
