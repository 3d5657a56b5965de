/*  seed: bulk posts, likes and comments for `make bench` (the internal
    method media.seed; docs/contracts.md, "Benchmark seeding"). Refused
    (403) unless the service runs with MEDIA_SEED_ENABLED=1: no route leads
    here.

        media.seed {what:"posts", users, from, count, total, image_post, end_ms?}
        media.seed {what:"likes" | "comments", users, count}
          -> {created, seconds, ids (posts: the new posts' ids, oldest first)}

    Accounts are identity.seed's: account i has id ((86400000 + i) << 23) |
    (8190 << 10); media does not need to know them beforehand (it keeps no
    user table). Every seeded row's id carries shard 8190, which no leased
    shard reaches, so seeded ids never meet real ones.

    posts   post j (from <= j < from + count <= total) is made at
            end_ms - 30 days + j × (30 days / total), so `total` posts
            spread evenly over the 30 days before end_ms (default now;
            give the same end_ms to every chunk of one seed). Its author
            is account (r × 7919 + 13) mod users with r = floor(users ×
            u^2): posting is skewed (a few accounts post a lot), and the
            permutation keeps the prolific posters apart from the
            most-followed accounts (low numbers in graph.seed), as in real
            networks. Caption "Bench post <j> #a #b" with two of ten tags
            (one uniform, one skewed). Every post shows the first image
            of the real post image_post (uploaded once through the API):
            its post_images row is copied, so the stored file is
            referenced by every seeded post and the collector keeps it
            while any of them exists (files.c).
    likes   each picks a time t = newest - (newest - oldest) × u^2 over the
    comments seeded posts and takes the newest post made at or before t
            (one primary-key probe), so likes and comments crowd onto
            recent posts; the liker or commenter is a uniform account; it
            is made between the post and now (skewed to soon after the
            post). A repeated (post, user) like is dropped, so a call may
            make a few fewer than count.

    One statement per call inserts the rows (INSERT ... SELECT
    generate_series), their images, counters (author_stats, like_count,
    comment_count: what the real handlers change) and returns the new
    rows; each emits the payload posts.create, likes.create or
    comments.create emits, all through one events_emit_many in the same
    transaction, so feed, search and notification build their projections
    from the events the normal way.
*/
#include "media.h"
#include "args.h"
#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_USERS_MAX 10000000
#define SEED_POSTS_MAX 100000000
#define SEED_POSTS_CHUNK_MAX 20000
#define SEED_ROWS_CHUNK_MAX 50000
#define SEED_SPAN_MS INT64_C(2592000000) // 30 days

json_t *media_seed(call_t *call);

//  Shard 8190 of an id, as an SQL condition on column c.
#define SEEDED(c) "((" c " >> 10) & 8191) = 8190"
#define TIME_TEXT(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

//  $1 first j, $2 last j, $3 total, $4 users, $5 end (unix ms), $6 image
//  post, $7 author permutation multiplier.
static const char s_posts_sql[] =
    "WITH img AS MATERIALIZED ("
    "  SELECT key, thumb_key, width, height FROM post_images WHERE post_id = $6::bigint"
    "  ORDER BY position LIMIT 1),"
    " tags AS MATERIALIZED (SELECT '{sunset,food,travel,cats,nofilter,beach,coffee,city,"
    "friends,art}'::text[] AS t),"
    " drawn AS ("
    "  SELECT j, $5::bigint - 2592000000 + j * (2592000000 / $3::bigint) AS ms,"
    "   (floor(power(random(), 2) * $4::bigint)::bigint * $7::bigint + 13) % $4::bigint AS a,"
    "   tags.t[1 + floor(random() * 10)::int] AS t1,"
    "   tags.t[1 + floor(power(random(), 2) * 10)::int] AS t2"
    "  FROM generate_series($1::bigint, $2::bigint) j, tags),"
    " added AS ("
    "  INSERT INTO posts (id, author_id, caption, hashtags, created_at, updated_at)"
    "  SELECT ((ms - 1735689600000) << 23) | (8190 << 10) | (j & 1023),"
    "   ((86400000 + a) << 23) | (8190 << 10), 'Bench post ' || j || ' #' || t1 || ' #' || t2,"
    "   CASE WHEN t1 = t2 THEN ARRAY[t1] ELSE ARRAY[t1, t2] END,"
    "   to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)"
    "  FROM drawn ORDER BY 1 ON CONFLICT DO NOTHING"
    "  RETURNING id, author_id, caption, hashtags, created_at),"
    " images AS ("
    "  INSERT INTO post_images (post_id, position, key, thumb_key, width, height)"
    "  SELECT added.id, 0, img.key, img.thumb_key, img.width, img.height FROM added, img),"
    " stats AS ("
    "  INSERT INTO author_stats (author_id, posts_count)"
    "  SELECT author_id, count(*) FROM added GROUP BY author_id ORDER BY author_id"
    "  ON CONFLICT (author_id) DO UPDATE SET posts_count = author_stats.posts_count"
    "  + EXCLUDED.posts_count)"
    " SELECT id, author_id, caption, array_to_json(hashtags)::text, " TIME_TEXT(
        "created_at") " FROM added ORDER BY id";

//  The target post of each of $1 draws over the seeded posts' time span,
//  and a uniform account among $2 (the columns likes and comments share).
//  $3 is now (ms since the ids epoch).
#define SEED_TARGETS_SQL                                                                           \
    "WITH span AS (SELECT min(id) >> 23 AS lo, max(id) >> 23 AS hi FROM posts"                     \
    "  WHERE " SEEDED(                                                                             \
        "id") "),"                                                                                 \
              " draws AS ("                                                                        \
              "  SELECT span.hi - floor((span.hi - span.lo) * power(random(), 2))::bigint AS "     \
              "bound,"                                                                             \
              "   floor(random() * $2::bigint)::bigint AS u"                                       \
              "  FROM span, generate_series(1, $1::int) g WHERE span.hi IS NOT NULL),"             \
              " targets AS ("                                                                      \
              "  SELECT p.id AS post_id, p.author_id, ((86400000 + d.u) << 23) | (8190 << 10) AS " \
              "user_id,"                                                                           \
              "   (p.id >> 23) + floor(greatest($3::bigint - (p.id >> 23), 0) * power(random(), "  \
              "3))::bigint"                                                                        \
              "    AS ms"                                                                          \
              "  FROM draws d, LATERAL (SELECT id, author_id FROM posts"                           \
              "   WHERE id <= ((d.bound << 23) | 8388607) AND " SEEDED(                            \
                  "id") "   ORDER BY id DESC LIMIT 1) p)"

static const char s_likes_sql[] = SEED_TARGETS_SQL
    ","
    " added AS ("
    "  INSERT INTO likes (post_id, user_id, id, created_at)"
    "  SELECT post_id, user_id, (ms << 23) | (8190 << 10) | floor(random() * 1024)::bigint,"
    "   to_timestamp((ms + 1735689600000) / 1000.0)"
    "  FROM targets ORDER BY post_id, user_id ON CONFLICT DO NOTHING"
    "  RETURNING post_id, user_id, created_at),"
    " counted AS ("
    "  UPDATE posts SET like_count = like_count + c.n"
    "  FROM (SELECT post_id, count(*) AS n FROM added GROUP BY post_id) c"
    "  WHERE posts.id = c.post_id)"
    " SELECT a.post_id, p.author_id, a.user_id, " TIME_TEXT(
        "a.created_at") " FROM added a JOIN posts p ON p.id = a.post_id ORDER BY a.created_at";

static const char s_comments_sql[] = SEED_TARGETS_SQL
    ","
    " added AS ("
    "  INSERT INTO comments (id, post_id, author_id, text, created_at)"
    "  SELECT (ms << 23) | (8190 << 10) | floor(random() * 1024)::bigint, post_id, user_id,"
    "   ('{Nice one!,Love this,Great shot,Where is this?,So good,Amazing light,"
    "Wow,Beautiful}'::text[])[1 + floor(random() * 8)::int],"
    "   to_timestamp((ms + 1735689600000) / 1000.0)"
    "  FROM targets ORDER BY 1 ON CONFLICT DO NOTHING"
    "  RETURNING id, post_id, author_id, text, created_at),"
    " counted AS ("
    "  UPDATE posts SET comment_count = comment_count + c.n"
    "  FROM (SELECT post_id, count(*) AS n FROM added GROUP BY post_id) c"
    "  WHERE posts.id = c.post_id)"
    " SELECT a.id, a.post_id, p.author_id, a.author_id, a.text, " TIME_TEXT(
        "a.created_at") " FROM added a JOIN posts p ON p.id = a.post_id ORDER BY a.id";

//  One payload per row of res, for topic.
static json_t *s_payload(const char *topic, PGresult *res, int row)
{
    if (streq(topic, "post.created"))
        return json_pack("{s:s, s:s, s:s, s:o, s:[], s:s}", "id", PQgetvalue(res, row, 0),
                         "author_id", PQgetvalue(res, row, 1), "caption", PQgetvalue(res, row, 2),
                         "hashtags", json_loads(PQgetvalue(res, row, 3), JSON_DECODE_ANY, NULL),
                         "mentions", "created_at", PQgetvalue(res, row, 4));
    if (streq(topic, "like.created"))
        return json_pack("{s:s, s:s, s:s, s:s}", "post_id", PQgetvalue(res, row, 0),
                         "post_author_id", PQgetvalue(res, row, 1), "user_id",
                         PQgetvalue(res, row, 2), "created_at", PQgetvalue(res, row, 3));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:s}", "id", PQgetvalue(res, row, 0),
                     "post_id", PQgetvalue(res, row, 1), "post_author_id", PQgetvalue(res, row, 2),
                     "author_id", PQgetvalue(res, row, 3), "text", PQgetvalue(res, row, 4),
                     "mentions", "created_at", PQgetvalue(res, row, 5));
}

//  Runs sql in a transaction and emits topic for each row it returns;
//  appends each row's first column (the new id) to ids when not NULL.
//  Returns the number of rows, or -1 (rolled back).
static int s_run(db_t *db, const char *topic, const char *sql, int count, const char *const *params,
                 json_t *ids)
{
    if (db_begin(db) != 0) return -1;
    json_t *payloads = json_array();
    PGresult *res = db_query(db, sql, count, params);
    int rows = res ? PQntuples(res) : -1;
    for (int row = 0; row < rows; row++) {
        json_t *payload = s_payload(topic, res, row);
        if (!payload) {
            rows = -1;
            break;
        }
        json_array_append_new(payloads, payload);
        if (ids) json_array_append_new(ids, json_string(PQgetvalue(res, row, 0)));
    }
    if (rows < 0 || events_emit_many(db, topic, payloads) != 0 || db_commit(db) != 0) rows = -1;
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(res);
    json_decref(payloads);
    return rows;
}

//  posts: checks the image post, then seeds. -1 with *reply set on a
//  client error, -1 with *reply NULL on a failure, else the rows made.
static int s_posts(call_t *call, int64_t users, json_t **reply, json_t *ids)
{
    json_t *fields = json_object();
    int64_t from = 0, count = 0, total = 0, end_ms = envelope_now_ms();
    args_int(call->args, "from", true, 0, SEED_POSTS_MAX - 1, &from, fields);
    args_int(call->args, "count", true, 1, SEED_POSTS_CHUNK_MAX, &count, fields);
    args_int(call->args, "total", true, 1, SEED_POSTS_MAX, &total, fields);
    args_int(call->args, "end_ms", false, IDS_EPOCH_MS + SEED_SPAN_MS, INT64_C(1) << 50, &end_ms,
             fields);
    int64_t image_post = 0;
    json_t *image = json_object_get(call->args, "image_post");
    if (!json_is_string(image) || !ids_parse(json_string_value(image), &image_post))
        json_object_set_new(fields, "image_post", json_string("must be a post id"));
    if (json_object_size(fields) == 0 && from + count > total)
        json_object_set_new(fields, "count", json_string("from + count is above total"));
    if (json_object_size(fields) > 0) {
        *reply = reply_invalid(fields, "some fields are not valid");
        return -1;
    }
    json_decref(fields);
    char image_text[21];
    const char *image_params[] = {media_id_text(image_post, image_text)};
    PGresult *res =
        db_query(call->db, "SELECT count(*) FROM post_images WHERE post_id = $1", 1, image_params);
    bool has_image = res && PQntuples(res) == 1 && strtoll(PQgetvalue(res, 0, 0), NULL, 10) > 0;
    PQclear(res);
    if (!res) return -1;
    if (!has_image) {
        *reply = reply_invalid(json_pack("{s:s}", "image_post", "names no post with an image"),
                               "some fields are not valid");
        return -1;
    }
    //  A multiplier prime to users makes the author draw a permutation.
    int64_t multiplier = users % 7919 ? 7919 : 7927;
    char first[24], last[24], total_text[24], users_text[24], end_text[24], multiplier_text[24];
    snprintf(first, sizeof first, "%" PRId64, from);
    snprintf(last, sizeof last, "%" PRId64, from + count - 1);
    snprintf(total_text, sizeof total_text, "%" PRId64, total);
    snprintf(users_text, sizeof users_text, "%" PRId64, users);
    snprintf(end_text, sizeof end_text, "%" PRId64, end_ms);
    snprintf(multiplier_text, sizeof multiplier_text, "%" PRId64, multiplier);
    const char *params[] = {first,    last,       total_text,     users_text,
                            end_text, image_text, multiplier_text};
    return s_run(call->db, "post.created", s_posts_sql, 7, params, ids);
}

json_t *media_seed(call_t *call)
{
    if (config_int("MEDIA_SEED_ENABLED", 0) != 1)
        return reply_error(403, ERR_FORBIDDEN, "seeding is off (MEDIA_SEED_ENABLED=1 turns it on)");
    json_t *fields = json_object();
    int64_t users = 0;
    args_int(call->args, "users", true, 1, SEED_USERS_MAX, &users, fields);
    json_t *what_value = json_object_get(call->args, "what");
    const char *what = json_is_string(what_value) ? json_string_value(what_value) : "";
    bool posts = streq(what, "posts"), likes = streq(what, "likes"),
         comments = streq(what, "comments");
    if (!posts && !likes && !comments)
        json_object_set_new(fields, "what", json_string("must be posts, likes or comments"));
    int64_t count = 0;
    if (!posts) args_int(call->args, "count", true, 1, SEED_ROWS_CHUNK_MAX, &count, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t start = zclock_mono();
    json_t *reply = NULL, *ids = posts ? json_array() : NULL;
    int rows = -1;
    if (posts)
        rows = s_posts(call, users, &reply, ids);
    else {
        char count_text[24], users_text[24], now_text[24];
        snprintf(count_text, sizeof count_text, "%" PRId64, count);
        snprintf(users_text, sizeof users_text, "%" PRId64, users);
        snprintf(now_text, sizeof now_text, "%" PRId64, envelope_now_ms() - IDS_EPOCH_MS);
        const char *params[] = {count_text, users_text, now_text};
        rows = s_run(call->db, likes ? "like.created" : "comment.created",
                     likes ? s_likes_sql : s_comments_sql, 3, params, NULL);
    }
    if (reply || rows < 0) {
        json_decref(ids);
        return reply ? reply : media_internal("media.seed");
    }
    log_info("media.seed: %d %s in %" PRId64 " ms", rows, what, zclock_mono() - start);
    json_t *body = json_pack("{s:i, s:f}", "created", rows, "seconds",
                             (double)(zclock_mono() - start) / 1000.0);
    if (ids) json_object_set_new(body, "ids", ids);
    return reply_ok(200, body);
}
