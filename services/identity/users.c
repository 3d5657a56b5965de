/*  users: public profiles. users.get serves GET /users/{username}; the
    others are internal methods other services call over the broker:

      users.by_username  {username}        -> 200 user | 404
      users.by_usernames {usernames:[…]}   -> 200 {users:[…]} (unknown left out)
      users.batch        {ids:["…"|int…], decorate?, skip?}
                                           -> 200 {users:[…]} (unknown left out)

    Batches answer in the order asked, each user once, at most
    IDENTITY_BATCH_MAX entries; they use one query with = ANY($1) over an
    array literal the code builds from validated ids or usernames, so no
    text from the caller is ever spliced into SQL unchecked.

    A username that cannot be valid (too long, other characters) is simply
    unknown: 404, not 400; only a wrong JSON type is 400.

    Decoration (common/users.h): users.get answers the full user object,
    with graph's counts and relation fields and media's posts_count, and
    is 404 when the viewer and the user blocked each other either way.
    users.batch decorates only when asked (decorate: true) and then skips
    the peers named in skip (["graph"], ["media"]): a caller that owns a
    part fills it itself, so identity never calls back the service that is
    calling it. users.by_username and undecorated users.batch never call
    anyone: graph uses them, and graph is what decoration calls.
*/
#include "identity.h"
#include "args.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>
#include <string.h>

//  Reads args.username into out (lower-cased). 1 when it can name a user,
//  0 when it cannot (unknown), -1 on a 400 recorded in fields.
static int s_username_arg(const json_t *args, char *out, size_t size, json_t *fields)
{
    const char *username = NULL;
    if (args_string(args, "username", true, 0, SIZE_MAX, &username, fields) != 1) return -1;
    json_t *ignored = json_object();
    bool valid = validate_username(username, out, size, ignored);
    json_decref(ignored);
    return valid ? 1 : 0;
}

static json_t *s_not_found(void)
{
    return reply_error(404, ERR_NOT_FOUND, "no such user");
}

static json_t *s_get(call_t *call, user_view_t view)
{
    json_t *fields = json_object();
    char username[IDENTITY_USERNAME_MAX + 1];
    int rc = s_username_arg(call->args, username, sizeof username, fields);
    if (rc < 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    if (rc == 0) return s_not_found();
    PGresult *res = store_user_by_username(call->db, username);
    if (!res) return identity_internal("user lookup");
    json_t *reply =
        PQntuples(res) == 1 ? reply_ok(200, store_user_json(res, 0, view)) : s_not_found();
    PQclear(res);
    return reply;
}

json_t *users_get(call_t *call)
{
    json_t *reply = s_get(call, call->viewer_id > 0 ? USER_PUBLIC_VIEWER : USER_PUBLIC);
    if (reply_status(reply) != 200) return reply;
    json_t *users = json_pack("[O]", reply_body(reply));
    json_decref(reply);
    users_decorate(call->rpc, call->viewer_id, users, 0, call->request->deadline_ms);
    //  Blocked either way: the user is not there for this viewer.
    reply = json_array_size(users) == 1 ? reply_ok(200, json_incref(json_array_get(users, 0)))
                                        : s_not_found();
    json_decref(users);
    return reply;
}

json_t *users_by_username(call_t *call)
{
    return s_get(call, USER_PUBLIC);
}

//  Runs sql with the array literal built from keys (each already safe to
//  put in an array literal unquoted) and answers {users:[…]} in keys'
//  order, each once. key_column is the column matched against keys.
static json_t *s_batch(call_t *call, const char *sql, zlistx_t *keys, int key_column)
{
    size_t size = 3;
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys))
        size += strlen(key) + 1;
    char *literal = malloc(size);
    if (!literal) return identity_internal("batch literal");
    size_t used = 0;
    literal[used++] = '{';
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        if (used > 1) literal[used++] = ',';
        size_t length = strlen(key);
        memcpy(literal + used, key, length);
        used += length;
    }
    literal[used++] = '}';
    literal[used] = '\0';

    const char *params[] = {literal};
    PGresult *res = db_query(call->db, sql, 1, params);
    free(literal);
    if (!res) return identity_internal("batch lookup");

    //  key -> row + 1 (a zhash item must not be NULL).
    zhash_t *rows = zhash_new();
    for (int row = 0; row < PQntuples(res); row++)
        zhash_insert(rows, PQgetvalue(res, row, key_column), (void *)(intptr_t)(row + 1));
    json_t *users = json_array();
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        intptr_t found = (intptr_t)zhash_lookup(rows, key);
        if (found) {
            json_array_append_new(users, store_user_json(res, (int)found - 1, USER_PUBLIC));
            zhash_delete(rows, key); // each user once
        }
    }
    zhash_destroy(&rows);
    PQclear(res);
    return reply_ok(200, json_pack("{s:o}", "users", users));
}

//  args[name] as an array of at most IDENTITY_BATCH_MAX items; NULL after
//  recording a 400.
static json_t *s_array_arg(const json_t *args, const char *name, json_t *fields)
{
    json_t *array = json_object_get(args, name);
    if (!array) {
        json_object_set_new(fields, name, json_string("is required"));
        return NULL;
    }
    if (!json_is_array(array) || json_array_size(array) > IDENTITY_BATCH_MAX) {
        json_object_set_new(fields, name, json_string("must be an array of at most 1000 items"));
        return NULL;
    }
    return array;
}

//  args.skip: NULL or an array of "graph" / "media"; the users_decorate
//  flags, or -1 after recording a 400.
static int s_skip_flags(const json_t *args, json_t *fields)
{
    json_t *skip = json_object_get(args, "skip");
    if (!skip) return 0;
    int flags = json_is_array(skip) ? 0 : -1;
    for (size_t i = 0; flags >= 0 && i < json_array_size(skip); i++) {
        const char *name = json_string_value(json_array_get(skip, i));
        if (name && streq(name, "graph"))
            flags |= USERS_SKIP_GRAPH;
        else if (name && streq(name, "media"))
            flags |= USERS_SKIP_MEDIA;
        else
            flags = -1;
    }
    if (flags < 0)
        json_object_set_new(fields, "skip",
                            json_string("must be an array of \"graph\", \"media\""));
    return flags;
}

json_t *users_batch(call_t *call)
{
    json_t *fields = json_object();
    bool decorate = false;
    args_bool(call->args, "decorate", false, &decorate, fields);
    int skip = s_skip_flags(call->args, fields);
    json_t *array = s_array_arg(call->args, "ids", fields);
    if (!array || json_object_size(fields) > 0)
        return reply_invalid(fields, "some fields are not valid");
    zlistx_t *keys = zlistx_new();
    zlistx_set_destructor(keys, (zlistx_destructor_fn *)zstr_free);
    size_t index;
    json_t *value;
    json_array_foreach(array, index, value)
    {
        int64_t id = 0;
        bool ok = (json_is_string(value) && json_string_length(value) <= 20 &&
                   ids_parse(json_string_value(value), &id)) ||
                  (json_is_integer(value) && (id = json_integer_value(value)) > 0);
        if (!ok) {
            json_object_set_new(fields, "ids", json_string("must hold ids (strings of digits)"));
            break;
        }
        char text[21];
        ids_format(id, text, sizeof text);
        zlistx_add_end(keys, strdup(text));
    }
    json_t *reply = NULL;
    if (json_object_size(fields) > 0) {
        reply = reply_invalid(fields, "some fields are not valid");
        fields = NULL;
    } else {
        reply =
            s_batch(call, "SELECT " STORE_USER_COLUMNS " FROM users WHERE id = ANY($1::bigint[])",
                    keys, COL_ID);
        if (decorate && reply_status(reply) == 200)
            users_decorate(call->rpc, call->viewer_id, json_object_get(reply_body(reply), "users"),
                           (unsigned)skip, call->request->deadline_ms);
    }
    json_decref(fields);
    zlistx_destroy(&keys);
    return reply;
}

json_t *users_by_usernames(call_t *call)
{
    json_t *fields = json_object();
    json_t *array = s_array_arg(call->args, "usernames", fields);
    if (!array) return reply_invalid(fields, "some fields are not valid");
    zlistx_t *keys = zlistx_new();
    zlistx_set_destructor(keys, (zlistx_destructor_fn *)zstr_free);
    size_t index;
    json_t *value;
    json_t *ignored = json_object();
    json_array_foreach(array, index, value)
    {
        if (!json_is_string(value) ||
            utf8_codepoints(json_string_value(value), json_string_length(value)) < 0) {
            json_object_set_new(fields, "usernames", json_string("must hold strings"));
            break;
        }
        //  Names that cannot be valid cannot exist: left out like unknowns.
        char username[IDENTITY_USERNAME_MAX + 1];
        if (validate_username(json_string_value(value), username, sizeof username, ignored))
            zlistx_add_end(keys, strdup(username));
    }
    json_decref(ignored);
    json_t *reply = NULL;
    if (json_object_size(fields) > 0) {
        reply = reply_invalid(fields, "some fields are not valid");
        fields = NULL;
    } else {
        reply = s_batch(call,
                        "SELECT " STORE_USER_COLUMNS " FROM users WHERE username = ANY($1::text[])",
                        keys, COL_USERNAME);
    }
    json_decref(fields);
    zlistx_destroy(&keys);
    return reply;
}
