/*  posts: full-text post search (GET /search/posts) and explore (GET
    /explore).

    Post search matches the query against posts.caption_tsv, a tsvector
    of the lower-cased, accent-free caption in the language-agnostic
    'simple' configuration (GIN index), with websearch_to_tsquery (words,
    "quoted phrases", -excluded words, or), and lists matches newest first
    by id: one query per page, cursor (id, 0). Newest first keeps pages
    stable and lets PostgreSQL either walk the primary key backwards and
    test each post (common words) or read the GIN index and sort (rare
    words), whichever is cheaper.

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

static const char s_posts_search_sql[] =
    "SELECT p.id FROM posts p JOIN users u ON u.id = p.author_id"
    " WHERE p.caption_tsv @@ websearch_to_tsquery('simple'::regconfig, search_norm($1))"
    " AND (NOT $3::boolean OR p.id < $4::bigint)"
    " AND " SEARCH_VISIBLE_SQL("$2::bigint") " ORDER BY p.id DESC LIMIT $5::int";

json_t *search_posts(call_t *call)
{
    json_t *fields = json_object();
    char query[SEARCH_QUERY_MAX * 4 + 1];
    search_page_t page;
    search_text_arg(call->args, "q", SEARCH_QUERY_MAX, 0, query, sizeof query, fields);
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], after[21], wanted[16];
    search_id_text(page.key1, after);
    snprintf(wanted, sizeof wanted, "%d", page.limit + 1);
    const char *params[] = {query, search_id_text(call->viewer_id, viewer),
                            page.has_cursor ? "t" : "f", after, wanted};
    PGresult *res = db_query(call->db, s_posts_search_sql, 5, params);
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
