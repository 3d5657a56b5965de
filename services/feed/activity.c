/*  activity: what others did to my content and me (issue 4 point 4):
    likes and comments on my posts, new followers, follow requests and
    mentions, grouped per type, post and UTC day ("ann, bob and 3 others
    liked your post"), newest first. GET /activity is activity.list.

    Grouping is materialised at write time, so a page is one indexed query
    whatever the volume behind it (a post with 100,000 likes is one row):

      activity_groups   (owner, type, post, day) -> latest_ms, actor_count
      activity_actors   the distinct actors of a group, newest first (the
                        "up to 3 actors" are an index range of 3 rows)
      activity_sources  what put an actor there: a comment id, a post id
                        (caption mentions) or 0 (likes, follows, requests:
                        one per actor). An actor leaves a group with its
                        last source, a group leaves with its last actor.

    The event handlers (fanout.c, interactions.c) call the store functions
    below inside their event transaction; the hot ones defer their events
    to the batch's end (activity_defer, below) and add activity for a whole
    run of events with one statement (activity_add_many). Adds are
    idempotent (keys; actor_count moves only when an actor row is new);
    removals settle counts from what they really deleted. Nothing is
    recorded for my own actions on my own content, for a deleted account,
    or between users who block each other (a block also removes what is
    there, both ways).

    Order: (latest_ms, id) descending, the cursor carries both. A group that
    gets new activity moves to the top, as in every activity list; a pass
    over the pages never shows a group twice unless a like is withdrawn
    while it pages.

    A page is one query (groups and their 3 newest actors, via a LATERAL
    index range), one identity users.batch for every actor on the page, and
    users_decorate (counts, relations; drops users blocked either way).
*/
#include "feed.h"
#include "cursor.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>

#define ACTORS_SHOWN 3
#define DAY_MS INT64_C(86400000)

//  ---- store ------------------------------------------------------------------

//  What activity_add did to group rows in the open transaction and did not
//  write yet: per add, the group, +1 when its actor was new, the time. A
//  backlog of follows of one popular account, or likes of one popular
//  post, would otherwise rewrite the same group row once per event (every
//  index of it, as latest_ms is indexed); the batch end writes each group
//  once per batch, summed.
//
//  And the hot events (likes, comments, follows) not handled yet: their
//  handlers only append a row here (activity_defer) and one flush function
//  handles all the rows of one topic with a few statements over arrays.
//  The buffer holds one topic at a time: a handler of another topic, and
//  every handler that is not deferred, flushes it first
//  (activity_flush_pending), so topics keep their order (a like then an
//  unlike of the same pair end as one by one); the batch end flushes it,
//  a rollback forgets it. A live event is a batch of one: same path.
//
//  Only the subscriber thread touches this: handlers and hooks run on the
//  service's one subscriber thread (service_main starts one per service).
static struct {
    feed_ids_t groups, counts, times; // in step: one entry per add
    activity_flush_fn flush;          // the topic of rows, NULL when empty
    json_t *rows;                     // its deferred events, in order
} s_deferred;

int activity_forget(db_t *db, const event_t *event, void *state)
{
    feed_ids_free(&s_deferred.groups);
    feed_ids_free(&s_deferred.counts);
    feed_ids_free(&s_deferred.times);
    feed_ids_init(&s_deferred.groups);
    feed_ids_init(&s_deferred.counts);
    feed_ids_init(&s_deferred.times);
    json_decref(s_deferred.rows);
    s_deferred.rows = NULL;
    s_deferred.flush = NULL;
    return 0;
}

//  Writes the deferred group counts and times. 0 or -1.
static int s_write_counts(db_t *db)
{
    if (s_deferred.groups.count == 0) return 0;
    const char *params[] = {feed_ids_literal(&s_deferred.groups),
                            feed_ids_literal(&s_deferred.counts),
                            feed_ids_literal(&s_deferred.times)};
    long rc = db_exec(db,
                      "UPDATE activity_groups g SET actor_count = g.actor_count + d.added,"
                      " latest_ms = greatest(g.latest_ms, d.latest_ms)"
                      " FROM (SELECT id, sum(added)::int AS added, max(at_ms) AS latest_ms"
                      "   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])"
                      "   AS u (id, added, at_ms) GROUP BY id) d"
                      " WHERE g.id = d.id",
                      3, params);
    feed_ids_free(&s_deferred.groups);
    feed_ids_free(&s_deferred.counts);
    feed_ids_free(&s_deferred.times);
    return rc < 0 ? -1 : 0;
}

int activity_flush_pending(db_t *db, void *state)
{
    if (!s_deferred.rows) return 0;
    //  Detached first: the flush function may remove activity, which must
    //  not flush these rows again.
    json_t *rows = s_deferred.rows;
    activity_flush_fn flush = s_deferred.flush;
    s_deferred.rows = NULL;
    s_deferred.flush = NULL;
    int rc = flush(db, rows, (const feed_t *)state);
    json_decref(rows);
    return rc;
}

bool activity_deferring(activity_flush_fn flush)
{
    return s_deferred.rows && s_deferred.flush == flush;
}

int activity_defer(db_t *db, void *state, activity_flush_fn flush, json_t *row)
{
    if (s_deferred.flush != flush && activity_flush_pending(db, state) != 0) {
        json_decref(row);
        return -1;
    }
    if (!s_deferred.rows) s_deferred.rows = json_array();
    s_deferred.flush = flush;
    json_array_append_new(s_deferred.rows, row);
    return 0;
}

int activity_flush(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    return s_write_counts(db);
}

void activity_add_to(json_t *adds, int64_t owner_id, const char *type, int64_t post_id,
                     int64_t actor_id, int64_t source_id, int64_t at_ms)
{
    if (owner_id <= 0 || actor_id <= 0 || owner_id == actor_id) return;
    //  The group id is drawn now, in event order, as one by one would.
    json_array_append_new(
        adds, json_pack("{sIsIsIsssIsIsIsIsI}", "n", (json_int_t)json_array_size(adds), "gid",
                        (json_int_t)ids_next(), "owner_id", (json_int_t)owner_id, "type", type,
                        "post_id", (json_int_t)post_id, "day", (json_int_t)(at_ms / DAY_MS),
                        "at_ms", (json_int_t)at_ms, "actor_id", (json_int_t)actor_id, "source_id",
                        (json_int_t)source_id));
}

int activity_add_many(db_t *db, const json_t *adds)
{
    if (json_array_size(adds) == 0) return 0;
    char *input = json_dumps(adds, JSON_COMPACT);
    //  One statement for all the adds, exactly as they would be one by one
    //  in order n: nothing when either is deleted or a block stands between
    //  them; a group that does not exist yet is made by its first add (its
    //  id and time); each source once, and an actor whose source is new
    //  gets the newest time of the first add of each of its new sources.
    //  It returns per group how many actors were not in it before (an
    //  actor is in a group iff a source of theirs is, so a known source
    //  never counts twice) and the newest time of all its adds; the group's
    //  count and latest_ms move at the batch's end. Every lookup is an index
    //  probe per add and the adds are never joined with each other: the
    //  planner, which expects few rows from a function, would join them by
    //  nested loops (0.5 s for 500 adds). Only the subscriber thread writes
    //  these tables, so what the probes see does not move under them.
    const char *params[] = {input};
    PGresult *res = db_query(
        db,
        "WITH input AS (SELECT *, first_value(gid) OVER (PARTITION BY owner_id, type, post_id,"
        "   day ORDER BY n) AS first_gid, row_number() OVER (PARTITION BY owner_id, type,"
        "   post_id, day ORDER BY n) AS nth"
        "   FROM jsonb_to_recordset($1::jsonb) AS r (n int, gid bigint, owner_id bigint,"
        "   type text, post_id bigint, day int, at_ms bigint, actor_id bigint, source_id bigint)"
        "   WHERE NOT EXISTS (SELECT 1 FROM deleted_users d"
        "     WHERE d.user_id IN (r.owner_id, r.actor_id))"
        "   AND NOT EXISTS (SELECT 1 FROM blocks b"
        "     WHERE b.blocker_id = r.owner_id AND b.blocked_id = r.actor_id)"
        "   AND NOT EXISTS (SELECT 1 FROM blocks b"
        "     WHERE b.blocker_id = r.actor_id AND b.blocked_id = r.owner_id)),"
        " old AS (SELECT i.*, (SELECT g.id FROM activity_groups g WHERE g.owner_id = i.owner_id"
        "   AND g.type = i.type AND g.post_id = i.post_id AND g.day = i.day) AS old_id"
        "   FROM input i),"
        " adds AS (SELECT o.*, coalesce(o.old_id, o.first_gid) AS group_id FROM old o),"
        " probed AS (SELECT a.*, EXISTS (SELECT 1 FROM activity_actors x"
        "     WHERE x.group_id = a.group_id AND x.actor_id = a.actor_id) AS known,"
        "   NOT EXISTS (SELECT 1 FROM activity_sources s WHERE s.group_id = a.group_id"
        "     AND s.actor_id = a.actor_id AND s.source_id = a.source_id) AS fresh_source"
        "   FROM adds a),"
        " made AS (INSERT INTO activity_groups (id, owner_id, type, post_id, day, latest_ms)"
        "   SELECT group_id, owner_id, type, post_id, day, at_ms FROM probed"
        "   WHERE old_id IS NULL AND nth = 1),"
        " firsts AS (SELECT DISTINCT ON (group_id, actor_id, source_id)"
        "   group_id, actor_id, source_id, at_ms FROM probed WHERE fresh_source"
        "   ORDER BY group_id, actor_id, source_id, n),"
        " src AS (INSERT INTO activity_sources (group_id, actor_id, source_id)"
        "   SELECT group_id, actor_id, source_id FROM firsts),"
        " act AS (INSERT INTO activity_actors (group_id, actor_id, latest_ms)"
        "   SELECT group_id, actor_id, max(at_ms) FROM firsts GROUP BY group_id, actor_id"
        "   ON CONFLICT (group_id, actor_id) DO UPDATE"
        "   SET latest_ms = greatest(activity_actors.latest_ms, EXCLUDED.latest_ms))"
        " SELECT group_id, count(DISTINCT actor_id) FILTER (WHERE NOT known), max(at_ms)"
        " FROM probed GROUP BY group_id",
        1, params);
    free(input);
    if (!res) return -1;
    for (int row = 0; row < PQntuples(res); row++) {
        feed_ids_add(&s_deferred.groups, strtoll(PQgetvalue(res, row, 0), NULL, 10));
        feed_ids_add(&s_deferred.counts, strtoll(PQgetvalue(res, row, 1), NULL, 10));
        feed_ids_add(&s_deferred.times, strtoll(PQgetvalue(res, row, 2), NULL, 10));
    }
    PQclear(res);
    return 0;
}

int activity_add(db_t *db, int64_t owner_id, const char *type, int64_t post_id, int64_t actor_id,
                 int64_t source_id, int64_t at_ms)
{
    json_t *adds = json_array();
    activity_add_to(adds, owner_id, type, post_id, actor_id, source_id, at_ms);
    int rc = activity_add_many(db, adds);
    json_decref(adds);
    return rc;
}

//  After sources were deleted (res: rows of group_id, actor_id): removes
//  the actors left without a source, lowers the counts and latest times of
//  their groups, and deletes the groups left empty. Takes res. 0 or -1.
static int s_settle(db_t *db, PGresult *res)
{
    if (!res) return -1;
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return 0;
    }
    //  The counts must be exact here (and the sweep below must not take a
    //  group made in this batch whose first actor is still deferred).
    if (s_write_counts(db) != 0) {
        PQclear(res);
        return -1;
    }
    feed_ids_t groups, actors;
    feed_ids_init(&groups);
    feed_ids_init(&actors);
    for (int row = 0; row < rows; row++) {
        feed_ids_add(&groups, strtoll(PQgetvalue(res, row, 0), NULL, 10));
        feed_ids_add(&actors, strtoll(PQgetvalue(res, row, 1), NULL, 10));
    }
    PQclear(res);
    const char *params[] = {feed_ids_literal(&groups), feed_ids_literal(&actors)};
    //  The subqueries see the table as it was before this statement's
    //  DELETE, hence "not in gone" when the new latest time is computed.
    long rc = db_exec(
        db,
        "WITH pairs AS (SELECT DISTINCT group_id, actor_id"
        "   FROM unnest($1::bigint[], $2::bigint[]) AS p (group_id, actor_id)),"
        " gone AS (DELETE FROM activity_actors a USING pairs p"
        "   WHERE a.group_id = p.group_id AND a.actor_id = p.actor_id"
        "   AND NOT EXISTS (SELECT 1 FROM activity_sources s"
        "     WHERE s.group_id = p.group_id AND s.actor_id = p.actor_id)"
        "   RETURNING a.group_id, a.actor_id),"
        " counts AS (SELECT group_id, count(*) AS n FROM gone GROUP BY group_id)"
        " UPDATE activity_groups g SET actor_count = g.actor_count - counts.n,"
        "   latest_ms = coalesce((SELECT max(a.latest_ms) FROM activity_actors a"
        "     WHERE a.group_id = g.id AND NOT EXISTS (SELECT 1 FROM gone"
        "       WHERE gone.group_id = a.group_id AND gone.actor_id = a.actor_id)), g.latest_ms)"
        " FROM counts WHERE g.id = counts.group_id",
        2, params);
    feed_ids_free(&groups);
    feed_ids_free(&actors);
    if (rc < 0) return -1;
    return db_exec(db, "DELETE FROM activity_groups WHERE actor_count <= 0", 0, NULL) < 0 ? -1 : 0;
}

int activity_remove(db_t *db, int64_t owner_id, const char *type, int64_t post_id, int64_t actor_id,
                    int64_t source_id)
{
    char owner[21], post[21], actor[21], source[21];
    snprintf(post, sizeof post, "%" PRId64, post_id);
    snprintf(source, sizeof source, "%" PRId64, source_id);
    const char *params[] = {feed_id_text(owner_id, owner), type, post,
                            feed_id_text(actor_id, actor), source};
    return s_settle(db, db_query(db,
                                 "DELETE FROM activity_sources s USING activity_groups g"
                                 " WHERE g.owner_id = $1 AND g.type = $2 AND g.post_id = $3"
                                 " AND s.group_id = g.id AND s.actor_id = $4"
                                 " AND s.source_id = $5"
                                 " RETURNING s.group_id, s.actor_id",
                                 5, params));
}

int activity_remove_many(db_t *db, const char *type, const char *owners, const char *posts,
                         const char *actors)
{
    //  Without posts the third array is empty and unnest pads it with NULL.
    const char *params[] = {type, owners, actors, posts ? posts : "{}"};
    //  As activity_remove for each pair (source 0), but nothing for a
    //  deleted account, as the follow handlers skip it one by one (and a
    //  deleted account has no activity left for an unlike to remove).
    return s_settle(db,
                    db_query(db,
                             "DELETE FROM activity_sources s USING activity_groups g,"
                             " unnest($2::bigint[], $3::bigint[], $4::bigint[])"
                             "   AS p (owner_id, actor_id, post_id)"
                             " WHERE g.owner_id = p.owner_id AND g.type = $1"
                             " AND g.post_id = coalesce(p.post_id, 0)"
                             " AND s.group_id = g.id AND s.actor_id = p.actor_id"
                             " AND s.source_id = 0 AND NOT EXISTS (SELECT 1 FROM deleted_users d"
                             "   WHERE d.user_id IN (p.owner_id, p.actor_id))"
                             " RETURNING s.group_id, s.actor_id",
                             4, params));
}

int activity_remove_source(db_t *db, int64_t source_id)
{
    char source[21];
    const char *params[] = {feed_id_text(source_id, source)};
    return s_settle(db, db_query(db,
                                 "DELETE FROM activity_sources WHERE source_id = $1"
                                 " RETURNING group_id, actor_id",
                                 1, params));
}

int activity_remove_mentions_except(db_t *db, int64_t post_id, const char *keep)
{
    char post[21];
    const char *params[] = {feed_id_text(post_id, post), keep};
    return s_settle(db, db_query(db,
                                 "DELETE FROM activity_sources s USING activity_groups g"
                                 " WHERE s.source_id = $1 AND g.id = s.group_id"
                                 " AND g.type = 'mention' AND g.post_id = $1"
                                 " AND g.owner_id <> ALL ($2::bigint[])"
                                 " RETURNING s.group_id, s.actor_id",
                                 2, params));
}

int activity_remove_post(db_t *db, int64_t post_id)
{
    char post[21];
    const char *params[] = {feed_id_text(post_id, post)};
    //  Actors and sources go with their groups (ON DELETE CASCADE).
    return db_exec(db, "DELETE FROM activity_groups WHERE post_id = $1", 1, params) < 0 ? -1 : 0;
}

int activity_remove_between(db_t *db, int64_t a, int64_t b)
{
    char a_text[21], b_text[21];
    const char *params[] = {feed_id_text(a, a_text), feed_id_text(b, b_text)};
    return s_settle(db, db_query(db,
                                 "DELETE FROM activity_sources s USING activity_groups g"
                                 " WHERE g.id = s.group_id"
                                 " AND ((s.actor_id = $2 AND g.owner_id = $1)"
                                 "   OR (s.actor_id = $1 AND g.owner_id = $2))"
                                 " RETURNING s.group_id, s.actor_id",
                                 2, params));
}

int activity_remove_user(db_t *db, int64_t user_id)
{
    char user[21];
    const char *params[] = {feed_id_text(user_id, user)};
    if (db_exec(db, "DELETE FROM activity_groups WHERE owner_id = $1", 1, params) < 0) return -1;
    return s_settle(db, db_query(db,
                                 "DELETE FROM activity_sources WHERE actor_id = $1"
                                 " RETURNING group_id, actor_id",
                                 1, params));
}

//  ---- GET /activity ------------------------------------------------------------

enum { COL_ID, COL_TYPE, COL_POST, COL_LATEST, COL_COUNT, COL_ACTORS };

//  Appends the ids of a "1,2,3" list to ids (a JSON array of id strings),
//  each once.
static void s_collect_actors(const char *list, json_t *ids, zhash_t *seen)
{
    char *copy = strdup(list);
    char *save = NULL;
    for (char *token = strtok_r(copy, ",", &save); token; token = strtok_r(NULL, ",", &save)) {
        if (zhash_lookup(seen, token)) continue;
        zhash_insert(seen, token, (void *)1);
        json_array_append_new(ids, json_string(token));
    }
    free(copy);
}

//  The users of ids (a JSON array of id strings, borrowed) as the viewer
//  sees them, as an object id -> user (blocked ones and unknown ones left
//  out). NULL with *reply_out set when identity did not answer.
static json_t *s_actor_users(call_t *call, json_t *ids, json_t **reply_out)
{
    json_t *by_id = json_object();
    if (json_array_size(ids) == 0) return by_id;
    json_t *args = json_pack("{sO}", "ids", ids);
    json_t *reply = rpc_call(call->rpc, "identity", "users.batch", call->viewer_id, args, NULL,
                             call->request->deadline_ms);
    json_decref(args);
    json_t *users = json_object_get(reply_body(reply), "users");
    if (reply_status(reply) != 200 || !json_is_array(users)) {
        *reply_out = feed_upstream_error("identity users.batch", reply);
        json_decref(reply);
        json_decref(by_id);
        return NULL;
    }
    users_decorate(call->rpc, call->viewer_id, users, 0, call->request->deadline_ms);
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        const char *id = json_string_value(json_object_get(user, "id"));
        if (id) json_object_set(by_id, id, user);
    }
    json_decref(reply);
    return by_id;
}

PGresult *activity_page(db_t *db, int64_t owner_id, int64_t before_ms, int64_t before_id, int count)
{
    char viewer[21], ms_text[21], id_text[21], limit_text[16], shown[8];
    snprintf(ms_text, sizeof ms_text, "%" PRId64, before_ms);
    snprintf(id_text, sizeof id_text, "%" PRId64, before_id);
    snprintf(limit_text, sizeof limit_text, "%d", count);
    snprintf(shown, sizeof shown, "%d", ACTORS_SHOWN);
    const char *params[] = {feed_id_text(owner_id, viewer), ms_text, id_text, limit_text, shown};
    return db_query(db,
                    "SELECT g.id, g.type, g.post_id, g.latest_ms, g.actor_count,"
                    " (SELECT string_agg(a.actor_id::text, ','"
                    "    ORDER BY a.latest_ms DESC, a.actor_id DESC)"
                    "  FROM (SELECT actor_id, latest_ms FROM activity_actors"
                    "    WHERE group_id = g.id"
                    "    ORDER BY latest_ms DESC, actor_id DESC LIMIT $5) a)"
                    " FROM activity_groups g"
                    " WHERE g.owner_id = $1 AND (g.latest_ms, g.id) < ($2, $3)"
                    " ORDER BY g.latest_ms DESC, g.id DESC LIMIT $4",
                    5, params);
}

json_t *activity_list(call_t *call)
{
    json_t *reply = feed_require_viewer(call);
    if (reply) return reply;
    int limit;
    int64_t cursor_ms, cursor_id;
    reply = feed_page_args(call->args, &limit, &cursor_ms, &cursor_id);
    if (reply) return reply;
    if (cursor_ms == 0) {
        cursor_ms = INT64_MAX;
        cursor_id = INT64_MAX;
    }

    PGresult *res = activity_page(call->db, call->viewer_id, cursor_ms, cursor_id, limit + 1);
    if (!res) return feed_internal("activity page");
    int rows = PQntuples(res);
    int shown_rows = rows > limit ? limit : rows;

    json_t *actor_ids = json_array();
    zhash_t *seen = zhash_new();
    for (int row = 0; row < shown_rows; row++)
        if (!PQgetisnull(res, row, COL_ACTORS))
            s_collect_actors(PQgetvalue(res, row, COL_ACTORS), actor_ids, seen);
    zhash_destroy(&seen);
    json_t *users = s_actor_users(call, actor_ids, &reply);
    json_decref(actor_ids);
    if (!users) {
        PQclear(res);
        return reply;
    }

    json_t *items = json_array();
    for (int row = 0; row < shown_rows; row++) {
        json_t *item = json_object();
        json_object_set_new(item, "type", json_string(PQgetvalue(res, row, COL_TYPE)));
        if (!streq(PQgetvalue(res, row, COL_POST), "0"))
            json_object_set_new(item, "post_id", json_string(PQgetvalue(res, row, COL_POST)));
        json_t *actors = json_array();
        if (!PQgetisnull(res, row, COL_ACTORS)) {
            char *copy = strdup(PQgetvalue(res, row, COL_ACTORS));
            char *save = NULL;
            for (char *token = strtok_r(copy, ",", &save); token;
                 token = strtok_r(NULL, ",", &save)) {
                json_t *user = json_object_get(users, token);
                if (user) json_array_append(actors, user);
            }
            free(copy);
        }
        json_object_set_new(item, "actors", actors);
        json_object_set_new(item, "actor_count",
                            json_integer(strtoll(PQgetvalue(res, row, COL_COUNT), NULL, 10)));
        char latest[32];
        ids_format_time(strtoll(PQgetvalue(res, row, COL_LATEST), NULL, 10), latest, sizeof latest);
        json_object_set_new(item, "latest_at", json_string(latest));
        json_array_append_new(items, item);
    }
    json_t *next = json_null();
    if (rows > limit) {
        char cursor[CURSOR_TEXT_MAX];
        cursor_encode(strtoll(PQgetvalue(res, limit - 1, COL_LATEST), NULL, 10),
                      strtoll(PQgetvalue(res, limit - 1, COL_ID), NULL, 10), cursor);
        next = json_string(cursor);
    }
    PQclear(res);
    json_decref(users);
    return reply_ok(200, json_pack("{soso}", "items", items, "next_cursor", next));
}
