/*  projections: the event handlers that keep search's copies up to date.

    search learns everything from events (DESIGN.md decision 4):

      identity.user.created/updated  users (username, display_name, is_private)
      identity.user.deleted          everything the account owned or did
      graph.follow.created/deleted   follows (approved follows only) and
                                     users.followers_count
      graph.block.created/deleted    blocks
      media.post.created/updated     posts, post_tags, hashtags, tag buckets
      media.post.deleted             the same, removed
      media.like.created/deleted     likes and posts.like_count
      media.comment.created/deleted  comments and posts.comment_count

    Each handler runs inside the subscriber's transaction that also records
    the event's sequence number (common/events.h), so a failure rolls both
    back and the event comes again. Handlers are idempotent besides: a
    counter moves only with the insert or delete of the row that justifies
    it (ON CONFLICT DO NOTHING ... RETURNING, DELETE ... RETURNING), which
    the SQL functions of schemas/search/001_init.sql do for tags.

    Batches. A backlog comes in transactions of up to 500 events of one
    producer, and the hot topics (likes, comments, follows: millions of
    events at the bench's scales; posts) would cost a round trip each and
    rewrite the counted row (posts, users: non-HOT, as like_count feeds the
    indexed hot column and followers_count users_popular; a tag's hashtags
    and bucket rows) once per event. So their handlers only append the
    event's ids to a run (search_t.run: events of one topic, in order; a
    post.created run keeps its posts as JSON), and the run is written
    set-based, one statement over arrays (INSERT ... SELECT FROM unnest ...
    ON CONFLICT DO NOTHING RETURNING, or DELETE ... RETURNING), that
    returns how many rows changed per counted row (a post run adds its tag
    counts, summed per tag and bucket, in the same statement). Those counts
    are summed in memory (search_t.deltas, per post and per user) and
    written once, one UPDATE ... FROM unnest.

    The flush rule keeps the result exactly that of handling one by one:
    - a run is written before an event of another topic is handled, when
      it is full, and at the batch's end (EVENTS_BATCH_END);
    - except that deletions join a run of their creations (unlikes a run
      of likes, unfollows of follows: a mix would otherwise be runs of
      one), buffered apart (search_t.undo) and written first. That is one
      by one's order as long as no deletion follows a buffered creation of
      its own pair, so such a deletion writes the runs first (a like,
      unlike and like again of one pair end as they would singly); other
      pairs are other rows, and their counts only add up;
    - within a run every event has the same topic and the checks it makes
      (post exists, account not deleted) read rows only other topics
      change, so a set of them equals the sequence: duplicates are folded
      (DISTINCT; for a comment or post id given twice, the first that
      passes the checks, as singly);
    - deltas are written at the batch's end and before any other handler
      (users, blocks, post updates and deletions), which may read or write
      the counted rows (user.created recounts followers, the deletions
      subtract); the buffered handlers never read the counters, so summing
      between them is exact.
      A created-then-deleted pair nets to zero and leaves the row alone;
      the sum equals the steps' sum, so no count ends lower than singly;
    - after a rollback (EVENTS_BATCH_RESET) both are forgotten.
    A live event is a batch of one: buffered, then written by the end hook
    before the commit.

    Events from different producers are not ordered with each other, so
    handlers do not assume the other side arrived first: a post whose
    author is not known yet is stored (and stays invisible until the user
    arrives, because visibility joins users); a user's followers_count is
    recomputed from follows when the user row is first written; events
    about an account identity deleted are ignored (deleted_users).

    A malformed payload is logged and skipped (0): retrying cannot fix it,
    and a handler that keeps failing would stall every later event. A
    database error returns -1 (retried).
*/
#include "search.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Payload fields

//  payload[name] as an id (a decimal string, or an integer) into *id.
static bool s_id_value(const event_t *event, const char *name, int64_t *id)
{
    json_t *value = json_object_get(event->payload, name);
    *id = 0;
    return (json_is_string(value) && json_string_length(value) <= 20 &&
            ids_parse(json_string_value(value), id)) ||
           (json_is_integer(value) && (*id = json_integer_value(value)) > 0);
}

//  payload[name] as an id, as decimal text into buf (21 bytes).
static bool s_id(const event_t *event, const char *name, char *buf)
{
    int64_t id;
    if (!s_id_value(event, name, &id)) return false;
    ids_format(id, buf, 21);
    return true;
}

//  payload[name] as a string without NUL, or NULL.
static const char *s_text(const event_t *event, const char *name)
{
    json_t *value = json_object_get(event->payload, name);
    if (!json_is_string(value) || strlen(json_string_value(value)) != json_string_length(value))
        return NULL;
    return json_string_value(value);
}

//  Whether payload.hashtags is absent or an array of strings.
static bool s_tags_ok(const event_t *event)
{
    json_t *tags = json_object_get(event->payload, "hashtags");
    if (!tags) return true;
    if (!json_is_array(tags)) return false;
    size_t index;
    json_t *tag;
    json_array_foreach(tags, index, tag)
    {
        if (!json_is_string(tag) || strlen(json_string_value(tag)) != json_string_length(tag))
            return false;
    }
    return true;
}

//  payload.hashtags as a JSON array text (caller frees), or NULL when it
//  is not an array of strings. Absent = [].
static char *s_tags_json(const event_t *event)
{
    json_t *tags = json_object_get(event->payload, "hashtags");
    if (!s_tags_ok(event)) return NULL;
    return tags ? json_dumps(tags, JSON_COMPACT) : strdup("[]");
}

static int s_skip(const event_t *event, const char *why)
{
    log_warn("search: %s.%s seq %" PRId64 " skipped: %s", event->producer, event->topic, event->seq,
             why);
    return 0;
}

//  0 when sql ran, -1 on a database error.
static int s_exec(db_t *db, const char *sql, int count, const char *const *params)
{
    return db_exec(db, sql, count, params) < 0 ? -1 : 0;
}

//  ---------------------------------------------------------------------
//  Batch buffers (the file's comment: "Batches")

//  Where a run's changed-row counts go: the posts or the users deltas,
//  each with the statement that adds them to the counters ($1 ids, then
//  one int array per counter). Rows whose deltas net to zero are left alone.
enum { S_POSTS, S_USERS };
static const struct {
    const char *sql;
    int counters;
} s_targets[] = {
    [S_POSTS] = {"UPDATE posts p SET like_count = p.like_count + d.likes,"
                 " comment_count = p.comment_count + d.comments"
                 " FROM unnest($1::bigint[], $2::int[], $3::int[]) AS d (id, likes, comments)"
                 " WHERE p.id = d.id AND (d.likes <> 0 OR d.comments <> 0)",
                 2},
    [S_USERS] = {"UPDATE users u SET followers_count = u.followers_count + d.followers"
                 " FROM unnest($1::bigint[], $2::int[]) AS d (id, followers)"
                 " WHERE u.id = d.id AND d.followers <> 0",
                 1},
};

//  The buffered topics. sql takes one bigint array per id of an event
//  ($1.., in the order the handler stores them) and returns, per counted
//  row (post, or followee), how many rows it inserted or deleted; that
//  count times sign goes to target's counter. post.created takes instead
//  the run's posts as one JSON array ($1) and counts nothing.
enum {
    S_NONE,
    S_LIKE_ADD,
    S_LIKE_DEL,
    S_COMMENT_ADD,
    S_COMMENT_DEL,
    S_FOLLOW_ADD,
    S_FOLLOW_DEL,
    S_POST_ADD
};
static const struct {
    const char *sql;
    int ids;
    int target, counter, sign;
} s_kinds[] = {
    [S_LIKE_ADD] = {"WITH added AS (INSERT INTO likes (post_id, user_id)"
                    "  SELECT DISTINCT e.post_id, e.user_id"
                    "  FROM unnest($1::bigint[], $2::bigint[]) AS e (post_id, user_id)"
                    "  WHERE EXISTS (SELECT 1 FROM posts WHERE id = e.post_id)"
                    "  AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = e.user_id)"
                    "  ON CONFLICT DO NOTHING RETURNING post_id)"
                    " SELECT post_id, count(*) FROM added GROUP BY post_id",
                    2, S_POSTS, 0, 1},
    [S_LIKE_DEL] = {"WITH gone AS (DELETE FROM likes l"
                    "  USING (SELECT DISTINCT * FROM unnest($1::bigint[], $2::bigint[]))"
                    "   AS e (post_id, user_id)"
                    "  WHERE l.post_id = e.post_id AND l.user_id = e.user_id RETURNING l.post_id)"
                    " SELECT post_id, count(*) FROM gone GROUP BY post_id",
                    2, S_POSTS, 0, -1},
    [S_COMMENT_ADD] = {"WITH added AS (INSERT INTO comments (id, post_id, author_id)"
                       "  SELECT DISTINCT ON (e.id) e.id, e.post_id, e.author_id"
                       "  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])"
                       "   WITH ORDINALITY AS e (id, post_id, author_id, n)"
                       "  WHERE EXISTS (SELECT 1 FROM posts WHERE id = e.post_id)"
                       "  AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = e.author_id)"
                       "  ORDER BY e.id, e.n"
                       "  ON CONFLICT DO NOTHING RETURNING post_id)"
                       " SELECT post_id, count(*) FROM added GROUP BY post_id",
                       3, S_POSTS, 1, 1},
    [S_COMMENT_DEL] = {"WITH gone AS (DELETE FROM comments WHERE id = ANY ($1::bigint[])"
                       "  RETURNING post_id)"
                       " SELECT post_id, count(*) FROM gone GROUP BY post_id",
                       1, S_POSTS, 1, -1},
    [S_FOLLOW_ADD] = {"WITH added AS (INSERT INTO follows (follower_id, followee_id)"
                      "  SELECT DISTINCT e.follower_id, e.followee_id"
                      "  FROM unnest($1::bigint[], $2::bigint[]) AS e (follower_id, followee_id)"
                      "  WHERE NOT EXISTS (SELECT 1 FROM deleted_users"
                      "   WHERE id IN (e.follower_id, e.followee_id))"
                      "  ON CONFLICT DO NOTHING RETURNING followee_id)"
                      " SELECT followee_id, count(*) FROM added GROUP BY followee_id",
                      2, S_USERS, 0, 1},
    [S_FOLLOW_DEL] = {"WITH gone AS (DELETE FROM follows f"
                      "  USING (SELECT DISTINCT * FROM unnest($1::bigint[], $2::bigint[]))"
                      "   AS e (follower_id, followee_id)"
                      "  WHERE f.follower_id = e.follower_id AND f.followee_id = e.followee_id"
                      "  RETURNING f.followee_id)"
                      " SELECT followee_id, count(*) FROM gone GROUP BY followee_id",
                      2, S_USERS, 0, -1},
    //  As search_tags_apply(+1) per new post, summed per tag and bucket. A
    //  post id given twice: the first that passes the check, as singly; new
    //  hashtags rows are made in the order their first post came (their id
    //  breaks ties in ranked lists).
    [S_POST_ADD] = {"WITH e AS (SELECT DISTINCT ON (id) * FROM (SELECT (p->>'id')::bigint AS id,"
                    "   (p->>'author_id')::bigint AS author_id, p->>'caption' AS caption,"
                    "   p->'hashtags' AS tags, n"
                    "   FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x (p, n)) AS e"
                    "  WHERE NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = e.author_id)"
                    "  ORDER BY id, n),"
                    " added AS (INSERT INTO posts (id, author_id, caption, hashtags)"
                    "  SELECT id, author_id, caption, ARRAY(SELECT DISTINCT lower(t)"
                    "   FROM jsonb_array_elements_text(tags) t WHERE t <> '') FROM e ORDER BY n"
                    "  ON CONFLICT (id) DO NOTHING RETURNING id, author_id, hashtags),"
                    " changed AS (INSERT INTO post_tags (tag, post_id, author_id)"
                    "  SELECT DISTINCT t, a.id, a.author_id FROM added a, unnest(a.hashtags) t"
                    "  WHERE t <> '' ON CONFLICT DO NOTHING"
                    "  RETURNING tag, post_id, search_id_ms(post_id) AS ms),"
                    " h AS (INSERT INTO hashtags (tag, post_count)"
                    "  SELECT c.tag, count(*) FROM changed c JOIN e ON e.id = c.post_id"
                    "  GROUP BY c.tag ORDER BY min(e.n), c.tag"
                    "  ON CONFLICT (tag) DO UPDATE SET post_count = hashtags.post_count"
                    "   + EXCLUDED.post_count),"
                    " b AS (INSERT INTO tag_counts_5m (tag, bucket_ms, count)"
                    "  SELECT tag, ms - ms % 300000, count(*) FROM changed GROUP BY 1, 2"
                    "  ON CONFLICT (tag, bucket_ms) DO UPDATE SET count = tag_counts_5m.count"
                    "   + EXCLUDED.count)"
                    " INSERT INTO tag_counts_1h (tag, bucket_ms, count)"
                    " SELECT tag, ms - ms % 3600000, count(*) FROM changed GROUP BY 1, 2"
                    " ON CONFLICT (tag, bucket_ms) DO UPDATE SET count = tag_counts_1h.count"
                    "  + EXCLUDED.count",
                    1, S_POSTS, 0, 0},
};

//  values as a Postgres array literal ("{1,2,3}"; caller frees).
static char *s_array_text(const int64_t *values, size_t count)
{
    char *text = (char *)zmalloc(count * 21 + 3);
    size_t used = 0;
    text[used++] = '{';
    for (size_t index = 0; index < count; index++)
        used += (size_t)sprintf(text + used, "%s%" PRId64, index ? "," : "", values[index]);
    strcpy(text + used, "}");
    return text;
}

//  Writes target's deltas (one statement) and empties them. 0 or -1.
static int s_flush_deltas(db_t *db, search_t *self, int target)
{
    search_deltas_t *deltas = &self->deltas[target];
    if (deltas->count == 0) return 0;
    int count = 1 + s_targets[target].counters;
    char *params[3] = {s_array_text(deltas->ids, deltas->count), NULL, NULL};
    for (int counter = 1; counter < count; counter++)
        params[counter] = s_array_text(deltas->deltas[counter - 1], deltas->count);
    deltas->count = 0;
    int rc = s_exec(db, s_targets[target].sql, count, (const char *const *)params);
    for (int index = 0; index < count; index++)
        free(params[index]);
    return rc;
}

//  Adds delta to row id's counter in target, writing the deltas first
//  when they are full and id is new. 0 or -1.
static int s_delta_add(db_t *db, search_t *self, int target, int counter, int64_t id, int64_t delta)
{
    search_deltas_t *deltas = &self->deltas[target];
    size_t index = 0;
    while (index < deltas->count && deltas->ids[index] != id)
        index++;
    if (index == SEARCH_DELTAS_MAX) {
        if (s_flush_deltas(db, self, target) != 0) return -1;
        index = 0;
    }
    if (index == deltas->count) {
        deltas->ids[index] = id;
        deltas->deltas[0][index] = deltas->deltas[1][index] = 0;
        deltas->count++;
    }
    deltas->deltas[counter][index] += delta;
    return 0;
}

//  The deletion kind that may join a run of kind (S_NONE: none may).
static int s_undo_kind(int kind)
{
    return kind == S_LIKE_ADD ? S_LIKE_DEL : kind == S_FOLLOW_ADD ? S_FOLLOW_DEL : S_NONE;
}

//  Writes one run (one statement), adds what it changed to the deltas and
//  empties it. 0 or -1.
static int s_write_run(db_t *db, search_t *self, search_run_t *run)
{
    int kind = run->kind;
    size_t count = run->count;
    run->kind = S_NONE;
    run->count = 0;
    if (count == 0) return 0;
    char *params[3] = {NULL, NULL, NULL};
    if (kind == S_POST_ADD) {
        params[0] = json_dumps(run->posts, JSON_COMPACT);
        json_decref(run->posts);
        run->posts = NULL;
        if (!params[0]) return -1;
    } else
        for (int column = 0; column < s_kinds[kind].ids; column++)
            params[column] = s_array_text(run->ids[column], count);
    PGresult *res = db_query(db, s_kinds[kind].sql, s_kinds[kind].ids, (const char *const *)params);
    for (int column = 0; column < 3; column++)
        free(params[column]);
    if (!res) return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++)
        rc = s_delta_add(db, self, s_kinds[kind].target, s_kinds[kind].counter,
                         search_column_int(res, row, 0),
                         s_kinds[kind].sign * search_column_int(res, row, 1));
    PQclear(res);
    return rc;
}

//  Writes the deletions riding along, then the run (see the top of the
//  file). On an error what is left is forgotten by the reset hook
//  (s_forget), as the transaction rolls back. 0 or -1.
static int s_flush_run(db_t *db, search_t *self)
{
    return s_write_run(db, self, &self->undo) != 0 || s_write_run(db, self, &self->run) != 0 ? -1
                                                                                             : 0;
}

//  Writes everything buffered: before a handler that is not buffered, and
//  at the batch's end (the EVENTS_BATCH_END hook). 0 or -1.
static int s_flush(db_t *db, const event_t *event, void *state)
{
    search_t *self = (search_t *)state;
    return s_flush_run(db, self) != 0 || s_flush_deltas(db, self, S_POSTS) != 0 ||
                   s_flush_deltas(db, self, S_USERS) != 0
               ? -1
               : 0;
}

//  Forgets everything buffered (the EVENTS_BATCH_RESET hook: the
//  transaction that would have written it was rolled back).
static int s_forget(db_t *db, const event_t *event, void *state)
{
    search_t *self = (search_t *)state;
    self->run.kind = self->undo.kind = S_NONE;
    self->run.count = self->undo.count = 0;
    json_decref(self->run.posts);
    self->run.posts = NULL;
    self->deltas[S_POSTS].count = self->deltas[S_USERS].count = 0;
    return 0;
}

//  The run, ready for one more event of kind: written first when it holds
//  another topic, when deletions of another pair ride along, or when it is
//  full. NULL on a database error.
static search_run_t *s_run_for(db_t *db, void *state, int kind)
{
    search_t *self = (search_t *)state;
    search_run_t *run = &self->run;
    bool joins = (run->count == 0 || run->kind == kind) &&
                 (self->undo.count == 0 || self->undo.kind == s_undo_kind(kind));
    if ((!joins || run->count == SEARCH_RUN_MAX) && s_flush_run(db, self) != 0) return NULL;
    run->kind = kind;
    return run;
}

//  Buffers a deletion of kind (S_LIKE_DEL, S_FOLLOW_DEL) of the pair (a, b)
//  of creation kind add: along the run when it may (see the top of the
//  file), else after writing the runs. 0 or -1.
static int s_buffer_undo(db_t *db, search_t *self, int add, int kind, int64_t a, int64_t b)
{
    search_run_t *run = &self->run, *undo = &self->undo;
    bool joins = (run->count == 0 || run->kind == add) &&
                 (undo->count == 0 || undo->kind == kind) && undo->count < SEARCH_RUN_MAX;
    for (size_t index = 0; joins && run->count && index < run->count; index++)
        if (run->ids[0][index] == a && run->ids[1][index] == b) joins = false;
    if (!joins && s_flush_run(db, self) != 0) return -1;
    undo->kind = kind;
    undo->ids[0][undo->count] = a;
    undo->ids[1][undo->count] = b;
    undo->ids[2][undo->count] = 0;
    undo->count++;
    return 0;
}

//  Appends an event of kind with ids (a, b, c: as many as kind takes) to
//  the run.
static int s_buffer(db_t *db, void *state, int kind, int64_t a, int64_t b, int64_t c)
{
    search_run_t *run = s_run_for(db, state, kind);
    if (!run) return -1;
    run->ids[0][run->count] = a;
    run->ids[1][run->count] = b;
    run->ids[2][run->count] = c;
    run->count++;
    return 0;
}

//  ---------------------------------------------------------------------
//  identity

static int s_user_upsert(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db, event, state) != 0) return -1; // the order between topics
    char id[21];
    const char *username = s_text(event, "username");
    const char *display_name = s_text(event, "display_name");
    json_t *is_private = json_object_get(event->payload, "is_private");
    if (!s_id(event, "id", id) || !username) return s_skip(event, "no id or username");
    if (is_private && !json_is_boolean(is_private)) return s_skip(event, "is_private");
    const char *params[] = {id, username, display_name ? display_name : "",
                            json_is_true(is_private) ? "t" : "f"};
    //  followers_count is recomputed on first insert: follow events may
    //  have come (from graph) before this one (from identity). The prefix
    //  terms are rewritten from the row as stored (name_norm is generated).
    if (s_exec(db,
               "INSERT INTO users (id, username, display_name, is_private, followers_count)"
               " SELECT $1::bigint, $2, $3, $4::boolean,"
               "  (SELECT count(*) FROM follows WHERE followee_id = $1::bigint)"
               " WHERE NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = $1::bigint)"
               " ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username,"
               "  display_name = EXCLUDED.display_name, is_private = EXCLUDED.is_private",
               4, params) != 0 ||
        s_exec(db, "DELETE FROM user_terms WHERE user_id = $1::bigint", 1, params) != 0)
        return -1;
    return s_exec(db,
                  "INSERT INTO user_terms (term, user_id)"
                  " SELECT DISTINCT term, u.id FROM users u,"
                  "  LATERAL (SELECT u.username UNION ALL SELECT u.name_norm"
                  "   UNION ALL SELECT regexp_split_to_table(u.name_norm, '\\s+')) t(term)"
                  " WHERE u.id = $1::bigint AND term <> ''",
                  1, params);
}

static int s_user_deleted(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db, event, state) != 0) return -1; // the order between topics
    char id[21];
    if (!s_id(event, "id", id)) return s_skip(event, "no id");
    const char *params[] = {id};
    return s_exec(db, "SELECT search_user_delete($1::bigint)", 1, params);
}

//  ---------------------------------------------------------------------
//  graph

//  Reads the pair (first, second) of ids named a and b.
static bool s_pair(const event_t *event, const char *a, const char *b, char *first, char *second)
{
    return s_id(event, a, first) && s_id(event, b, second);
}

//  Follows, likes and comments are buffered (the file's comment: "Batches").
//  Buffers an event of kind that names two ids, payload[a] and payload[b].
static int s_buffer_pair(db_t *db, const event_t *event, void *state, int kind, const char *a,
                         const char *b)
{
    int64_t first, second;
    if (!s_id_value(event, a, &first) || !s_id_value(event, b, &second)) {
        char why[64];
        snprintf(why, sizeof why, "no %s or %s", a, b);
        return s_skip(event, why);
    }
    if (kind == S_LIKE_DEL)
        return s_buffer_undo(db, (search_t *)state, S_LIKE_ADD, kind, first, second);
    if (kind == S_FOLLOW_DEL)
        return s_buffer_undo(db, (search_t *)state, S_FOLLOW_ADD, kind, first, second);
    return s_buffer(db, state, kind, first, second, 0);
}

static int s_follow_created(db_t *db, const event_t *event, void *state)
{
    return s_buffer_pair(db, event, state, S_FOLLOW_ADD, "follower_id", "followee_id");
}

static int s_follow_deleted(db_t *db, const event_t *event, void *state)
{
    return s_buffer_pair(db, event, state, S_FOLLOW_DEL, "follower_id", "followee_id");
}

static int s_block_created(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db, event, state) != 0) return -1; // the order between topics
    char blocker[21], blocked[21];
    if (!s_pair(event, "blocker_id", "blocked_id", blocker, blocked))
        return s_skip(event, "no blocker_id or blocked_id");
    const char *params[] = {blocker, blocked};
    return s_exec(db,
                  "INSERT INTO blocks (blocker_id, blocked_id) SELECT $1::bigint, $2::bigint"
                  " WHERE NOT EXISTS (SELECT 1 FROM deleted_users"
                  "  WHERE id IN ($1::bigint, $2::bigint))"
                  " ON CONFLICT DO NOTHING",
                  2, params);
}

static int s_block_deleted(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db, event, state) != 0) return -1; // the order between topics
    char blocker[21], blocked[21];
    if (!s_pair(event, "blocker_id", "blocked_id", blocker, blocked))
        return s_skip(event, "no blocker_id or blocked_id");
    const char *params[] = {blocker, blocked};
    return s_exec(db,
                  "DELETE FROM blocks WHERE blocker_id = $1::bigint AND blocked_id = $2::bigint", 2,
                  params);
}

//  ---------------------------------------------------------------------
//  media: posts

//  Buffered (the file's comment: "Batches"): a post's insert and its tags
//  are written with the run's other posts.
static int s_post_created(db_t *db, const event_t *event, void *state)
{
    int64_t id, author;
    const char *caption = s_text(event, "caption");
    json_t *tags = json_object_get(event->payload, "hashtags");
    if (!s_id_value(event, "id", &id) || !s_id_value(event, "author_id", &author))
        return s_skip(event, "no id or author_id");
    if (!s_tags_ok(event)) return s_skip(event, "hashtags is not an array of strings");
    search_run_t *run = s_run_for(db, state, S_POST_ADD);
    if (!run) return -1;
    if (!run->posts) run->posts = json_array();
    json_array_append_new(run->posts,
                          json_pack("{s:I, s:I, s:s, s:o}", "id", (json_int_t)id, "author_id",
                                    (json_int_t)author, "caption", caption ? caption : "",
                                    "hashtags", tags ? json_incref(tags) : json_array()));
    run->count++;
    return 0;
}

static int s_post_updated(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db, event, state) != 0) return -1; // the order between topics
    char id[21];
    const char *caption = s_text(event, "caption");
    if (!s_id(event, "id", id)) return s_skip(event, "no id");
    char *tags = s_tags_json(event);
    if (!tags) return s_skip(event, "hashtags is not an array of strings");
    const char *params[] = {id, caption ? caption : "", tags};
    //  Tags that left the caption are removed, new ones added; both keep
    //  the post's creation bucket. old is what the row held before this
    //  statement (every CTE sees the same snapshot), new what the event says.
    int rc = s_exec(
        db,
        "WITH old AS (SELECT author_id, hashtags FROM posts WHERE id = $1::bigint),"
        " new AS (SELECT ARRAY(SELECT DISTINCT lower(t) FROM jsonb_array_elements_text($3::jsonb) t"
        "  WHERE t <> '') AS hashtags),"
        " changed AS (UPDATE posts SET caption = $2, hashtags = new.hashtags FROM new"
        "  WHERE id = $1::bigint RETURNING posts.id)"
        " SELECT search_tags_apply($1::bigint, old.author_id,"
        "  ARRAY(SELECT unnest(old.hashtags) EXCEPT SELECT unnest(new.hashtags)), -1),"
        "  search_tags_apply($1::bigint, old.author_id,"
        "  ARRAY(SELECT unnest(new.hashtags) EXCEPT SELECT unnest(old.hashtags)), 1)"
        " FROM old, new WHERE EXISTS (SELECT 1 FROM changed)",
        3, params);
    free(tags);
    return rc;
}

static int s_post_deleted(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db, event, state) != 0) return -1; // the order between topics
    char id[21];
    if (!s_id(event, "id", id)) return s_skip(event, "no id");
    const char *params[] = {id};
    return s_exec(db, "SELECT search_post_delete($1::bigint)", 1, params);
}

//  ---------------------------------------------------------------------
//  media: likes and comments

static int s_like_created(db_t *db, const event_t *event, void *state)
{
    return s_buffer_pair(db, event, state, S_LIKE_ADD, "post_id", "user_id");
}

static int s_like_deleted(db_t *db, const event_t *event, void *state)
{
    return s_buffer_pair(db, event, state, S_LIKE_DEL, "post_id", "user_id");
}

static int s_comment_created(db_t *db, const event_t *event, void *state)
{
    int64_t id, post, author;
    if (!s_id_value(event, "id", &id) || !s_id_value(event, "post_id", &post) ||
        !s_id_value(event, "author_id", &author))
        return s_skip(event, "no id, post_id or author_id");
    return s_buffer(db, state, S_COMMENT_ADD, id, post, author);
}

static int s_comment_deleted(db_t *db, const event_t *event, void *state)
{
    int64_t id;
    if (!s_id_value(event, "id", &id)) return s_skip(event, "no id");
    return s_buffer(db, state, S_COMMENT_DEL, id, 0, 0);
}

const events_route_t search_consumes[] = {
    {"identity.user.created", s_user_upsert},
    {"identity.user.updated", s_user_upsert},
    {"identity.user.deleted", s_user_deleted},
    {"graph.follow.created", s_follow_created},
    {"graph.follow.deleted", s_follow_deleted},
    {"graph.block.created", s_block_created},
    {"graph.block.deleted", s_block_deleted},
    {"media.post.created", s_post_created},
    {"media.post.updated", s_post_updated},
    {"media.post.deleted", s_post_deleted},
    {"media.like.created", s_like_created},
    {"media.like.deleted", s_like_deleted},
    {"media.comment.created", s_comment_created},
    {"media.comment.deleted", s_comment_deleted},
    {EVENTS_BATCH_END, s_flush},
    {EVENTS_BATCH_RESET, s_forget},
    {NULL, NULL},
};
