/*  messaging: what the service's files share.

    conversations.c  conversations.create/list/get, the conversation object
    messages.c       messages.list/send/read, posts.share, the message object
    peers.c          calls to identity, graph and media (batched, one per page)
    main.c           the method table, the identity.user.deleted consumer

    Handlers check everything that needs another service (who the users
    are, blocks, which posts the viewer may see) before they open a
    transaction, so no transaction waits on an RPC.
*/
#ifndef MESSAGING_H_INCLUDED
#define MESSAGING_H_INCLUDED

#include "service.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MESSAGING_GROUP_MAX 32     // people in a conversation, creator included
#define MESSAGING_TEXT_MAX 4000    // code points of a message
#define MESSAGING_KEY_MAX 255      // bytes of an Idempotency-Key
#define MESSAGING_SHARE_MAX 32     // recipients of one share
#define MESSAGING_NAMES_MAX 64     // usernames accepted in one request
#define MESSAGING_USERS_BATCH 1000 // identity users.batch limit
#define MESSAGING_POSTS_BATCH 100  // media posts.batch limit

//  "YYYY-MM-DDTHH:MI:SS.mmmZ" of a timestamptz column, in SQL.
#define SQL_TIME(column)                                                                           \
    "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

//  ---- handlers ----------------------------------------------------------
json_t *conversations_create(call_t *call);
json_t *conversations_list(call_t *call);
json_t *conversations_get(call_t *call);
json_t *messages_list(call_t *call);
json_t *messages_send(call_t *call);
json_t *messages_read(call_t *call);
json_t *posts_share(call_t *call);

//  ---- conversations.c, shared with messages.c ----------------------------
//  Inside the caller's transaction: the 1:1 conversation of viewer and
//  other, created when missing (*created set). 0 or -1.
int conversations_pair(db_t *db, int64_t viewer_id, int64_t other_id, int64_t *id_out,
                       bool *created);
//  The conversation object of id as viewer sees it; 404 when viewer is not
//  a participant. Returns a reply.
json_t *conversations_reply(call_t *call, int64_t id, int status);

//  Checks args[name]: an array of 1..MESSAGING_NAMES_MAX strings. 1 or -1
//  (recorded in fields).
int messaging_names_arg(const json_t *args, const char *name, json_t *fields);
//  Resolves a checked array of usernames to the ids (decimal strings) of
//  the people other than the viewer, deduplicated. NULL with a reply in
//  *error_out: 404 for an unknown name, or the peer's failure.
json_t *messaging_resolve_names(call_t *call, const json_t *names, json_t **error_out);

//  ---- messages.c, shared with conversations.c -----------------------------
//  Row layout of every messages query.
#define MESSAGE_COLUMNS(m)                                                                         \
    m ".id, " m ".conversation_id, " m ".sender_id, " m ".text, " m                                \
      ".post_id, " SQL_TIME(m ".created_at")
enum { MSG_ID, MSG_CONVERSATION, MSG_SENDER, MSG_TEXT, MSG_POST, MSG_CREATED_AT, MSG_COLUMNS };

//  The message object of the row whose MESSAGE_COLUMNS start at column
//  first. users: id -> user object; posts: id -> post as the reader sees it
//  (both borrowed; a post missing from posts shows as null).
json_t *message_json(const PGresult *res, int row, int first, const json_t *users,
                     const json_t *posts);

//  ---- peers.c ---------------------------------------------------------------
//  identity users.batch for the ids of the array (strings), in chunks:
//  returns an object id -> base user, or NULL (a reply in *error_out).
json_t *peers_users(call_t *call, const json_t *ids, json_t **error_out);
//  identity users.by_usernames: an object lower-cased username -> base
//  user, or NULL (a reply in *error_out).
json_t *peers_users_by_names(call_t *call, const json_t *usernames, json_t **error_out);
//  graph relations.batch as the viewer: true when any of ids is blocked
//  either way. When graph does not answer, logs and answers false (a
//  conversation must not be impossible because graph is down).
bool peers_any_blocked(call_t *call, const json_t *ids);
//  The same question per person: a new array of those of ids (decimal
//  strings) blocked either way with the viewer; empty when graph does not
//  answer (logged), for the same reason.
json_t *peers_blocked_ids(call_t *call, const json_t *ids);
//  media posts.batch as reader: an object id -> post of those reader may
//  see. NULL with *error_out when media did not answer; ids may be empty.
json_t *peers_posts(call_t *call, int64_t reader_id, const json_t *ids, json_t **error_out);
//  {id, username, avatar_url} of a user object (a new object).
json_t *peers_compact_user(const json_t *user);

//  ---- small helpers (peers.c) -----------------------------------------------
//  500 internal after logging what failed.
json_t *messaging_internal(const char *what);
//  A path parameter that must be an id: 1 ok, 0 not an id (the caller
//  answers 404: such a thing cannot exist).
int messaging_path_id(const json_t *args, const char *name, int64_t *out);
void messaging_id_text(int64_t id, char text[21]);
//  Appends a decimal string id to array unless it is there already.
void messaging_add_id(json_t *array, const char *id_text);

#endif
