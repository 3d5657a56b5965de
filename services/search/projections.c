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

//  payload[name] as an id (a decimal string, or an integer) into buf.
static bool s_id(const event_t *event, const char *name, char *buf)
{
    json_t *value = json_object_get(event->payload, name);
    int64_t id = 0;
    bool ok = (json_is_string(value) && json_string_length(value) <= 20 &&
               ids_parse(json_string_value(value), &id)) ||
              (json_is_integer(value) && (id = json_integer_value(value)) > 0);
    if (ok) ids_format(id, buf, 21);
    return ok;
}

//  payload[name] as a string without NUL, or NULL.
static const char *s_text(const event_t *event, const char *name)
{
    json_t *value = json_object_get(event->payload, name);
    if (!json_is_string(value) || strlen(json_string_value(value)) != json_string_length(value))
        return NULL;
    return json_string_value(value);
}

//  payload.hashtags as a JSON array text of lower-case strings (caller
//  frees), or NULL when it is not an array of strings. Absent = [].
static char *s_tags_json(const event_t *event)
{
    json_t *tags = json_object_get(event->payload, "hashtags");
    if (!tags) return strdup("[]");
    if (!json_is_array(tags)) return NULL;
    size_t index;
    json_t *tag;
    json_array_foreach(tags, index, tag)
    {
        if (!json_is_string(tag) || strlen(json_string_value(tag)) != json_string_length(tag))
            return NULL;
    }
    return json_dumps(tags, JSON_COMPACT);
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
//  identity

static int s_user_upsert(db_t *db, const event_t *event, void *state)
{
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

static int s_follow_created(db_t *db, const event_t *event, void *state)
{
    char follower[21], followee[21];
    if (!s_pair(event, "follower_id", "followee_id", follower, followee))
        return s_skip(event, "no follower_id or followee_id");
    const char *params[] = {follower, followee};
    return s_exec(db,
                  "WITH added AS (INSERT INTO follows (follower_id, followee_id)"
                  "  SELECT $1::bigint, $2::bigint WHERE NOT EXISTS (SELECT 1 FROM deleted_users"
                  "   WHERE id IN ($1::bigint, $2::bigint))"
                  "  ON CONFLICT DO NOTHING RETURNING followee_id)"
                  " UPDATE users SET followers_count = followers_count + 1"
                  " WHERE id IN (SELECT followee_id FROM added)",
                  2, params);
}

static int s_follow_deleted(db_t *db, const event_t *event, void *state)
{
    char follower[21], followee[21];
    if (!s_pair(event, "follower_id", "followee_id", follower, followee))
        return s_skip(event, "no follower_id or followee_id");
    const char *params[] = {follower, followee};
    return s_exec(db,
                  "WITH gone AS (DELETE FROM follows WHERE follower_id = $1::bigint"
                  "  AND followee_id = $2::bigint RETURNING followee_id)"
                  " UPDATE users SET followers_count = followers_count - 1"
                  " WHERE id IN (SELECT followee_id FROM gone)",
                  2, params);
}

static int s_block_created(db_t *db, const event_t *event, void *state)
{
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

static int s_post_created(db_t *db, const event_t *event, void *state)
{
    char id[21], author[21];
    const char *caption = s_text(event, "caption");
    if (!s_pair(event, "id", "author_id", id, author)) return s_skip(event, "no id or author_id");
    char *tags = s_tags_json(event);
    if (!tags) return s_skip(event, "hashtags is not an array of strings");
    const char *params[] = {id, author, caption ? caption : "", tags};
    //  The tags are counted only when the post row is new (RETURNING).
    int rc = s_exec(db,
                    "WITH added AS (INSERT INTO posts (id, author_id, caption, hashtags)"
                    "  SELECT $1::bigint, $2::bigint, $3,"
                    "   ARRAY(SELECT DISTINCT lower(t) FROM jsonb_array_elements_text($4::jsonb) t"
                    "    WHERE t <> '')"
                    "  WHERE NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = $2::bigint)"
                    "  ON CONFLICT (id) DO NOTHING RETURNING id, author_id, hashtags)"
                    " SELECT search_tags_apply(id, author_id, hashtags, 1) FROM added",
                    4, params);
    free(tags);
    return rc;
}

static int s_post_updated(db_t *db, const event_t *event, void *state)
{
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
    char id[21];
    if (!s_id(event, "id", id)) return s_skip(event, "no id");
    const char *params[] = {id};
    return s_exec(db, "SELECT search_post_delete($1::bigint)", 1, params);
}

//  ---------------------------------------------------------------------
//  media: likes and comments

static int s_like_created(db_t *db, const event_t *event, void *state)
{
    char post[21], user[21];
    if (!s_pair(event, "post_id", "user_id", post, user))
        return s_skip(event, "no post_id or user_id");
    const char *params[] = {post, user};
    return s_exec(db,
                  "WITH added AS (INSERT INTO likes (post_id, user_id)"
                  "  SELECT $1::bigint, $2::bigint"
                  "  WHERE EXISTS (SELECT 1 FROM posts WHERE id = $1::bigint)"
                  "  AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = $2::bigint)"
                  "  ON CONFLICT DO NOTHING RETURNING post_id)"
                  " UPDATE posts SET like_count = like_count + 1"
                  " WHERE id IN (SELECT post_id FROM added)",
                  2, params);
}

static int s_like_deleted(db_t *db, const event_t *event, void *state)
{
    char post[21], user[21];
    if (!s_pair(event, "post_id", "user_id", post, user))
        return s_skip(event, "no post_id or user_id");
    const char *params[] = {post, user};
    return s_exec(db,
                  "WITH gone AS (DELETE FROM likes WHERE post_id = $1::bigint"
                  "  AND user_id = $2::bigint RETURNING post_id)"
                  " UPDATE posts SET like_count = like_count - 1"
                  " WHERE id IN (SELECT post_id FROM gone)",
                  2, params);
}

static int s_comment_created(db_t *db, const event_t *event, void *state)
{
    char id[21], post[21], author[21];
    if (!s_id(event, "id", id) || !s_pair(event, "post_id", "author_id", post, author))
        return s_skip(event, "no id, post_id or author_id");
    const char *params[] = {id, post, author};
    return s_exec(db,
                  "WITH added AS (INSERT INTO comments (id, post_id, author_id)"
                  "  SELECT $1::bigint, $2::bigint, $3::bigint"
                  "  WHERE EXISTS (SELECT 1 FROM posts WHERE id = $2::bigint)"
                  "  AND NOT EXISTS (SELECT 1 FROM deleted_users WHERE id = $3::bigint)"
                  "  ON CONFLICT DO NOTHING RETURNING post_id)"
                  " UPDATE posts SET comment_count = comment_count + 1"
                  " WHERE id IN (SELECT post_id FROM added)",
                  3, params);
}

static int s_comment_deleted(db_t *db, const event_t *event, void *state)
{
    char id[21];
    if (!s_id(event, "id", id)) return s_skip(event, "no id");
    const char *params[] = {id};
    return s_exec(db,
                  "WITH gone AS (DELETE FROM comments WHERE id = $1::bigint RETURNING post_id)"
                  " UPDATE posts SET comment_count = comment_count - 1"
                  " WHERE id IN (SELECT post_id FROM gone)",
                  1, params);
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
    {NULL, NULL},
};
