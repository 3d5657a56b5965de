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
    multiple of FEED_TRIM_ONE_IN (over the ids' milliseconds): each timeline is trimmed about once
   every FEED_TRIM_ONE_IN posts it receives (deterministically, so a replay does the same work). A
   trim remembers the newest post id it removed (timeline_floor); pages below it are pulled from the
   post projection.

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
//  user_id; its parameters start at $2, $1 is the bound).
#define TRIM_SQL(users)                                                                            \
    "WITH users AS (" users "),"                                                                   \
    " cut AS (SELECT u.user_id, (SELECT t.post_id FROM timeline t WHERE t.user_id = u.user_id"     \
    "   ORDER BY t.post_id DESC OFFSET $1 LIMIT 1) AS post_id FROM users u),"                      \
    " gone AS (DELETE FROM timeline t USING cut WHERE cut.post_id IS NOT NULL"                     \
    "   AND t.user_id = cut.user_id AND t.post_id <= cut.post_id)"                                 \
    " INSERT INTO timeline_floor (user_id, floor_id)"                                              \
    " SELECT user_id, post_id FROM cut WHERE post_id IS NOT NULL"                                  \
    " ON CONFLICT (user_id) DO UPDATE"                                                             \
    " SET floor_id = greatest(timeline_floor.floor_id, EXCLUDED.floor_id)"

//  ---- small helpers ----------------------------------------------------------

static feed_t *s_feed(void *state)
{
    return (feed_t *)state;
}

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

//  Whether a post's arrival trims this user's timeline: about one post in
//  FEED_TRIM_ONE_IN, chosen from the ids so replays choose the same. Only
//  the milliseconds of the ids are mixed: their low bits (shard and
//  sequence) are zero for most ids, which would make every sum a multiple
//  of 64 and trim on every post.
static bool s_trim_due(int64_t user_id, int64_t post_id)
{
    const int low_bits = IDS_SHARD_BITS + IDS_SEQUENCE_BITS;
    return ((user_id >> low_bits) + (post_id >> low_bits)) % FEED_TRIM_ONE_IN == 0;
}

static int s_trim_user(db_t *db, const feed_t *feed, int64_t user_id)
{
    char max_text[21], user_text[21];
    snprintf(max_text, sizeof max_text, "%" PRId64, feed->timeline_max);
    const char *params[] = {max_text, feed_id_text(user_id, user_text)};
    return db_exec(db, TRIM_SQL("SELECT $2::bigint AS user_id"), 2, params) < 0 ? -1 : 0;
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

int fanout_on_follow_created(db_t *db, const event_t *event, void *state)
{
    const feed_t *feed = s_feed(state);
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    if (follower_id == followee_id) return 0;
    char follower[21], followee[21], backfill[21];
    snprintf(backfill, sizeof backfill, "%" PRId64, feed->backfill);
    const char *params[] = {feed_id_text(follower_id, follower),
                            feed_id_text(followee_id, followee), backfill};
    //  One statement (this runs for every follow): nothing when either
    //  account is deleted; else the edge, and when it is new the count and
    //  the follower's timeline backfilled with the followee's newest posts
    //  (those not fanned out are merged at read time anyway).
    PGresult *res = db_query(db,
                             "WITH gone AS (SELECT EXISTS (SELECT 1 FROM deleted_users"
                             "   WHERE user_id IN ($1::bigint, $2::bigint)) AS gone),"
                             " added AS (INSERT INTO follows (follower_id, followee_id)"
                             "   SELECT $1::bigint, $2::bigint FROM gone WHERE NOT gone"
                             "   ON CONFLICT DO NOTHING RETURNING followee_id),"
                             " counted AS (INSERT INTO follower_counts (user_id, followers)"
                             "   SELECT followee_id, 1 FROM added ON CONFLICT (user_id)"
                             "   DO UPDATE SET followers = follower_counts.followers + 1),"
                             " backfilled AS (INSERT INTO timeline (user_id, post_id, author_id)"
                             "   SELECT $1::bigint, id, author_id FROM posts"
                             "   WHERE author_id = $2::bigint AND fanned_out"
                             "   AND EXISTS (SELECT 1 FROM added)"
                             "   ORDER BY id DESC LIMIT $3::bigint ON CONFLICT DO NOTHING"
                             "   RETURNING 1)"
                             " SELECT gone, EXISTS (SELECT 1 FROM backfilled) FROM gone",
                             3, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    bool deleted = streq(PQgetvalue(res, 0, 0), "t");
    bool backfilled = streq(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    if (deleted) return 0;
    //  Only new rows can take the timeline over its cap.
    if (backfilled && s_trim_user(db, feed, follower_id) != 0) return -1;
    //  An approved request becomes a follow.
    int64_t at_ms = feed_payload_time_ms(event, "created_at");
    if (activity_remove(db, followee_id, "follow_request", 0, follower_id, 0) != 0 ||
        activity_add(db, followee_id, "follow", 0, follower_id, 0, at_ms) != 0)
        return -1;
    return 0;
}

int fanout_on_follow_deleted(db_t *db, const event_t *event, void *state)
{
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    if (s_unfollow(db, follower_id, followee_id) != 0) return -1;
    return activity_remove(db, followee_id, "follow", 0, follower_id, 0);
}

int fanout_on_follow_requested(db_t *db, const event_t *event, void *state)
{
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    return activity_add(db, followee_id, "follow_request", 0, follower_id, 0,
                        feed_payload_time_ms(event, "created_at"));
}

int fanout_on_follow_request_deleted(db_t *db, const event_t *event, void *state)
{
    int64_t follower_id, followee_id;
    if (!s_two_ids(event, "follower_id", &follower_id, "followee_id", &followee_id)) return 0;
    return activity_remove(db, followee_id, "follow_request", 0, follower_id, 0);
}

int fanout_on_block_created(db_t *db, const event_t *event, void *state)
{
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

int fanout_on_post_created(db_t *db, const event_t *event, void *state)
{
    const feed_t *feed = s_feed(state);
    int64_t post_id, author_id;
    if (!s_two_ids(event, "id", &post_id, "author_id", &author_id)) return 0;
    int deleted = feed_user_deleted(db, author_id);
    if (deleted != 0) return deleted < 0 ? -1 : 0;

    char post[21], author[21], threshold[21];
    snprintf(threshold, sizeof threshold, "%" PRId64, feed->fanout_threshold);
    const char *params[] = {feed_id_text(post_id, post), feed_id_text(author_id, author),
                            threshold};
    //  The no-op update makes a replay return the decision taken the first
    //  time, even if the follower count has moved since.
    PGresult *res = db_query(db,
                             "INSERT INTO posts (id, author_id, fanned_out)"
                             " VALUES ($1, $2, coalesce((SELECT followers FROM follower_counts"
                             "   WHERE user_id = $2), 0) <= $3::bigint)"
                             " ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id"
                             " RETURNING fanned_out",
                             3, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    bool fanned_out = streq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);

    if (fanned_out) {
        if (db_exec(db,
                    "INSERT INTO timeline (user_id, post_id, author_id)"
                    " SELECT $2::bigint, $1::bigint, $2::bigint"
                    " UNION ALL"
                    " SELECT follower_id, $1::bigint, $2::bigint FROM follows"
                    " WHERE followee_id = $2"
                    " ON CONFLICT DO NOTHING",
                    2, params) < 0)
            return -1;
        char max_text[21], one_in[21];
        snprintf(max_text, sizeof max_text, "%" PRId64, feed->timeline_max);
        snprintf(one_in, sizeof one_in, "%d", FEED_TRIM_ONE_IN);
        const char *trim_params[] = {max_text, post, author, one_in};
        if (db_exec(db,
                    //  The low 23 bits of an id (shard, sequence) are mostly
                    //  zero, so only the milliseconds (id >> 23) spread the
                    //  choice of timelines to trim; see s_trim_due.
                    TRIM_SQL("SELECT follower_id AS user_id FROM follows WHERE followee_id = $3"
                             " AND ((follower_id >> 23) + ($2::bigint >> 23)) % $4::bigint = 0"
                             " UNION ALL SELECT $3::bigint"
                             " WHERE (($3::bigint >> 23) + ($2::bigint >> 23)) % $4::bigint = 0"),
                    4, trim_params) < 0)
            return -1;
    } else {
        if (db_exec(db,
                    "INSERT INTO timeline (user_id, post_id, author_id) VALUES ($2, $1, $2)"
                    " ON CONFLICT DO NOTHING",
                    2, params) < 0 ||
            db_exec(db, "INSERT INTO pull_authors (author_id) VALUES ($1) ON CONFLICT DO NOTHING",
                    1, params + 1) < 0)
            return -1;
        if (s_trim_due(author_id, post_id) && s_trim_user(db, feed, author_id) != 0) return -1;
    }
    return s_add_mentions(db, json_object_get(event->payload, "mentions"), post_id, author_id,
                          feed_payload_time_ms(event, "created_at"));
}

int fanout_on_post_updated(db_t *db, const event_t *event, void *state)
{
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
