/*  render: post objects (API.md "post") built from POST_SELECT rows.

    A page of posts costs one SQL query (POST_SELECT gives counts,
    liked_by_me and saved_by_me through EXISTS on the primary keys, the
    images as one json_agg, and each author's name and avatar from media's
    own users projection), identity's users.batch only for authors the
    projection does not hold yet (accounts.c), and at most one graph call
    for visibility: never a call or a query per post. Arrays come out of Postgres as JSON text
   (array_to_json), which jansson parses; no hand-written array literal parsing.

    Image URLs are relative, "/media/<key>": the gateway that served the
    post serves the bytes too, whatever host name the client used.
*/
#include "media.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "msgjson.h"

#include <assert.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

json_t *render_media_url(const char *key)
{
    if (!key) return json_null();
    char url[STORAGE_KEY_MAX + 8];
    snprintf(url, sizeof url, "/media/%s", key);
    return json_string(url);
}

//  The base user object of a projection row (id, username, display_name,
//  bio, website, avatar_key, is_private), field for field what identity's
//  users.batch answers (store_user_json, USER_PUBLIC).
static json_t *s_projected_user(const PGresult *res, int row)
{
    json_t *user = json_object();
    json_object_set_new(user, "id", json_string(PQgetvalue(res, row, 0)));
    json_object_set_new(user, "username", json_string(PQgetvalue(res, row, 1)));
    json_object_set_new(user, "display_name", json_string(PQgetvalue(res, row, 2)));
    json_object_set_new(user, "bio", json_string(PQgetvalue(res, row, 3)));
    json_object_set_new(user, "website", json_string(PQgetvalue(res, row, 4)));
    json_object_set_new(user, "avatar_url",
                        PQgetisnull(res, row, 5) ? json_null()
                                                 : render_media_url(PQgetvalue(res, row, 5)));
    json_object_set_new(user, "is_private", json_boolean(streq(PQgetvalue(res, row, 6), "t")));
    json_object_set_new(user, "followers_count", json_integer(0));
    json_object_set_new(user, "following_count", json_integer(0));
    json_object_set_new(user, "posts_count", json_integer(0));
    return user;
}

//  "{1,2,3}" from an array of id strings (digits only: media_id_text made
//  them). Caller frees.
static char *s_pg_id_array(const json_t *ids)
{
    size_t n = json_array_size(ids);
    char *text = (char *)zmalloc(n * 21 + 3);
    char *at = text;
    *at++ = '{';
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        size_t length = strlen(id);
        if (i > 0) *at++ = ',';
        memcpy(at, id, length);
        at += length;
    }
    *at++ = '}';
    *at = '\0';
    return text;
}

//  Moves the users of `wanted` found in the projection into `users` and out
//  of `wanted`. A database error leaves everything to identity.
static void s_users_from_projection(call_t *call, json_t *wanted, json_t *users)
{
    char *array = s_pg_id_array(wanted);
    const char *params[] = {array};
    PGresult *res = db_query(call->db,
                             "SELECT id, username, display_name, bio, website, avatar_key,"
                             " is_private FROM users WHERE id = ANY($1::bigint[])",
                             1, params);
    free(array);
    if (!res) return;
    for (int row = 0; row < PQntuples(res); row++)
        json_object_set_new(users, PQgetvalue(res, row, 0), s_projected_user(res, row));
    PQclear(res);
    size_t index = 0;
    while (index < json_array_size(wanted)) {
        if (json_object_get(users, json_string_value(json_array_get(wanted, index))))
            json_array_remove(wanted, index);
        else
            index++;
    }
}

json_t *render_user_by_username(call_t *call, const char *username)
{
    char lowered[64];
    size_t length = strlen(username);
    if (length == 0 || length >= sizeof lowered) return NULL; // identity will say 404
    for (size_t i = 0; i <= length; i++)
        lowered[i] =
            (char)((username[i] >= 'A' && username[i] <= 'Z') ? username[i] + 32 : username[i]);
    const char *params[] = {lowered};
    PGresult *res = db_query(call->db,
                             "SELECT id, username, display_name, bio, website, avatar_key,"
                             " is_private FROM users WHERE username = $1 ORDER BY id DESC LIMIT 1",
                             1, params);
    json_t *user = res && PQntuples(res) == 1 ? s_projected_user(res, 0) : NULL;
    PQclear(res);
    return user;
}

json_t *render_users(call_t *call, const int64_t *ids, size_t count, json_t **failure)
{
    return render_users_from(call, ids, count, true, failure);
}

json_t *render_users_from(call_t *call, const int64_t *ids, size_t count, bool projection,
                          json_t **failure)
{
    *failure = NULL;
    json_t *wanted = json_array();
    zhashx_t *seen = zhashx_new();
    for (size_t i = 0; i < count; i++) {
        char text[21];
        if (ids[i] <= 0) continue;
        media_id_text(ids[i], text);
        if (zhashx_lookup(seen, text)) continue;
        zhashx_insert(seen, text, (void *)1);
        json_array_append_new(wanted, json_string(text));
    }
    zhashx_destroy(&seen);
    json_t *users = json_object();
    if (projection && json_array_size(wanted) > 0) s_users_from_projection(call, wanted, users);
    if (json_array_size(wanted) == 0) {
        json_decref(wanted);
        return users;
    }
    json_t *args = json_pack("{s:o}", "ids", wanted);
    json_t *reply = rpc_call(call->rpc, "identity", "users.batch", call->viewer_id, args, NULL,
                             call->request->deadline_ms);
    json_decref(args);
    if (reply_status(reply) != 200) {
        log_warn("identity users.batch answered %d", reply_status(reply));
        *failure = reply_error(503, ERR_UNAVAILABLE, "user profiles are unavailable right now");
        json_decref(reply);
        json_decref(users);
        return NULL;
    }
    size_t index;
    json_t *user;
    json_array_foreach(json_object_get(reply_body(reply), "users"), index, user)
    {
        const char *id = json_string_value(json_object_get(user, "id"));
        if (id) json_object_set(users, id, user);
    }
    json_decref(reply);
    return users;
}

json_t *render_author(const json_t *user)
{
    json_t *avatar = json_object_get(user, "avatar_url");
    return json_pack("{s:O, s:O, s:O}", "id", json_object_get(user, "id"), "username",
                     json_object_get(user, "username"), "avatar_url",
                     avatar ? avatar : json_null());
}

//  ---- packing a post ---------------------------------------------------------

static void s_pack_text(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    msgpack_pack_str_with_body(packer, text, length);
}

//  "/media/<key>", or nil for a NULL key (as render_media_url).
static void s_pack_media_url(msgpack_packer *packer, const char *key)
{
    if (!key) {
        msgpack_pack_nil(packer);
        return;
    }
    char url[STORAGE_KEY_MAX + 8];
    snprintf(url, sizeof url, "/media/%s", key);
    s_pack_text(packer, url);
}

//  A JSON text column as parsed; an empty array when NULL or malformed.
static json_t *s_json_column(const PGresult *res, int row, int column)
{
    if (PQgetisnull(res, row, column)) return json_array();
    json_t *value = json_loads(PQgetvalue(res, row, column), JSON_DECODE_ANY, NULL);
    return value ? value : json_array();
}

static int s_pack_json_column(msgpack_packer *packer, const PGresult *res, int row, int column)
{
    json_t *value = s_json_column(res, row, column);
    int rc = msgjson_pack(packer, value);
    json_decref(value);
    return rc;
}

//  A JSON value or nil when absent.
static int s_pack_value(msgpack_packer *packer, const json_t *value)
{
    return value ? msgjson_pack(packer, value) : msgpack_pack_nil(packer);
}

static int s_pack_images(msgpack_packer *packer, const PGresult *res, int row)
{
    json_t *rows = s_json_column(res, row, POST_COL_IMAGES);
    int rc = msgpack_pack_array(packer, json_is_array(rows) ? json_array_size(rows) : 0);
    size_t index;
    json_t *item;
    json_array_foreach(rows, index, item)
    {
        //  [key, thumb_key, width, height, alt_text]
        msgpack_pack_map(packer, 5);
        s_pack_text(packer, "url");
        s_pack_media_url(packer, json_string_value(json_array_get(item, 0)));
        s_pack_text(packer, "thumb_url");
        s_pack_media_url(packer, json_string_value(json_array_get(item, 1)));
        s_pack_text(packer, "width");
        rc |= s_pack_value(packer, json_array_get(item, 2));
        s_pack_text(packer, "height");
        rc |= s_pack_value(packer, json_array_get(item, 3));
        s_pack_text(packer, "alt_text");
        rc |= s_pack_value(packer, json_array_get(item, 4));
    }
    json_decref(rows);
    return rc;
}

//  A post object's keys, announced before they are packed.
#define POST_FIELDS 12

static void s_pack_key(msgpack_packer *packer, const char *key, int *keys)
{
    s_pack_text(packer, key);
    (*keys)++;
}

//  One post object (API.md "post") from row of res with author (a base
//  user), packed: the one definition of a post's fields, which render_post
//  decodes into a tree and render_posts_pack writes straight into a reply.
static int s_pack_post(msgpack_packer *packer, const PGresult *res, int row, const json_t *author)
{
    int rc = msgpack_pack_map(packer, POST_FIELDS);
    int keys = 0;
    s_pack_key(packer, "id", &keys);
    s_pack_text(packer, PQgetvalue(res, row, POST_COL_ID));
    s_pack_key(packer, "author", &keys);
    json_t *compact = render_author(author);
    rc |= msgjson_pack(packer, compact);
    json_decref(compact);
    s_pack_key(packer, "caption", &keys);
    s_pack_text(packer, PQgetvalue(res, row, POST_COL_CAPTION));
    s_pack_key(packer, "images", &keys);
    rc |= s_pack_images(packer, res, row);
    s_pack_key(packer, "hashtags", &keys);
    rc |= s_pack_json_column(packer, res, row, POST_COL_HASHTAGS);
    s_pack_key(packer, "mentions", &keys);
    rc |= s_pack_json_column(packer, res, row, POST_COL_MENTIONS);
    s_pack_key(packer, "like_count", &keys);
    msgpack_pack_int64(packer, atoll(PQgetvalue(res, row, POST_COL_LIKE_COUNT)));
    s_pack_key(packer, "comment_count", &keys);
    msgpack_pack_int64(packer, atoll(PQgetvalue(res, row, POST_COL_COMMENT_COUNT)));
    s_pack_key(packer, "liked_by_me", &keys);
    if (streq(PQgetvalue(res, row, POST_COL_LIKED), "t"))
        msgpack_pack_true(packer);
    else
        msgpack_pack_false(packer);
    s_pack_key(packer, "saved_by_me", &keys);
    if (streq(PQgetvalue(res, row, POST_COL_SAVED), "t"))
        msgpack_pack_true(packer);
    else
        msgpack_pack_false(packer);
    s_pack_key(packer, "created_at", &keys);
    s_pack_text(packer, PQgetvalue(res, row, POST_COL_CREATED_AT));
    s_pack_key(packer, "updated_at", &keys);
    s_pack_text(packer, PQgetvalue(res, row, POST_COL_UPDATED_AT));
    assert(keys == POST_FIELDS); // the map header above announced them
    return rc;
}

json_t *render_post(const PGresult *res, int row, const json_t *author)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    json_t *post = s_pack_post(&packer, res, row, author) == 0
                       ? msgjson_decode(buffer.data, buffer.size)
                       : NULL;
    msgpack_sbuffer_destroy(&buffer);
    if (!post) {
        //  Only a column Postgres would not produce (JSON that is not
        //  JSON, text that is not UTF-8) gets here.
        log_error("post %s could not be rendered", PQgetvalue(res, row, POST_COL_ID));
        post = json_pack("{s:s}", "id", PQgetvalue(res, row, POST_COL_ID));
    }
    return post;
}

//  The authors of the rows as "<id>" -> {id, username, avatar_url}: from
//  POST_COL_AUTHOR, and from identity for the authors the projection does
//  not hold yet. NULL with *failure set when identity is needed and down.
static json_t *s_row_authors(call_t *call, const PGresult *res, const int64_t *authors, int rows,
                             json_t **failure)
{
    json_t *users = json_object();
    int64_t *missing = (int64_t *)zmalloc(sizeof(int64_t) * (size_t)(rows > 0 ? rows : 1));
    size_t missing_count = 0;
    for (int row = 0; row < rows; row++) {
        const char *id = PQgetvalue(res, row, POST_COL_AUTHOR_ID);
        json_t *projected = PQgetisnull(res, row, POST_COL_AUTHOR)
                                ? NULL
                                : json_loads(PQgetvalue(res, row, POST_COL_AUTHOR), 0, NULL);
        const char *username = json_string_value(json_array_get(projected, 0));
        if (username) {
            const char *avatar = json_string_value(json_array_get(projected, 1));
            json_object_set_new(users, id,
                                json_pack("{s:s, s:s, s:o}", "id", id, "username", username,
                                          "avatar_url", render_media_url(avatar)));
        } else
            missing[missing_count++] = authors[row];
        json_decref(projected);
    }
    if (missing_count > 0) {
        json_t *fetched = render_users_from(call, missing, missing_count, false, failure);
        if (!fetched) {
            json_decref(users);
            users = NULL;
        } else {
            const char *id;
            json_t *user;
            json_object_foreach(fetched, id, user)
            {
                json_object_set_new(users, id, render_author(user));
            }
            json_decref(fetched);
        }
    }
    freen(missing);
    return users;
}

//  The author of each row the viewer may see, NULL for the others (not
//  visible, or the author is gone): an array of rows borrowed pointers into
//  the returned object ("<id>" -> base user), which the caller releases.
//  NULL with *failure set when identity or graph is needed and down.
static json_t *s_shown_authors(call_t *call, visibility_t *vis, const PGresult *res, int rows,
                               const json_t **shown, json_t **failure)
{
    *failure = NULL;
    int64_t *authors = (int64_t *)zmalloc(sizeof(int64_t) * (size_t)(rows > 0 ? rows : 1));
    bool *visible = (bool *)zmalloc(sizeof(bool) * (size_t)(rows > 0 ? rows : 1));
    for (int row = 0; row < rows; row++)
        ids_parse(PQgetvalue(res, row, POST_COL_AUTHOR_ID), &authors[row]);
    visibility_t *own = vis ? NULL : visibility_new(call);
    if (!vis) vis = own;
    json_t *users = s_row_authors(call, res, authors, rows, failure);
    //  users may come from the projection, one event behind a switch to
    //  private: they render the authors but never tell visibility whether
    //  an account is private (it asks graph, or identity itself).
    if (users && visibility_authors(vis, authors, (size_t)rows, visible, failure) != 0) {
        json_decref(users);
        users = NULL;
    }
    for (int row = 0; users && row < rows; row++)
        shown[row] =
            visible[row] ? json_object_get(users, PQgetvalue(res, row, POST_COL_AUTHOR_ID)) : NULL;
    visibility_destroy(&own);
    freen(authors);
    freen(visible);
    return users;
}

json_t *render_posts(call_t *call, visibility_t *vis, const PGresult *res, int rows,
                     json_t **failure)
{
    const json_t **shown =
        (const json_t **)zmalloc(sizeof(json_t *) * (size_t)(rows > 0 ? rows : 1));
    json_t *users = s_shown_authors(call, vis, res, rows, shown, failure);
    json_t *posts = users ? json_array() : NULL;
    for (int row = 0; users && row < rows; row++)
        if (shown[row]) json_array_append_new(posts, render_post(res, row, shown[row]));
    json_decref(users);
    free(shown);
    return posts;
}

int render_posts_pack_author(const PGresult *res, int rows, const json_t *author,
                             msgpack_packer *packer)
{
    int rc = msgpack_pack_array(packer, (size_t)(rows > 0 ? rows : 0));
    for (int row = 0; row < rows; row++)
        rc |= s_pack_post(packer, res, row, author);
    return rc;
}

int render_post_pack_one(call_t *call, const PGresult *res, msgpack_packer *packer,
                         json_t **failure)
{
    const json_t *shown = NULL;
    if (PQntuples(res) != 1) return 0;
    json_t *users = s_shown_authors(call, NULL, res, 1, &shown, failure);
    if (!users) return -1;
    int rc = shown ? s_pack_post(packer, res, 0, shown) : 0;
    json_decref(users);
    if (rc != 0) {
        *failure = media_internal("packing a post");
        return -1;
    }
    return shown ? 1 : 0;
}

int render_posts_pack(call_t *call, const PGresult *res, const int *order, size_t count,
                      msgpack_packer *packer, json_t **failure)
{
    int rows = PQntuples(res);
    const json_t **shown =
        (const json_t **)zmalloc(sizeof(json_t *) * (size_t)(rows > 0 ? rows : 1));
    json_t *users = s_shown_authors(call, NULL, res, rows, shown, failure);
    int rc = -1;
    if (users) {
        size_t packed = 0;
        for (size_t i = 0; i < count; i++)
            if (shown[order[i]]) packed++;
        rc = msgpack_pack_array(packer, packed);
        for (size_t i = 0; i < count; i++)
            if (shown[order[i]]) rc |= s_pack_post(packer, res, order[i], shown[order[i]]);
        if (rc != 0) *failure = media_internal("packing posts");
    }
    json_decref(users);
    free(shown);
    return rc;
}
