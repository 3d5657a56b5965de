/*  store: the SQL for users and the user objects built from its rows.

    Every users query selects STORE_USER_COLUMNS in the same order, so one
    function turns any row into any of the three shapes API.md names: the
    public user, the public user as a signed-in viewer sees it, and /me.
    created_at is formatted by Postgres (to_char in UTC with milliseconds),
    so the service never parses or formats times itself.

    Counts and follow state belong to other services (graph, media); until
    identity asks them, they are 0 and "none", as issue 2 says. avatar_url
    is null while there is no avatar (media owns the bytes; the key is kept
    here so a later avatar endpoint only fills the column).
*/
#include "identity.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

identity_t *identity_of(call_t *call)
{
    return (identity_t *)call->state;
}

json_t *identity_conflict(json_t *fields_stolen)
{
    json_t *reply = reply_error(409, ERR_CONFLICT, "already taken");
    json_object_set_new(json_object_get(reply, "error"), "fields", fields_stolen);
    return reply;
}

json_t *identity_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

PGresult *store_user_by_id(db_t *db, int64_t id, bool for_update)
{
    char id_text[21];
    ids_format(id, id_text, sizeof id_text);
    const char *params[] = {id_text};
    if (for_update)
        return db_query(db, "SELECT " STORE_USER_COLUMNS " FROM users WHERE id = $1 FOR UPDATE", 1,
                        params);
    return db_query(db, "SELECT " STORE_USER_COLUMNS " FROM users WHERE id = $1", 1, params);
}

PGresult *store_user_by_username(db_t *db, const char *username)
{
    const char *params[] = {username};
    return db_query(db, "SELECT " STORE_USER_COLUMNS " FROM users WHERE username = $1", 1, params);
}

PGresult *store_user_by_login(db_t *db, const char *login)
{
    const char *params[] = {login};
    //  A username cannot hold '@', so the two cases never overlap; each
    //  query uses its own unique index.
    if (strchr(login, '@'))
        return db_query(db,
                        "SELECT " STORE_USER_COLUMNS " FROM users WHERE lower(email) = lower($1)",
                        1, params);
    return db_query(db, "SELECT " STORE_USER_COLUMNS " FROM users WHERE username = lower($1)", 1,
                    params);
}

int64_t store_user_id(const PGresult *res, int row)
{
    int64_t id = 0;
    if (!ids_parse(PQgetvalue(res, row, COL_ID), &id)) return 0;
    return id;
}

static json_t *s_text(const PGresult *res, int row, int column)
{
    if (PQgetisnull(res, row, column)) return json_null();
    const char *value = PQgetvalue(res, row, column);
    return json_stringn(value, (size_t)PQgetlength(res, row, column));
}

static json_t *s_avatar_url(const PGresult *res, int row)
{
    if (PQgetisnull(res, row, COL_AVATAR_KEY)) return json_null();
    char *url = zsys_sprintf("/media/%s", PQgetvalue(res, row, COL_AVATAR_KEY));
    json_t *value = url ? json_string(url) : json_null();
    zstr_free(&url);
    return value ? value : json_null();
}

json_t *store_user_json(const PGresult *res, int row, user_view_t view)
{
    json_t *user = json_object();
    json_object_set_new(user, "id", s_text(res, row, COL_ID));
    json_object_set_new(user, "username", s_text(res, row, COL_USERNAME));
    json_object_set_new(user, "display_name", s_text(res, row, COL_DISPLAY_NAME));
    json_object_set_new(user, "bio", s_text(res, row, COL_BIO));
    json_object_set_new(user, "website", s_text(res, row, COL_WEBSITE));
    json_object_set_new(user, "avatar_url", s_avatar_url(res, row));
    json_object_set_new(user, "is_private",
                        json_boolean(streq(PQgetvalue(res, row, COL_IS_PRIVATE), "t")));
    json_object_set_new(user, "followers_count", json_integer(0));
    json_object_set_new(user, "following_count", json_integer(0));
    json_object_set_new(user, "posts_count", json_integer(0));
    if (view == USER_PUBLIC_VIEWER) {
        json_object_set_new(user, "followed_by_me", json_false());
        json_object_set_new(user, "follows_me", json_false());
        json_object_set_new(user, "follow_state", json_string("none"));
    } else if (view == USER_ME) {
        json_object_set_new(user, "email", s_text(res, row, COL_EMAIL));
        json_object_set_new(user, "created_at", s_text(res, row, COL_CREATED_AT));
    }
    return user;
}

json_t *store_user_event(const PGresult *res, int row, bool updated)
{
    json_t *payload = json_object();
    json_object_set_new(payload, "id", s_text(res, row, COL_ID));
    json_object_set_new(payload, "username", s_text(res, row, COL_USERNAME));
    json_object_set_new(payload, "display_name", s_text(res, row, COL_DISPLAY_NAME));
    json_object_set_new(payload, "is_private",
                        json_boolean(streq(PQgetvalue(res, row, COL_IS_PRIVATE), "t")));
    json_object_set_new(payload, "created_at", s_text(res, row, COL_CREATED_AT));
    if (updated) {
        json_object_set_new(payload, "bio", s_text(res, row, COL_BIO));
        json_object_set_new(payload, "website", s_text(res, row, COL_WEBSITE));
        json_object_set_new(payload, "avatar_key", s_text(res, row, COL_AVATAR_KEY));
        json_object_set_new(payload, "version",
                            json_integer(strtoll(PQgetvalue(res, row, COL_VERSION), NULL, 10)));
    }
    return payload;
}

int store_conflicts(db_t *db, const char *username, const char *email, int64_t except_id,
                    json_t *fields)
{
    char except_text[21];
    ids_format(except_id, except_text, sizeof except_text);
    const char *params[] = {username, email, except_text};
    PGresult *res = db_query(db,
                             "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND id <> $3),"
                             " EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2)"
                             " AND id <> $3)",
                             3, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    int count = 0;
    if (username && streq(PQgetvalue(res, 0, 0), "t")) {
        json_object_set_new(fields, "username", json_string("is already taken"));
        count++;
    }
    if (email && streq(PQgetvalue(res, 0, 1), "t")) {
        json_object_set_new(fields, "email", json_string("is already taken"));
        count++;
    }
    PQclear(res);
    return count;
}
