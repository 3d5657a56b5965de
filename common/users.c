/*  users: users_decorate() and its two halves (see users.h).

    Per chunk of USERS_BATCH_MAX users: one graph relations.batch call
    (unless USERS_SKIP_GRAPH) and one media posts.counts call (unless
    USERS_SKIP_MEDIA), both with the same ids in one args object. Relations
    are applied first, so the users dropped for a block are already gone
    when counts are applied (they cost nothing more: the call is made
    before). The two calls are sequential: an rpc_client_t carries one call
    at a time, and each is one round trip of a few hundred microseconds.

    Budget: each call may use a third of the time left before the caller's
    deadline, capped at USERS_PEER_MAX_MS, so that two slow peers still
    leave the caller time to answer before its own deadline instead of
    turning a slow counter into a 504 for the whole profile.
*/
#include "users.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

#define USERS_PEER_MAX_MS 1500
#define USERS_PEER_MIN_MS 50

//  The deadline of one peer call within the caller's deadline.
static int64_t s_peer_deadline(int64_t deadline_ms)
{
    int64_t now = envelope_now_ms();
    if (deadline_ms <= 0) deadline_ms = now + RPC_DEFAULT_TIMEOUT_MS;
    int64_t budget = (deadline_ms - now) / 3;
    if (budget > USERS_PEER_MAX_MS) budget = USERS_PEER_MAX_MS;
    if (budget < USERS_PEER_MIN_MS) budget = USERS_PEER_MIN_MS;
    return now + budget;
}

//  Calls service.method {ids} and returns the borrowed member `key` of the
//  reply body inside *reply_out (the caller decrefs *reply_out), or NULL
//  after logging a warning when the peer did not answer 200 with an object
//  there.
static const json_t *s_peer_call(rpc_client_t *rpc, const char *service, const char *method,
                                 const char *key, int64_t viewer_id, const json_t *args,
                                 int64_t deadline_ms, json_t **reply_out)
{
    json_t *reply =
        rpc_call(rpc, service, method, viewer_id, args, NULL, s_peer_deadline(deadline_ms));
    *reply_out = reply;
    int status = reply_status(reply);
    json_t *value = json_object_get(reply_body(reply), key);
    if (status == 200 && json_is_object(value)) return value;
    const char *code = reply_error_code(reply);
    log_warn("users_decorate: %s %s answered %d (%s); its fields are left at 0/none", service,
             method, status, code ? code : "malformed body");
    return NULL;
}

static json_t *s_integer_or_zero(const json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    return json_integer(json_is_integer(value) ? json_integer_value(value) : 0);
}

void users_apply_relations(json_t *users, const json_t *relations, int64_t viewer_id,
                           unsigned flags)
{
    if (!json_is_array(users)) return;
    size_t index = 0;
    while (index < json_array_size(users)) {
        json_t *user = json_array_get(users, index);
        const char *id = json_string_value(json_object_get(user, "id"));
        json_t *relation = (relations && id) ? json_object_get(relations, id) : NULL;
        if (relation && json_is_true(json_object_get(relation, "blocked")) &&
            !(flags & USERS_KEEP_BLOCKED)) {
            json_array_remove(users, index);
            continue;
        }
        json_object_set_new(user, "followers_count",
                            s_integer_or_zero(relation, "followers_count"));
        json_object_set_new(user, "following_count",
                            s_integer_or_zero(relation, "following_count"));
        if (viewer_id > 0) {
            json_t *state = json_object_get(relation, "follow_state");
            json_object_set_new(
                user, "followed_by_me",
                json_boolean(json_is_true(json_object_get(relation, "followed_by_me"))));
            json_object_set_new(
                user, "follows_me",
                json_boolean(json_is_true(json_object_get(relation, "follows_me"))));
            json_object_set_new(
                user, "follow_state",
                json_string(json_is_string(state) ? json_string_value(state) : "none"));
        }
        index++;
    }
}

void users_apply_post_counts(json_t *users, const json_t *counts)
{
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        const char *id = json_string_value(json_object_get(user, "id"));
        json_object_set_new(user, "posts_count", s_integer_or_zero(counts, id ? id : ""));
    }
}

//  Decorates users[first .. first + count): one call per peer.
static void s_decorate_chunk(rpc_client_t *rpc, int64_t viewer_id, json_t *users, unsigned flags,
                             int64_t deadline_ms, size_t first, size_t count)
{
    json_t *chunk = json_array();
    json_t *ids = json_array();
    for (size_t i = first; i < first + count; i++) {
        json_t *user = json_array_get(users, i);
        json_array_append(chunk, user); // the same objects: changes show in users
        json_t *id = json_object_get(user, "id");
        json_array_append_new(ids, json_is_string(id) ? json_incref(id) : json_string("0"));
    }
    json_t *args = json_pack("{s:o}", "ids", ids);
    json_t *graph_reply = NULL, *media_reply = NULL;
    if (!(flags & USERS_SKIP_GRAPH)) {
        const json_t *relations = s_peer_call(rpc, "graph", "relations.batch", "relations",
                                              viewer_id, args, deadline_ms, &graph_reply);
        users_apply_relations(chunk, relations, viewer_id, flags);
    }
    if (!(flags & USERS_SKIP_MEDIA)) {
        const json_t *counts = s_peer_call(rpc, "media", "posts.counts", "counts", viewer_id, args,
                                           deadline_ms, &media_reply);
        users_apply_post_counts(chunk, counts);
    }
    //  Blocked users left chunk, which keeps the order of the rest: walk
    //  both and take the missing ones out of users too.
    size_t kept = 0, at = first;
    for (size_t n = 0; n < count; n++) {
        json_t *user = json_array_get(users, at);
        if (kept < json_array_size(chunk) && json_array_get(chunk, kept) == user) {
            kept++;
            at++;
        } else {
            json_array_remove(users, at);
        }
    }
    json_decref(graph_reply);
    json_decref(media_reply);
    json_decref(args);
    json_decref(chunk);
}

int users_decorate(rpc_client_t *rpc, int64_t viewer_id, json_t *users, unsigned flags,
                   int64_t deadline_ms)
{
    if (!json_is_array(users)) return -1;
    size_t first = 0;
    while (first < json_array_size(users)) {
        size_t count = json_array_size(users) - first;
        if (count > USERS_BATCH_MAX) count = USERS_BATCH_MAX;
        size_t before = json_array_size(users);
        s_decorate_chunk(rpc, viewer_id, users, flags, deadline_ms, first, count);
        first += count - (before - json_array_size(users));
    }
    return 0;
}
