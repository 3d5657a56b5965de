/*  users: finding accounts (GET /search/users) and suggesting them
    (GET /explore/users). Both pick ids with one ranked query over the
    projections and hydrate the page with identity users.batch plus
    users_decorate().

    User search ranks every match into a score (docs/search.md):

        tier  3 exact (username or display name equals the query)
              2 prefix (username, display name, or a word of it, starts with it)
              1 a typo-tolerant match followed by someone I follow
              0 any other typo-tolerant match
        then how many people I follow follow them, then similarity to the
        query, then followers_count

    packed into one bigint (tier << 40 | mutual << 30 | similarity‰ << 20 |
    followers), so a page is "ORDER BY score DESC, id DESC" and the cursor
    is (score, id).

    Candidates come from capped branches (SEARCH_USERS_BRANCH rows each):
    prefix matches from user_terms (username, display name and each word
    of it, one btree walked in order, so a prefix shared by every account
    still reads only a few hundred rows), and typo-tolerant matches from
    pg_trgm on the GIN indexes of username (similarity) and display name
    (word similarity), for queries of three characters or more. A typo
    match never outranks a prefix match, so the prefix query runs alone
    first and the typo branches (the costly part) run only when prefix
    matches do not fill the page. The caps mean a query lists at most a
    few hundred accounts, the best ones.

    The typo branches search only the candidates of an in-memory trigram
    index (user_index.h): the usernames that reach the similarity
    threshold, computed exactly from trigram counts, and the display names
    that can reach the word similarity threshold. The index also hands
    over, for each candidate, the similarities Postgres would compute
    (pg_trgm's float4 values to the bit: the branch's own and the greatest
    of the three the score uses), so the ranked query evaluates no
    trigram function for them; it keeps what needs the database (the
    prefix branch, blocks, "followed by people I follow", the final
    order) and still orders and cuts each branch, so the answer is the
    one a search over every account gives, without the trigram GIN
    index's thousands of rechecked rows. Postgres computes the
    similarities of the candidates the index cannot score (a display
    name that is not ASCII, text never indexed) and of prefix matches.
    The statement that refreshes the index also normalises the query and
    sets the thresholds. A query that is not ASCII once normalised
    searches every account, as before.

    pg_trgm's thresholds are session settings; they are set before each
    typo search (a reconnected session would otherwise fall back to 0.3,
    too strict for short names: "jonh" is 0.25 similar to "john").

    Blocked users (either way) never appear: the query leaves them out and
    users_decorate() drops them again.
*/
#include "search.h"
#include "args.h"
#include "errors.h"
#include "log.h"
#include "user_index.h"

#include <czmq.h>
#include <string.h>

#define SEARCH_USERS_BRANCH "150"    // candidates per branch
#define SEARCH_USERS_MINE_MAX "1000" // followees counted for "followed by people I follow"
#define SEARCH_USERS_FOF_MAX "200"   // friends of friends suggested before popular accounts
#define SIMILARITY_THRESHOLD "0.25"
#define WORD_SIMILARITY_THRESHOLD "0.5"

//  Runs a ranked query whose rows are (id, score) and answers the page:
//  rows beyond page->limit only say there is more.
static json_t *s_answer_page(call_t *call, PGresult *res, const search_page_t *page)
{
    int rows = PQntuples(res);
    int shown = rows > page->limit ? page->limit : rows;
    int64_t *ids = calloc((size_t)shown + 1, sizeof *ids);
    if (!ids) return search_internal("page ids");
    for (int row = 0; row < shown; row++)
        ids[row] = search_column_int(res, row, 0);
    bool more = rows > page->limit && shown > 0;
    int64_t key1 = more ? search_column_int(res, shown - 1, 1) : 0;
    int64_t key2 = more ? ids[shown - 1] : 0;
    json_t *items = NULL;
    json_t *error = search_hydrate_users(call, ids, (size_t)shown, &items);
    free(ids);
    if (error) return error;
    return reply_ok(200, search_list_body(items, more, key1, key2));
}

static int s_set_thresholds(db_t *db)
{
    PGresult *res = db_query(
        db,
        "SELECT set_config('pg_trgm.similarity_threshold', '" SIMILARITY_THRESHOLD "', false),"
        " set_config('pg_trgm.word_similarity_threshold', '" WORD_SIMILARITY_THRESHOLD "', false)",
        0, NULL);
    int rc = res && PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    PQclear(res);
    return rc;
}

//  $1 query, $2 viewer, $3 has cursor, $4 $5 cursor keys, $6 rows wanted,
//  $7 whether to look for typo-tolerant matches too. n is the normalised
//  query; [n, hi) is the prefix range in byte order (hi is n followed by
//  the highest code point), which user_terms' btree walks in index order.
//  cand.prefix says a candidate came from the prefix branch (tier 2 at
//  least), whatever else it matched.
//  Each typo branch keeps its SEARCH_USERS_BRANCH closest matches, ties
//  at the cut broken by id, so the same rows are kept whichever rows the
//  plan reads first (with or without the index's candidates).
//  The statement is written once for both paths: TYPO (a CTE or ""),
//  USER_BRANCH and NAME_BRANCH (the typo branches, each a query of
//  (id, false)), SIMILARITY (the similarity the score is made of, over u
//  and q) and JOIN (joined to the scored rows).
#define S_USERS_SEARCH_SQL(TYPO, USER_BRANCH, NAME_BRANCH, SIMILARITY, JOIN)                       \
    "WITH q AS MATERIALIZED (SELECT search_norm($1) AS n,"                                         \
    "  search_norm($1) || chr(1114111) AS hi,"                                                     \
    "  $7::boolean AND char_length(search_norm($1)) >= 3 AS fuzzy)," TYPO " found AS ("            \
    "  (SELECT t.user_id AS id, true AS prefix FROM user_terms t"                                  \
    "   WHERE t.term >= (SELECT n FROM q) AND t.term < (SELECT hi FROM q)"                         \
    "   ORDER BY t.term LIMIT " SEARCH_USERS_BRANCH ")"                                            \
    "  UNION ALL (" USER_BRANCH ")"                                                                \
    "  UNION ALL (" NAME_BRANCH ")),"                                                              \
    " cand AS (SELECT id, bool_or(prefix) AS prefix FROM found GROUP BY id),"                      \
    " mine AS (SELECT followee_id AS id FROM follows WHERE follower_id = $2::bigint"               \
    "  LIMIT " SEARCH_USERS_MINE_MAX "),"                                                          \
    " mutual AS (SELECT f.followee_id AS id, count(*) AS n FROM follows f"                         \
    "  WHERE f.followee_id IN (SELECT id FROM cand) AND f.follower_id IN (SELECT id FROM mine)"    \
    "  GROUP BY f.followee_id),"                                                                   \
    " scored AS (SELECT u.id,"                                                                     \
    "  ((CASE WHEN u.username = q.n OR u.name_norm = q.n THEN 3"                                   \
    "         WHEN cand.prefix THEN 2"                                                             \
    "         WHEN coalesce(m.n, 0) > 0 THEN 1 ELSE 0 END)::bigint << 40)"                         \
    "  + (least(coalesce(m.n, 0), 1023)::bigint << 30)"                                            \
    "  + ((1000 * " SIMILARITY ")::bigint << 20)"                                                  \
    "  + least(greatest(u.followers_count, 0), 1048575)::bigint AS score"                          \
    "  FROM cand JOIN users u ON u.id = cand.id CROSS JOIN q"                                      \
    "  LEFT JOIN mutual m ON m.id = u.id" JOIN "  WHERE NOT EXISTS (SELECT 1 FROM blocks b"        \
    "   WHERE (b.blocker_id = $2::bigint AND b.blocked_id = u.id)"                                 \
    "   OR (b.blocker_id = u.id AND b.blocked_id = $2::bigint)))"                                  \
    " SELECT id, score FROM scored"                                                                \
    " WHERE NOT $3::boolean OR (score, id) < ($4::bigint, $5::bigint)"                             \
    " ORDER BY score DESC, id DESC LIMIT $6::int"

#define S_SIMILARITY_SQL                                                                           \
    "greatest(similarity(u.username, q.n), similarity(u.name_norm, q.n),"                          \
    " word_similarity(q.n, u.name_norm))"

//  Every account: pg_trgm on the GIN indexes of username and name_norm.
static const char s_users_search_sql[] =
    S_USERS_SEARCH_SQL("",
                       "SELECT u.id, false FROM users u WHERE (SELECT fuzzy FROM q)"
                       "  AND u.username % (SELECT n FROM q)"
                       "  ORDER BY similarity(u.username, (SELECT n FROM q)) DESC, u.id DESC"
                       "  LIMIT " SEARCH_USERS_BRANCH,
                       "SELECT u.id, false FROM users u WHERE (SELECT fuzzy FROM q)"
                       "  AND (SELECT n FROM q) <% u.name_norm"
                       "  ORDER BY word_similarity((SELECT n FROM q), u.name_norm) DESC, u.id DESC"
                       "  LIMIT " SEARCH_USERS_BRANCH,
                       S_SIMILARITY_SQL, "");

//  The same over the in-memory index's candidates (uindex_found_t), with
//  the similarities it computed, so Postgres evaluates no trigram function
//  for them: typo has one row per scored candidate, $8 ids, $9 the
//  username branch's similarity (NULL: not a candidate of that branch),
//  $10 the display name branch's word similarity (likewise), $11 the
//  score's similarity (NULL: compute it here); an id found by both
//  branches comes twice, with the same $11. $12 and $13 are the
//  candidates the index could not score (not indexed, or a display name
//  that is not ASCII), which Postgres checks as the plain statement does;
//  "u.username || ''" (the same text) keeps the planner from reading the
//  GIN index (thousands of rows) instead of fetching them by primary key.
//  Each branch still orders and cuts its rows, so scored and unscored
//  candidates are kept as the plain statement keeps them.
static const char s_users_candidates_sql[] = S_USERS_SEARCH_SQL(
    " typo AS (SELECT id, max(usim) AS usim, max(wsim) AS wsim, max(best) AS best"
    "  FROM unnest($8::bigint[], $9::float4[], $10::float4[], $11::float4[])"
    "  AS t(id, usim, wsim, best) GROUP BY id),",
    "SELECT id, false FROM (SELECT t.id, t.usim AS s FROM typo t WHERE t.usim IS NOT NULL"
    "  UNION ALL SELECT u.id, similarity(u.username, (SELECT n FROM q)) FROM users u"
    "  WHERE u.id = ANY ($12::bigint[]) AND (u.username || '') % (SELECT n FROM q)) b"
    "  WHERE (SELECT fuzzy FROM q) ORDER BY s DESC, id DESC LIMIT " SEARCH_USERS_BRANCH,
    "SELECT id, false FROM (SELECT t.id, t.wsim AS s FROM typo t WHERE t.wsim IS NOT NULL"
    "  UNION ALL SELECT u.id, word_similarity((SELECT n FROM q), u.name_norm) FROM users u"
    "  WHERE u.id = ANY ($13::bigint[]) AND (SELECT n FROM q) <% (u.name_norm || '')) b"
    "  WHERE (SELECT fuzzy FROM q) ORDER BY s DESC, id DESC LIMIT " SEARCH_USERS_BRANCH,
    "coalesce(t.best, " S_SIMILARITY_SQL ")", " LEFT JOIN typo t ON t.id = u.id");

//  pg_trgm's trigrams of a non-ASCII column as uindex_pg_trigrams() reads
//  them (each hex-encoded, joined by commas), else NULL.
#define S_PG_TRIGRAMS(column)                                                                      \
    "CASE WHEN octet_length(" column ") <> char_length(" column ") THEN coalesce((SELECT"          \
    " string_agg(encode(convert_to(t, 'UTF8'), 'hex'), ',') FROM unnest(show_trgm(" column         \
    ")) t), '') END"

#define S_USERNAME_TRIGRAMS S_PG_TRIGRAMS("u.username")
#define S_NAME_TRIGRAMS S_PG_TRIGRAMS("u.name_norm")

//  The index's refresh (user_index.h), which also prepares the typo
//  search, in one round trip: $1 the index's horizon, $2 the id after
//  which to read (a large change comes in pages of UINDEX_PAGE), $3 the
//  query. Columns: the snapshot's xmin; a changed account (id, username,
//  name_norm, then pg_trgm's trigrams of a non-ASCII username and
//  name_norm; a NULL username for a deleted one) or NULLs; the normalised
//  query (column 6); the pg_trgm thresholds set for this session.
#define S_REFRESH_SQL(CHANGED)                                                                     \
    "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x,"           \
    "  search_norm($3) AS n,"                                                                      \
    "  set_config('pg_trgm.similarity_threshold', '" SIMILARITY_THRESHOLD "', false) AS s,"        \
    "  set_config('pg_trgm.word_similarity_threshold', '" WORD_SIMILARITY_THRESHOLD "', false)"    \
    "  AS w)," CHANGED " c AS (SELECT ch.id, u.username, u.name_norm, " S_USERNAME_TRIGRAMS        \
    ", " S_NAME_TRIGRAMS                                                                           \
    "  FROM changed ch LEFT JOIN users u ON u.id = ch.id WHERE ch.id > $2::bigint"                 \
    "  ORDER BY ch.id LIMIT " UINDEX_PAGE_TEXT ")"                                                 \
    " SELECT h.x, c.*, h.n, h.s, h.w FROM h LEFT JOIN c ON true"

//  The accounts changed at or after the horizon, found first
//  (changed_xid's btree: a LIMIT next to that filter would tempt the
//  planner into walking the primary key through every account).
static const char s_users_refresh_sql[] =
    S_REFRESH_SQL(" changed AS MATERIALIZED (SELECT id FROM users WHERE changed_xid >= $1::xid8"
                  "  UNION ALL SELECT id FROM deleted_users WHERE changed_xid >= $1::xid8),");

//  The first load (horizon 0): every account, in primary key order.
static const char s_users_load_sql[] =
    S_REFRESH_SQL(" changed AS (SELECT id FROM users WHERE $1::xid8 IS NOT NULL),");

//  The two statements uindex_refresh() runs.
static const char *const s_index_sql[] = {s_users_load_sql, s_users_refresh_sql};

static user_index_t s_index; // one per process, shared by the worker threads
static pthread_once_t s_index_once = PTHREAD_ONCE_INIT;
static bool s_index_ready;

static void s_index_init(void)
{
    s_index_ready = uindex_init(&s_index) == 0;
}

//  service_def_t.on_start (main.c): loads the index before the workers
//  start, so that the first typo search does not wait for 100,000
//  accounts (about a second). A failure is not fatal: the first typo
//  search loads it then.
int search_users_index_start(db_t *db, void *state)
{
    pthread_once(&s_index_once, s_index_init);
    char norm[8];
    const char *params[] = {NULL, NULL, ""};
    if (s_index_ready &&
        uindex_refresh(&s_index, db, s_index_sql, 3, params, 6, norm, sizeof norm) < 0)
        log_warn("user index: not loaded at start; the first typo search loads it");
    return 0;
}

//  The parameters $8..$13 of s_users_candidates_sql, as array literals:
//  four parallel arrays, one element per scored candidate of either
//  branch, then the ids of each branch's unscored candidates.
enum { S_TYPO_IDS, S_TYPO_USIM, S_TYPO_WSIM, S_TYPO_BEST, S_TYPO_USERS, S_TYPO_NAMES, S_TYPO_N };
typedef struct {
    char *text[S_TYPO_N];
    size_t used[S_TYPO_N];
} s_typo_arrays_t;

static void s_typo_arrays_free(s_typo_arrays_t *arrays)
{
    for (int at = 0; at < S_TYPO_N; at++)
        free(arrays->text[at]);
    memset(arrays, 0, sizeof *arrays);
}

//  Appends one branch's candidates (ids, scores, best; count) to arrays:
//  the scored ones to the four parallel arrays (their score as usim or
//  wsim, as username says, the other NULL), the others' ids to the
//  branch's unscored array.
static void s_typo_append(s_typo_arrays_t *arrays, const int64_t *ids, const float *scores,
                          const float *best, size_t count, bool username)
{
    int unscored = username ? S_TYPO_USERS : S_TYPO_NAMES;
    for (size_t at = 0; at < count; at++) {
        int array = scores[at] < 0 ? unscored : S_TYPO_IDS;
        bool first = arrays->used[array] == 1;
        arrays->used[array] += (size_t)sprintf(arrays->text[array] + arrays->used[array],
                                               "%s%" PRId64, first ? "" : ",", ids[at]);
        if (array != S_TYPO_IDS) continue;
        size_t *used = arrays->used;
        uindex_float_append(arrays->text[S_TYPO_USIM], &used[S_TYPO_USIM], first,
                            username ? scores[at] : -1.0f);
        uindex_float_append(arrays->text[S_TYPO_WSIM], &used[S_TYPO_WSIM], first,
                            username ? -1.0f : scores[at]);
        uindex_float_append(arrays->text[S_TYPO_BEST], &used[S_TYPO_BEST], first, best[at]);
    }
}

//  found as the candidate statement's array parameters. 0, or -1 out of
//  memory (arrays then freed).
static int s_typo_arrays(const uindex_found_t *found, s_typo_arrays_t *arrays)
{
    memset(arrays, 0, sizeof *arrays);
    size_t room = (found->user_count + found->name_count) * 22 + 3;
    for (int at = 0; at < S_TYPO_N; at++) {
        if (!(arrays->text[at] = malloc(room))) {
            s_typo_arrays_free(arrays);
            return -1;
        }
        strcpy(arrays->text[at], "{");
        arrays->used[at] = 1;
    }
    s_typo_append(arrays, found->user_ids, found->user_scores, found->user_best, found->user_count,
                  true);
    s_typo_append(arrays, found->name_ids, found->name_scores, found->name_best, found->name_count,
                  false);
    for (int at = 0; at < S_TYPO_N; at++)
        strcpy(arrays->text[at] + arrays->used[at], "}");
    return 0;
}

//  The typo search (params: $1..$7 of s_users_search_sql, $7 true): the
//  index's candidates when it can give them, else every account.
static PGresult *s_typo_search(call_t *call, const char **params)
{
    pthread_once(&s_index_once, s_index_init);
    int64_t started = zclock_usecs();
    char norm[SEARCH_QUERY_MAX * 8 + 1]; // the query as search_norm() makes it
    const char *refresh_params[] = {NULL, NULL, params[0]};
    int usable = s_index_ready ? uindex_refresh(&s_index, call->db, s_index_sql, 3, refresh_params,
                                                6, norm, sizeof norm)
                               : -2;
    if (usable == -1) return NULL;
    uindex_found_t found = {0};
    //  No index (set the thresholds here), a disabled one (the refresh
    //  statement set them) or a query that is not ASCII once normalised:
    //  search every account.
    int64_t refreshed = zclock_usecs();
    if (usable != 1 || !*norm ||
        uindex_candidates(&s_index, norm, strtod(SIMILARITY_THRESHOLD, NULL),
                          strtod(WORD_SIMILARITY_THRESHOLD, NULL),
                          (size_t)atoi(SEARCH_USERS_BRANCH), &found) != 0) {
        if (usable == -2 && s_set_thresholds(call->db) != 0) return NULL;
        return db_query(call->db, s_users_search_sql, 7, params);
    }
    s_typo_arrays_t arrays;
    int64_t chosen = zclock_usecs();
    PGresult *res = NULL;
    if (s_typo_arrays(&found, &arrays) == 0) {
        const char *all[] = {params[0],      params[1],      params[2],      params[3],
                             params[4],      params[5],      params[6],      arrays.text[0],
                             arrays.text[1], arrays.text[2], arrays.text[3], arrays.text[4],
                             arrays.text[5]};
        res = db_query(call->db, s_users_candidates_sql, 13, all);
    }
    log_debug("user search: matches %zu usernames, %zu names; candidates %zu usernames, %zu"
              " names; ms refresh %.2f candidates %.2f query %.2f",
              found.user_matches, found.name_matches, found.user_count, found.name_count,
              (double)(refreshed - started) / 1000.0, (double)(chosen - refreshed) / 1000.0,
              (double)(zclock_usecs() - chosen) / 1000.0);
    s_typo_arrays_free(&arrays);
    uindex_found_free(&found);
    return res;
}

json_t *search_users(call_t *call)
{
    json_t *fields = json_object();
    char query[SEARCH_QUERY_MAX * 4 + 1];
    search_page_t page;
    search_text_arg(call->args, "q", SEARCH_QUERY_MAX, '@', query, sizeof query, fields);
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], key1[21], key2[21], wanted[16];
    snprintf(key1, sizeof key1, "%" PRId64, page.key1);
    snprintf(key2, sizeof key2, "%" PRId64, page.key2);
    snprintf(wanted, sizeof wanted, "%d", page.limit + 1);
    const char *params[] = {query,
                            search_id_text(call->viewer_id, viewer),
                            page.has_cursor ? "t" : "f",
                            key1,
                            key2,
                            wanted,
                            "f"};
    //  Prefix matches first: they rank above every typo match, so when they
    //  fill the page the typo search (the costly part) is not needed.
    PGresult *res = db_query(call->db, s_users_search_sql, 7, params);
    if (res && PQntuples(res) <= page.limit && utf8_codepoints(query, strlen(query)) >= 3) {
        PQclear(res);
        params[6] = "t";
        res = s_typo_search(call, params);
    }
    if (!res) return search_internal("user search");
    json_t *reply = s_answer_page(call, res, &page);
    PQclear(res);
    return reply;
}

//  Suggested accounts. $1 viewer, $2 has cursor, $3 $4 cursor keys, $5 rows
//  wanted. Friends of friends (the SEARCH_USERS_FOF_MAX followed by most
//  of the people I follow: a fixed set, so pages agree) score (mutual <<
//  32) + followers, so they come first, by how many people I follow follow
//  them; then popular accounts by followers_count (the users_popular
//  index, walked from the cursor). Myself, accounts I follow, private
//  accounts (API.md "Explore") and blocked accounts never appear.
static const char s_users_explore_sql[] =
    "WITH mine AS (SELECT followee_id AS id FROM follows WHERE follower_id = $1::bigint"
    "  LIMIT " SEARCH_USERS_MINE_MAX "),"
    " fof AS (SELECT f.followee_id AS id, count(*) AS n FROM follows f"
    "  WHERE f.follower_id IN (SELECT id FROM mine) AND f.followee_id <> $1::bigint"
    "  AND f.followee_id NOT IN (SELECT id FROM mine)"
    "  GROUP BY f.followee_id ORDER BY n DESC, f.followee_id DESC"
    "  LIMIT " SEARCH_USERS_FOF_MAX "),"
    " cand AS ("
    "  SELECT u.id, (fof.n << 32) + least(greatest(u.followers_count, 0), 4294967295) AS score"
    "  FROM fof JOIN users u ON u.id = fof.id WHERE NOT u.is_private"
    "  UNION ALL"
    "  (SELECT u.id, greatest(u.followers_count, 0)::bigint FROM users u"
    "   WHERE (NOT $2::boolean OR (u.followers_count, u.id) < ($3::bigint, $4::bigint))"
    "   AND u.id <> $1::bigint AND u.id NOT IN (SELECT id FROM mine)"
    "   AND u.id NOT IN (SELECT id FROM fof) AND NOT u.is_private"
    "   AND NOT EXISTS (SELECT 1 FROM blocks b"
    "    WHERE (b.blocker_id = $1::bigint AND b.blocked_id = u.id)"
    "    OR (b.blocker_id = u.id AND b.blocked_id = $1::bigint))"
    "   ORDER BY u.followers_count DESC, u.id DESC LIMIT $5::int))"
    " SELECT c.id, c.score FROM cand c"
    " WHERE c.id <> $1::bigint AND c.id NOT IN (SELECT id FROM mine)"
    " AND NOT EXISTS (SELECT 1 FROM blocks b"
    "  WHERE (b.blocker_id = $1::bigint AND b.blocked_id = c.id)"
    "  OR (b.blocker_id = c.id AND b.blocked_id = $1::bigint))"
    " AND (NOT $2::boolean OR (c.score, c.id) < ($3::bigint, $4::bigint))"
    " ORDER BY c.score DESC, c.id DESC LIMIT $5::int";

json_t *explore_users(call_t *call)
{
    json_t *fields = json_object();
    search_page_t page;
    search_page_args(call->args, &page, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    char viewer[21], key1[21], key2[21], wanted[16];
    snprintf(key1, sizeof key1, "%" PRId64, page.key1);
    snprintf(key2, sizeof key2, "%" PRId64, page.key2);
    snprintf(wanted, sizeof wanted, "%d", page.limit + 1);
    const char *params[] = {search_id_text(call->viewer_id, viewer), page.has_cursor ? "t" : "f",
                            key1, key2, wanted};
    PGresult *res = db_query(call->db, s_users_explore_sql, 5, params);
    if (!res) return search_internal("suggested accounts");
    json_t *reply = s_answer_page(call, res, &page);
    PQclear(res);
    return reply;
}
