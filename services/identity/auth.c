/*  auth: register, login, refresh, logout.

    Each handler validates every argument first (so one 400 names every bad
    field), does the slow argon2id work outside any transaction (it takes
    tens of milliseconds and must not hold row locks), then makes its change,
    its refresh token and its event in one transaction, and signs the access
    token before committing so a signing failure leaves nothing behind.

    Login answers the same 401 invalid_credentials, after the same argon2id
    work, whether the user is unknown or the password is wrong.
*/
#include "identity.h"
#include "args.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

#define REFRESH_TOKEN_MAX 512

//  The username or email conflict reply; -1 from store_conflicts means the
//  database failed, and no conflict found (a race lost and then undone)
//  still answers 409 without fields.
static json_t *s_conflict_reply(db_t *db, const char *username, const char *email)
{
    json_t *fields = json_object();
    if (store_conflicts(db, username, email, 0, fields) < 0) {
        json_decref(fields);
        return identity_internal("conflict check");
    }
    return identity_conflict(fields);
}

//  Ends a sign-in inside its open transaction: the session body for the
//  user row in res, the commit, and the reply with status. On failure the
//  transaction is left open for the caller's cleanup to roll back.
static json_t *s_commit_session(const identity_t *self, db_t *db, PGresult *res, int64_t user_id,
                                int64_t family, const char *refresh, int status)
{
    json_t *body =
        tokens_session_body(self, store_user_json(res, 0, USER_ME), user_id, family, refresh);
    if (!body) return identity_internal("access token");
    if (db_commit(db) != 0) {
        json_decref(body);
        return identity_internal("commit");
    }
    return reply_ok(status, body);
}

json_t *auth_register(call_t *call)
{
    identity_t *self = identity_of(call);
    db_t *db = call->db;
    json_t *reply = NULL;
    PGresult *res = NULL;
    json_t *fields = json_object();
    const char *username_in = NULL, *email = NULL, *password = NULL, *display_name = "";
    char username[IDENTITY_USERNAME_MAX + 1] = "";

    if (args_string(call->args, "username", true, 1, IDENTITY_USERNAME_MAX, &username_in, fields) ==
        1)
        validate_username(username_in, username, sizeof username, fields);
    if (args_string(call->args, "email", true, 1, IDENTITY_EMAIL_MAX, &email, fields) == 1)
        validate_email(email, fields);
    args_string(call->args, "password", true, IDENTITY_PASSWORD_MIN, IDENTITY_PASSWORD_MAX,
                &password, fields);
    args_string(call->args, "display_name", false, 0, IDENTITY_DISPLAY_NAME_MAX, &display_name,
                fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");

    //  Checked before hashing to spare the work; the unique indexes below
    //  still decide a race between two registrations.
    int taken = store_conflicts(db, username, email, 0, fields);
    if (taken != 0) {
        if (taken < 0) {
            json_decref(fields);
            return identity_internal("conflict check");
        }
        return identity_conflict(fields);
    }
    json_decref(fields);

    char hash[crypto_pwhash_STRBYTES];
    if (password_hash(self, password, hash) != 0) return identity_internal("password hashing");

    int64_t id = ids_next();
    char id_text[21];
    ids_format(id, id_text, sizeof id_text);
    char refresh[TOKENS_TEXT_SIZE];
    json_t *payload = NULL;

    if (db_begin(db) != 0) return identity_internal("begin");
    const char *params[] = {id_text, username, email, hash, display_name};
    res = db_query(db,
                   "INSERT INTO users (id, username, email, password_hash, display_name)"
                   " VALUES ($1, $2, $3, $4, $5) RETURNING " STORE_USER_COLUMNS,
                   5, params);
    if (!res || PQntuples(res) != 1) {
        bool conflict = db_last_was_unique_violation(db);
        db_rollback(db);
        reply = conflict ? s_conflict_reply(db, username, email) : identity_internal("insert user");
        goto cleanup;
    }
    payload = store_user_event(res, 0, false);
    int64_t family = 0;
    if (tokens_create(db, id, 0, refresh, &family) != 0 ||
        events_emit(db, "user.created", payload) != 0) {
        reply = identity_internal("register");
        goto cleanup;
    }
    reply = s_commit_session(self, db, res, id, family, refresh, 201);
    if (reply_status(reply) == 201) log_info("registered user %s", id_text);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    json_decref(payload);
    PQclear(res);
    sodium_memzero(refresh, sizeof refresh);
    return reply;
}

json_t *auth_login(call_t *call)
{
    identity_t *self = identity_of(call);
    db_t *db = call->db;
    json_t *fields = json_object();
    const char *login = NULL, *password = NULL;
    args_string(call->args, "login", true, 1, IDENTITY_EMAIL_MAX, &login, fields);
    args_string(call->args, "password", true, 1, IDENTITY_PASSWORD_MAX, &password, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    PGresult *res = store_user_by_login(db, login);
    if (!res) return identity_internal("user lookup");
    json_t *reply = NULL;
    char refresh[TOKENS_TEXT_SIZE] = "";
    bool found = PQntuples(res) == 1;
    const char *stored = found ? PQgetvalue(res, 0, COL_PASSWORD_HASH) : NULL;
    if (!password_verify(self, stored, password)) {
        reply = reply_error(401, ERR_INVALID_CREDENTIALS, "wrong login or password");
        goto cleanup;
    }
    int64_t id = store_user_id(res, 0);

    //  Raised PASSWORD_* settings reach old hashes at their next login.
    char rehash[crypto_pwhash_STRBYTES];
    bool upgrade =
        password_needs_rehash(self, stored) && password_hash(self, password, rehash) == 0;

    if (db_begin(db) != 0) {
        reply = identity_internal("begin");
        goto cleanup;
    }
    if (upgrade) {
        const char *params[] = {PQgetvalue(res, 0, COL_ID), rehash};
        if (db_exec(db, "UPDATE users SET password_hash = $2 WHERE id = $1", 2, params) < 0) {
            reply = identity_internal("rehash");
            goto cleanup;
        }
    }
    int64_t family = 0;
    if (tokens_prune(db, id) != 0 || tokens_create(db, id, 0, refresh, &family) != 0) {
        reply = identity_internal("login");
        goto cleanup;
    }
    reply = s_commit_session(self, db, res, id, family, refresh, 200);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(res);
    sodium_memzero(refresh, sizeof refresh);
    return reply;
}

//  The refresh_token argument of refresh and logout: NULL after recording
//  a 400 in fields.
static const char *s_refresh_arg(call_t *call, json_t *fields)
{
    const char *token = NULL;
    if (args_string(call->args, "refresh_token", true, 1, REFRESH_TOKEN_MAX, &token, fields) != 1)
        return NULL;
    return token;
}

json_t *auth_refresh(call_t *call)
{
    identity_t *self = identity_of(call);
    db_t *db = call->db;
    json_t *fields = json_object();
    const char *token = s_refresh_arg(call, fields);
    if (!token) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    json_t *reply = NULL;
    PGresult *res = NULL;
    char refresh[TOKENS_TEXT_SIZE] = "";
    int64_t user_id = 0, family = 0;
    if (db_begin(db) != 0) return identity_internal("begin");
    switch (tokens_rotate(db, token, &user_id, refresh, &family)) {
    case TOKENS_OK:
        break;
    case TOKENS_REUSED:
        //  Commit the family's revocation, then refuse.
        if (db_commit(db) != 0) {
            reply = identity_internal("commit");
            goto cleanup;
        }
        reply = reply_error(401, ERR_UNAUTHENTICATED, "the refresh token was already used");
        goto cleanup;
    case TOKENS_INVALID:
        reply = reply_error(401, ERR_UNAUTHENTICATED, "the refresh token is not valid");
        goto cleanup;
    default:
        reply = identity_internal("refresh");
        goto cleanup;
    }
    res = store_user_by_id(db, user_id, false);
    if (!res || PQntuples(res) != 1) {
        reply = identity_internal("user of refresh token");
        goto cleanup;
    }
    reply = s_commit_session(self, db, res, user_id, family, refresh, 200);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(res);
    sodium_memzero(refresh, sizeof refresh);
    return reply;
}

json_t *auth_logout(call_t *call)
{
    json_t *fields = json_object();
    const char *token = s_refresh_arg(call, fields);
    if (!token) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    //  204 whether or not the token was known: logout must not tell a
    //  caller which tokens exist, and the outcome (not usable) is the same.
    if (tokens_revoke_family_of(call->db, token) != 0) return identity_internal("logout");
    return reply_ok(204, NULL);
}
