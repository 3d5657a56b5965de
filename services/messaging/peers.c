/*  peers: what messaging asks other services, always batched.

    identity  users.batch (who the participants and senders are),
              users.by_usernames (the names a request gives)
    graph     relations.batch (blocks, either way: who of a list, or any)
    media     posts.batch (the posts a reader may see)

    Every call carries the request's own deadline, so a slow peer can never
    hold a handler past the time its caller waits. A peer error becomes the
    same error for our caller (503/504 stay 503/504), except graph: a block
    check that cannot be made is logged and treated as "not blocked", so a
    graph outage does not stop people from talking.
*/
#include "messaging.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

json_t *messaging_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

void messaging_id_text(int64_t id, char text[21])
{
    ids_format(id, text, 21);
}

int messaging_path_id(const json_t *args, const char *name, int64_t *out)
{
    json_t *value = json_object_get(args, name);
    if (!json_is_string(value) || json_string_length(value) > 20) return 0;
    return ids_parse(json_string_value(value), out) ? 1 : 0;
}

void messaging_add_id(json_t *array, const char *id_text)
{
    size_t index;
    json_t *value;
    json_array_foreach(array, index, value) if (streq(json_string_value(value), id_text)) return;
    json_array_append_new(array, json_string(id_text));
}

//  The reply our caller gets when a peer answered reply (not 2xx).
static json_t *s_peer_error(const char *service, const char *method, const json_t *reply)
{
    int status = reply_status(reply);
    log_warn("%s %s answered %d", service, method, status);
    if (status == 504) return reply_error(504, ERR_TIMEOUT, "a service took too long");
    return reply_error(503, ERR_UNAVAILABLE, "a service is unavailable");
}

static json_t *s_call(call_t *call, int64_t viewer_id, const char *service, const char *method,
                      const json_t *args)
{
    return rpc_call(call->rpc, service, method, viewer_id, args, NULL, call->request->deadline_ms);
}

//  Adds each user of reply's body.users to map under its id.
static void s_collect_users(const json_t *reply, json_t *map, const char *key_field)
{
    json_t *users = json_object_get(reply_body(reply), "users");
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        const char *key = json_string_value(json_object_get(user, key_field));
        if (key) json_object_set(map, key, user);
    }
}

json_t *peers_users(call_t *call, const json_t *ids, json_t **error_out)
{
    json_t *map = json_object();
    size_t total = json_array_size(ids);
    for (size_t start = 0; start < total; start += MESSAGING_USERS_BATCH) {
        json_t *chunk = json_array();
        for (size_t i = start; i < total && i < start + MESSAGING_USERS_BATCH; i++)
            json_array_append(chunk, json_array_get(ids, i));
        json_t *args = json_pack("{s:o}", "ids", chunk);
        json_t *reply = s_call(call, call->viewer_id, "identity", "users.batch", args);
        json_decref(args);
        if (reply_status(reply) != 200) {
            *error_out = s_peer_error("identity", "users.batch", reply);
            json_decref(reply);
            json_decref(map);
            return NULL;
        }
        s_collect_users(reply, map, "id");
        json_decref(reply);
    }
    return map;
}

json_t *peers_users_by_names(call_t *call, const json_t *usernames, json_t **error_out)
{
    json_t *args = json_pack("{s:O}", "usernames", usernames);
    json_t *reply = s_call(call, call->viewer_id, "identity", "users.by_usernames", args);
    json_decref(args);
    if (reply_status(reply) != 200) {
        *error_out = s_peer_error("identity", "users.by_usernames", reply);
        json_decref(reply);
        return NULL;
    }
    json_t *map = json_object();
    s_collect_users(reply, map, "username");
    json_decref(reply);
    return map;
}

json_t *peers_blocked_ids(call_t *call, const json_t *ids)
{
    json_t *blocked = json_array();
    if (json_array_size(ids) == 0) return blocked;
    json_t *args = json_pack("{s:O}", "ids", ids);
    json_t *reply = s_call(call, call->viewer_id, "graph", "relations.batch", args);
    json_decref(args);
    if (reply_status(reply) != 200) {
        log_warn("graph relations.batch answered %d: treating as not blocked", reply_status(reply));
    } else {
        json_t *relations = json_object_get(reply_body(reply), "relations");
        const char *key;
        json_t *relation;
        json_object_foreach(relations, key, relation)
        {
            if (json_is_true(json_object_get(relation, "blocked"))) messaging_add_id(blocked, key);
        }
    }
    json_decref(reply);
    return blocked;
}

bool peers_any_blocked(call_t *call, const json_t *ids)
{
    json_t *blocked = peers_blocked_ids(call, ids);
    bool any = json_array_size(blocked) > 0;
    json_decref(blocked);
    return any;
}

json_t *peers_posts(call_t *call, int64_t reader_id, const json_t *ids, json_t **error_out)
{
    json_t *map = json_object();
    size_t total = json_array_size(ids);
    for (size_t start = 0; start < total; start += MESSAGING_POSTS_BATCH) {
        json_t *chunk = json_array();
        for (size_t i = start; i < total && i < start + MESSAGING_POSTS_BATCH; i++)
            json_array_append(chunk, json_array_get(ids, i));
        json_t *args = json_pack("{s:o}", "ids", chunk);
        json_t *reply = s_call(call, reader_id, "media", "posts.batch", args);
        json_decref(args);
        if (reply_status(reply) != 200) {
            *error_out = s_peer_error("media", "posts.batch", reply);
            json_decref(reply);
            json_decref(map);
            return NULL;
        }
        json_t *posts = json_object_get(reply_body(reply), "posts");
        size_t index;
        json_t *post;
        json_array_foreach(posts, index, post)
        {
            const char *id = json_string_value(json_object_get(post, "id"));
            if (id) json_object_set(map, id, post);
        }
        json_decref(reply);
    }
    return map;
}

json_t *peers_compact_user(const json_t *user)
{
    json_t *compact = json_object();
    json_t *avatar = json_object_get(user, "avatar_url");
    json_object_set(compact, "id", json_object_get(user, "id"));
    json_object_set(compact, "username", json_object_get(user, "username"));
    json_object_set_new(compact, "avatar_url", avatar ? json_incref(avatar) : json_null());
    return compact;
}
