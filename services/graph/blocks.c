/*  blocks: block, unblock, and the list of accounts I blocked.

    A block takes effect in its own transaction: it removes the follows
    both ways (follow.deleted for each, so feeds drop the posts at once)
    and any pending request either way (follow.request_deleted), then
    records the block (block.created). From then on graph_relations()
    reports the pair blocked, which every service reads as "not found".
    Unblocking (block.deleted) restores nothing.

    Blocking is idempotent (204 again, no new event), and allowed even when
    the other account has blocked the viewer first: it only adds a second
    wall. Blocking yourself is 400.
*/
#include "graph.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>

static json_t *s_cannot_block_self(void)
{
    return reply_invalid(json_pack("{s:s}", "username", "you cannot block yourself"),
                         "you cannot block yourself");
}

//  Inserts the block row. 1 inserted, 0 already there, -1 error.
static int s_block_insert(db_t *db, int64_t blocker, int64_t blocked, int64_t id)
{
    long rows = graph_exec_ids(db,
                               "INSERT INTO blocks (id, blocker_id, blocked_id) VALUES ($1, $2, $3)"
                               " ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
                               3, (int64_t[]){id, blocker, blocked});
    return rows < 0 ? -1 : rows > 0;
}

json_t *blocks_create(call_t *call)
{
    graph_user_t target;
    json_t *reply = graph_other_user_arg(call, &target, s_cannot_block_self);
    if (reply) return reply;
    db_t *db = call->db;
    reply = graph_begin_pair(call, call->viewer_id, target.id, NULL, NULL);
    if (reply) return reply;
    int64_t viewer = call->viewer_id, other = target.id;
    int64_t id = ids_next();
    int inserted = s_block_insert(db, viewer, other, id);
    if (inserted < 0)
        reply = graph_internal("block");
    else if (inserted == 1 && (graph_follow_remove(db, viewer, other) < 0 ||
                               graph_follow_remove(db, other, viewer) < 0 ||
                               graph_request_remove(db, viewer, other) < 0 ||
                               graph_request_remove(db, other, viewer) < 0 ||
                               graph_emit_pair(db, "block.created", "blocker_id", viewer,
                                               "blocked_id", other, id) != 0))
        reply = graph_internal("block cleanup");
    reply = graph_finish(db, reply, "commit block");
    return reply ? reply : reply_ok(204, NULL);
}

json_t *blocks_delete(call_t *call)
{
    graph_user_t target;
    json_t *reply = graph_other_user_arg(call, &target, s_cannot_block_self);
    if (reply) return reply;
    db_t *db = call->db;
    reply = graph_begin_pair_lock(db, call->viewer_id, target.id);
    if (reply) return reply;
    long rows = graph_exec_ids(db, "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                               2, (int64_t[]){call->viewer_id, target.id});
    if (rows < 0 || (rows > 0 && graph_emit_pair(db, "block.deleted", "blocker_id", call->viewer_id,
                                                 "blocked_id", target.id, 0) != 0))
        reply = graph_internal("unblock");
    reply = graph_finish(db, reply, "commit unblock");
    return reply ? reply : reply_ok(204, NULL);
}

json_t *blocks_list(call_t *call)
{
    return graph_viewer_list(call,
                             "SELECT id, blocked_id FROM blocks"
                             " WHERE blocker_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                             USERS_KEEP_BLOCKED);
}
