/*  timeline: GET /feed (timeline.get), the home feed: my own posts and
    those of the accounts I follow, newest first by post id.

    A page is one query that merges three sources (schemas/feed/):

      pushed  my timeline rows above my trim floor: the fan-out on write
              (fanout.c) put them there; the primary key (user_id, post_id)
              serves `post_id < cursor ORDER BY post_id DESC LIMIT n+1`.
      pulled  posts that were not fanned out because their author had more
              than FEED_FANOUT_THRESHOLD followers: for each such author I
              follow (pull_authors is small, so the join is cheap), the
              newest n+1 below the cursor from a partial index, and above
              the oldest pushed row when pushed alone fills the page (an
              older post could not be on it): on the seeded `default` data
              this took the page query from 0.35 to 0.20 ms.
      deep    only when the page reaches below the trim floor (a timeline
              keeps its newest FEED_TIMELINE_MAX rows): the newest n+1 posts
              of each account I follow and mine, from the post projection.
              Gated by a one-time filter, so ordinary pages never run it.

    UNION removes duplicates, and the newest n+1 ids decide the page.
    Keyset pagination on the post id (the cursor is the last id shown)
    cannot skip or repeat a post when posts arrive or go between pages:
    new posts have higher ids and land above the cursor.

    The page is hydrated with one media posts.batch call, which applies
    visibility and leaves out what the viewer may not see or what was
    deleted meanwhile; those are dropped (the page may be shorter than the
    limit; next_cursor still follows the ids). Media's posts are passed on
    as the msgpack they came in (rpc_call_lazy, call_t.reply_packed), not
    decoded into a jansson tree and encoded again: a page of 20 posts is
    some 600 values, and that round trip was most of this service's CPU
    per page.
*/
#include "feed.h"
#include "cursor.h"
#include "errors.h"
#include "log.h"
#include "msgjson.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

json_t *feed_hydrate_posts(call_t *call, json_t *ids, json_t **reply_out)
{
    if (json_array_size(ids) == 0) return json_array();
    json_t *args = json_pack("{sO}", "ids", ids);
    json_t *reply = rpc_call(call->rpc, "media", "posts.batch", call->viewer_id, args, NULL,
                             call->request->deadline_ms);
    json_decref(args);
    json_t *posts = json_object_get(reply_body(reply), "posts");
    if (reply_status(reply) != 200 || !json_is_array(posts)) {
        *reply_out = feed_upstream_error("media posts.batch", reply);
        json_decref(reply);
        return NULL;
    }
    json_incref(posts);
    json_decref(reply);
    return posts;
}

//  Packs {status: 200, body: {items: posts, next_cursor: next}} into
//  call->reply_packed, posts as media sent them. 0 or -1.
static int s_pack_page(call_t *call, const msgpack_object *posts, const json_t *next)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&packer, 2);
    rc |= msgpack_pack_str_with_body(&packer, "status", 6);
    rc |= msgpack_pack_int(&packer, 200);
    rc |= msgpack_pack_str_with_body(&packer, "body", 4);
    rc |= msgpack_pack_map(&packer, 2);
    rc |= msgpack_pack_str_with_body(&packer, "items", 5);
    rc |= msgpack_pack_object(&packer, *posts);
    rc |= msgpack_pack_str_with_body(&packer, "next_cursor", 11);
    rc |= msgjson_pack(&packer, next);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&buffer);
        return -1;
    }
    call->reply_packed_size = buffer.size; // release empties the buffer
    call->reply_packed = msgpack_sbuffer_release(&buffer);
    return 0;
}

//  The page's reply: media's posts for ids (an array of id strings, newest
//  first) with next (a cursor string or null), packed as they came.
static json_t *s_hydrate_packed(call_t *call, json_t *ids, const json_t *next)
{
    json_t *body = NULL;
    if (json_array_size(ids) == 0) {
        body = json_pack("{s[]sO}", "items", "next_cursor", next);
        return reply_ok(200, body);
    }
    json_t *args = json_pack("{sO}", "ids", ids);
    rpc_body_t lazy;
    rpc_body_init(&lazy);
    json_t *reply = rpc_call_lazy(call->rpc, "media", "posts.batch", call->viewer_id, args, NULL,
                                  call->request->deadline_ms, &lazy);
    json_decref(args);
    const msgpack_object *posts = NULL;
    if (lazy.body && lazy.body->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < lazy.body->via.map.size; i++) {
            const msgpack_object_kv *pair = &lazy.body->via.map.ptr[i];
            if (pair->key.type == MSGPACK_OBJECT_STR && pair->key.via.str.size == 5 &&
                memcmp(pair->key.via.str.ptr, "posts", 5) == 0)
                posts = &pair->val;
        }
    }
    json_t *answer;
    if (reply_status(reply) != 200 || !posts || posts->type != MSGPACK_OBJECT_ARRAY)
        answer = feed_upstream_error("media posts.batch", reply);
    else if (s_pack_page(call, posts, next) != 0)
        answer = feed_internal("packing the feed page");
    else
        answer = reply_ok(200, NULL); // the status for the log: the packed reply goes out
    rpc_body_clear(&lazy);
    json_decref(reply);
    return answer;
}

PGresult *timeline_page(db_t *db, int64_t viewer_id, int64_t before_id, int count)
{
    char viewer[21], cursor_text[21], limit_text[16];
    snprintf(cursor_text, sizeof cursor_text, "%" PRId64, before_id);
    snprintf(limit_text, sizeof limit_text, "%d", count);
    const char *params[] = {feed_id_text(viewer_id, viewer), cursor_text, limit_text};
    return db_query(
        db,
        "WITH fl AS MATERIALIZED (SELECT coalesce((SELECT floor_id FROM timeline_floor"
        "   WHERE user_id = $1), 0) AS floor_id),"
        " pushed AS MATERIALIZED (SELECT post_id FROM timeline"
        "   WHERE user_id = $1 AND post_id < $2 AND post_id > (SELECT floor_id FROM fl)"
        "   ORDER BY post_id DESC LIMIT $3),"
        " lo AS MATERIALIZED (SELECT CASE WHEN count(*) = $3::bigint THEN min(post_id)"
        "   ELSE 0 END AS id FROM pushed),"
        " pulled AS (SELECT p.id FROM follows f"
        "   JOIN pull_authors a ON a.author_id = f.followee_id"
        "   CROSS JOIN LATERAL (SELECT id FROM posts WHERE author_id = f.followee_id"
        "     AND NOT fanned_out AND id < $2 AND id > (SELECT id FROM lo)"
        "     ORDER BY id DESC LIMIT $3) p"
        "   WHERE f.follower_id = $1),"
        " deep AS (SELECT p.id FROM (SELECT followee_id AS author_id FROM follows"
        "     WHERE follower_id = $1 UNION ALL SELECT $1::bigint) a"
        "   CROSS JOIN LATERAL (SELECT id FROM posts WHERE author_id = a.author_id"
        "     AND id < least($2::bigint, (SELECT floor_id FROM fl) + 1)"
        "     ORDER BY id DESC LIMIT $3) p"
        "   WHERE (SELECT floor_id FROM fl) > 0"
        "   AND (SELECT count(*) FROM pushed) < $3::bigint)"
        " SELECT post_id FROM pushed UNION SELECT id FROM pulled UNION SELECT id FROM deep"
        " ORDER BY 1 DESC LIMIT $3",
        3, params);
}

json_t *timeline_get(call_t *call)
{
    json_t *reply = feed_require_viewer(call);
    if (reply) return reply;
    int limit;
    int64_t cursor_id, unused;
    reply = feed_page_args(call->args, &limit, &cursor_id, &unused);
    if (reply) return reply;
    if (cursor_id == 0) cursor_id = INT64_MAX;

    PGresult *res = timeline_page(call->db, call->viewer_id, cursor_id, limit + 1);
    if (!res) return feed_internal("feed page");
    int rows = PQntuples(res);
    int shown = rows > limit ? limit : rows;
    json_t *ids = json_array();
    for (int row = 0; row < shown; row++)
        json_array_append_new(ids, json_string(PQgetvalue(res, row, 0)));
    json_t *next = json_null();
    if (rows > limit) {
        char cursor[CURSOR_TEXT_MAX];
        cursor_encode(strtoll(PQgetvalue(res, limit - 1, 0), NULL, 10), 0, cursor);
        next = json_string(cursor);
    }
    PQclear(res);

    reply = s_hydrate_packed(call, ids, next);
    json_decref(ids);
    json_decref(next);
    return reply;
}
