/*  push: the notification.push events every gateway forwards to the
    WebSockets of one user (docs/contracts.md):

        {user_id, type: "notification", data: notification}
        {user_id, type: "message",      data: message}
        {user_id, type: "unread_count", data: {notifications, messages}}

    They are ordinary events: emitted into the outbox inside the
    transaction of the change that causes them, published after it
    commits, so a frame never announces something that was rolled back.
    A gateway that was not connected simply misses them; the client then
    reads what it missed through the REST endpoints.

    Building a frame needs other services: the actor or sender ({id,
    username, avatar_url}, identity users.batch) and, for a message that
    carries a post, the post as each reader sees it (media posts.batch with
    that reader as viewer, so nobody receives a post they may not see).
    These calls run on the event thread with their own rpc client (one per
    thread, made on first use and closed when the thread ends). A peer that
    does not answer degrades the frame (username null, post null) rather
    than stalling every later event behind a retry.
*/
#include "notification.h"
#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <pthread.h>
#include <string.h>

#define PUSH_RPC_TIMEOUT_MS 2000

static pthread_key_t s_rpc_key;
static pthread_once_t s_rpc_once = PTHREAD_ONCE_INIT;

static void s_rpc_destroy(void *client)
{
    rpc_client_t *self = (rpc_client_t *)client;
    rpc_client_destroy(&self);
}

static void s_rpc_key_make(void)
{
    pthread_key_create(&s_rpc_key, s_rpc_destroy);
}

static rpc_client_t *s_rpc(void)
{
    pthread_once(&s_rpc_once, s_rpc_key_make);
    rpc_client_t *client = (rpc_client_t *)pthread_getspecific(s_rpc_key);
    if (!client) {
        client = rpc_client_new(config_str("BROKER_URL", "tcp://127.0.0.1:5555"));
        if (client) pthread_setspecific(s_rpc_key, client);
    }
    return client;
}

static json_t *s_call(const char *service, const char *method, int64_t viewer_id,
                      const json_t *args)
{
    rpc_client_t *client = s_rpc();
    if (!client) return reply_error(503, ERR_UNAVAILABLE, "no rpc client");
    return rpc_call(client, service, method, viewer_id, args, NULL,
                    envelope_now_ms() + PUSH_RPC_TIMEOUT_MS);
}

json_t *push_users(const json_t *ids)
{
    json_t *map = json_object();
    size_t total = json_array_size(ids);
    for (size_t start = 0; start < total; start += NOTIFICATION_USERS_BATCH) {
        json_t *chunk = json_array();
        for (size_t i = start; i < total && i < start + NOTIFICATION_USERS_BATCH; i++)
            json_array_append(chunk, json_array_get(ids, i));
        json_t *args = json_pack("{s:o}", "ids", chunk);
        json_t *reply = s_call("identity", "users.batch", 0, args);
        json_decref(args);
        if (reply_status(reply) != 200)
            log_warn("identity users.batch answered %d: frames without names", reply_status(reply));
        json_t *users = json_object_get(reply_body(reply), "users");
        size_t index;
        json_t *user;
        json_array_foreach(users, index, user)
        {
            const char *id = json_string_value(json_object_get(user, "id"));
            if (id) json_object_set(map, id, user);
        }
        json_decref(reply);
    }
    return map;
}

//  Emits {user_id, type, data (stolen)}. 0 or -1.
static int s_emit(db_t *db, const char *user_id, const char *type, json_t *data_stolen)
{
    json_t *payload =
        json_pack("{s:s, s:s, s:o}", "user_id", user_id, "type", type, "data", data_stolen);
    int rc = payload ? events_emit(db, "push", payload) : -1;
    json_decref(payload);
    return rc;
}

//  A compact user for id, from users or with null name when unknown.
static json_t *s_compact(const json_t *users, const char *id)
{
    json_t *user = json_object_get(users, id);
    if (user) return notification_compact_user(user);
    return json_pack("{s:s, s:n, s:n}", "id", id, "username", "avatar_url");
}

int push_notification(db_t *db, const char *notification_id)
{
    const char *params[] = {notification_id};
    PGresult *res =
        db_query(db, "SELECT " NOTIFICATION_COLUMNS " FROM notifications WHERE id = $1", 1, params);
    if (!res) return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        json_t *ids = json_pack("[s]", PQgetvalue(res, 0, NOTE_ACTOR));
        json_t *users = push_users(ids);
        json_t *actors = json_object();
        json_object_set_new(actors, PQgetvalue(res, 0, NOTE_ACTOR),
                            s_compact(users, PQgetvalue(res, 0, NOTE_ACTOR)));
        json_t *data = notification_json(res, 0, actors);
        rc = data ? s_emit(db, PQgetvalue(res, 0, NOTE_USER), "notification", data) : -1;
        json_decref(actors);
        json_decref(users);
        json_decref(ids);
    }
    PQclear(res);
    return rc;
}

int push_unread(db_t *db, const char *user_id)
{
    const char *params[] = {user_id};
    PGresult *res =
        db_query(db,
                 "SELECT (SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT read),"
                 " (SELECT count(*) FROM unread_messages WHERE user_id = $1)",
                 1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    json_t *data = json_pack("{s:I, s:I}", "notifications",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "messages",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    PQclear(res);
    return s_emit(db, user_id, "unread_count", data);
}

//  The post post_id as reader sees it, or null (not visible, or media
//  does not answer).
static json_t *s_post_for(const char *post_id, const char *reader)
{
    int64_t reader_id = 0;
    if (!ids_parse(reader, &reader_id)) return json_null();
    json_t *args = json_pack("{s:[s]}", "ids", post_id);
    json_t *reply = s_call("media", "posts.batch", reader_id, args);
    json_decref(args);
    json_t *post = NULL;
    if (reply_status(reply) == 200)
        post = json_array_get(json_object_get(reply_body(reply), "posts"), 0);
    else
        log_warn("media posts.batch answered %d: message frame without its post",
                 reply_status(reply));
    json_t *result = post ? json_incref(post) : json_null();
    json_decref(reply);
    return result;
}

int push_message(db_t *db, const json_t *payload)
{
    const char *sender = json_string_value(json_object_get(payload, "sender_id"));
    const char *post_id = json_string_value(json_object_get(payload, "post_id"));
    json_t *readers = json_array();
    json_array_append_new(readers, json_string(sender));
    size_t index;
    json_t *value;
    json_array_foreach(json_object_get(payload, "recipient_ids"), index, value)
        json_array_append(readers, value);

    json_t *ids = json_pack("[s]", sender);
    json_t *users = push_users(ids);
    json_decref(ids);
    int rc = 0;
    json_array_foreach(readers, index, value)
    {
        const char *reader = json_string_value(value);
        json_t *message =
            json_pack("{s:O, s:O, s:o, s:O, s:o, s:O}", "id", json_object_get(payload, "id"),
                      "conversation_id", json_object_get(payload, "conversation_id"), "sender",
                      s_compact(users, sender), "text", json_object_get(payload, "text"), "post",
                      post_id ? s_post_for(post_id, reader) : json_null(), "created_at",
                      json_object_get(payload, "created_at"));
        if (!message || s_emit(db, reader, "message", message) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(users);
    json_decref(readers);
    return rc;
}
