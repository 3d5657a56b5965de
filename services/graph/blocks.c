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
    char id_text[GRAPH_ID_TEXT], a[GRAPH_ID_TEXT], b[GRAPH_ID_TEXT];
    ids_format(id, id_text, sizeof id_text);
    ids_format(blocker, a, sizeof a);
    ids_format(blocked, b, sizeof b);
    const char *params[] = {id_text, a, b};
    long rows = db_exec(db,
                        "INSERT INTO blocks (id, blocker_id, blocked_id) VALUES ($1, $2, $3)"
                        " ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
                        3, params);
    return rows < 0 ? -1 : rows > 0;
}

json_t *blocks_create(call_t *call)
{
    if (call->viewer_id <= 0) return graph_signed_out();
    graph_user_t target;
    json_t *reply = graph_user_by_username_arg(call, &target);
    if (reply) return reply;
    if (target.id == call->viewer_id) return s_cannot_block_self();
    db_t *db = call->db;
    reply = graph_begin_pair(call, call->viewer_id, target.id, NULL, NULL);
    if (reply) return reply;
    int64_t viewer = call->viewer_id, other = target.id;
    int64_t id = ids_next();
    int inserted;
    if (graph_lock_pair(db, viewer, other) != 0 ||
        (inserted = s_block_insert(db, viewer, other, id)) < 0) {
        reply = graph_internal("block");
        goto cleanup;
    }
    if (inserted == 1 &&
        (graph_follow_remove(db, viewer, other) < 0 || graph_follow_remove(db, other, viewer) < 0 ||
         graph_request_remove(db, viewer, other) < 0 ||
         graph_request_remove(db, other, viewer) < 0 ||
         graph_emit_pair(db, "block.created", "blocker_id", viewer, "blocked_id", other, id) !=
             0)) {
        reply = graph_internal("block cleanup");
        goto cleanup;
    }
    if (db_commit(db) != 0) {
        reply = graph_internal("commit block");
        goto cleanup;
    }
    reply = reply_ok(204, NULL);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    return reply;
}

json_t *blocks_delete(call_t *call)
{
    if (call->viewer_id <= 0) return graph_signed_out();
    graph_user_t target;
    json_t *reply = graph_user_by_username_arg(call, &target);
    if (reply) return reply;
    if (target.id == call->viewer_id) return s_cannot_block_self();
    db_t *db = call->db;
    char a[GRAPH_ID_TEXT], b[GRAPH_ID_TEXT];
    ids_format(call->viewer_id, a, sizeof a);
    ids_format(target.id, b, sizeof b);
    const char *params[] = {a, b};
    if (db_begin(db) != 0) return graph_internal("begin");
    long rows;
    if (graph_lock_pair(db, call->viewer_id, target.id) != 0 ||
        (rows = db_exec(db, "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2", 2,
                        params)) < 0 ||
        (rows > 0 && graph_emit_pair(db, "block.deleted", "blocker_id", call->viewer_id,
                                     "blocked_id", target.id, 0) != 0)) {
        reply = graph_internal("unblock");
        goto cleanup;
    }
    if (db_commit(db) != 0) {
        reply = graph_internal("commit unblock");
        goto cleanup;
    }
    reply = reply_ok(204, NULL);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    return reply;
}

json_t *blocks_list(call_t *call)
{
    if (call->viewer_id <= 0) return graph_signed_out();
    int limit = 0;
    int64_t before = 0;
    json_t *reply = graph_page_args(call, &limit, &before);
    if (reply) return reply;
    return graph_user_page(call,
                           "SELECT id, blocked_id FROM blocks"
                           " WHERE blocker_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                           call->viewer_id, limit, before, USERS_KEEP_BLOCKED);
}
