/*  relations: how one viewer relates to many users, in one query.

    s_relations() is the single place that decides followers_count,
    following_count, followed_by_me, follows_me, follow_state, blocked and
    can_view. Through graph_relations() it answers relations.batch
    (users_decorate in other services), the relation fields of graph's own
    lists, and the access check of the followers and following lists;
    through graph_visibility(), with a query that reads only what can_view
    needs, relations.visible (media's visibility function, asked for every
    page of posts). So the rules cannot drift apart. The query unnests the asked ids
    WITH ORDINALITY and joins the projection and the counters, with one
    primary-key probe per relation per id: a page of 20 users, or a feed
    page's 20 authors, is one round trip to Postgres.

    Why every subquery ends in OFFSET 0: graph runs generic plans
    (common/db.c), which guess 10 rows for the unnested array and know
    nothing of the viewer. With that guess Postgres hashed each EXISTS
    (every follower of the viewer read and hashed, per call: 197 rows at
    the tiny bench scale, a celebrity's 100,000 at large) and joined users
    and counts by sequential scan. OFFSET 0 keeps each subquery as it is
    written, a probe of a primary key or of an index for each asked id:
    0.37 ms became 0.06 ms for one id on the tiny dataset, and the cost no
    longer grows with the viewer's follower count.

    can_view: not blocked either way, and the viewer is the user, or the
    user is public, or the viewer is an approved follower. A user graph has
    not heard of yet counts as private in relations.batch (safe: visible to
    itself only), because relations.batch never calls identity: identity's
    users_decorate calls it, and a call back would be a cycle.
    relations.visible, which identity never calls, asks identity about the
    ids it misses (one users.batch) and keeps the answer, so a post made a
    millisecond after its author registered is not hidden by the lag of
    the projection.
*/
#include "graph.h"
#include "args.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

//  The columns both queries give, in order: id, known, is_private,
//  followers_count, following_count, followed_by_me, follows_me, requested,
//  blocked (s_relations reads them).
#define FOLLOWED_BY_VIEWER_SQL                                                                     \
    "EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $2::bigint"                             \
    "        AND f.followee_id = u.id OFFSET 0)"
#define BLOCKED_EITHER_WAY_SQL                                                                     \
    " EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $2::bigint AND b.blocked_id = u.id"      \
    "         OFFSET 0)"                                                                           \
    " OR EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $2::bigint"   \
    "         OFFSET 0)"
#define ASKED_IDS_SQL                                                                              \
    " FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord)"                                     \
    " LEFT JOIN LATERAL (SELECT id, is_private FROM users WHERE id = u.id OFFSET 0) p ON true"

static const char s_relations_sql[] =
    "SELECT u.id, p.id IS NOT NULL, coalesce(p.is_private, true),"
    " coalesce(c.followers_count, 0), coalesce(c.following_count, 0), " FOLLOWED_BY_VIEWER_SQL ","
    " EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = u.id"
    "         AND f.followee_id = $2::bigint OFFSET 0),"
    " EXISTS (SELECT 1 FROM follow_requests r WHERE r.follower_id = $2::bigint"
    "         AND r.followee_id = u.id OFFSET 0)," BLOCKED_EITHER_WAY_SQL ASKED_IDS_SQL
    " LEFT JOIN LATERAL (SELECT followers_count, following_count FROM counts"
    "                    WHERE user_id = u.id OFFSET 0) c ON true"
    " ORDER BY u.ord";

//  Only what can_view needs: no counters, and the follow edge probed for
//  private accounts alone (a CASE runs only the branch it takes).
static const char s_visibility_sql[] =
    "SELECT u.id, p.id IS NOT NULL, coalesce(p.is_private, true), 0, 0,"
    " CASE WHEN coalesce(p.is_private, true) THEN " FOLLOWED_BY_VIEWER_SQL " ELSE false END,"
    " false, false," BLOCKED_EITHER_WAY_SQL ASKED_IDS_SQL " ORDER BY u.ord";

static int s_relations(db_t *db, const char *sql, int64_t viewer, size_t n, const int64_t *ids,
                       graph_relation_t *out)
{
    if (n == 0) return 0;
    char *array = graph_id_array(n, ids);
    char viewer_text[GRAPH_ID_TEXT];
    ids_format(viewer > 0 ? viewer : 0, viewer_text, sizeof viewer_text);
    const char *params[] = {array, viewer_text};
    PGresult *res = db_query(db, sql, 2, params);
    free(array);
    if (!res) return -1;
    if ((size_t)PQntuples(res) != n) {
        PQclear(res);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int row = (int)i;
        graph_relation_t *r = &out[i];
        memset(r, 0, sizeof *r);
        r->id = ids[i];
        r->known = PQgetvalue(res, row, 1)[0] == 't';
        r->is_private = PQgetvalue(res, row, 2)[0] == 't';
        r->followers_count = strtoll(PQgetvalue(res, row, 3), NULL, 10);
        r->following_count = strtoll(PQgetvalue(res, row, 4), NULL, 10);
        r->followed_by_me = PQgetvalue(res, row, 5)[0] == 't';
        r->follows_me = PQgetvalue(res, row, 6)[0] == 't';
        r->requested = PQgetvalue(res, row, 7)[0] == 't';
        r->blocked = PQgetvalue(res, row, 8)[0] == 't';
        bool self = viewer > 0 && ids[i] == viewer;
        r->can_view = !r->blocked && (self || !r->is_private || r->followed_by_me);
    }
    PQclear(res);
    return 0;
}

int graph_relations(db_t *db, int64_t viewer, size_t n, const int64_t *ids, graph_relation_t *out)
{
    return s_relations(db, s_relations_sql, viewer, n, ids, out);
}

int graph_visibility(db_t *db, int64_t viewer, size_t n, const int64_t *ids, graph_relation_t *out)
{
    return s_relations(db, s_visibility_sql, viewer, n, ids, out);
}

json_t *graph_relation_json(const graph_relation_t *relation)
{
    const char *state = relation->followed_by_me ? "following"
                        : relation->requested    ? "requested"
                                                 : "none";
    return json_pack("{s:I, s:I, s:b, s:b, s:s, s:b, s:b}", "followers_count",
                     (json_int_t)relation->followers_count, "following_count",
                     (json_int_t)relation->following_count, "followed_by_me",
                     relation->followed_by_me, "follows_me", relation->follows_me, "follow_state",
                     state, "blocked", relation->blocked, "can_view", relation->can_view);
}

json_t *graph_check_lists(call_t *call, const graph_user_t *target)
{
    if (call->viewer_id > 0 && target->id == call->viewer_id) return NULL;
    graph_relation_t relation;
    if (graph_relations(call->db, call->viewer_id, 1, &target->id, &relation) != 0)
        return graph_internal("list access");
    if (relation.blocked) return graph_not_found();
    if (!relation.can_view)
        return reply_error(403, ERR_FORBIDDEN,
                           "this account is private: follow it to see its lists");
    return NULL;
}

//  args.ids: at most GRAPH_BATCH_MAX ids (strings of digits; integers are
//  accepted too, as identity's users.batch does). Returns a new array of n
//  ids in *ids_out (caller frees), or the 400 reply.
static json_t *s_ids_arg(call_t *call, int64_t **ids_out, size_t *n_out)
{
    *ids_out = NULL;
    *n_out = 0;
    json_t *array = json_object_get(call->args, "ids");
    if (!json_is_array(array) || json_array_size(array) > GRAPH_BATCH_MAX)
        return reply_invalid(json_pack("{s:s}", "ids", "must be an array of at most 1000 ids"),
                             "some fields are not valid");
    size_t n = json_array_size(array);
    int64_t *ids = zmalloc((n + 1) * sizeof *ids);
    size_t index;
    json_t *value;
    json_array_foreach(array, index, value)
    {
        int64_t id = 0;
        bool ok = (json_is_string(value) && json_string_length(value) <= 20 &&
                   ids_parse(json_string_value(value), &id)) ||
                  (json_is_integer(value) && (id = json_integer_value(value)) > 0);
        if (!ok) {
            free(ids);
            return reply_invalid(json_pack("{s:s}", "ids", "must hold ids (strings of digits)"),
                                 "some fields are not valid");
        }
        ids[index] = id;
    }
    *ids_out = ids;
    *n_out = n;
    return NULL;
}

json_t *relations_batch(call_t *call)
{
    int64_t *ids = NULL;
    size_t n = 0;
    json_t *reply = s_ids_arg(call, &ids, &n);
    if (reply) return reply;
    graph_relation_t *relations = zmalloc((n + 1) * sizeof *relations);
    if (graph_relations(call->db, call->viewer_id, n, ids, relations) != 0) {
        reply = graph_internal("relations.batch");
    } else {
        json_t *map = json_object();
        for (size_t i = 0; i < n; i++) {
            char text[GRAPH_ID_TEXT];
            ids_format(ids[i], text, sizeof text);
            json_object_set_new(map, text, graph_relation_json(&relations[i]));
        }
        reply = reply_ok(200, json_pack("{s:o}", "relations", map));
    }
    free(ids);
    free(relations);
    return reply;
}

//  Asks identity about the ids of relations graph does not know and keeps
//  the answer. Failures are logged only: unknown stays invisible.
static void s_learn_missing(call_t *call, size_t n, const graph_relation_t *relations)
{
    json_t *missing = json_array();
    for (size_t i = 0; i < n; i++)
        if (!relations[i].known) {
            char text[GRAPH_ID_TEXT];
            ids_format(relations[i].id, text, sizeof text);
            json_array_append_new(missing, json_string(text));
        }
    json_t *args = json_pack("{s:o}", "ids", missing);
    json_t *reply =
        rpc_call(call->rpc, "identity", "users.batch", 0, args, NULL, call->request->deadline_ms);
    json_decref(args);
    json_t *users = json_object_get(reply_body(reply), "users");
    if (reply_status(reply) != 200 || !json_is_array(users))
        log_warn("relations.visible: identity users.batch answered %d; unknown authors stay hidden",
                 reply_status(reply));
    else if (graph_users_remember(call->db, users) != 0)
        log_warn("relations.visible: could not remember users");
    json_decref(reply);
}

json_t *relations_visible(call_t *call)
{
    int64_t *ids = NULL;
    size_t n = 0;
    json_t *reply = s_ids_arg(call, &ids, &n);
    if (reply) return reply;
    graph_relation_t *relations = zmalloc((n + 1) * sizeof *relations);
    int rc = graph_visibility(call->db, call->viewer_id, n, ids, relations);
    bool missing = false;
    for (size_t i = 0; rc == 0 && i < n; i++)
        missing |= !relations[i].known && !relations[i].blocked;
    if (rc == 0 && missing) {
        s_learn_missing(call, n, relations);
        rc = graph_visibility(call->db, call->viewer_id, n, ids, relations);
    }
    if (rc != 0) {
        reply = graph_internal("relations.visible");
    } else {
        json_t *visible = json_array();
        for (size_t i = 0; i < n; i++) {
            if (!relations[i].can_view) continue;
            bool seen = false; // each id once, in the order asked
            for (size_t j = 0; j < i && !seen; j++)
                seen = ids[j] == ids[i] && relations[j].can_view;
            if (seen) continue;
            char text[GRAPH_ID_TEXT];
            ids_format(ids[i], text, sizeof text);
            json_array_append_new(visible, json_string(text));
        }
        reply = reply_ok(200, json_pack("{s:o}", "visible", visible));
    }
    free(ids);
    free(relations);
    return reply;
}
