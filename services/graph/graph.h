/*  graph: what the service's files share.

    Files: main.c (wiring), users.c (the projection of identity's users,
    username and id resolution with the identity fallback, identity event
    handlers), relations.c (the relation of a viewer to many users: one
    query that answers relations.batch, relations.visible, the list
    decoration and the list access checks; follows.following_ids),
    follows.c (follow, unfollow, followers and following lists, and the
    edge primitives every other file uses), requests.c (pending requests:
    list, approve, deny, and approving them all when an account turns
    public), blocks.c (block, unblock, the block list), pages.c (list
    cursors and turning a page of ids into decorated user objects).

    Locking. Every change to a pair's relations runs in one transaction
    that takes, in this order and never the other way round:
      1. the projection rows of the users involved (FOR SHARE, in id
         order; the identity event handlers take them FOR UPDATE), so a
         follow cannot race an account turning public or being deleted;
      2. the pair's transaction advisory lock (graph_lock_pair), so two
         changes to one pair (follow against block, approve against deny)
         serialize and each sees the other's result;
      3. the relation rows themselves, then the counts rows, always in
         user id order in one statement (graph_counts_apply), so counter
         updates never deadlock each other.
*/
#ifndef GRAPH_H_INCLUDED
#define GRAPH_H_INCLUDED

#include "service.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define GRAPH_BATCH_MAX 1000 // ids per relations.batch / relations.visible
#define GRAPH_ID_TEXT 21     // a decimal int64 and its NUL

//  ---- handlers -------------------------------------------------------------
json_t *follows_create(call_t *call);    // POST /users/{username}/follow
json_t *follows_delete(call_t *call);    // DELETE /users/{username}/follow
json_t *follows_followers(call_t *call); // GET /users/{username}/followers
json_t *follows_following(call_t *call); // GET /users/{username}/following
json_t *follows_following_ids(call_t *call);
json_t *requests_list(call_t *call);    // GET /me/follow-requests
json_t *requests_approve(call_t *call); // POST /me/follow-requests/{username}/approve
json_t *requests_deny(call_t *call);    // POST /me/follow-requests/{username}/deny
json_t *blocks_create(call_t *call);    // POST /users/{username}/block
json_t *blocks_delete(call_t *call);    // DELETE /users/{username}/block
json_t *blocks_list(call_t *call);      // GET /me/blocked
json_t *relations_batch(call_t *call);
json_t *relations_visible(call_t *call);

//  ---- identity events (users.c) ----------------------------------------
int users_on_created(db_t *db, const event_t *event, void *state);
int users_on_updated(db_t *db, const event_t *event, void *state);
//  users.privacy {is_private}: the viewer's own privacy switch, from
//  identity before it answers PATCH /me (users.c).
json_t *users_privacy(call_t *call);
int users_on_deleted(db_t *db, const event_t *event, void *state);

//  ---- users.c: the projection ---------------------------------------------
typedef struct {
    int64_t id;
    bool is_private;
} graph_user_t;

//  Resolves args.username to a user: the projection first, then identity's
//  users.by_username (the event may not have arrived yet), whose answer is
//  kept in the projection. Returns NULL and fills *user, or the reply to
//  send (400 for a non-string, 404 unknown, 503/504 identity down).
json_t *graph_user_by_username_arg(call_t *call, graph_user_t *user);

//  Begins a transaction that locks the projection rows of a and b (FOR
//  SHARE, in id order; a == b locks one), reads them into out_a / out_b
//  (either may be NULL), then takes the pair's lock (graph_lock_pair): the
//  first two steps of the locking order above. Ids missing from the
//  projection are fetched from identity's users.batch first (outside the
//  transaction, so the caller must not have one open). Returns NULL with
//  the transaction open and both locks held, or a reply (rolled back): 404
//  when b is unknown, 401 when a (the viewer) no longer exists.
json_t *graph_begin_pair(call_t *call, int64_t a, int64_t b, graph_user_t *out_a,
                         graph_user_t *out_b);

//  The prologue of a handler acting on args.username as the viewer: 401
//  signed out, the replies of graph_user_by_username_arg, on_self() when
//  the username is the viewer's own; NULL with *target filled otherwise.
json_t *graph_other_user_arg(call_t *call, graph_user_t *target, json_t *(*on_self)(void));

//  Inserts what identity said about users (base user objects, borrowed)
//  into the projection, unless deleted or already there. 0 or -1.
int graph_users_remember(db_t *db, const json_t *users);

//  ---- follows.c: edge primitives (inside a transaction) --------------------
//  Takes the pair's transaction advisory lock. 0 or -1.
int graph_lock_pair(db_t *db, int64_t a, int64_t b);
//  Adds or subtracts counters: for each i, followers_count of users[i] +=
//  followers[i] and following_count += following[i]. Rows are locked in id
//  order. 0 or -1.
int graph_counts_apply(db_t *db, size_t n, const int64_t *users, const int *followers,
                       const int *following);
//  Creates follower -> followee unless it exists; emits follow.accepted
//  first when accepted, then follow.created; updates the counters.
//  1 created, 0 already there, -1 error.
int graph_follow_insert(db_t *db, int64_t follower, int64_t followee, bool accepted);
//  Removes follower -> followee; emits follow.deleted and updates the
//  counters. 1 removed, 0 there was none, -1 error.
int graph_follow_remove(db_t *db, int64_t follower, int64_t followee);
//  Removes a pending request; emits follow.request_deleted. 1, 0 or -1.
int graph_request_remove(db_t *db, int64_t follower, int64_t followee);
//  Whether a blocked b or b blocked a. 1 yes, 0 no, -1 error.
int graph_blocked_either(db_t *db, int64_t a, int64_t b);

//  ---- requests.c ---------------------------------------------------------
//  Inside the transaction of an identity event that made user_id public
//  (its projection row already updated and locked): approves every
//  pending request to it. 0 or -1.
int requests_approve_all(db_t *db, int64_t user_id);

//  ---- relations.c ----------------------------------------------------------
typedef struct {
    int64_t id;
    bool known; // in the projection (else is_private is assumed true)
    bool is_private;
    int64_t followers_count;
    int64_t following_count;
    bool followed_by_me;
    bool follows_me;
    bool requested;
    bool blocked;
    bool can_view;
} graph_relation_t;

//  The relation of viewer (0 = anonymous) to each of ids[0..n), in one
//  query; out[i] is for ids[i]. 0 or -1.
int graph_relations(db_t *db, int64_t viewer, size_t n, const int64_t *ids, graph_relation_t *out);
//  The same decision of can_view, known, is_private and blocked, with
//  less work: the other fields are unset (relations.visible).
int graph_visibility(db_t *db, int64_t viewer, size_t n, const int64_t *ids, graph_relation_t *out);
//  The relations.batch object of one relation.
json_t *graph_relation_json(const graph_relation_t *relation);

//  Whether viewer may read target's followers and following lists:
//  NULL yes, else the reply (404 blocked either way, 403 private and not
//  an approved follower).
json_t *graph_check_lists(call_t *call, const graph_user_t *target);

//  ---- pages.c ----------------------------------------------------------------
//  Reads limit and cursor from args: NULL, or the 400 reply. *before is
//  INT64_MAX without a cursor.
json_t *graph_page_args(call_t *call, int *limit, int64_t *before);
//  Runs sql ($1 the owner id, $2 the cursor id, $3 limit + 1) whose rows
//  are (row id, user id), and answers {items: [user…], next_cursor} with
//  decorated user objects in row order. flags as users_decorate.
json_t *graph_user_page(call_t *call, const char *sql, int64_t owner, int limit, int64_t before,
                        unsigned flags);
//  The users of ids (identity users.batch, no decoration), decorated as
//  the viewer sees them with graph's own relations and media's post
//  counts. Returns a new array, or NULL with *reply_out set.
json_t *graph_decorated_users(call_t *call, size_t n, const int64_t *ids, unsigned flags,
                              json_t **reply_out);

//  A page of one of the viewer's own lists (blocked, follow requests):
//  401 signed out, 400 bad limit or cursor, else graph_user_page with the
//  viewer as owner.
json_t *graph_viewer_list(call_t *call, const char *sql, unsigned flags);
//  Runs sql ($1 the owner id, $2 the cursor id, $3 limit + 1): a list
//  page's query, for graph_user_page and follows.following_ids. NULL on
//  error.
PGresult *graph_page_query(db_t *db, const char *sql, int64_t owner, int limit, int64_t before);
//  A page's next_cursor: the cursor of row id last when the query found
//  rows > limit (there is a next page), else null. A new reference.
json_t *graph_next_cursor(int rows, int limit, int64_t last);

//  ---- helpers ----------------------------------------------------------------
#define GRAPH_SQL_IDS_MAX 3 // ids one graph_exec_ids / graph_query_ids binds
//  Runs sql with the decimal texts of ids[0..n) (1 <= n <= 3) as $1..$n:
//  db_exec's count of rows, or -1 / db_query's result, or NULL.
long graph_exec_ids(db_t *db, const char *sql, int n, const int64_t *ids);
PGresult *graph_query_ids(db_t *db, const char *sql, int n, const int64_t *ids);
//  Begins a transaction and takes the pair's lock only (changes that
//  remove rows need not lock the projection rows). NULL, or the 500 reply
//  (rolled back).
json_t *graph_begin_pair_lock(db_t *db, int64_t a, int64_t b);
//  Ends a handler's transaction: error NULL commits (a failed commit
//  becomes graph_internal(what)); a set error rolls back. Returns the
//  error reply, or NULL once committed; the transaction is closed either
//  way.
json_t *graph_finish(db_t *db, json_t *error, const char *what);
//  "{1,2,3}" for a bigint[] parameter. Caller frees.
char *graph_id_array(size_t n, const int64_t *ids);
//  Emits topic with {a_name: a, b_name: b} and, when time_id > 0,
//  created_at: the time time_id was made at. 0 or -1.
int graph_emit_pair(db_t *db, const char *topic, const char *a_name, int64_t a, const char *b_name,
                    int64_t b, int64_t time_id);
json_t *graph_internal(const char *what);
json_t *graph_not_found(void);
json_t *graph_signed_out(void);

#endif
