/*  posts: full-text post search (GET /search/posts) and explore (GET
    /explore).

    Post search matches the query against posts.caption_tsv, a tsvector
    of the lower-cased, accent-free caption in the language-agnostic
    'simple' configuration (GIN index), with websearch_to_tsquery (words,
    "quoted phrases", -excluded words, or), and lists matches newest first
    by id: one query per page, cursor (id, 0).

    Newest first among matches can be found two ways: walk the primary key
    backwards testing each post (cheap when the words are common: "sunset"
    finds a page in 50 rows) or read the GIN index, fetch every match and
    sort (cheap when they are rare). Left to the planner, the choice
    rests on an estimate of how common the words are, which is often wrong
    for two words (it assumes them independent) and unknown in a cached
    generic plan: "style björk" (409 matches) walked 52,000 rows. So the
    query does both, each bounded: it first tests the newest
    SEARCH_POSTS_RECENT posts below the cursor one by one; only when they
    hold fewer matches than the page needs, it reads the index for the
    older ones (then the words are rare: fewer than a page per
    SEARCH_POSTS_RECENT posts, a few thousand matches at most in
    1,000,000 posts when they are spread over time). The second branch
    compares `id + 0` so that neither the primary key's order nor its
    range can be used for it (a bitmap of a million ids costs more than
    the matches), and sorts the matches before it joins users for
    visibility, so only the rows of the page are joined. Words common long
    ago and rare lately (a season's tag) are the slow case: every old
    match is fetched and sorted. The branches are read in order (UNION ALL
    under LIMIT, no parallel plans: schemas/search/003_scale.sql), so the
    rows come newest first and the second branch runs only when needed.

    Visibility is applied in SQL from the projections (public author, or
    the viewer itself, or an approved follower; no block either way), and
    again by media posts.batch when the page is hydrated.

    Explore lists recent public posts (SEARCH_EXPLORE_DAYS) by accounts the
    viewer does not follow, not the viewer's own, not private, not blocked,
    ranked by posts.hot (docs/search.md: engagement with a time decay,
    stored so that it is indexed and does not move with the clock), at most
    SEARCH_EXPLORE_PER_AUTHOR posts per author per page. The query reads a
    few times the page size in hot order; this file keeps the first posts
    of each author until the page is full. The cursor is (hot, id) of the
    last post shown, so an author's posts past their cap that rank below
    it open the next page; those that rank above it are skipped (explore
    is for discovery: a fourth post of one author is not missed). When the
    rows read run out before the page is full (one author dominating), the
    cursor is the last row read and the next page goes on from there.
*/
#include "search.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

#define SEARCH_EXPLORE_DAYS 7
#define SEARCH_EXPLORE_PER_AUTHOR 3
#define SEARCH_EXPLORE_READ_FACTOR 4 // rows read per post shown
//  Newest posts below the cursor tested one by one before the index is
//  read. About sqrt(page × posts) balances the two branches' worst cases.
#define SEARCH_POSTS_RECENT "4000"

//  $1 query, $2 viewer, $3 ids below this (the cursor, or the largest
//  bigint), $4 rows wanted. The query is parsed once (q); both branches
//  then plan the same whatever the words, so a cached plan stays right.
#define POSTS_VISIBLE SEARCH_VISIBLE_SQL("$2::bigint")
static const char s_posts_search_sql[] =
    "WITH q AS MATERIALIZED (SELECT websearch_to_tsquery('simple'::regconfig, search_norm($1))"
    "  AS tsq)"
    " (SELECT p.id FROM (SELECT id, author_id, caption_tsv FROM posts WHERE id < $3::bigint"
    "   ORDER BY id DESC LIMIT " SEARCH_POSTS_RECENT ") p JOIN users u ON u.id = p.author_id"
    "  WHERE p.caption_tsv @@ (SELECT tsq FROM q) AND " POSTS_VISIBLE
    "  ORDER BY p.id DESC LIMIT $4::int)"
    " UNION ALL"
    " (SELECT p.id FROM (SELECT id, author_id FROM posts"
    "   WHERE caption_tsv @@ (SELECT tsq FROM q)"
    "   AND id + 0 < (SELECT coalesce(min(id), 0) FROM (SELECT id FROM posts"
    "    WHERE id < $3::bigint ORDER BY id DESC LIMIT " SEARCH_POSTS_RECENT ") r)"
    "   ORDER BY id DESC) p JOIN users u ON u.id = p.author_id"
    "  WHERE " POSTS_VISIBLE " ORDER BY p.id DESC LIMIT $4::int)"
    " LIMIT $4::int";

json_t *search_posts(call_t *call)
{
    json_t *fields = json_object();
    char query[SEARCH_QUERY_MAX * 4 + 1];
    search_page_t page;
    search_text_arg(call->args, "q", SEARCH_QUERY_MAX, 0, query, sizeof query, fields);
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], below[21], wanted[16];
    snprintf(below, sizeof below, "%" PRId64, page.has_cursor ? page.key1 : INT64_MAX);
    snprintf(wanted, sizeof wanted, "%d", page.limit + 1);
    const char *params[] = {query, search_id_text(call->viewer_id, viewer), below, wanted};
    PGresult *res = db_query(call->db, s_posts_search_sql, 4, params);
    if (!res) return search_internal("post search");
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

//  $1 viewer, $2 oldest id considered, $3 has cursor, $4 $5 cursor (hot,
//  id), $6 rows to read. Rows: id, author_id, hot.
static const char s_posts_explore_sql[] =
    "SELECT p.id, p.author_id, p.hot FROM posts p JOIN users u ON u.id = p.author_id"
    " WHERE p.id >= $2::bigint AND NOT u.is_private AND u.id <> $1::bigint"
    " AND (NOT $3::boolean OR (p.hot, p.id) < ($4::bigint, $5::bigint))"
    " AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1::bigint"
    "  AND f.followee_id = u.id)"
    " AND NOT EXISTS (SELECT 1 FROM blocks b"
    "  WHERE (b.blocker_id = $1::bigint AND b.blocked_id = u.id)"
    "  OR (b.blocker_id = u.id AND b.blocked_id = $1::bigint))"
    " ORDER BY p.hot DESC, p.id DESC LIMIT $6::int";

json_t *explore_posts(call_t *call)
{
    json_t *fields = json_object();
    search_page_t page;
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t now = envelope_now_ms();
    char viewer[21], oldest[21], key1[21], key2[21], wanted[16];
    search_id_text(ids_floor_for_time(now - (int64_t)SEARCH_EXPLORE_DAYS * 86400000), oldest);
    snprintf(key1, sizeof key1, "%" PRId64, page.key1);
    snprintf(key2, sizeof key2, "%" PRId64, page.key2);
    int read = page.limit * SEARCH_EXPLORE_READ_FACTOR + 20;
    snprintf(wanted, sizeof wanted, "%d", read);
    const char *params[] = {search_id_text(call->viewer_id, viewer),
                            oldest,
                            page.has_cursor ? "t" : "f",
                            key1,
                            key2,
                            wanted};
    PGresult *res = db_query(call->db, s_posts_explore_sql, 6, params);
    if (!res) return search_internal("explore");

    //  First posts of each author, in hot order, until the page is full.
    int rows = PQntuples(res);
    int64_t ids[SEARCH_POSTS_BATCH_MAX];
    int shown = 0, last_row = -1;
    zhash_t *per_author = zhash_new();
    for (int row = 0; row < rows && shown < page.limit; row++) {
        const char *author = PQgetvalue(res, row, 1);
        intptr_t count = (intptr_t)zhash_lookup(per_author, author);
        if (count >= SEARCH_EXPLORE_PER_AUTHOR) continue;
        zhash_update(per_author, author, (void *)(count + 1));
        ids[shown++] = search_column_int(res, row, 0);
        last_row = row;
    }
    zhash_destroy(&per_author);
    //  More when rows remain after the last post shown (a full page, or
    //  posts of authors at their cap: the next page starts with them), or
    //  when the read was cut short by its limit (then the cursor goes past
    //  what was read). Each page shows at least the first row after its
    //  cursor, so paging always moves on.
    bool more = false;
    int cursor_row = last_row;
    if (last_row >= 0 && last_row + 1 < rows)
        more = true;
    else if (rows > 0 && rows == read) {
        more = true;
        cursor_row = rows - 1;
    }
    int64_t cursor_hot = more ? search_column_int(res, cursor_row, 2) : 0;
    int64_t cursor_id = more ? search_column_int(res, cursor_row, 0) : 0;
    PQclear(res);

    json_t *items = NULL;
    json_t *error = search_hydrate_posts(call, ids, (size_t)shown, &items);
    if (error) return error;
    return reply_ok(200, search_list_body(items, more, cursor_hot, cursor_id));
}
