/*  seed: fills the search schema with a synthetic dataset for `make bench`
    (the internal method search.seed; docs/benchmarks.md, "Search at
    scale"). Refused (403) unless the service runs with
    SEARCH_SEED_ENABLED=1: no route leads here, and a production service
    never writes invented rows into its projections.

        search.seed {users, posts, follows?, seed?}
          -> {users, posts, follows, hashtags, seeded, seconds,
              viewers:[id], names:[text], words:[text], tags:[text]}

    Why here and not through the API: 1,000,000 posts through media (an
    upload each) and 100,000 registrations (an argon2id hash each) take
    hours; search only needs its projections, which it owns, so it writes
    them itself with a few INSERT ... SELECT over generate_series, in one
    transaction (minutes). Only the search schema is written; the other
    services do not know these accounts and posts, so hydration (media
    posts.batch, identity users.batch) leaves them out: what the benchmark
    measures is search's own query plus one batch call.

    The dataset, deterministic for a given `seed`:
      - users: display names "First Last" from two lists (accented ones
        included), usernames in four shapes (first.last, firstlast123,
        first_word, word_first12); 10% private;
      - follows: each user follows 0..2×`follows` accounts (default 20),
        drawn with u^3 so a few accounts have tens of thousands of
        followers; followers_count from them; 500 blocks (users / 10
        when fewer);
      - posts over the last 30 days, one every 30 d / posts, authors drawn
        with u^2; captions of 4..10 words from a 297-word vocabulary
        (skewed: u^2) and 0..4 hashtags (u^3 over words × suffixes, plus a
        long tail like #ramen19), like and comment counts skewed;
      - post_tags, hashtags.post_count and the 5-minute and hourly tag
        buckets derived from the posts, as the event handlers would.
    Captions are built from 8,192 pre-drawn fragments and 65,536 pre-drawn
    tag sets joined by a hash of the post number, so generating a million
    rows costs a hash join instead of a million correlated subqueries.

    Seeded rows carry shard 8191 in their ids (ids.h layout), which no
    leased shard reaches in practice, so they never collide with real
    ids and can be counted. Calling again with the same sizes seeds nothing
    and answers the samples (a bench run can be repeated); other sizes over
    an existing seed are a 409 (start from an empty database).

    The reply's samples feed tools/search_bench.c: viewer ids, usernames
    and display names to derive prefix and typo queries from, caption
    words, and hashtags (the most used and random ones).
*/
#include "search.h"
#include "args.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

#define SEED_USERS_MAX 1000000
#define SEED_POSTS_MAX 10000000
#define SEED_FOLLOWS_MAX 200
#define SEED_SAMPLES "200"
#define SEED_USER_MS_OFFSET "86400000"   // seeded accounts were made on 2025-01-02
#define SEED_SPAN_MS INT64_C(2592000000) // posts spread over 30 days

//  "the id's shard is the seed's" (8191), for the id column.
#define SEEDED_ID "((id >> 10) & 8191) = 8191"

static const char s_first_names[] =
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony "
    "Betty Mark Margaret Donald Sandra Steven Ashley Paul Kimberly Andrew Emily Joshua Donna "
    "Kenneth Michelle Kevin Dorothy Brian Carol George Amanda Edward Melissa Ronald Deborah "
    "Timothy Stephanie Jason Rebecca Jeffrey Sharon Ryan Laura Jacob Cynthia Gary Kathleen "
    "Nicholas Amy Eric Shirley Jonathan Angela Stephen Helen Larry Anna Justin Brenda Scott "
    "Pamela Brandon Nicole Benjamin Emma Samuel Samantha Gregory Katherine Frank Christine "
    "Alexander Debra Raymond Rachel Patrick Catherine Jack Carolyn Dennis Janet Jerry Ruth Tyler "
    "Maria Aaron Heather Jose Diane Adam Virginia Henry Julie Nathan Joyce Douglas Victoria "
    "Zachary Olivia Peter Kelly Kyle Christina Walter Lauren Ethan Joan Jeremy Evelyn Harold "
    "Judith Keith Megan Christian Cheryl Roger Andrea Noah Hannah Gerald Martha Carl Jacqueline "
    "Terry Frances Sean Gloria Austin Ann Arthur Teresa Lawrence Kathryn Jesse Sara Dylan Janice "
    "Bryan Jean Joe Alice Jordan Madison Billy Doris Bruce Abigail Albert Julia Willie Judy "
    "Gabriel Grace Logan Denise Alan Amber Juan Marilyn Wayne Beverly Roy Danielle Ralph Theresa "
    "Randy Sophia Eugene Marie Vincent Diana Russell Brittany Elijah Natalie Louis Isabella "
    "Bobby Charlotte Philip Rose Johnny Alexis Zoë José Chloé Renée Søren Jürgen Åsa Noël Inés "
    "Björn Léa Mateo Lucía Yuki Hiro Aiko Wei Mei Arjun Priya Omar Fatima Ivan Olga Lars Ingrid "
    "Pierre Amélie Giulia Marco Sven Astrid";

static const char s_last_names[] =
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook "
    "Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward "
    "Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez "
    "Castillo Sanders Patel Myers Long Ross Foster Jimenez Müller Schmidt Schneider Fischer "
    "Weber Meyer Wagner Becker Schulz Hoffmann Dubois Lefèvre Moreau Laurent Simon Michel Rossi "
    "Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Tanaka Suzuki Takahashi "
    "Watanabe Yamamoto Nakamura Kobayashi Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Silva "
    "Santos Oliveira Souza Pereira Costa Almeida Nielsen Jensen Hansen Pedersen Andersen Larsen "
    "Johansson Karlsson Nilsson Eriksson Ivanov Petrov Sokolov Novak Kowalski Nowak Wiśniewski "
    "Horváth Kovács Papadopoulos Öztürk Yılmaz Kaya Demir Şahin Çelik";

//  Caption words, most common first (the draw is skewed towards the start).
static const char s_words[] =
    "sunset beach summer love travel photo happy life nature food coffee morning city night "
    "friends family weekend vibes art style fashion fitness workout music dance party holiday "
    "sea ocean mountain hiking sky cloud rain snow winter spring autumn flower garden dog cat "
    "puppy kitten baby smile sun light beautiful amazing good best day time new first home "
    "street road car bike run walk yoga lake river forest tree green blue red gold black white "
    "pink colour sweet cake pizza pasta sushi burger dinner lunch breakfast brunch wine beer "
    "cocktail bar restaurant kitchen recipe vegan healthy fresh local market shopping design "
    "interior architecture building bridge tower museum gallery paint drawing sketch portrait "
    "selfie model makeup hair nails wedding bride birthday celebration christmas halloween "
    "easter festival concert live show stage film movie book reading study school work office "
    "team project launch business startup tech code coding developer laptop phone camera lens "
    "analog vintage retro minimal aesthetic mood calm peace dream goal focus motivation "
    "inspiration quote thoughts memories throwback adventure explore wanderlust journey trip "
    "flight airport hotel island tropical paradise desert canyon valley waterfall surf wave "
    "sand shell boat sail fishing camping fire stars moon galaxy space horizon view skyline "
    "downtown urban neighborhood park playground bench square plaza fountain statue church "
    "temple castle palace ruins history culture tradition heritage craft handmade wood stone "
    "glass metal paper clay ceramic knit sewing bloom rose tulip daisy lily orchid sunflower "
    "leaf moss mushroom berry apple lemon orange mango cherry strawberry peach grape melon tea "
    "matcha latte espresso cappuccino chocolate cookie bread croissant bagel donut icecream "
    "gelato cheese salad soup noodle ramen taco burrito curry spice grill bbq picnic bonfire "
    "cozy blanket candle rainy cloudy foggy windy sunny golden hour twilight dawn dusk café "
    "niño señor über crème façade jalapeño piñata smörgåsbord fjord björk";

//  Hashtag suffixes; the first is empty (the plain word is the commonest tag).
static const char s_tag_suffixes[] = " life love gram daily vibes photography lover addict time "
                                     "day world";

//  ---------------------------------------------------------------------
//  SQL. Every statement writes only this schema; ids are made in SQL with
//  the ids.h layout: (ms since the epoch << 23) | (shard 8191 << 10).

//  SEED_UID_START "n" SEED_UID_END: the id of seeded user number n (an SQL
//  expression).
#define SEED_UID_START "((" SEED_USER_MS_OFFSET "::bigint + "
#define SEED_UID_END ") << 23) | (8191 << 10)"

//  $1 users, $2 first names, $3 last names, $4 words.
static const char s_users_sql[] =
    "INSERT INTO users (id, username, display_name, is_private)"
    " SELECT " SEED_UID_START "i" SEED_UID_END ","
    "  CASE x.shape WHEN 0 THEN search_norm(x.fn) || '.' || search_norm(x.ln)"
    "   WHEN 1 THEN search_norm(x.fn) || search_norm(x.ln) || (i % 1000)"
    "   WHEN 2 THEN search_norm(x.fn) || '_' || x.w"
    "   ELSE x.w || '_' || search_norm(x.fn) || (i % 100) END,"
    "  x.fn || ' ' || x.ln, x.r < 0.1"
    " FROM (SELECT string_to_array($2, ' ') AS f, string_to_array($3, ' ') AS l,"
    "  string_to_array($4, ' ') AS w) v, generate_series(0, $1::int - 1) i,"
    //  i >= 0 makes the subquery depend on i, so it is drawn again per row.
    "  LATERAL (SELECT v.f[1 + floor(random() * cardinality(v.f))::int] AS fn,"
    "   v.l[1 + floor(random() * cardinality(v.l))::int] AS ln,"
    "   v.w[1 + floor(random() * cardinality(v.w))::int] AS w,"
    "   floor(random() * 4)::int AS shape, random() AS r WHERE i >= 0) x";

//  The prefix terms the identity handler writes (projections.c).
static const char s_user_terms_sql[] =
    "INSERT INTO user_terms (term, user_id)"
    " SELECT DISTINCT term, u.id FROM users u,"
    "  LATERAL (SELECT u.username UNION ALL SELECT u.name_norm"
    "   UNION ALL SELECT regexp_split_to_table(u.name_norm, '\\s+')) t(term)"
    " WHERE ((u.id >> 10) & 8191) = 8191 AND term <> ''";

//  $1 users, $2 mean follows per user.
static const char s_follows_sql[] =
    "INSERT INTO follows (follower_id, followee_id)"
    " SELECT a, b FROM (SELECT " SEED_UID_START "i" SEED_UID_END " AS a,"
    "  " SEED_UID_START "floor(power(random(), 3) * $1::int)::bigint" SEED_UID_END " AS b"
    "  FROM generate_series(0, $1::int - 1) i,"
    "   LATERAL generate_series(1, floor(random() * 2 * $2::int)::int + i % 2) j) e"
    " WHERE a <> b ON CONFLICT DO NOTHING";

static const char s_followers_count_sql[] =
    "UPDATE users u SET followers_count = c.n"
    " FROM (SELECT followee_id, count(*) AS n FROM follows"
    "  WHERE ((followee_id >> 10) & 8191) = 8191 GROUP BY followee_id) c"
    " WHERE u.id = c.followee_id";

//  $1 users. 500 blocks (one account in 10 at most).
static const char s_blocks_sql[] =
    "INSERT INTO blocks (blocker_id, blocked_id)"
    " SELECT a, b FROM (SELECT"
    "  " SEED_UID_START "floor(random() * $1::int)::bigint + 0 * i" SEED_UID_END " AS a,"
    "  " SEED_UID_START "floor(random() * $1::int)::bigint" SEED_UID_END " AS b"
    "  FROM generate_series(1, least(500, $1::int / 10)) i) x WHERE a <> b ON CONFLICT DO NOTHING";

//  $1 posts, $2 users, $3 words, $4 tag suffixes, $5 first post's ms since
//  the epoch, $6 ms between posts, $7 fragments F, $8 tag sets T (fewer for
//  a small seed). Fragments and tag sets are drawn first (their subqueries
//  mention g or k so they are drawn per row); a post joins two fragments,
//  through moduli F and F - 1 (so F × (F - 1) captions), and a tag set.
static const char s_posts_sql[] =
    "WITH v AS MATERIALIZED (SELECT string_to_array($3, ' ') AS w,"
    "  string_to_array($4, ' ') AS s),"
    " frag AS MATERIALIZED (SELECT k, (SELECT string_agg("
    "   v.w[1 + floor(power(random(), 2) * cardinality(v.w))::int + 0 * g], ' ')"
    "   FROM generate_series(1, 2 + k % 4) g WHERE g > 0) AS words"
    "  FROM v, generate_series(0, $7::int - 1) k),"
    " tagset AS MATERIALIZED (SELECT k, tags,"
    "  coalesce(' ' || (SELECT string_agg('#' || t, ' ') FROM unnest(tags) t), '') AS text"
    "  FROM (SELECT k, ARRAY(SELECT DISTINCT t FROM ("
    "    SELECT v.w[1 + d.x % cardinality(v.w)] || v.s[1 + d.x / cardinality(v.w)] AS t"
    "    FROM (SELECT floor(power(random(), 3) * cardinality(v.w) * cardinality(v.s))::int"
    "     + 0 * g AS x FROM generate_series(1, k % 4) g) d"
    "    UNION ALL SELECT v.w[1 + floor(random() * cardinality(v.w))::int]"
    "     || floor(random() * 300)::int WHERE random() < 0.3 AND k >= 0) tt) AS tags"
    "   FROM v, generate_series(0, $8::int - 1) k) x)"
    " INSERT INTO posts (id, author_id, caption, hashtags, like_count, comment_count)"
    " SELECT (($5::bigint + i * $6::bigint) << 23) | (8191 << 10),"
    "  " SEED_UID_START "floor(power(random(), 2) * $2::int)::bigint" SEED_UID_END ","
    "  a.words || ' ' || b.words || t.text, t.tags,"
    "  floor(power(random(), 4) * 400)::int, floor(power(random(), 6) * 40)::int"
    " FROM generate_series(0::bigint, $1::bigint - 1) i"
    " JOIN frag a ON a.k = (i * 7919) % $7::int"
    " JOIN frag b ON b.k = (i * 104729 + 17) % ($7::int - 1)"
    " JOIN tagset t ON t.k = ((i * 2654435761) >> 7) % $8::int";

//  In primary key order, so each btree fills page after page.
static const char s_post_tags_sql[] = "INSERT INTO post_tags (tag, post_id, author_id)"
                                      " SELECT tag, id, author_id FROM posts, unnest(hashtags) tag"
                                      " WHERE ((id >> 10) & 8191) = 8191 ORDER BY tag, id";

static const char s_hashtags_sql[] =
    "INSERT INTO hashtags (tag, post_count)"
    " SELECT tag, count(*) FROM post_tags WHERE ((post_id >> 10) & 8191) = 8191"
    " GROUP BY tag ORDER BY tag"
    " ON CONFLICT (tag) DO UPDATE SET post_count = hashtags.post_count + EXCLUDED.post_count";

#define SEED_BUCKETS_SQL(table, size)                                                              \
    "INSERT INTO " table " (tag, bucket_ms, count)"                                                \
    " SELECT tag, ms - ms % " size ", count(*) FROM (SELECT tag, search_id_ms(post_id) AS ms"      \
    "  FROM post_tags WHERE ((post_id >> 10) & 8191) = 8191) x GROUP BY 1, 2 ORDER BY 1, 2"        \
    " ON CONFLICT (tag, bucket_ms) DO UPDATE SET count = " table ".count + EXCLUDED.count"

static const char *const s_vacuum[] = {
    "VACUUM ANALYZE users",         "VACUUM ANALYZE follows",       "VACUUM ANALYZE blocks",
    "VACUUM ANALYZE posts",         "VACUUM ANALYZE post_tags",     "VACUUM ANALYZE hashtags",
    "VACUUM ANALYZE tag_counts_5m", "VACUUM ANALYZE tag_counts_1h", NULL};

//  ---------------------------------------------------------------------

//  Runs one statement; logs how long it took. 0 or -1.
static int s_step(db_t *db, const char *what, const char *sql, int count, const char *const *params)
{
    int64_t start = zclock_mono();
    long rows = db_exec(db, sql, count, params);
    if (rows < 0) {
        log_error("search.seed: %s failed", what);
        return -1;
    }
    log_info("search.seed: %s: %ld rows in %" PRId64 " ms", what, rows, zclock_mono() - start);
    return 0;
}

//  The first column of a one-row query as an integer, or -1.
static int64_t s_scalar(db_t *db, const char *sql)
{
    PGresult *res = db_query(db, sql, 0, NULL);
    int64_t value = res && PQntuples(res) == 1 ? search_column_int(res, 0, 0) : -1;
    PQclear(res);
    return value;
}

//  Appends every row's columns of sql's result to array as strings.
static int s_collect(db_t *db, const char *sql, json_t *array)
{
    PGresult *res = db_query(db, sql, 0, NULL);
    if (!res) return -1;
    for (int row = 0; row < PQntuples(res); row++)
        for (int column = 0; column < PQnfields(res); column++)
            json_array_append_new(array, json_string(PQgetvalue(res, row, column)));
    PQclear(res);
    return 0;
}

//  Writes the whole dataset in one transaction. 0 or -1 (rolled back).
static int s_seed(db_t *db, int64_t users, int64_t posts, int64_t follows, int64_t seed)
{
    char users_text[24], posts_text[24], follows_text[24], seed_text[32], first_text[24],
        step_text[24], fragments_text[24], tag_sets_text[24];
    snprintf(users_text, sizeof users_text, "%" PRId64, users);
    snprintf(posts_text, sizeof posts_text, "%" PRId64, posts);
    snprintf(follows_text, sizeof follows_text, "%" PRId64, follows);
    //  setseed takes [-1, 1].
    snprintf(seed_text, sizeof seed_text, "%.6f", (double)(seed % 1000000) / 1000000.0);
    int64_t step = posts > 0 ? SEED_SPAN_MS / posts : 0;
    int64_t first = envelope_now_ms() - IDS_EPOCH_MS - SEED_SPAN_MS;
    snprintf(first_text, sizeof first_text, "%" PRId64, first);
    snprintf(step_text, sizeof step_text, "%" PRId64, step);
    //  More fragments or tag sets than posts would never be used.
    snprintf(fragments_text, sizeof fragments_text, "%" PRId64, posts < 8192 ? posts + 2 : 8192);
    snprintf(tag_sets_text, sizeof tag_sets_text, "%" PRId64, posts < 65536 ? posts + 1 : 65536);

    if (db_begin(db) != 0) return -1;
    const char *seed_params[] = {seed_text};
    const char *user_params[] = {users_text, s_first_names, s_last_names, s_words};
    const char *follow_params[] = {users_text, follows_text};
    const char *post_params[] = {posts_text, users_text, s_words,        s_tag_suffixes,
                                 first_text, step_text,  fragments_text, tag_sets_text};
    if (s_step(db, "setseed", "SELECT setseed($1::float8)", 1, seed_params) != 0 ||
        s_step(db, "users", s_users_sql, 4, user_params) != 0 ||
        s_step(db, "user terms", s_user_terms_sql, 0, NULL) != 0 ||
        s_step(db, "follows", s_follows_sql, 2, follow_params) != 0 ||
        s_step(db, "followers_count", s_followers_count_sql, 0, NULL) != 0 ||
        s_step(db, "blocks", s_blocks_sql, 1, user_params) != 0 ||
        s_step(db, "posts", s_posts_sql, 8, post_params) != 0 ||
        s_step(db, "post_tags", s_post_tags_sql, 0, NULL) != 0 ||
        s_step(db, "hashtags", s_hashtags_sql, 0, NULL) != 0 ||
        s_step(db, "5-minute buckets", SEED_BUCKETS_SQL("tag_counts_5m", "300000"), 0, NULL) != 0 ||
        s_step(db, "hourly buckets", SEED_BUCKETS_SQL("tag_counts_1h", "3600000"), 0, NULL) != 0 ||
        db_commit(db) != 0) {
        db_rollback(db);
        return -1;
    }
    //  Fresh statistics and visibility maps, so plans and index-only scans
    //  are those of a settled database (autovacuum would get there later).
    for (int index = 0; s_vacuum[index]; index++)
        if (db_exec_script(db, s_vacuum[index]) != 0) return -1;
    return 0;
}

json_t *search_seed(call_t *call)
{
    search_t *self = call->state;
    if (!self || !self->seed_enabled)
        return reply_error(403, ERR_FORBIDDEN,
                           "seeding is off (SEARCH_SEED_ENABLED=1 turns it on)");
    json_t *fields = json_object();
    int64_t users = 0, posts = 0, follows = 20, seed = 42;
    args_int(call->args, "users", true, 1, SEED_USERS_MAX, &users, fields);
    args_int(call->args, "posts", true, 0, SEED_POSTS_MAX, &posts, fields);
    args_int(call->args, "follows", false, 0, SEED_FOLLOWS_MAX, &follows, fields);
    args_int(call->args, "seed", false, 0, INT32_MAX, &seed, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t start = zclock_mono();
    db_t *db = call->db;
    int64_t have_users = s_scalar(db, "SELECT count(*) FROM users WHERE " SEEDED_ID);
    int64_t have_posts = s_scalar(db, "SELECT count(*) FROM posts WHERE " SEEDED_ID);
    if (have_users < 0 || have_posts < 0) return search_internal("search.seed counts");
    bool seeded = false;
    if (have_users == 0 && have_posts == 0) {
        if (s_seed(db, users, posts, follows, seed) != 0) return search_internal("search.seed");
        seeded = true;
    } else if (have_users != users || have_posts != posts) {
        char *message = zsys_sprintf("the schema holds another seed (%" PRId64 " users, %" PRId64
                                     " posts); start from an empty database",
                                     have_users, have_posts);
        json_t *reply = reply_error(409, ERR_CONFLICT, message ? message : "another seed");
        zstr_free(&message);
        return reply;
    }

    json_t *viewers = json_array(), *names = json_array(), *tags = json_array();
    json_t *words = json_array();
    char *vocabulary = strdup(s_words);
    for (char *save = NULL, *word = strtok_r(vocabulary, " ", &save); word;
         word = strtok_r(NULL, " ", &save))
        json_array_append_new(words, json_string(word));
    free(vocabulary);
    int rc = s_collect(
        db, "SELECT id::text FROM users WHERE " SEEDED_ID " ORDER BY random() LIMIT " SEED_SAMPLES,
        viewers);
    if (rc == 0)
        rc = s_collect(db,
                       "SELECT username, display_name FROM users WHERE " SEEDED_ID
                       " ORDER BY random() LIMIT " SEED_SAMPLES,
                       names);
    if (rc == 0)
        rc = s_collect(db,
                       "(SELECT tag FROM hashtags ORDER BY post_count DESC LIMIT " SEED_SAMPLES ")"
                       " UNION ALL (SELECT tag FROM hashtags WHERE post_count > 0"
                       " ORDER BY random() LIMIT " SEED_SAMPLES ")",
                       tags);
    int64_t follow_count = s_scalar(db, "SELECT count(*) FROM follows"
                                        " WHERE ((follower_id >> 10) & 8191) = 8191");
    int64_t tag_count = s_scalar(db, "SELECT count(*) FROM hashtags");
    if (rc != 0 || follow_count < 0 || tag_count < 0) {
        json_decref(viewers);
        json_decref(names);
        json_decref(tags);
        json_decref(words);
        return search_internal("search.seed samples");
    }
    return reply_ok(200,
                    json_pack("{s:I, s:I, s:I, s:I, s:b, s:f, s:o, s:o, s:o, s:o}", "users",
                              (json_int_t)users, "posts", (json_int_t)posts, "follows",
                              (json_int_t)follow_count, "hashtags", (json_int_t)tag_count, "seeded",
                              seeded, "seconds", (double)(zclock_mono() - start) / 1000.0,
                              "viewers", viewers, "names", names, "words", words, "tags", tags));
}
