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

    Per batch, not per event. The event handlers do not emit their frames:
    they queue them (push_defer_*), and push_flush, the subscriber's
    EVENTS_BATCH_END hook, builds the queue inside the same transaction just
    before it commits: one users.batch for every actor of the batch, one
    read of the counters of every user whose unread count changed, and
    one events_emit_many for all frames, in the order they were queued.
    The counters are unread_counts, kept by triggers in step with the rows
    (schemas/notification/002_unread_counts.sql): a primary key lookup per
    user, where a count(*) of their unread rows grew with a popular
    account's pile. A user's unread_count frame goes out once, at the
    place of the last one queued for them, with the count as the batch
    leaves it (the earlier ones would only have been overtaken). A live
    event is a batch of one, so its frames are exactly what they were per
    event; push_forget (the EVENTS_BATCH_RESET hook, through consumers.c's
    on_batch_reset) drops the queue of a batch that rolled back. The rows
    of a notification frame come as they were inserted: one result per
    statement, which since consumers.c writes a run of events with one
    statement may hold many rows; its frames share it, and the first one
    frees it.
    The queue belongs to the subscriber thread (the only one that runs
    handlers); push_unread from a request emits at once.
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

//  The push event payload {user_id, type, data (stolen)} (new).
static json_t *s_payload(const char *user_id, const char *type, json_t *data_stolen)
{
    return json_pack("{s:s, s:s, s:o}", "user_id", user_id, "type", type, "data", data_stolen);
}

//  A compact user for id, from users or with null name when unknown.
static json_t *s_compact(const json_t *users, const char *id)
{
    json_t *user = json_object_get(users, id);
    if (user) return notification_compact_user(user);
    return json_pack("{s:s, s:n, s:n}", "id", id, "username", "avatar_url");
}

//  ---- the batch's queue ----------------------------------------------------

typedef enum { FRAME_READY, FRAME_NOTIFICATION, FRAME_UNREAD } frame_kind_t;

typedef struct {
    frame_kind_t kind;
    char *user_id;   // the recipient
    json_t *payload; // FRAME_READY: the whole event payload
    PGresult *row;   // FRAME_NOTIFICATION: the result holding the row (NOTIFICATION_COLUMNS)
    int row_index;   // its row
    bool owns_row;   // the first frame of a result frees it; the others share it
} frame_t;

static struct {
    frame_t *frames;
    size_t count, capacity;
} s_queue; // the subscriber thread's (see the top of the file)

static frame_t *s_queue_add(frame_kind_t kind, const char *user_id)
{
    if (s_queue.count == s_queue.capacity) {
        s_queue.capacity = s_queue.capacity ? s_queue.capacity * 2 : 64;
        s_queue.frames = (frame_t *)realloc(s_queue.frames, s_queue.capacity * sizeof(frame_t));
        assert(s_queue.frames); // out of memory: CZMQ's policy, as zmalloc
    }
    frame_t *frame = &s_queue.frames[s_queue.count++];
    *frame = (frame_t){.kind = kind, .user_id = strdup(user_id)};
    assert(frame->user_id);
    return frame;
}

int push_forget(db_t *db, const event_t *event, void *state)
{
    for (size_t i = 0; i < s_queue.count; i++) {
        freen(s_queue.frames[i].user_id);
        json_decref(s_queue.frames[i].payload);
        if (s_queue.frames[i].owns_row) PQclear(s_queue.frames[i].row);
    }
    freen(s_queue.frames);
    s_queue.count = s_queue.capacity = 0;
    return 0;
}

void push_defer_notifications(PGresult *rows)
{
    assert(rows);
    if (PQntuples(rows) == 0) {
        PQclear(rows); // nothing new: no frame owns it
        return;
    }
    for (int row = 0; row < PQntuples(rows); row++) {
        const char *user_id = PQgetvalue(rows, row, NOTE_USER);
        frame_t *frame = s_queue_add(FRAME_NOTIFICATION, user_id);
        *frame = (frame_t){.kind = FRAME_NOTIFICATION,
                           .user_id = frame->user_id,
                           .row = rows,
                           .row_index = row,
                           .owns_row = row == 0};
        push_defer_unread(user_id);
    }
}

void push_defer_unread(const char *user_id)
{
    s_queue_add(FRAME_UNREAD, user_id);
}

//  Queues {user_id, type, data (stolen)}.
static void s_defer(const char *user_id, const char *type, json_t *data_stolen)
{
    s_queue_add(FRAME_READY, user_id)->payload = s_payload(user_id, type, data_stolen);
}

//  The {notifications, messages} counts of users (an array of id strings):
//  user id -> data object, one query. NULL on a database error.
static json_t *s_unread_counts(db_t *db, const json_t *users)
{
    char *list = json_dumps(users, JSON_COMPACT);
    const char *params[] = {list};
    //  The ids go in as one JSON array; each comes back as given (the key
    //  of its frame). The triggers move the counters inside the writing
    //  transaction, so within a batch they already include what the batch
    //  did; a user without a row has nothing unread. A probe per id: as a
    //  plain join the planner, which expects 100 ids from the function,
    //  hashes them against a scan of every counter (10,000 users: 2.0 ms a
    //  call, against 0.2 ms probing); OFFSET 0 keeps the subquery apart.
    PGresult *res = db_query(db,
                             "SELECT ids.uid, coalesce(c.notifications, 0), coalesce(c.messages, 0)"
                             " FROM (SELECT DISTINCT value AS uid"
                             "   FROM json_array_elements_text($1::json)) ids"
                             " LEFT JOIN LATERAL (SELECT u.notifications, u.messages"
                             "   FROM unread_counts u WHERE u.user_id = ids.uid::bigint OFFSET 0) c"
                             " ON true",
                             1, params);
    free(list);
    if (!res) return NULL;
    json_t *counts = json_object();
    for (int row = 0; row < PQntuples(res); row++)
        json_object_set_new(counts, PQgetvalue(res, row, 0),
                            json_pack("{s:I, s:I}", "notifications",
                                      (json_int_t)strtoll(PQgetvalue(res, row, 1), NULL, 10),
                                      "messages",
                                      (json_int_t)strtoll(PQgetvalue(res, row, 2), NULL, 10)));
    PQclear(res);
    return counts;
}

//  The frame of queue entry frame (new), or NULL when it cannot be built.
static json_t *s_frame(const frame_t *frame, const json_t *users, const json_t *counts)
{
    if (frame->kind == FRAME_READY) return json_incref(frame->payload);
    if (frame->kind == FRAME_UNREAD) {
        json_t *data = json_object_get(counts, frame->user_id);
        return data ? s_payload(frame->user_id, "unread_count", json_incref(data)) : NULL;
    }
    const char *actor = PQgetvalue(frame->row, frame->row_index, NOTE_ACTOR);
    json_t *actors = json_object();
    json_object_set_new(actors, actor, s_compact(users, actor));
    json_t *data = notification_json(frame->row, frame->row_index, actors);
    json_decref(actors);
    return data ? s_payload(frame->user_id, "notification", data) : NULL;
}

int push_flush(db_t *db, const event_t *event, void *state)
{
    if (s_queue.count == 0) return 0;
    //  Every actor once, and per user how many unread counts were queued.
    json_t *actor_ids = json_array(), *actors_seen = json_object();
    json_t *unread_left = json_object(), *unread_ids = json_array();
    for (size_t i = 0; i < s_queue.count; i++) {
        const frame_t *frame = &s_queue.frames[i];
        if (frame->kind == FRAME_NOTIFICATION) {
            const char *actor = PQgetvalue(frame->row, frame->row_index, NOTE_ACTOR);
            if (!json_object_get(actors_seen, actor)) {
                json_object_set_new(actors_seen, actor, json_true());
                json_array_append_new(actor_ids, json_string(actor));
            }
        } else if (frame->kind == FRAME_UNREAD) {
            json_t *left = json_object_get(unread_left, frame->user_id);
            if (!left) json_array_append_new(unread_ids, json_string(frame->user_id));
            json_object_set_new(unread_left, frame->user_id,
                                json_integer(left ? json_integer_value(left) + 1 : 1));
        }
    }
    json_t *users = json_array_size(actor_ids) ? push_users(actor_ids) : json_object();
    json_t *counts = json_array_size(unread_ids) ? s_unread_counts(db, unread_ids) : json_object();
    json_t *payloads = json_array();
    int rc = -1;
    if (counts) {
        for (size_t i = 0; i < s_queue.count; i++) {
            const frame_t *frame = &s_queue.frames[i];
            if (frame->kind == FRAME_UNREAD) {
                //  Only a user's last queued count goes out, where it stood.
                json_t *left = json_object_get(unread_left, frame->user_id);
                json_integer_set(left, json_integer_value(left) - 1);
                if (json_integer_value(left) > 0) continue;
            }
            json_t *payload = s_frame(frame, users, counts);
            if (payload) json_array_append_new(payloads, payload);
        }
        rc = events_emit_many(db, "push", payloads);
    }
    json_decref(payloads);
    json_decref(counts);
    json_decref(users);
    json_decref(actor_ids);
    json_decref(actors_seen);
    json_decref(unread_left);
    json_decref(unread_ids);
    push_forget(db, event, state);
    return rc;
}

int push_unread(db_t *db, const char *user_id)
{
    json_t *users = json_pack("[s]", user_id);
    json_t *counts = s_unread_counts(db, users);
    json_t *data = json_object_get(counts, user_id);
    json_t *payload = data ? s_payload(user_id, "unread_count", json_incref(data)) : NULL;
    int rc = payload ? events_emit(db, "push", payload) : -1;
    json_decref(payload);
    json_decref(counts);
    json_decref(users);
    return rc;
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

int push_defer_message(const json_t *payload)
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
        if (!message) {
            rc = -1;
            break;
        }
        s_defer(reader, "message", message);
    }
    json_decref(users);
    json_decref(readers);
    return rc;
}
