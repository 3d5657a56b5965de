/*  notification: what the service's files share.

    notifications.c  the API: list, unread count, mark read; the internal
                     notifications.unread the gateway calls on connect
    consumers.c      event handlers: notifications made and removed
    push.c           notification.push events for the gateways' WebSockets
                     (notification, message and unread_count frames)
    main.c           the method table and the event routes
*/
#ifndef NOTIFICATION_H_INCLUDED
#define NOTIFICATION_H_INCLUDED

#include "service.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

//  "YYYY-MM-DDTHH:MI:SS.mmmZ" of a timestamptz column, in SQL.
#define SQL_TIME(column)                                                                           \
    "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

//  Row layout of every notifications query.
#define NOTIFICATION_COLUMNS                                                                       \
    "id, user_id, type, actor_id, post_id, comment_id, conversation_id, text, read, " SQL_TIME(    \
        "created_at")
enum {
    NOTE_ID,
    NOTE_USER,
    NOTE_TYPE,
    NOTE_ACTOR,
    NOTE_POST,
    NOTE_COMMENT,
    NOTE_CONVERSATION,
    NOTE_TEXT,
    NOTE_READ,
    NOTE_CREATED_AT
};

#define NOTIFICATION_TEXT_MAX 300               // code points of text kept in a notification
#define NOTIFICATION_UNLIKE_WINDOW "10 minutes" // an unlike this soon removes the like's
#define NOTIFICATION_USERS_BATCH 1000

//  ---- handlers (notifications.c) -----------------------------------------
json_t *notifications_list(call_t *call);
json_t *notifications_unread_count(call_t *call);
json_t *notifications_read(call_t *call);
json_t *notifications_unread(call_t *call);

//  The notification object of row (NOTIFICATION_COLUMNS); actors: id ->
//  user object (borrowed). NULL when the actor is unknown (deleted).
json_t *notification_json(const PGresult *res, int row, const json_t *actors);
//  {id, username, avatar_url} of a user object (new).
json_t *notification_compact_user(const json_t *user);

//  ---- consumers.c ----------------------------------------------------------
int on_post_created(db_t *db, const event_t *event, void *state);
int on_post_deleted(db_t *db, const event_t *event, void *state);
int on_like_created(db_t *db, const event_t *event, void *state);
int on_like_deleted(db_t *db, const event_t *event, void *state);
int on_comment_created(db_t *db, const event_t *event, void *state);
int on_comment_deleted(db_t *db, const event_t *event, void *state);
int on_follow_created(db_t *db, const event_t *event, void *state);
int on_follow_requested(db_t *db, const event_t *event, void *state);
int on_follow_request_deleted(db_t *db, const event_t *event, void *state);
int on_follow_accepted(db_t *db, const event_t *event, void *state);
int on_block_created(db_t *db, const event_t *event, void *state);
int on_block_deleted(db_t *db, const event_t *event, void *state);
int on_message_created(db_t *db, const event_t *event, void *state);
int on_conversation_read(db_t *db, const event_t *event, void *state);
int on_user_deleted(db_t *db, const event_t *event, void *state);
//  The subscriber's batch hooks: EVENTS_BATCH_END flushes the handlers'
//  buffer, then push_flush; EVENTS_BATCH_RESET forgets both.
int on_batch_end(db_t *db, const event_t *event, void *state);
int on_batch_reset(db_t *db, const event_t *event, void *state);

//  ---- push.c: notification.push events -------------------------------------
//  The event handlers queue their frames; push_flush (from on_batch_end)
//  emits them inside the batch's transaction, push_forget (from
//  on_batch_reset) drops them. Subscriber thread only.
//  For each row of rows (NOTIFICATION_COLUMNS, taken; any count), in
//  order: {user_id, type:"notification", data}, then the recipient's
//  unread_count (as push_defer_unread).
void push_defer_notifications(PGresult *rows);
//  {user_id, type:"unread_count", data:{notifications, messages}}: once per
//  user and batch, after their other frames of the batch, counted at its end.
void push_defer_unread(const char *user_id);
//  {user_id, type:"message", data: message} to each participant (the
//  sender too, for their other devices), the post hydrated per reader.
//  payload: message.created's. 0 or -1.
int push_defer_message(const json_t *payload);
int push_flush(db_t *db, const event_t *event, void *state);
int push_forget(db_t *db, const event_t *event, void *state);
//  The unread_count frame for user_id, emitted at once inside the caller's
//  transaction (a request's: notifications.read). 0 or -1.
int push_unread(db_t *db, const char *user_id);
//  identity users.batch from the event thread: id -> user (new object; empty
//  when identity does not answer, logged).
json_t *push_users(const json_t *ids);

#endif
