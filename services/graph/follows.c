/*  follows: follow, unfollow, the followers and following lists, and the
    edge primitives the other files build on.

    A follow of a public account creates the edge; of a private account, a
    pending request (follow_state "requested") that the owner approves or
    denies (requests.c). Both are idempotent: following again answers the
    current state and changes nothing. DELETE removes the edge, or cancels
    the request, and answers {follow_state: "none"} either way. Blocked
    either way, the other account does not exist for you: 404.

    Every change runs in one transaction with the locks of graph.h: the two
    projection rows (so the followee's is_private cannot change under us:
    identity's user.updated handler takes the row FOR UPDATE), then the
    pair lock, then the rows, then the counters of both users in one
    ordered statement. The counters are therefore exact under any
    concurrency (20 people following one account at once add exactly 20),
    and reading them is one row, never a COUNT(*).
*/
#include "graph.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

//  First key of the two-int advisory locks of pairs (the second is a hash
//  of the pair). db.c uses 7301 for migrations.
#define GRAPH_PAIR_LOCK "7310"

//  ---- primitives (inside a transaction) --------------------------------------------

int graph_lock_pair(db_t *db, int64_t a, int64_t b)
{
    char key[2 * GRAPH_ID_TEXT + 2];
    snprintf(key, sizeof key, "%lld:%lld", (long long)(a < b ? a : b), (long long)(a < b ? b : a));
    const char *params[] = {GRAPH_PAIR_LOCK, key};
    return db_exec(db, "SELECT pg_advisory_xact_lock($1::int, hashtext($2))", 2, params) < 0 ? -1
                                                                                             : 0;
}

//  "{1,-1,0}" for an int[] parameter. Caller frees.
static char *s_int_array(size_t n, const int *values)
{
    char *text = zmalloc(n * 12 + 3);
    size_t used = 0;
    text[used++] = '{';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(text + used, 13, "%s%d", i ? "," : "", values[i]);
    text[used++] = '}';
    text[used] = '\0';
    return text;
}

int graph_counts_apply(db_t *db, size_t n, const int64_t *users, const int *followers,
                       const int *following)
{
    if (n == 0) return 0;
    char *user_array = graph_id_array(n, users);
    char *followers_array = s_int_array(n, followers);
    char *following_array = s_int_array(n, following);
    const char *params[] = {user_array, followers_array, following_array};
    //  One statement, rows in user id order: two transactions touching the
    //  same users lock their counts rows in the same order, so they wait
    //  for each other instead of deadlocking.
    long rows = db_exec(db,
                        "INSERT INTO counts (user_id, followers_count, following_count)"
                        " SELECT u, sum(fr)::bigint, sum(fg)::bigint"
                        " FROM unnest($1::bigint[], $2::int[], $3::int[]) AS t(u, fr, fg)"
                        " GROUP BY u ORDER BY u"
                        " ON CONFLICT (user_id) DO UPDATE SET"
                        " followers_count = counts.followers_count + EXCLUDED.followers_count,"
                        " following_count = counts.following_count + EXCLUDED.following_count",
                        3, params);
    free(user_array);
    free(followers_array);
    free(following_array);
    return rows < 0 ? -1 : 0;
}

//  Counters of one edge: the follower's following and the followee's
//  followers move by delta.
static int s_counts_edge(db_t *db, int64_t follower, int64_t followee, int delta)
{
    int64_t users[2] = {follower, followee};
    int followers[2] = {0, delta};
    int following[2] = {delta, 0};
    return graph_counts_apply(db, 2, users, followers, following);
}

int graph_follow_insert(db_t *db, int64_t follower, int64_t followee, bool accepted)
{
    int64_t id = ids_next();
    long rows =
        graph_exec_ids(db,
                       "INSERT INTO follows (id, follower_id, followee_id) VALUES ($1, $2, $3)"
                       " ON CONFLICT (follower_id, followee_id) DO NOTHING",
                       3, (int64_t[]){id, follower, followee});
    if (rows <= 0) return (int)rows;
    if (accepted && graph_emit_pair(db, "follow.accepted", "follower_id", follower, "followee_id",
                                    followee, id) != 0)
        return -1;
    if (graph_emit_pair(db, "follow.created", "follower_id", follower, "followee_id", followee,
                        id) != 0 ||
        s_counts_edge(db, follower, followee, 1) != 0)
        return -1;
    return 1;
}

int graph_follow_remove(db_t *db, int64_t follower, int64_t followee)
{
    long rows =
        graph_exec_ids(db, "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2", 2,
                       (int64_t[]){follower, followee});
    if (rows <= 0) return (int)rows;
    if (graph_emit_pair(db, "follow.deleted", "follower_id", follower, "followee_id", followee,
                        0) != 0 ||
        s_counts_edge(db, follower, followee, -1) != 0)
        return -1;
    return 1;
}

//  Creates a pending request. 1 created, 0 already pending, -1 error.
static int s_request_insert(db_t *db, int64_t follower, int64_t followee)
{
    int64_t id = ids_next();
    long rows = graph_exec_ids(db,
                               "INSERT INTO follow_requests (id, follower_id, followee_id)"
                               " VALUES ($1, $2, $3)"
                               " ON CONFLICT (follower_id, followee_id) DO NOTHING",
                               3, (int64_t[]){id, follower, followee});
    if (rows <= 0) return (int)rows;
    return graph_emit_pair(db, "follow.requested", "follower_id", follower, "followee_id", followee,
                           id) == 0
               ? 1
               : -1;
}

int graph_request_remove(db_t *db, int64_t follower, int64_t followee)
{
    long rows = graph_exec_ids(
        db, "DELETE FROM follow_requests WHERE follower_id = $1 AND followee_id = $2", 2,
        (int64_t[]){follower, followee});
    if (rows <= 0) return (int)rows;
    return graph_emit_pair(db, "follow.request_deleted", "follower_id", follower, "followee_id",
                           followee, 0) == 0
               ? 1
               : -1;
}

int graph_blocked_either(db_t *db, int64_t a, int64_t b)
{
    PGresult *res = graph_query_ids(db,
                                    "SELECT EXISTS (SELECT 1 FROM blocks WHERE"
                                    " (blocker_id = $1 AND blocked_id = $2)"
                                    " OR (blocker_id = $2 AND blocked_id = $1))",
                                    2, (int64_t[]){a, b});
    if (!res) return -1;
    int blocked = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return blocked;
}

//  In one round trip: whether follower and followee blocked each other
//  either way, and whether follower already follows followee. 0 or -1.
static int s_pair_state(db_t *db, int64_t follower, int64_t followee, bool *blocked,
                        bool *following)
{
    PGresult *res = graph_query_ids(db,
                                    "SELECT EXISTS (SELECT 1 FROM blocks WHERE"
                                    " (blocker_id = $1 AND blocked_id = $2)"
                                    " OR (blocker_id = $2 AND blocked_id = $1)),"
                                    " EXISTS (SELECT 1 FROM follows"
                                    " WHERE follower_id = $1 AND followee_id = $2)",
                                    2, (int64_t[]){follower, followee});
    if (!res) return -1;
    *blocked = PQgetvalue(res, 0, 0)[0] == 't';
    *following = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    return 0;
}

//  ---- handlers ---------------------------------------------------------------------

static json_t *s_cannot_follow_self(void)
{
    return reply_invalid(json_pack("{s:s}", "username", "you cannot follow yourself"),
                         "you cannot follow yourself");
}

static json_t *s_state(const char *state)
{
    return reply_ok(200, json_pack("{s:s}", "follow_state", state));
}

json_t *follows_create(call_t *call)
{
    graph_user_t target;
    json_t *reply = graph_other_user_arg(call, &target, s_cannot_follow_self);
    if (reply) return reply;
    db_t *db = call->db;
    reply = graph_begin_pair(call, call->viewer_id, target.id, NULL, &target);
    if (reply) return reply;
    const char *state = "following";
    bool blocked = false, following = false;
    if (s_pair_state(db, call->viewer_id, target.id, &blocked, &following) != 0)
        reply = graph_internal("follow checks");
    else if (blocked)
        reply = graph_not_found();
    else if (!following && target.is_private) {
        state = "requested";
        if (s_request_insert(db, call->viewer_id, target.id) < 0)
            reply = graph_internal("follow request");
    }
    //  A public account: a request left from when it was private goes, the
    //  follow replaces it. (Already following: nothing changes.)
    else if (!following && (graph_request_remove(db, call->viewer_id, target.id) < 0 ||
                            graph_follow_insert(db, call->viewer_id, target.id, false) < 0))
        reply = graph_internal("follow");
    reply = graph_finish(db, reply, "commit follow");
    return reply ? reply : s_state(state);
}

json_t *follows_delete(call_t *call)
{
    graph_user_t target;
    json_t *reply = graph_other_user_arg(call, &target, s_cannot_follow_self);
    if (reply) return reply;
    db_t *db = call->db;
    reply = graph_begin_pair_lock(db, call->viewer_id, target.id);
    if (reply) return reply;
    int rc = graph_blocked_either(db, call->viewer_id, target.id);
    if (rc < 0)
        reply = graph_internal("unfollow checks");
    else if (rc == 1)
        reply = graph_not_found();
    else if ((rc = graph_follow_remove(db, call->viewer_id, target.id)) < 0 ||
             (rc == 0 && graph_request_remove(db, call->viewer_id, target.id) < 0))
        reply = graph_internal("unfollow");
    reply = graph_finish(db, reply, "commit unfollow");
    return reply ? reply : s_state("none");
}

//  A list of target's followers or followees, as the viewer may see it.
static json_t *s_list(call_t *call, const char *sql)
{
    if (call->viewer_id <= 0) return graph_signed_out();
    int limit = 0;
    int64_t before = 0;
    json_t *reply = graph_page_args(call, &limit, &before);
    if (reply) return reply;
    graph_user_t target;
    reply = graph_user_by_username_arg(call, &target);
    if (reply) return reply;
    reply = graph_check_lists(call, &target);
    if (reply) return reply;
    return graph_user_page(call, sql, target.id, limit, before, 0);
}

json_t *follows_followers(call_t *call)
{
    return s_list(call, "SELECT id, follower_id FROM follows"
                        " WHERE followee_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
}

json_t *follows_following(call_t *call)
{
    return s_list(call, "SELECT id, followee_id FROM follows"
                        " WHERE follower_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
}

json_t *follows_following_ids(call_t *call)
{
    json_t *fields = json_object();
    int64_t user = 0;
    if (args_id(call->args, "user_id", true, &user, fields) != 1)
        return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    int limit = 0;
    int64_t before = 0;
    json_t *reply = graph_page_args(call, &limit, &before);
    if (reply) return reply;
    PGresult *res =
        graph_page_query(call->db,
                         "SELECT id, followee_id FROM follows"
                         " WHERE follower_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                         user, limit, before);
    if (!res) return graph_internal("following ids");
    int rows = PQntuples(res);
    int taken = rows > limit ? limit : rows;
    json_t *items = json_array();
    int64_t last = 0;
    for (int row = 0; row < taken; row++) {
        ids_parse(PQgetvalue(res, row, 0), &last);
        json_array_append_new(items, json_string(PQgetvalue(res, row, 1)));
    }
    json_t *next = graph_next_cursor(rows, limit, last);
    PQclear(res);
    return reply_ok(200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}
