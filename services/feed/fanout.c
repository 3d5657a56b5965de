/*  fanout: the event handlers that keep home timelines (issue 4 point 3).

    Fan-out on write, with a pull path for large accounts. The service keeps
    its own projection of what it needs, from events only: approved follow
    edges (graph follow.created/deleted, block.created), followers per
    author, blocks, and post metadata {id, author, fanned_out} (media
    post.created/deleted). Then:

      post.created   one INSERT … SELECT puts the post into the author's
                     own timeline and each follower's, unless the author has
                     more than FEED_FANOUT_THRESHOLD followers: then only
                     the author's own timeline gets it, the post is marked
                     not fanned out and readers merge it in at read time
                     (timeline.c), so a post by an account with a million
                     followers costs O(1) writes.
      follow.created the followee's newest FEED_BACKFILL pushed posts are
                     copied into the follower's timeline (from the local
                     projection: no RPC inside the event transaction).
      follow.deleted the followee's posts leave the follower's timeline;
      block.created  both ways, and the edges go.
      post.deleted   the post leaves every timeline holding it.
      user.deleted   the user's timeline, edges, posts and activity go.

    Invariant (schemas/feed/001_init.sql): a timeline row (u, p, a) exists
    only when u = a or u follows a. Every handler keeps it, so removing a
    post only visits its author's followers (primary-key probes) and the
    timeline needs no index on post_id, which would cost every fan-out row
    a second index insert.

    Trimming. Timelines keep their newest FEED_TIMELINE_MAX rows. Counting
    rows on every insert would double the fan-out's writes, so a fan-out
    trims the timelines of the recipients whose (user id + post id) is a
    multiple of FEED_TRIM_ONE_IN (over the ids' milliseconds): each
    timeline is trimmed about once every FEED_TRIM_ONE_IN posts it receives
    (deterministically, so a replay does the same work). A trim remembers
    the newest post id it removed (timeline_floor); pages below it are
    pulled from the post projection.

    Batches. post.created and follow.created, the hot ones, do not write at
    once: the handler appends the event to the batch's deferred events
    (activity_defer, activity.c), and s_flush_posts / s_flush_follows
    handle all the deferred events of the topic with a few statements over
    a JSON array of them, before any handler of another topic runs and at
    the batch's end (the rule is in activity.c). The result is exactly the
    one-by-one result: a post's fan-out decision is taken once (follower
    counts do not move between posts), deleted authors and accounts are
    skipped the same way, and trimming, deterministic as above, is applied
    per timeline as its last due trim of the batch would have left it
    (s_fan_out_run explains why that is the same).

    Order between producers is not guaranteed (a follow may be handled
    before or after a post of the followee that media published earlier),
    but each step reads the current projection, so any interleaving ends in
    the same timelines. Every handler is idempotent (keys, ON CONFLICT, and
    counts that move only when a row really changed), as at-least-once
    delivery requires.
*/
#include "feed.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>

//  Trims the timelines of the users the SELECT `users` yields (one column
//  user_id; its parameters start at $2, $1 is the bound), sparing the rows
//  the SELECT `spared` yields (user_id, post_id): neither counted nor cut;
//  ctes: more common table expressions for both, each followed by a comma.
//  Each user's spared post ids travel as one array (kept), so a timeline
//  row is checked against its own user's few ids: a NOT EXISTS over the
//  spared rows scanned all of them for every row read, which made the
//  trims of a run of 50 posts at the `default` scale take 8.3 s instead
//  of 0.19 s, and a consumer behind by a few hundred posts stall for
//  minutes (docs/benchmarks.md, session 5).
#define TRIM_SQL_SPARING(ctes, users, spared)                                                      \
    "WITH " ctes " users AS (" users "), spared AS (" spared "),"                                  \
    " kept AS (SELECT u.user_id, coalesce(array_agg(s.post_id)"                                    \
    "   FILTER (WHERE s.post_id IS NOT NULL), '{}') AS ids"                                        \
    "   FROM users u LEFT JOIN spared s ON s.user_id = u.user_id GROUP BY u.user_id),"             \
    " cut AS (SELECT k.user_id, k.ids, (SELECT t.post_id FROM timeline t"                          \
    "   WHERE t.user_id = k.user_id AND t.post_id <> ALL (k.ids)"                                  \
    "   ORDER BY t.post_id DESC OFFSET $1 LIMIT 1) AS post_id FROM kept k),"                       \
    " gone AS (DELETE FROM timeline t USING cut WHERE cut.post_id IS NOT NULL"                     \
    "   AND t.user_id = cut.user_id AND t.post_id <= cut.post_id AND t.post_id <> ALL (cut.ids))"  \
    " INSERT INTO timeline_floor (user_id, floor_id)"                                              \
    " SELECT user_id, post_id FROM cut WHERE post_id IS NOT NULL"                                  \
    " ON CONFLICT (user_id) DO UPDATE"                                                             \
    " SET floor_id = greatest(timeline_floor.floor_id, EXCLUDED.floor_id)"
#define TRIM_SQL(users)                                                                            \
    TRIM_SQL_SPARING("", users, "SELECT 0::bigint AS user_id, 0::bigint AS post_id WHERE false")

//  ---- small helpers ----------------------------------------------------------

//  Reads two ids of the payload; 0 and a warning when one is missing (a
//  malformed event is skipped: retrying it could never succeed).
static int s_two_ids(const event_t *event, const char *name_a, int64_t *a, const char *name_b,
                     int64_t *b)
{
    *a = feed_payload_id(event->payload, name_a);
    *b = feed_payload_id(event->payload, name_b);
    if (*a > 0 && *b > 0) return 1;
    log_warn("feed: %s.%s seq %" PRId64 " without %s/%s; skipped", event->producer, event->topic,
             event->seq, name_a, name_b);
    return 0;
}

//  Removes the edge follower -> followee with its timeline rows; the
//  count moves only when the edge existed. 0 or -1.
static int s_unfollow(db_t *db, int64_t follower_id, int64_t followee_id)
{
    char follower[21], followee[21];
    const char *params[] = {feed_id_text(follower_id, follower),
                            feed_id_text(followee_id, followee)};
    long removed =
        db_exec(db, "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2", 2, params);
    if (removed < 0) return -1;
    if (removed > 0 &&
        db_exec(db, "UPDATE follower_counts SET followers = followers - 1 WHERE user_id = $1", 1,
                params + 1) < 0)
        return -1;
    if (db_exec(db, "DELETE FROM timeline WHERE user_id = $1 AND author_id = $2", 2, params) < 0)
        return -1;
    return 0;
}

//  ---- graph --------------------------------------------------------------------

//  The deferred follows (rows {n, follower_id, followee_id, at_ms}), as
//  one by one: nothing when either account is deleted; else each new edge
//  (duplicates once) with its count and the follower's timeline backfilled
//  with the followee's newest pushed posts (those not fanned out are merged
//  at read time anyway); the timelines that got rows trimmed, once: rows
//  are only added in between and never one a trim removed (a new edge's
//  posts were in no timeline of the follower), so trimming once keeps the
//  same newest rows and floor as trimming after each follow; then an
//  approved request becomes a follow, for each event.
static int s_flush_follows(db_t *db, const json_t *rows, const feed_t *feed)
{
    char *input = json_dumps(rows, JSON_COMPACT);
    char backfill[21];
    snprintf(backfill, sizeof backfill, "%" PRId64, feed->backfill);
    const char *params[] = {input, backfill};
    PGresult *res =
        db_query(db,
                 "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb)"
                 "   AS r (n bigint, follower_id bigint, followee_id bigint)),"
                 " added AS (INSERT INTO follows (follower_id, followee_id)"
                 "   SELECT DISTINCT follower_id, followee_id FROM input i"
                 "   WHERE NOT EXISTS (SELECT 1 FROM deleted_users d"
                 "     WHERE d.user_id IN (i.follower_id, i.followee_id))"
                 "   ON CONFLICT DO NOTHING RETURNING follower_id, followee_id),"
                 " counted AS (INSERT INTO follower_counts (user_id, followers)"
                 "   SELECT followee_id, count(*) FROM added GROUP BY followee_id"
                 "   ON CONFLICT (user_id)"
                 "   DO UPDATE SET followers = follower_counts.followers + EXCLUDED.followers),"
                 " backfilled AS (INSERT INTO timeline (user_id, post_id, author_id)"
                 "   SELECT a.follower_id, p.id, p.author_id FROM added a"
                 "   CROSS JOIN LATERAL (SELECT id, author_id FROM posts"
                 "     WHERE author_id = a.followee_id AND fanned_out"
                 "     ORDER BY id DESC LIMIT $2::bigint) p"
                 "   ON CONFLICT DO NOTHING RETURNING user_id)"
                 " SELECT DISTINCT user_id FROM backfilled",
                 2, params);
    free(input);
    if (!res) return -1;
    feed_ids_t users, followers, followees;
    feed_ids_init(&users);
    for (int row = 0; row < PQntuples(res); row++)
        feed_ids_add(&users, strtoll(PQgetvalue(res, row, 0), NULL, 10));
    PQclear(res);
    int rc = 0;
    if (users.count > 0) {
        char max_text[21];
        snprintf(max_text, sizeof max_text, "%" PRId64, feed->timeline_max);
        const char *trim_params[] = {max_text, feed_ids_literal(&users)};
        if (db_exec(db, TRIM_SQL("SELECT unnest($2::bigint[]) AS user_id"), 2, trim_params) < 0)
            rc = -1;
    }
    feed_ids_free(&users);
    if (rc != 0) return -1;

    feed_ids_init(&followers);
    feed_ids_init(&followees);
    json_t *adds = json_array();
    size_t index;
    json_t *row;
    json_array_foreach(rows, index, row)
    {
        int64_t follower_id = feed_payload_id(row, "follower_id");
        int64_t followee_id = feed_payload_id(row, "followee_id");
        feed_ids_add(&followers, follower_id);
        feed_ids_add(&followees, followee_id);
        activity_add_to(adds, followee_id, "follow", 0, follower_id, 0,
                        json_integer_value(json_object_get(row, "at_ms")));
    }
    //  Removals first: they touch follow_request groups only, and work on
    //  exact counts; activity_add_many skips deleted accounts itself.
    if (activity_remove_many(db, "follow_request", feed_ids_literal(&followees), NULL,
                             feed_ids_literal(&followers)) != 0 ||
        activity_add_many(db, adds) != 0)
        rc = -1;
    feed_ids_free(&followers);
    feed_ids_free(&followees);
    json_decref(adds);
    return rc;
}

int fanout_on_follow_created(db_t *db, const event_t *event, void *state)
{
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id) ||
        follower_id == followee_id)
        return activity_flush_pending(db, state);
    //  Handled with the batch's other follows (s_flush_follows).
    return activity_defer(db, state, s_flush_follows,
                          json_pack("{sIsIsIsI}", "n", (json_int_t)event->seq, "follower_id",
                                    (json_int_t)follower_id, "followee_id", (json_int_t)followee_id,
                                    "at_ms",
                                    (json_int_t)feed_payload_time_ms(event, "created_at")));
}

int fanout_on_follow_deleted(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    if (s_unfollow(db, follower_id, followee_id) != 0) return -1;
    return activity_remove(db, followee_id, "follow", 0, follower_id, 0);
}

int fanout_on_follow_requested(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    return activity_add(db, followee_id, "follow_request", 0, follower_id, 0,
                        feed_payload_time_ms(event, "created_at"));
}

int fanout_on_follow_request_deleted(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    return activity_remove(db, followee_id, "follow_request", 0, follower_id, 0);
}

int fanout_on_block_created(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t blocker_id, blocked_id;
    if (!s_two_ids(event, "blocker_id", &blocker_id, "blocked_id", &blocked_id)) return 0;
    char blocker[21], blocked[21];
    const char *params[] = {feed_id_text(blocker_id, blocker), feed_id_text(blocked_id, blocked)};
    if (db_exec(db,
                "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                2, params) < 0)
        return -1;
    //  Graph also emits follow.deleted for each follow the block removed;
    //  doing it here too makes the block take effect whichever comes first.
    if (s_unfollow(db, blocker_id, blocked_id) != 0 || s_unfollow(db, blocked_id, blocker_id) != 0)
        return -1;
    return activity_remove_between(db, blocker_id, blocked_id);
}

int fanout_on_block_deleted(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t blocker_id, blocked_id;
    if (!s_two_ids(event, "blocker_id", &blocker_id, "blocked_id", &blocked_id)) return 0;
    char blocker[21], blocked[21];
    const char *params[] = {feed_id_text(blocker_id, blocker), feed_id_text(blocked_id, blocked)};
    return db_exec(db, "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2", 2, params) <
                   0
               ? -1
               : 0;
}

//  ---- media ----------------------------------------------------------------------

//  Adds a mention activity for each id of payload.mentions (skipping the
//  author). source_id is the post. 0 or -1.
static int s_add_mentions(db_t *db, const json_t *mentions, int64_t post_id, int64_t author_id,
                          int64_t at_ms)
{
    size_t index;
    json_t *value;
    json_array_foreach(mentions, index, value)
    {
        int64_t mentioned = feed_json_id(value);
        if (mentioned > 0 &&
            activity_add(db, mentioned, "mention", post_id, author_id, post_id, at_ms) != 0)
            return -1;
    }
    return 0;
}

//  Common table expressions: `live`, the deferred posts in parameter input
//  (rows {n, id, author_id}) whose author is not deleted.
#define LIVE_POSTS_SQL(input)                                                                      \
    " input AS (SELECT * FROM jsonb_to_recordset(" input "::jsonb)"                                \
    "   AS r (n bigint, id bigint, author_id bigint)),"                                            \
    " live AS (SELECT * FROM input i WHERE NOT EXISTS (SELECT 1 FROM deleted_users d"              \
    "   WHERE d.user_id = i.author_id)),"

//  The projection rows of a run of posts (the fan-out decision of a
//  replay is the stored one), pull_authors, and the author's and, when
//  fanned out, each follower's timeline row. $1 the run, $2 the threshold.
static const char s_fan_out_sql[] = "WITH" LIVE_POSTS_SQL("$1") // the run
    " stored AS (INSERT INTO posts (id, author_id, fanned_out)"
    "   SELECT id, author_id, coalesce((SELECT followers FROM follower_counts c"
    "     WHERE c.user_id = l.author_id), 0) <= $2::bigint FROM live l"
    "   ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id RETURNING id, fanned_out),"
    " pulled AS (INSERT INTO pull_authors (author_id) SELECT DISTINCT l.author_id"
    "   FROM live l JOIN stored s ON s.id = l.id WHERE NOT s.fanned_out"
    "   ON CONFLICT DO NOTHING)"
    " INSERT INTO timeline (user_id, post_id, author_id)"
    " SELECT author_id, id, author_id FROM live"
    " UNION ALL SELECT f.follower_id, l.id, l.author_id FROM live l"
    " JOIN stored s ON s.id = l.id AND s.fanned_out"
    " JOIN follows f ON f.followee_id = l.author_id"
    " ON CONFLICT DO NOTHING";

//  A run of deferred posts with distinct ids, as one by one: the fan-out
//  (s_fan_out_sql), then the trims. One by one, a timeline is trimmed
//  after some of the posts it gets (one in FEED_TRIM_ONE_IN, chosen by the
//  ids). Keeping the newest rows commutes with adding rows that were not
//  there, so only its last due trim matters, applied to the rows it had
//  then: the rows of the run's later posts are spared. The floor is that
//  trim's cut, the newest row any of the trims removed.
static int s_fan_out_run(db_t *db, const json_t *rows, const feed_t *feed)
{
    char *input = json_dumps(rows, JSON_COMPACT);
    char threshold[21], max_text[21], one_in[21], low_bits[8];
    snprintf(threshold, sizeof threshold, "%" PRId64, feed->fanout_threshold);
    snprintf(max_text, sizeof max_text, "%" PRId64, feed->timeline_max);
    snprintf(one_in, sizeof one_in, "%d", FEED_TRIM_ONE_IN);
    snprintf(low_bits, sizeof low_bits, "%d", IDS_SHARD_BITS + IDS_SEQUENCE_BITS);
    const char *params[] = {input, threshold};
    long rc = db_exec(db, s_fan_out_sql, 2, params);
    if (rc >= 0) {
        const char *trim_params[] = {max_text, input, one_in, low_bits};
        rc = db_exec(db,
                     TRIM_SQL_SPARING(
                         LIVE_POSTS_SQL("$2")
                         //  Who got which post: the author, and each follower
                         //  when it was fanned out. The low 23 bits of an id
                         //  (shard, sequence) are mostly zero, so only the
                         //  milliseconds (id >> 23) spread the choice of
                         //  timelines to trim.
                         " delivered AS (SELECT l.n, l.id AS post_id, l.author_id AS user_id"
                         "   FROM live l"
                         "   UNION ALL SELECT l.n, l.id, f.follower_id FROM live l"
                         "   JOIN posts p ON p.id = l.id AND p.fanned_out"
                         "   JOIN follows f ON f.followee_id = l.author_id),"
                         " due AS (SELECT user_id, max(n) AS last FROM delivered"
                         "   WHERE ((user_id >> $4::int) + (post_id >> $4::int)) % $3::bigint = 0"
                         "   GROUP BY user_id),",
                         "SELECT user_id FROM due",
                         "SELECT d.user_id, d.post_id FROM delivered d"
                         " JOIN due ON due.user_id = d.user_id AND d.n > due.last"),
                     4, trim_params);
    }
    free(input);
    return rc < 0 ? -1 : 0;
}

//  The deferred posts (rows {n, id, author_id, at_ms, mentions}): runs of
//  distinct post ids (a post twice in a buffer, never seen in practice,
//  starts a new run, so its second fan-out sees the first's trims as one
//  by one would), then the caption mentions of all, in order.
static int s_flush_posts(db_t *db, const json_t *rows, const feed_t *feed)
{
    json_t *run = json_array();
    zhash_t *seen = zhash_new();
    json_t *adds = json_array();
    int rc = 0;
    size_t index;
    json_t *row;
    json_array_foreach(rows, index, row)
    {
        int64_t post_id = feed_payload_id(row, "id");
        int64_t author_id = feed_payload_id(row, "author_id");
        char key[21];
        feed_id_text(post_id, key);
        if (zhash_lookup(seen, key)) {
            if (s_fan_out_run(db, run, feed) != 0) {
                rc = -1;
                break;
            }
            json_array_clear(run);
            zhash_destroy(&seen);
            seen = zhash_new();
        }
        zhash_insert(seen, key, (void *)1);
        json_array_append(run, row);
        size_t at;
        json_t *value;
        json_array_foreach(json_object_get(row, "mentions"), at, value)
        {
            activity_add_to(adds, feed_json_id(value), "mention", post_id, author_id, post_id,
                            json_integer_value(json_object_get(row, "at_ms")));
        }
    }
    if (rc == 0 && s_fan_out_run(db, run, feed) != 0) rc = -1;
    //  Mentions by a deleted author: activity_add_many skips them.
    if (rc == 0 && activity_add_many(db, adds) != 0) rc = -1;
    json_decref(run);
    json_decref(adds);
    zhash_destroy(&seen);
    return rc;
}

int fanout_on_post_created(db_t *db, const event_t *event, void *state)
{
    int64_t post_id, author_id;
    if (!s_two_ids(event, "id", &post_id, "author_id", &author_id))
        return activity_flush_pending(db, state);
    json_t *mentions = json_object_get(event->payload, "mentions");
    //  Handled with the batch's other posts (s_flush_posts).
    return activity_defer(db, state, s_flush_posts,
                          json_pack("{sIsIsIsIso}", "n", (json_int_t)event->seq, "id",
                                    (json_int_t)post_id, "author_id", (json_int_t)author_id,
                                    "at_ms", (json_int_t)feed_payload_time_ms(event, "created_at"),
                                    "mentions",
                                    json_is_array(mentions) ? json_copy(mentions) : json_array()));
}

int fanout_on_post_updated(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t post_id, author_id;
    if (!s_two_ids(event, "id", &post_id, "author_id", &author_id)) return 0;
    json_t *mentions = json_object_get(event->payload, "mentions");
    if (!json_is_array(mentions)) return 0;
    //  Mentions edited out of the caption leave the activity; new ones
    //  arrive (existing ones are kept as they were: idempotent add).
    feed_ids_t keep;
    feed_ids_init(&keep);
    size_t index;
    json_t *value;
    json_array_foreach(mentions, index, value)
    {
        int64_t mentioned = feed_json_id(value);
        if (mentioned > 0) feed_ids_add(&keep, mentioned);
    }
    int rc = activity_remove_mentions_except(db, post_id, feed_ids_literal(&keep));
    feed_ids_free(&keep);
    if (rc != 0) return -1;
    return s_add_mentions(db, mentions, post_id, author_id, event->created_ms);
}

int fanout_on_post_deleted(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t post_id = feed_payload_id(event->payload, "id");
    if (post_id <= 0) {
        log_warn("feed: media.post.deleted seq %" PRId64 " without id; skipped", event->seq);
        return 0;
    }
    char post[21];
    const char *params[] = {feed_id_text(post_id, post)};
    PGresult *res =
        db_query(db, "DELETE FROM posts WHERE id = $1 RETURNING author_id, fanned_out", 1, params);
    if (!res) return -1;
    if (PQntuples(res) == 1) {
        const char *author_params[] = {post, PQgetvalue(res, 0, 0)};
        //  Only the author and the followers can hold it (the invariant);
        //  a post that was not pushed sits in its author's timeline only.
        long rc = streq(PQgetvalue(res, 0, 1), "t")
                      ? db_exec(db,
                                "DELETE FROM timeline WHERE post_id = $1 AND user_id IN"
                                " (SELECT follower_id FROM follows WHERE followee_id = $2"
                                "  UNION ALL SELECT $2::bigint)",
                                2, author_params)
                      : db_exec(db, "DELETE FROM timeline WHERE user_id = $2 AND post_id = $1", 2,
                                author_params);
        if (rc < 0) {
            PQclear(res);
            return -1;
        }
    }
    PQclear(res);
    if (activity_remove_post(db, post_id) != 0 ||
        db_exec(db, "DELETE FROM my_likes WHERE post_id = $1", 1, params) < 0 ||
        db_exec(db, "DELETE FROM my_comments WHERE post_id = $1", 1, params) < 0)
        return -1;
    return 0;
}

//  ---- identity -------------------------------------------------------------------

int fanout_on_user_deleted(db_t *db, const event_t *event, void *state)
{
    if (activity_flush_pending(db, state) != 0) return -1;
    int64_t user_id = feed_payload_id(event->payload, "id");
    if (user_id <= 0) {
        log_warn("feed: identity.user.deleted seq %" PRId64 " without id; skipped", event->seq);
        return 0;
    }
    char user[21];
    const char *params[] = {feed_id_text(user_id, user)};
    static const char *const steps[] = {
        "INSERT INTO deleted_users (user_id) VALUES ($1) ON CONFLICT DO NOTHING",
        //  Timelines: the user's own, and the user's posts in followers'.
        "DELETE FROM timeline WHERE user_id = $1",
        "DELETE FROM timeline WHERE author_id = $1 AND user_id IN"
        " (SELECT follower_id FROM follows WHERE followee_id = $1)",
        "DELETE FROM timeline_floor WHERE user_id = $1",
        //  Edges: whom the user followed lose a follower.
        "UPDATE follower_counts c SET followers = c.followers - 1 FROM follows f"
        " WHERE f.follower_id = $1 AND c.user_id = f.followee_id",
        "DELETE FROM follows WHERE follower_id = $1",
        "DELETE FROM follows WHERE followee_id = $1",
        "DELETE FROM follower_counts WHERE user_id = $1",
        "DELETE FROM blocks WHERE blocker_id = $1",
        "DELETE FROM blocks WHERE blocked_id = $1",
        //  Others' likes and comments on the user's posts, then the posts.
        "DELETE FROM my_likes WHERE post_id IN (SELECT id FROM posts WHERE author_id = $1)",
        "DELETE FROM my_comments WHERE post_id IN (SELECT id FROM posts WHERE author_id = $1)",
        "DELETE FROM activity_groups WHERE post_id IN (SELECT id FROM posts WHERE author_id = $1)",
        "DELETE FROM posts WHERE author_id = $1",
        "DELETE FROM pull_authors WHERE author_id = $1",
        //  What the user did.
        "DELETE FROM my_likes WHERE user_id = $1",
        "DELETE FROM my_comments WHERE author_id = $1",
        NULL,
    };
    for (size_t i = 0; steps[i]; i++)
        if (db_exec(db, steps[i], 1, params) < 0) return -1;
    return activity_remove_user(db, user_id);
}
