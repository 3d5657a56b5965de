/*  hashtags: hashtag search (GET /search/hashtags), tag pages (GET
    /hashtags/{tag}, GET /hashtags/{tag}/posts) and trends (GET
    /trends/hashtags).

    Tags are compared lower-cased and without their '#' (API.md), which is
    how media reports them; a query or path tag is normalised the same way.

    Hashtag search: tags starting with the query (a prefix range on the
    text_pattern_ops index), the exact tag first, then by post_count; only
    tags with posts. Ranked pages use the cursor (score, hashtag id).

    Tag page: post_count from hashtags (an unknown tag is 200 with 0), and
    the tag's posts newest first from post_tags (tag, post_id DESC), with
    the same visibility rule as post search, hydrated by media posts.batch.

    Trends (docs/search.md has the formula and its reasons): for a window
    W, a tag's count c is the sum of its buckets from floor(now - W) on, and
    its expected count e is the preceding baseline period's count scaled to
    W; score = (c - e) / sqrt(e + K). Tags with c >= TRENDS_MIN_COUNT and
    c > e are listed, best score first (then count, then tag). Computing it
    reads every bucket of the window and its baseline, so the list is kept
    per window for SEARCH_TRENDS_TTL_MS (default 10 s) in this process: a
    tag trends within seconds of its posts, and a burst of requests costs
    one query.
*/
#include "search.h"
#include "args.h"
#include "errors.h"
#include "log.h"

#include <czmq.h>
#include <math.h>
#include <string.h>

#define TRENDS_K 4.0 // smoothing: the score of tiny counts stays small
//  One post is enough: API.md says a tag can trend within a minute of its
//  posts, and a new tag's first post scores only 1 / sqrt(K) = 0.5, below
//  any real rise, so it does not crowd the list.
#define TRENDS_MIN_COUNT "1"

typedef struct {
    const char *name;    // "1h"
    const char *table;   // bucket table
    int64_t bucket_ms;   // its bucket size
    int64_t window_ms;   // W
    int64_t baseline_ms; // the preceding period the baseline is taken from
} trend_window_t;

static const trend_window_t s_windows[SEARCH_TREND_WINDOWS] = {
    {"1h", "tag_counts_5m", 300000, 3600000, 86400000},
    {"24h", "tag_counts_1h", 3600000, 86400000, 7 * 86400000LL},
    {"7d", "tag_counts_1h", 3600000, 7 * 86400000LL, 28 * 86400000LL},
};

//  ---------------------------------------------------------------------
//  Hashtag search

//  $1 query (normalised here with lower()), $2 has cursor, $3 $4 cursor
//  (score, id), $5 rows wanted. The exact tag scores above any count.
static const char s_hashtags_search_sql[] =
    "SELECT tag, post_count, score, id FROM ("
    " SELECT tag, post_count, id,"
    "  CASE WHEN tag = lower($1) THEN 4611686018427387904 ELSE post_count::bigint END AS score"
    " FROM hashtags WHERE tag ~>=~ lower($1) AND tag ~<~ (lower($1) || chr(1114111))"
    " AND post_count > 0) h"
    " WHERE NOT $2::boolean OR (score, id) < ($3::bigint, $4::bigint)"
    " ORDER BY score DESC, id DESC LIMIT $5::int";

json_t *search_hashtags(call_t *call)
{
    json_t *fields = json_object();
    char query[SEARCH_TAG_MAX * 4 + 1];
    search_page_t page;
    search_text_arg(call->args, "q", SEARCH_TAG_MAX, '#', query, sizeof query, fields);
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char key1[21], key2[21], wanted[16];
    snprintf(key1, sizeof key1, "%" PRId64, page.key1);
    snprintf(key2, sizeof key2, "%" PRId64, page.key2);
    snprintf(wanted, sizeof wanted, "%d", page.limit + 1);
    const char *params[] = {query, page.has_cursor ? "t" : "f", key1, key2, wanted};
    PGresult *res = db_query(call->db, s_hashtags_search_sql, 5, params);
    if (!res) return search_internal("hashtag search");
    int rows = PQntuples(res);
    int shown = rows > page.limit ? page.limit : rows;
    json_t *items = json_array();
    for (int row = 0; row < shown; row++)
        json_array_append_new(items,
                              json_pack("{s:s, s:I}", "tag", PQgetvalue(res, row, 0), "post_count",
                                        (json_int_t)search_column_int(res, row, 1)));
    bool more = rows > page.limit && shown > 0;
    int64_t score = more ? search_column_int(res, shown - 1, 2) : 0;
    int64_t id = more ? search_column_int(res, shown - 1, 3) : 0;
    PQclear(res);
    return reply_ok(200, search_list_body(items, more, score, id));
}

//  ---------------------------------------------------------------------
//  Tag page

json_t *hashtags_get(call_t *call)
{
    json_t *fields = json_object();
    char tag[SEARCH_TAG_MAX * 4 + 1];
    if (search_text_arg(call->args, "tag", SEARCH_TAG_MAX, '#', tag, sizeof tag, fields) < 0)
        return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    const char *params[] = {tag};
    PGresult *res = db_query(call->db,
                             "SELECT lower($1),"
                             " coalesce((SELECT greatest(post_count, 0) FROM hashtags"
                             "  WHERE tag = lower($1)), 0)",
                             1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return search_internal("tag page");
    }
    json_t *body = json_pack("{s:s, s:I}", "tag", PQgetvalue(res, 0, 0), "post_count",
                             (json_int_t)search_column_int(res, 0, 1));
    PQclear(res);
    return reply_ok(200, body);
}

static const char s_tag_posts_sql[] =
    "SELECT pt.post_id FROM post_tags pt JOIN users u ON u.id = pt.author_id"
    " WHERE pt.tag = lower($1) AND (NOT $3::boolean OR pt.post_id < $4::bigint)"
    " AND " SEARCH_VISIBLE_SQL("$2::bigint") " ORDER BY pt.post_id DESC LIMIT $5::int";

json_t *hashtags_posts(call_t *call)
{
    json_t *fields = json_object();
    char tag[SEARCH_TAG_MAX * 4 + 1];
    search_page_t page;
    search_text_arg(call->args, "tag", SEARCH_TAG_MAX, '#', tag, sizeof tag, fields);
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], after[21], wanted[16];
    search_id_text(page.key1, after);
    snprintf(wanted, sizeof wanted, "%d", page.limit + 1);
    const char *params[] = {tag, search_id_text(call->viewer_id, viewer),
                            page.has_cursor ? "t" : "f", after, wanted};
    PGresult *res = db_query(call->db, s_tag_posts_sql, 5, params);
    if (!res) return search_internal("tag posts");
    int rows = PQntuples(res);
    int shown = rows > page.limit ? page.limit : rows;
    int64_t ids[SEARCH_POSTS_BATCH_MAX];
    for (int row = 0; row < shown; row++)
        ids[row] = search_column_int(res, row, 0);
    PQclear(res);
    bool more = rows > page.limit && shown > 0;
    json_t *items = NULL;
    json_t *error = search_hydrate_posts(call, ids, (size_t)shown, &items);
    if (error) return error;
    return reply_ok(200, search_list_body(items, more, more ? ids[shown - 1] : 0, 0));
}

//  ---------------------------------------------------------------------
//  Trends

//  $1 window start, $2 baseline start (both bucket starts, unix ms), $3
//  W / baseline length, $4 K, $5 minimum count, $6 most tags. The table
//  name is one of two constants.
#define TRENDS_SQL(table)                                                                          \
    "SELECT tag, c, (c - e) / sqrt(e + $4::float8) AS score FROM ("                                \
    " SELECT tag, coalesce(sum(count) FILTER (WHERE bucket_ms >= $1::bigint), 0) AS c,"            \
    "  coalesce(sum(count) FILTER (WHERE bucket_ms < $1::bigint), 0) * $3::float8 AS e"            \
    " FROM " table " WHERE bucket_ms >= $2::bigint GROUP BY tag) x"                                \
    " WHERE c >= $5::int AND c > e ORDER BY score DESC, c DESC, tag LIMIT $6::int"

//  Computes the window's list: a new array, or NULL on a database error.
static json_t *s_trends_compute(db_t *db, const trend_window_t *window, int64_t now)
{
    int64_t start = now - window->window_ms;
    start -= start % window->bucket_ms;
    char start_text[24], baseline_text[24], ratio[32], k[16], most[16];
    snprintf(start_text, sizeof start_text, "%" PRId64, start);
    snprintf(baseline_text, sizeof baseline_text, "%" PRId64, start - window->baseline_ms);
    snprintf(ratio, sizeof ratio, "%.9f", (double)window->window_ms / (double)window->baseline_ms);
    snprintf(k, sizeof k, "%.3f", TRENDS_K);
    snprintf(most, sizeof most, "%d", SEARCH_TRENDS_MAX);
    const char *params[] = {start_text, baseline_text, ratio, k, TRENDS_MIN_COUNT, most};
    const char *sql = streq(window->table, "tag_counts_5m") ? TRENDS_SQL("tag_counts_5m")
                                                            : TRENDS_SQL("tag_counts_1h");
    PGresult *res = db_query(db, sql, 6, params);
    if (!res) return NULL;
    json_t *items = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        //  Three decimals are plenty to rank by and keep the JSON short.
        double score = round(strtod(PQgetvalue(res, row, 2), NULL) * 1000.0) / 1000.0;
        json_array_append_new(items, json_pack("{s:s, s:I, s:f}", "tag", PQgetvalue(res, row, 0),
                                               "count", (json_int_t)search_column_int(res, row, 1),
                                               "score", score));
    }
    PQclear(res);
    return items;
}

json_t *trends_hashtags(call_t *call)
{
    search_t *self = call->state;
    json_t *fields = json_object();
    int limit = 20;
    args_limit(call->args, &limit, fields);
    int index = 1; // 24h
    json_t *window = json_object_get(call->args, "window");
    if (window) {
        index = -1;
        for (int i = 0; i < SEARCH_TREND_WINDOWS && json_is_string(window); i++)
            if (streq(json_string_value(window), s_windows[i].name)) index = i;
        if (index < 0) json_object_set_new(fields, "window", json_string("must be 1h, 24h or 7d"));
    }
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t now = envelope_now_ms();
    search_trends_cache_t *cache = &self->trends[index];
    pthread_mutex_lock(&self->trends_lock);
    bool fresh = cache->items && now - cache->computed_ms < self->trends_ttl_ms;
    pthread_mutex_unlock(&self->trends_lock);
    if (!fresh) {
        //  Computed outside the lock: two threads may both compute, which
        //  costs a query but never blocks a request behind another's.
        json_t *items = s_trends_compute(call->db, &s_windows[index], now);
        if (!items) return search_internal("trends");
        pthread_mutex_lock(&self->trends_lock);
        json_decref(cache->items);
        cache->items = items;
        cache->computed_ms = now;
        pthread_mutex_unlock(&self->trends_lock);
    }
    //  The cached array never leaves the lock: the answer is a copy.
    json_t *page = json_array();
    pthread_mutex_lock(&self->trends_lock);
    for (size_t i = 0; i < json_array_size(cache->items) && i < (size_t)limit; i++)
        json_array_append_new(page, json_deep_copy(json_array_get(cache->items, i)));
    pthread_mutex_unlock(&self->trends_lock);
    return reply_ok(200, json_pack("{s:o}", "items", page));
}
