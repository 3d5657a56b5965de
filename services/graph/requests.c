/*  requests: pending follow requests to a private account.

    GET /me/follow-requests lists the requesters, newest request first.
    Approve turns a request into a follow (follow.accepted, then the
    follow.created it causes); deny drops it (follow.request_deleted).
    Both act only on requests made to the viewer, so no argument can name
    another account's requests: a username without a pending request to
    the viewer is 404, whoever asks.

    requests_approve_all() is the same approval for every pending request
    at once, run by the identity user.updated handler when an account is
    (or turns) public. It takes every pair lock before touching any row,
    so it cannot hold a counter another transaction needs while waiting for
    that transaction's pair.
*/
#include "graph.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>

json_t *requests_list(call_t *call)
{
    return graph_viewer_list(call,
                             "SELECT id, follower_id FROM follow_requests"
                             " WHERE followee_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                             0);
}

//  Deletes the request follower -> followee without an event (an approval
//  announces itself with follow.accepted). 1, 0 or -1.
static int s_take_request(db_t *db, int64_t follower, int64_t followee)
{
    long rows = graph_exec_ids(
        db, "DELETE FROM follow_requests WHERE follower_id = $1 AND followee_id = $2", 2,
        (int64_t[]){follower, followee});
    return rows < 0 ? -1 : rows > 0;
}

static json_t *s_no_request(void)
{
    return reply_error(404, ERR_NOT_FOUND, "no pending request from this user");
}

//  Approves (approve true) or denies the request of args.username.
static json_t *s_decide(call_t *call, bool approve)
{
    graph_user_t requester;
    json_t *reply = graph_other_user_arg(call, &requester, s_no_request);
    if (reply) return reply;
    db_t *db = call->db;
    reply = graph_begin_pair(call, call->viewer_id, requester.id, NULL, NULL);
    if (reply) {
        //  A requester graph cannot find has no request either.
        if (reply_status(reply) != 404) return reply;
        json_decref(reply);
        return s_no_request();
    }
    int rc;
    if (approve) {
        rc = s_take_request(db, requester.id, call->viewer_id);
        if (rc == 1 && graph_follow_insert(db, requester.id, call->viewer_id, true) < 0) rc = -1;
    } else {
        rc = graph_request_remove(db, requester.id, call->viewer_id);
    }
    if (rc < 0)
        reply = graph_internal(approve ? "approve" : "deny");
    else if (rc == 0)
        reply = s_no_request();
    reply = graph_finish(db, reply, "commit request decision");
    return reply ? reply : reply_ok(204, NULL);
}

json_t *requests_approve(call_t *call)
{
    return s_decide(call, true);
}

json_t *requests_deny(call_t *call)
{
    return s_decide(call, false);
}

int requests_approve_all(db_t *db, int64_t user_id)
{
    char id_text[GRAPH_ID_TEXT];
    ids_format(user_id, id_text, sizeof id_text);
    const char *params[] = {id_text};
    PGresult *res = db_query(db,
                             "SELECT follower_id FROM follow_requests WHERE followee_id = $1"
                             " ORDER BY id",
                             1, params);
    if (!res) return -1;
    int rows = PQntuples(res);
    int64_t *followers = zmalloc(((size_t)rows + 1) * sizeof *followers);
    for (int row = 0; row < rows; row++)
        ids_parse(PQgetvalue(res, row, 0), &followers[row]);
    PQclear(res);
    int rc = 0;
    for (int i = 0; i < rows && rc == 0; i++)
        rc = graph_lock_pair(db, followers[i], user_id);
    int approved = 0;
    for (int i = 0; i < rows && rc == 0; i++) {
        //  Re-checked under the lock: a cancel may have won the race.
        int taken = s_take_request(db, followers[i], user_id);
        if (taken < 0 || (taken == 1 && graph_follow_insert(db, followers[i], user_id, true) < 0))
            rc = -1;
        approved += taken == 1;
    }
    free(followers);
    if (rc == 0 && approved > 0)
        log_info("user %s is public: approved %d pending requests", id_text, approved);
    return rc;
}
