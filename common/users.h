/*  users: assembling the public user object from its three owners
    (docs/contracts.md, "Assembling a user object").

    identity owns the base fields (id, username, display_name, bio, website,
    avatar_url, is_private); graph owns followers_count, following_count
    and, for a signed-in viewer, followed_by_me, follows_me and
    follow_state; media owns posts_count. users_decorate() takes an array
    of base user objects and fills the rest with one graph relations.batch
    call and one media posts.counts call (per 1000 users), and drops the
    users blocked either way with the viewer.

    A service that owns one part passes a flag to skip its RPC and fills
    that part itself (no service calls itself: it could exhaust its own
    worker threads). graph, which computes relations locally, applies them
    with users_apply_relations(), the same code users_decorate() uses on
    relations.batch's answer.

    Degrading: when graph or media does not answer (503 no worker, 504
    timeout, 404 unknown method, or anything else that is not a 200), its
    fields are 0 / false / "none", nobody is dropped, and a warning is
    logged: a profile still loads when a counter service is down. Each peer
    call gets at most a third of the time left before deadline_ms (at most
    1.5 s), so the caller still has time to answer.
*/
#ifndef USERS_H_INCLUDED
#define USERS_H_INCLUDED

#include "rpc.h"

#include <jansson.h>
#include <stdint.h>

#define USERS_SKIP_GRAPH 0x1u   // the caller fills the graph fields itself (graph)
#define USERS_SKIP_MEDIA 0x2u   // the caller fills posts_count itself (media)
#define USERS_KEEP_BLOCKED 0x4u // keep users blocked with the viewer (graph's block list)
#define USERS_BATCH_MAX 1000    // ids per relations.batch / posts.counts call

//  Decorates users (a JSON array of base user objects, each with a string
//  "id"; changed in place) as viewer_id sees them (0 = anonymous: no
//  viewer fields). Users blocked either way with the viewer are removed
//  from the array unless flags has USERS_KEEP_BLOCKED. deadline_ms is the
//  caller's absolute deadline (0 = now + RPC_DEFAULT_TIMEOUT_MS).
//  Returns 0, or -1 when users is not an array (nothing changed). A peer
//  that does not answer is not an error (see above).
int users_decorate(rpc_client_t *rpc, int64_t viewer_id, json_t *users, unsigned flags,
                   int64_t deadline_ms);

//  Sets the graph fields of every user in users from relations (an object
//  "<id>" -> {followers_count, following_count, followed_by_me,
//  follows_me, follow_state, blocked, can_view}, borrowed; NULL means
//  graph did not answer: 0 / false / "none"). Viewer fields only when
//  viewer_id > 0. Removes users whose relation says blocked, unless flags
//  has USERS_KEEP_BLOCKED.
void users_apply_relations(json_t *users, const json_t *relations, int64_t viewer_id,
                           unsigned flags);

//  Sets posts_count of every user from counts ("<id>" -> n, borrowed;
//  NULL or a missing id means 0).
void users_apply_post_counts(json_t *users, const json_t *counts);

#endif
