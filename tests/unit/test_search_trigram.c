/*  test_search_trigram: user search's in-memory trigram index
    (services/search/user_index.h) against PostgreSQL's pg_trgm.

    - trigram extraction equals show_trgm() on names of every shape,
      non-ASCII ones included (read back from show_trgm, as the refresh
      statement sends them);
    - similarity() and word_similarity() computed from the index equal
      pg_trgm's, float for float;
    - the candidates of both typo branches hold every account pg_trgm
      matches, on a few hundred seeded accounts;
    - the similarities handed to the ranked query with the candidates
      (usim, wsim, and the score's greatest of three), as Postgres reads
      the float4[] literals back, equal pg_trgm's bit for bit;
    - through search.users: an account created, renamed or deleted after
      the index was built is found (or not) by a typo right after the
      projection has it, and pages equal those of the plain SQL path.

    The service's files are compiled in (as in test_search.c), so the
    tests drive the code the service runs, with a fake identity that
    answers users.batch from the projection.

    Replay mode (a measurement, not part of make test): with
    SEARCH_TRIGRAM_REPLAY=FILE (search_bench --list output) and
    TEST_DATABASE_URL naming a seeded database, the user queries of FILE
    run once through the index and once through the plain SQL path, in
    the schema SEARCH_TRIGRAM_SCHEMA (default "search"); it prints how many
    pages differ and both paths' latencies, and fails when a page differs.

    The server is TEST_DATABASE_URL when set, else a private one started
    with scripts/pg.sh on the first free port of 17960..17969; the schema
    (test_search_trigram_<pid>_<n>) is migrated from schemas/search/ and
    dropped at the end.
*/
#include "db.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "service.h"
#include "unit_pg.h"

#include <czmq.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

//  Small pages, so that loading the test's few hundred accounts reads
//  several (user_index.h).
#define UINDEX_PAGE 128
#define UINDEX_PAGE_TEXT "128"

//  The service under test (every file but main.c).
#include "../../services/search/hashtags.c"
#include "../../services/search/posts.c"
#include "../../services/search/projections.c"
#include "../../services/search/search.c"
#include "../../services/search/seed.c"
#include "../../services/search/users.c"

#define PORT_FIRST 17960
#define PORT_LAST 17969

static unit_pg_t *s_pg; // the server, and our schema unless replaying
static db_t *s_db;
static search_t s_state;
static const service_def_t *s_def;

//  identity users.batch from the projection, in one query.
static json_t *s_fake_rpc(call_t *call, const char *service, const char *method, const json_t *args)
{
    assert_string_equal(method, "users.batch");
    char *ids = json_dumps(json_object_get(args, "ids"), JSON_COMPACT);
    const char *params[] = {ids};
    PGresult *res =
        db_query(call->db,
                 "SELECT u.id::text, u.username FROM jsonb_array_elements_text($1::jsonb)"
                 " WITH ORDINALITY a(id, n) JOIN users u ON u.id = a.id::bigint"
                 " ORDER BY a.n",
                 1, params);
    free(ids);
    assert_non_null(res);
    json_t *users = json_array();
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(users, json_pack("{s:s, s:s}", "id", PQgetvalue(res, row, 0),
                                               "username", PQgetvalue(res, row, 1)));
    PQclear(res);
    return reply_ok(200, json_pack("{s:o}", "users", users));
}

//  ---- fixture ---------------------------------------------------------------

//  Connects to the server in a fresh migrated schema, or, when replaying,
//  in the seeded schema SEARCH_TRIGRAM_SCHEMA ("search") as it is.
static int s_connect(bool replay)
{
    s_pg = unit_pg_new("test_search_trigram", "schemas/search/001_init.sql", PORT_FIRST, PORT_LAST);
    if (!s_pg) return -1;
    if (replay) {
        const char *schema = getenv("SEARCH_TRIGRAM_SCHEMA");
        s_db = db_new(unit_pg_url(s_pg), schema && *schema ? schema : "search");
    } else {
        s_db = unit_pg_schema(s_pg, "search", NULL);
    }
    return s_db ? 0 : -1;
}

static int s_group_setup(void **state)
{
    log_init("test_search_trigram");
    bool replay = getenv("SEARCH_TRIGRAM_REPLAY") != NULL;
    if (s_connect(replay) != 0) return -1;
    if (search_init(&s_state, 0, s_fake_rpc) != 0) return -1;
    s_def = search_service_def(&s_state);
    return 0;
}

static int s_group_teardown(void **state)
{
    db_destroy(&s_db);
    search_destroy(&s_state);
    unit_pg_destroy(&s_pg);
    return 0;
}

//  ---- helpers ---------------------------------------------------------------

//  One value of a one-row query with one text parameter (static buffer).
static const char *s_value(const char *sql, const char *param)
{
    static char buf[8192];
    const char *params[] = {param};
    PGresult *res = db_query(s_db, sql, param ? 1 : 0, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    snprintf(buf, sizeof buf, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return buf;
}

//  The trigram codes of text as show_trgm makes them, through the
//  refresh statement's encoding; returns the count of codes, *total the
//  number of trigrams.
static int s_pg_codes(const char *text, uint32_t *codes, int *total)
{
    const char *list = s_value("SELECT coalesce((SELECT string_agg(encode(convert_to(t, 'UTF8'),"
                               " 'hex'), ',') FROM unnest(show_trgm($1)) t), '')",
                               text);
    return uindex_pg_trigrams(list, codes, total);
}

static void s_event(const char *topic, json_t *payload)
{
    const events_route_t *route = NULL;
    for (const events_route_t *entry = search_consumes; entry->topic; entry++)
        if (streq(entry->topic, topic)) route = entry;
    assert_non_null(route);
    static int64_t seq = 0;
    event_t event = {.producer = "identity",
                     .seq = ++seq,
                     .topic = strchr(topic, '.') + 1,
                     .request_id = "",
                     .created_ms = envelope_now_ms(),
                     .payload = payload};
    assert_int_equal(db_begin(s_db), 0);
    assert_int_equal(route->handler(s_db, &event, &s_state), 0);
    assert_int_equal(db_commit(s_db), 0);
    json_decref(payload);
}

static void s_user(int64_t id, const char *username, const char *display_name)
{
    char text[21];
    ids_format(id, text, sizeof text);
    s_event("identity.user.updated",
            json_pack("{s:s, s:s, s:s, s:b}", "id", text, "username", username, "display_name",
                      display_name, "is_private", 0));
}

//  search.users for q as viewer: usernames joined, and the next cursor.
static char *s_search(const char *q, int64_t viewer)
{
    json_t *args = json_pack("{s:s}", "q", q);
    envelope_request_t request = {
        .v = 1, .viewer_id = viewer, .deadline_ms = envelope_now_ms() + 30000, .args = args};
    snprintf(request.method, sizeof request.method, "search.users");
    call_t call = {
        .request = &request, .args = args, .viewer_id = viewer, .db = s_db, .state = &s_state};
    json_t *reply = service_dispatch(s_def, &call);
    json_decref(args);
    char *text = NULL;
    if (reply_status(reply) == 200) {
        json_t *body = reply_body(reply);
        json_t *names = json_array();
        size_t index;
        json_t *item;
        json_array_foreach(json_object_get(body, "items"), index, item)
        {
            json_array_append(names, json_object_get(item, "username"));
        }
        json_array_append(names, json_object_get(body, "next_cursor"));
        text = json_dumps(names, JSON_COMPACT);
        json_decref(names);
    } else
        text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    return text;
}

static bool s_found(const char *page, const char *username)
{
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", username);
    return strstr(page, quoted) != NULL;
}

//  ---- tests -----------------------------------------------------------------

static const char *const s_names[] = {
    "john",
    "Jonh",
    "mattgew",
    "stars_jeremy76",
    "mei.esposito",
    "Olga Oliveira",
    "a",
    "ab",
    "x y z",
    "__init__",
    "42",
    "o'brien-smith",
    "UPPER lower MiXeD",
    "  spaced   out ",
    "tab\there",
    "Zoë Kravitz",
    "keith_niño",
    "Björk Guðmundsdóttir",
    "helen_smörgåsbord",
    "日本語 ab",
    "€uro",
    "José María",
    "ça va",
    "ß",
    "",
};

static void test_trigrams_equal_show_trgm(void **state)
{
    for (size_t index = 0; index < sizeof s_names / sizeof *s_names; index++) {
        const char *name = s_names[index];
        uint32_t mine[UINDEX_TRGM_MAX], theirs[UINDEX_TRGM_MAX];
        int total = 0;
        int count = s_pg_codes(name, theirs, &total);
        assert_true(count >= 0);
        int length = uindex_trigrams(name, strlen(name), mine);
        bool ascii = true;
        for (const char *p = name; *p; p++)
            if ((unsigned char)*p >= 0x80) ascii = false;
        if (!ascii) {
            //  Not computed here: read from show_trgm, whose count is exact.
            assert_int_equal(length, -1);
            assert_int_equal(total, atoi(s_value("SELECT cardinality(show_trgm($1))", name)));
            continue;
        }
        assert_int_equal(length, count);
        assert_int_equal(total, count);
        for (int at = 0; at < length; at++)
            assert_int_equal(mine[at], theirs[at]);
        //  And as show_trgm prints them.
        char joined[4096] = "";
        for (int at = 0; at < length; at++) {
            char text[4];
            uindex_code_text(mine[at], text);
            size_t used = strlen(joined);
            snprintf(joined + used, sizeof joined - used, "%s%s", at ? "|" : "", text);
        }
        assert_string_equal(joined, s_value("SELECT array_to_string(ARRAY(SELECT t FROM"
                                            " unnest(show_trgm($1)) t ORDER BY t COLLATE \"C\"),"
                                            " '|')",
                                            name));
    }
    assert_true(s_uindex_self_check(s_db));
    //  Malformed lists are refused.
    int total;
    uint32_t codes[UINDEX_TRGM_MAX];
    assert_int_equal(uindex_pg_trigrams("202", codes, &total), -1);
    //  An element that is not three bytes of the alphabet counts, matches nothing.
    assert_int_equal(uindex_pg_trigrams("2020,202061,204161", codes, &total), 1);
    assert_int_equal(total, 3);
    assert_int_equal(uindex_pg_trigrams("20206x", codes, &total), -1);
    assert_int_equal(uindex_pg_trigrams("202061,,", codes, &total), -1);
    assert_int_equal(uindex_pg_trigrams("", codes, &total), 0);
    assert_int_equal(total, 0);
}

static const char *const s_queries[] = {"jonh",  "mattgew", "jeremg", "esopsito", "olvieira",
                                        "kovac", "bjork",   "smorg",  "ab",       "upper mix",
                                        "x y",   "brien",   "init",   "ann lee",  "zzzz"};

static void test_similarities_equal_pg_trgm(void **state)
{
    for (size_t q = 0; q < sizeof s_queries / sizeof *s_queries; q++) {
        uint32_t codes[UINDEX_TRGM_MAX], name[UINDEX_TRGM_MAX];
        int n = uindex_trigrams(s_queries[q], strlen(s_queries[q]), codes);
        assert_true(n > 0);
        for (size_t index = 0; index < sizeof s_names / sizeof *s_names; index++) {
            const char *text = s_names[index];
            int total = 0;
            int count = s_pg_codes(text, name, &total);
            int shared = 0;
            for (int at = 0; at < count; at++)
                shared += s_uindex_has(codes, n, name[at]);
            const char *params[] = {s_queries[q], text};
            PGresult *res = db_query(
                s_db, "SELECT similarity($2, $1)::text, word_similarity($1, $2)::text", 2, params);
            assert_non_null(res);
            float similarity = strtof(PQgetvalue(res, 0, 0), NULL);
            float word = strtof(PQgetvalue(res, 0, 1), NULL);
            PQclear(res);
            //  pg_trgm answers 0 for text without trigrams.
            assert_true(uindex_similarity(shared, n, total) == similarity);
            //  The bound: word similarity never exceeds shared / nq.
            assert_true((double)word <= (double)shared / n + 1e-6);
            float mine = uindex_word_similarity(codes, n, text);
            if (mine >= 0) {
                if (mine != word)
                    fprintf(stderr, "word_similarity(%s, %s): %g, pg_trgm %g\n", s_queries[q], text,
                            (double)mine, (double)word);
                assert_true(mine == word);
            }
        }
    }
}

//  Seeds a few hundred accounts with names of the shapes above.
static void s_seed_accounts(void)
{
    static const char *const first[] = {"john", "jon",  "matt", "mattie", "mei",   "olga",
                                        "ann",  "anne", "zoë",  "josé",   "björk", "keith"};
    static const char *const last[] = {"smith",   "esposito", "oliveira", "lee",
                                       "kravitz", "niño",     "gómez",    "matthews"};
    int64_t id = 5000;
    for (size_t f = 0; f < sizeof first / sizeof *first; f++)
        for (size_t l = 0; l < sizeof last / sizeof *last; l++)
            for (int shape = 0; shape < 3; shape++) {
                char username[64], display[64];
                if (shape == 0)
                    snprintf(username, sizeof username, "%s.%s", first[f], last[l]);
                else if (shape == 1)
                    snprintf(username, sizeof username, "%s%s%d", first[f], last[l], shape * 7);
                else
                    snprintf(username, sizeof username, "%s_%zu", last[l], f);
                snprintf(display, sizeof display, "%c%s %s", shape == 2 ? 'X' : first[f][0],
                         first[f] + 1, last[l]);
                s_user(++id, username, display);
            }
}

//  The similarities the index hands the ranked query (users.c
//  s_typo_arrays, as Postgres reads them back) equal pg_trgm's, bit for
//  bit: a branch's own (similarity of the username, word similarity of
//  the display name) and the score's greatest of the three; and all but
//  the non-ASCII display names are scored.
static void s_check_scores(user_index_t *index, const char *const *queries, size_t count)
{
    size_t scored = 0, unscored = 0;
    for (size_t q = 0; q < count; q++) {
        uindex_found_t found;
        assert_int_equal(uindex_candidates(index, queries[q], 0.25, 0.5, 150, &found), 0);
        s_typo_arrays_t arrays;
        assert_int_equal(s_typo_arrays(&found, &arrays), 0);
        char **text = arrays.text;
        const char *check[] = {queries[q], text[S_TYPO_IDS], text[S_TYPO_USIM], text[S_TYPO_WSIM],
                               text[S_TYPO_BEST]};
        PGresult *res = db_query(
            s_db,
            "SELECT count(*) FILTER (WHERE t.usim IS DISTINCT FROM"
            "   CASE WHEN t.usim IS NOT NULL THEN similarity(u.username, $1) END"
            "  OR t.wsim IS DISTINCT FROM"
            "   CASE WHEN t.wsim IS NOT NULL THEN word_similarity($1, u.name_norm) END"
            "  OR t.best <> greatest(similarity(u.username, $1), similarity(u.name_norm, $1),"
            "   word_similarity($1, u.name_norm))"
            "  OR (t.usim IS NULL AND t.wsim IS NULL)),"
            " count(t.best), count(*) - count(t.best)"
            " FROM unnest($2::bigint[], $3::float4[], $4::float4[], $5::float4[])"
            "  AS t(id, usim, wsim, best) JOIN users u ON u.id = t.id",
            5, check);
        assert_non_null(res);
        if (!streq(PQgetvalue(res, 0, 0), "0"))
            fprintf(stderr, "%s: scores differ\n  %s\n  %s\n  %s\n  %s\n", queries[q], check[1],
                    check[2], check[3], check[4]);
        assert_string_equal(PQgetvalue(res, 0, 0), "0");
        scored += (size_t)atoi(PQgetvalue(res, 0, 1));
        unscored += (size_t)atoi(PQgetvalue(res, 0, 2));
        PQclear(res);
        s_typo_arrays_free(&arrays);
        uindex_found_free(&found);
    }
    assert_true(scored > 0);
    assert_true(scored > unscored);
}

static void test_candidates_hold_every_match(void **state)
{
    s_seed_accounts();
    user_index_t index;
    assert_int_equal(uindex_init(&index), 0);
    PGresult *res = NULL;
    const char *params[] = {NULL, NULL, "Jonh"};
    char norm[64];
    assert_int_equal(uindex_refresh(&index, s_db, s_index_sql, 3, params, 6, norm, 64), 1);
    assert_string_equal(norm, "jonh");
    assert_true(index.count >= 288); // in pages of 128
    assert_int_equal(index.count, atoi(s_value("SELECT count(*) FROM users", NULL)));
    uint32_t loaded = index.count;
    //  Nothing changed: read again, nothing moves.
    assert_int_equal(uindex_refresh(&index, s_db, s_index_sql, 3, params, 6, norm, 64), 1);
    assert_int_equal(index.dead, 0);
    assert_int_equal(index.count, loaded);
    //  A value that does not fit comes back empty.
    assert_int_equal(uindex_refresh(&index, s_db, s_index_sql, 3, params, 6, norm, 4), 1);
    assert_string_equal(norm, "");
    static const char *const queries[] = {"jonh",    "mattgew", "esopsito", "olvieira", "smiht",
                                          "kravtiz", "nino",    "gomez",    "ann lee",  "jose"};
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
        uindex_found_t found;
        //  keep = 0: every match, unranked.
        assert_int_equal(uindex_candidates(&index, queries[q], 0.25, 0.5, 0, &found), 0);
        char *users = uindex_array_text(found.user_ids, found.user_count);
        char *names = uindex_array_text(found.name_ids, found.name_count);
        const char *check[] = {queries[q], users, names};
        res = db_query(s_db,
                       "SELECT (SELECT count(*) FROM users WHERE username % $1"
                       "  AND id <> ALL ($2::bigint[])),"
                       " (SELECT count(*) FROM users WHERE $1 <% name_norm"
                       "  AND id <> ALL ($3::bigint[])),"
                       " (SELECT count(*) FROM users WHERE id = ANY ($2::bigint[])"
                       "  AND NOT username % $1),"
                       " (SELECT count(*) FROM users WHERE username % $1)",
                       3, check);
        assert_non_null(res);
        //  No match is missing; a username candidate is always a match.
        assert_string_equal(PQgetvalue(res, 0, 0), "0");
        assert_string_equal(PQgetvalue(res, 0, 1), "0");
        assert_string_equal(PQgetvalue(res, 0, 2), "0");
        assert_int_equal(atoi(PQgetvalue(res, 0, 3)), (int)found.user_count);
        PQclear(res);
        free(users);
        free(names);
        uindex_found_free(&found);
    }
    s_check_scores(&index, queries, sizeof queries / sizeof *queries);
    //  keep = 3 keeps the three the username branch keeps, ties by id.
    uindex_found_t found;
    assert_int_equal(uindex_candidates(&index, "mattgew", 0.25, 0.5, 3, &found), 0);
    assert_int_equal(found.user_count, 3);
    char *users = uindex_array_text(found.user_ids, found.user_count);
    char *names = uindex_array_text(found.name_ids, found.name_count);
    const char *check[] = {users, names};
    res = db_query(s_db,
                   "SELECT (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM users"
                   "  WHERE username % 'mattgew' ORDER BY similarity(username, 'mattgew') DESC,"
                   "  id DESC LIMIT 3) b) = (SELECT array_agg(x ORDER BY x) FROM"
                   "  unnest($1::bigint[]) x),"
                   " (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM users"
                   "  WHERE 'mattgew' <% name_norm ORDER BY word_similarity('mattgew', name_norm)"
                   "  DESC, id DESC LIMIT 3) b) = (SELECT array_agg(x ORDER BY x) FROM"
                   "  unnest($2::bigint[]) x)",
                   2, check);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    free(users);
    free(names);
    uindex_found_free(&found);
    uindex_destroy(&index);
}

static void test_fresh_after_create_rename_delete(void **state)
{
    //  The index is built by the first typo search.
    char *page = s_search("zzqxv", 0);
    free(page);
    assert_true(s_index_ready && s_index.count > 0);
    uint32_t before = s_index.count;
    //  Created after: found by a typo right away.
    s_user(9001, "gwendolyn_fairweather", "Gwendolyn Fairweather");
    page = s_search("gwendolin", 0);
    assert_true(s_found(page, "gwendolyn_fairweather"));
    free(page);
    page = s_search("fairwether", 0);
    assert_true(s_found(page, "gwendolyn_fairweather"));
    free(page);
    assert_int_equal(s_index.count, before + 1);
    //  Renamed: the new name is found, the old one no longer.
    s_user(9001, "bartholomew_quince", "Bartholomew Quince");
    page = s_search("bartholomeu", 0);
    assert_true(s_found(page, "bartholomew_quince"));
    free(page);
    page = s_search("gwendolin", 0);
    assert_false(s_found(page, "bartholomew_quince"));
    assert_false(s_found(page, "gwendolyn_fairweather"));
    free(page);
    assert_int_equal(s_index.dead, 1);
    //  A change elsewhere in the row (privacy) does not move it.
    s_event("identity.user.updated",
            json_pack("{s:s, s:s, s:s, s:b}", "id", "9001", "username", "bartholomew_quince",
                      "display_name", "Bartholomew Quince", "is_private", 1));
    free(s_search("bartholomeu", 0));
    assert_int_equal(s_index.dead, 1);
    //  Deleted: gone from the index too.
    s_event("identity.user.deleted", json_pack("{s:s}", "id", "9001"));
    page = s_search("bartholomeu", 0);
    assert_false(s_found(page, "bartholomew_quince"));
    free(page);
    assert_int_equal(s_index.dead, 2);
    //  Non-ASCII names are indexed from show_trgm and found by typos.
    s_user(9002, "señor_jalapeño", "Señor Jalapeño");
    page = s_search("jalapeno", 0);
    assert_true(s_found(page, "señor_jalapeño"));
    free(page);
    page = s_search("jalapeñp", 0);
    assert_true(s_found(page, "señor_jalapeño"));
    free(page);
}

//  Runs every query of queries (NULL-terminated) through the index and
//  through the plain SQL path; returns how many pages differ. times (2 ×
//  count) gets each path's milliseconds when not NULL.
static int s_compare(const char *const *queries, const int64_t *viewers, size_t count,
                     double *times)
{
    int differ = 0;
    for (size_t at = 0; at < count; at++) {
        //  Each path goes first every other query (the second finds the
        //  pages the first read in the cache).
        char *pages[2];
        for (int turn = 0; turn < 2; turn++) {
            int path = (int)((at + (size_t)turn) % 2); // 0 index, 1 plain SQL
            s_index_ready = path == 0;
            int64_t started = zclock_usecs();
            pages[path] = s_search(queries[at], viewers[at]);
            if (times)
                times[(size_t)path * count + at] = (double)(zclock_usecs() - started) / 1000.0;
        }
        s_index_ready = true;
        char *indexed = pages[0], *plain = pages[1];
        if (strcmp(indexed, plain) != 0) {
            differ++;
            fprintf(stderr, "differs: %s (viewer %" PRId64 ")\n  index %s\n  plain %s\n",
                    queries[at], viewers[at], indexed, plain);
        }
        free(indexed);
        free(plain);
    }
    return differ;
}

static void test_pages_equal_plain_sql(void **state)
{
    const char *queries[] = {"jonh",  "mattgew", "esopsito", "olvieira", "smiht", "kravtiz",
                             "nino",  "gomez",   "ann lee",  "jose",     "zoe",   "björk",
                             "matth", "jon",     "ann",      "xmei",     "keit",  "lee"};
    int64_t viewers[sizeof queries / sizeof *queries] = {0};
    free(s_search("jonh", 0)); // builds the index
    assert_true(s_index_ready);
    assert_int_equal(s_compare(queries, viewers, sizeof queries / sizeof *queries, NULL), 0);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_percentile(double *values, size_t count, double p)
{
    qsort(values, count, sizeof *values, s_cmp_double);
    size_t at = (size_t)(p * (double)(count - 1) + 0.5);
    return values[at < count ? at : count - 1];
}

//  Replay mode: the user queries of a search_bench --list file.
static void test_replay(void **state)
{
    FILE *file = fopen(getenv("SEARCH_TRIGRAM_REPLAY"), "r");
    assert_non_null(file);
    size_t count = 0, cap = 4096;
    char **queries = calloc(cap, sizeof *queries);
    int64_t *viewers = calloc(cap, sizeof *viewers);
    char line[512];
    while (count < cap && fgets(line, sizeof line, file)) {
        char *kind = strtok(line, "\t"), *viewer = strtok(NULL, "\t"), *text = strtok(NULL, "\n");
        if (!kind || !viewer || !text || strncmp(kind, "users_", 6) != 0) continue;
        viewers[count] = strtoll(viewer, NULL, 10);
        queries[count++] = strdup(text);
    }
    fclose(file);
    free(s_search("jonh", 0)); // builds the index
    double *times = calloc(2 * count + 1, sizeof *times);
    int differ = s_compare((const char *const *)queries, viewers, count, times);
    printf("replay: %zu user queries, %d pages differ; index p50 %.2f p90 %.2f p99 %.2f ms;", count,
           differ, s_percentile(times, count, 0.5), s_percentile(times, count, 0.9),
           s_percentile(times, count, 0.99));
    printf(" plain SQL p50 %.2f p90 %.2f p99 %.2f ms\n", s_percentile(times + count, count, 0.5),
           s_percentile(times + count, count, 0.9), s_percentile(times + count, count, 0.99));
    for (size_t at = 0; at < count; at++)
        free(queries[at]);
    free(queries);
    free(viewers);
    free(times);
    assert_int_equal(differ, 0);
}

int main(void)
{
    if (getenv("SEARCH_TRIGRAM_REPLAY")) {
        const struct CMUnitTest replay[] = {cmocka_unit_test(test_replay)};
        return cmocka_run_group_tests(replay, s_group_setup, s_group_teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trigrams_equal_show_trgm),
        cmocka_unit_test(test_similarities_equal_pg_trgm),
        cmocka_unit_test(test_candidates_hold_every_match),
        cmocka_unit_test(test_fresh_after_create_rename_delete),
        cmocka_unit_test(test_pages_equal_plain_sql),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
