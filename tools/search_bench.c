/*  search_bench: latency of the search service at scale, measured at the
    service (through the broker, no gateway), for `make bench`
    (BENCH_SEARCH_SCALE=1) and docs/benchmarks.md.

        search_bench [--broker URL] [--users N] [--posts N] [--queries N]
                     [--threads N] [--warmup N] [--seed N] [--kinds LIST]
                     [--list FILE]

    1. Calls search.seed {users, posts, seed} (services/search/seed.c; the
       service must run with SEARCH_SEED_ENABLED=1), which writes the
       synthetic dataset into search's projections once (minutes for
       100,000 users and 1,000,000 posts; a repeated call seeds nothing)
       and answers samples: viewer ids, names, caption words, hashtags.
    2. Derives varied queries from the samples, with a fixed PRNG seed:
         users_prefix  search.users, the first 1..6 characters of a
                       username or display name (typeahead: every length)
         users_typo    search.users, a first name, last name or username
                       with one typo (two letters swapped, one dropped or
                       one replaced)
         posts         search.posts, one caption word (70%) or two
         hashtags      search.hashtags, the first 1..5 characters of a tag
       and, with --kinds all (or by name), tag_posts (hashtags.posts), explore
       (explore.posts) and explore_users (explore.users). 80% of queries
       have a seeded viewer, 20% are anonymous.
    3. For each kind in turn: --warmup unmeasured queries, then --queries
       measured ones spread over --threads threads (each with its own
       rpc client; a shared counter hands out the next query), and prints
       one line per kind:
         search_bench kind=posts queries=2000 errors=0 p50_ms=… p90_ms=…
           p99_ms=… max_ms=… qps=…
       errors counts replies that are not 200. With --list FILE, the
       queries are also written to FILE, one a line: kind, viewer (0 =
       anonymous) and text, separated by tabs (to replay them in psql
       with EXPLAIN). Exit code 0 when every
       kind ran without errors, 1 otherwise, 2 on a usage error or when the
       seed is refused.

    The time is the whole call as a caller of the service sees it: the
    broker hop both ways, the handler's SQL and its one batch call to media
    or identity (which do not know the seeded rows, so they hydrate
    nothing: their own cost is measured by their own benchmarks).
*/
#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "rpc.h"

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_MAX 8
#define THREADS_MAX 64
#define QUERY_TEXT_MAX 256

typedef struct {
    const char *name;   // "users_prefix"
    const char *method; // "search.users"
    const char *arg;    // the argument holding the text ("q", "tag"), NULL = none
    bool required;      // one of the four the targets are about
} kind_t;

static const kind_t s_kinds[] = {
    {"users_prefix", "search.users", "q", true},
    {"users_typo", "search.users", "q", true},
    {"posts", "search.posts", "q", true},
    {"hashtags", "search.hashtags", "q", true},
    {"tag_posts", "hashtags.posts", "tag", false},
    {"explore", "explore.posts", NULL, false},
    {"explore_users", "explore.users", NULL, false},
};
#define KIND_COUNT (sizeof s_kinds / sizeof s_kinds[0])

typedef struct {
    char text[QUERY_TEXT_MAX];
    int64_t viewer;
} query_t;

//  One kind's run, shared by its threads.
typedef struct {
    const char *broker;
    const kind_t *kind;
    const query_t *queries; // count of them, used in a cycle
    int count;
    int total; // calls to make
    atomic_int next;
    atomic_int errors;
    double *latency_ms; // total entries (measured runs)
    int64_t timeout_ms;
} run_t;

static const char s_usage[] =
    "Usage: search_bench [--broker URL] [--users N] [--posts N] [--queries N]\n"
    "                    [--threads N] [--warmup N] [--seed N] [--kinds LIST]\n"
    "                    [--list FILE]\n"
    "\n"
    "Seeds the search schema through search.seed (the service needs\n"
    "SEARCH_SEED_ENABLED=1), then measures user prefix and typo search, post\n"
    "search and hashtag prefix search through the broker and prints p50/p90/p99\n"
    "per kind. Defaults: 100000 users, 1000000 posts, 2000 queries and 200\n"
    "warm-up queries per kind, 2 threads, seed 42. --kinds: required (the\n"
    "four the targets are about, default), all, or names separated by commas\n"
    "(users_prefix, users_typo, posts, hashtags, tag_posts, explore,\n"
    "explore_users). --list FILE also writes the queries there, one a line:\n"
    "kind, viewer and text separated by tabs.\n"
    "BROKER_URL is the default broker (tcp://127.0.0.1:5555).\n";

//  ---------------------------------------------------------------------
//  Query text

static uint64_t s_rng = 0x9e3779b97f4a7c15ULL;

static uint64_t s_random(void)
{
    // xorshift64*: deterministic for a given --seed
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 0x2545f4914f6cdd1dULL;
}

static int s_below(int n)
{
    return n > 0 ? (int)(s_random() % (uint64_t)n) : 0;
}

//  Copies the first `chars` code points of text into out (size bytes).
static void s_utf8_prefix(const char *text, int chars, char *out, size_t size)
{
    size_t at = 0;
    int seen = 0;
    while (text[at] && at + 1 < size) {
        if (((unsigned char)text[at] & 0xC0) != 0x80) {
            if (seen == chars) break;
            seen++;
        }
        at++;
    }
    //  Never end inside a multibyte character when out is full.
    while (at > 0 && at + 1 >= size && ((unsigned char)text[at] & 0xC0) == 0x80)
        at--;
    memcpy(out, text, at);
    out[at] = '\0';
}

//  One typo in word (in place, ASCII letters only; longer words keep it
//  findable): two neighbours swapped, one dropped, or one replaced.
static void s_typo(char *word)
{
    size_t length = strlen(word);
    int letters[QUERY_TEXT_MAX];
    int count = 0;
    for (size_t index = 1; index < length && count < QUERY_TEXT_MAX; index++)
        if (word[index] >= 'a' && word[index] <= 'z') letters[count++] = (int)index;
    if (count < 2) return;
    int at = letters[s_below(count)];
    switch (s_below(3)) {
    case 0:
        if (at + 1 < (int)length && word[at + 1] >= 'a' && word[at + 1] <= 'z') {
            char swap = word[at];
            word[at] = word[at + 1];
            word[at + 1] = swap;
            break;
        }
        __attribute__((fallthrough)); // nothing to swap with: drop it instead
    case 1:
        memmove(word + at, word + at + 1, length - (size_t)at);
        break;
    default:
        word[at] = (char)('a' + s_below(26));
        if (word[at] == word[at - 1]) word[at] = word[at] == 'z' ? 'a' : (char)(word[at] + 1);
    }
}

//  Lower-case ASCII copy (names' accents are left: search normalises them).
static void s_lower(char *text)
{
    for (; *text; text++)
        if (*text >= 'A' && *text <= 'Z') *text = (char)(*text - 'A' + 'a');
}

static const char *s_pick(const json_t *array)
{
    return json_string_value(json_array_get(array, (size_t)s_below((int)json_array_size(array))));
}

static void s_make_query(const kind_t *kind, const json_t *samples, query_t *query)
{
    const json_t *names = json_object_get(samples, "names");
    const json_t *words = json_object_get(samples, "words");
    const json_t *tags = json_object_get(samples, "tags");
    const json_t *viewers = json_object_get(samples, "viewers");
    query->viewer = 0;
    if (s_below(10) < 8) {
        const char *viewer = s_pick(viewers);
        query->viewer = viewer ? strtoll(viewer, NULL, 10) : 0;
    }
    char buffer[QUERY_TEXT_MAX];
    query->text[0] = '\0';
    if (streq(kind->name, "users_prefix")) {
        s_utf8_prefix(s_pick(names), 1 + s_below(6), query->text, sizeof query->text);
    } else if (streq(kind->name, "users_typo")) {
        //  A first name, a last name or a username, at least 4 letters.
        snprintf(buffer, sizeof buffer, "%s", s_pick(names));
        s_lower(buffer);
        char *save = NULL, *part = strtok_r(buffer, " ", &save);
        if (s_below(2) == 1) {
            char *second = strtok_r(NULL, " ", &save);
            if (second) part = second;
        }
        if (!part || strlen(part) < 4) part = buffer;
        snprintf(query->text, sizeof query->text, "%s", part);
        s_typo(query->text);
    } else if (streq(kind->name, "posts")) {
        if (s_below(10) < 7)
            snprintf(query->text, sizeof query->text, "%s", s_pick(words));
        else
            snprintf(query->text, sizeof query->text, "%s %s", s_pick(words), s_pick(words));
    } else if (streq(kind->name, "hashtags")) {
        s_utf8_prefix(s_pick(tags), 1 + s_below(5), query->text, sizeof query->text);
    } else if (streq(kind->name, "tag_posts")) {
        snprintf(query->text, sizeof query->text, "%s", s_pick(tags));
    }
}

//  ---------------------------------------------------------------------
//  Measuring

static int s_compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

//  Nearest-rank percentile of sorted values.
static double s_percentile(const double *sorted, int count, double p)
{
    if (count == 0) return 0;
    int rank = (int)(p / 100.0 * count + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > count) rank = count;
    return sorted[rank - 1];
}

static void *s_worker(void *arg)
{
    run_t *run = arg;
    rpc_client_t *client = rpc_client_new(run->broker);
    if (!client) {
        atomic_fetch_add(&run->errors, 1);
        return NULL;
    }
    for (;;) {
        int index = atomic_fetch_add(&run->next, 1);
        if (index >= run->total) break;
        const query_t *query = &run->queries[index % run->count];
        json_t *args =
            run->kind->arg ? json_pack("{s:s}", run->kind->arg, query->text) : json_object();
        int64_t start = zclock_usecs();
        json_t *reply = rpc_call(client, "search", run->kind->method, query->viewer, args, NULL,
                                 envelope_now_ms() + run->timeout_ms);
        int64_t spent = zclock_usecs() - start;
        if (run->latency_ms) run->latency_ms[index] = (double)spent / 1000.0;
        if (reply_status(reply) != 200) {
            if (atomic_fetch_add(&run->errors, 1) < 3)
                fprintf(stderr, "search_bench: %s %s: status %d (%s)\n", run->kind->method,
                        query->text, reply_status(reply),
                        reply_error_code(reply) ? reply_error_code(reply) : "");
        }
        json_decref(reply);
        json_decref(args);
    }
    rpc_client_destroy(&client);
    return NULL;
}

//  Runs total calls of kind over threads; fills latency_ms when given.
//  Returns the errors and the wall time in *seconds.
static int s_run(const char *broker, const kind_t *kind, const query_t *queries, int count,
                 int total, int threads, double *latency_ms, double *seconds)
{
    run_t run = {.broker = broker,
                 .kind = kind,
                 .queries = queries,
                 .count = count,
                 .total = total,
                 .latency_ms = latency_ms,
                 .timeout_ms = 10000};
    atomic_init(&run.next, 0);
    atomic_init(&run.errors, 0);
    pthread_t thread[THREADS_MAX];
    int started = 0;
    int64_t start = zclock_usecs();
    for (int index = 0; index < threads; index++)
        if (pthread_create(&thread[started], NULL, s_worker, &run) == 0) started++;
    for (int index = 0; index < started; index++)
        pthread_join(thread[index], NULL);
    *seconds = (double)(zclock_usecs() - start) / 1e6;
    return started == 0 ? total : atomic_load(&run.errors);
}

//  ---------------------------------------------------------------------

//  Whether --kinds (required, all, or names separated by commas) names kind.
static bool s_kind_wanted(const kind_t *kind, const char *kinds)
{
    if (streq(kinds, "all")) return true;
    if (streq(kinds, "required")) return kind->required;
    size_t length = strlen(kind->name);
    for (const char *at = kinds; at && *at; at = strchr(at, ',') ? strchr(at, ',') + 1 : NULL)
        if (strncmp(at, kind->name, length) == 0 && (at[length] == ',' || at[length] == '\0'))
            return true;
    return false;
}

static int s_usage_error(const char *message)
{
    fprintf(stderr, "search_bench: %s (see search_bench --help)\n", message);
    return 2;
}

static bool s_number(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (!end || *end || end == text || value < min || value > max) return false;
    *out = value;
    return true;
}

int main(int argc, char **argv)
{
    if (config_wants_help(argc, argv, s_usage)) return 0;
    setenv("LOG_LEVEL", "warn", 0);
    log_init("search_bench");
    const char *broker = config_str("BROKER_URL", "tcp://127.0.0.1:5555");
    long users = 100000, posts = 1000000, queries = 2000, threads = 2, warmup = 200, seed = 42;
    const char *kinds = "required";
    const char *list_path = NULL;
    //  Every option takes a value: they come in pairs.
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = value != NULL;
        if (ok && streq(arg, "--broker"))
            broker = value;
        else if (ok && streq(arg, "--users"))
            ok = s_number(value, 1, 1000000, &users);
        else if (ok && streq(arg, "--posts"))
            ok = s_number(value, 0, 10000000, &posts);
        else if (ok && streq(arg, "--queries"))
            ok = s_number(value, 1, 10000000, &queries);
        else if (ok && streq(arg, "--threads"))
            ok = s_number(value, 1, THREADS_MAX, &threads);
        else if (ok && streq(arg, "--warmup"))
            ok = s_number(value, 0, 10000000, &warmup);
        else if (ok && streq(arg, "--seed"))
            ok = s_number(value, 0, 2147483647, &seed);
        else if (ok && streq(arg, "--kinds"))
            kinds = value;
        else if (ok && streq(arg, "--list"))
            list_path = value;
        else
            return s_usage_error("unknown option or bad value");
        if (!ok) return s_usage_error("a number is out of range");
    }
    s_rng ^= (uint64_t)seed * 0x9e3779b97f4a7c15ULL;
    if (s_rng == 0) s_rng = 1;

    //  1. Seed (or find the seed) and take the samples.
    rpc_client_t *client = rpc_client_new(broker);
    if (!client) return s_usage_error("cannot use the broker endpoint");
    json_t *args = json_pack("{s:I, s:I, s:I}", "users", (json_int_t)users, "posts",
                             (json_int_t)posts, "seed", (json_int_t)seed);
    int64_t start = zclock_usecs();
    json_t *reply =
        rpc_call(client, "search", "search.seed", 0, args, NULL, envelope_now_ms() + 3600000);
    json_decref(args);
    rpc_client_destroy(&client);
    if (reply_status(reply) != 200) {
        char *text = json_dumps(reply, JSON_COMPACT);
        fprintf(stderr, "search_bench: search.seed answered %s\n", text ? text : "?");
        free(text);
        json_decref(reply);
        return 2;
    }
    const json_t *samples = reply_body(reply);
    printf("search_bench seed users=%ld posts=%ld follows=%" JSON_INTEGER_FORMAT
           " hashtags=%" JSON_INTEGER_FORMAT " seeded=%s seconds=%.0f\n",
           users, posts, json_integer_value(json_object_get(samples, "follows")),
           json_integer_value(json_object_get(samples, "hashtags")),
           json_is_true(json_object_get(samples, "seeded")) ? "yes" : "no",
           (double)(zclock_usecs() - start) / 1e6);
    fflush(stdout);
    if (json_array_size(json_object_get(samples, "names")) == 0 ||
        json_array_size(json_object_get(samples, "tags")) == 0 ||
        json_array_size(json_object_get(samples, "viewers")) == 0) {
        fprintf(stderr, "search_bench: the seed answered no samples\n");
        json_decref(reply);
        return 2;
    }

    //  2 and 3. Each kind: its queries, a warm-up, the measured run.
    int failed = 0;
    int distinct = 1000; // queries per kind, used in a cycle
    query_t *list = calloc((size_t)distinct, sizeof *list);
    double *latency = calloc((size_t)queries, sizeof *latency);
    FILE *listing = list_path ? fopen(list_path, "w") : NULL;
    if (!list || !latency || (list_path && !listing)) {
        if (list_path && !listing) fprintf(stderr, "search_bench: cannot write %s\n", list_path);
        if (listing) fclose(listing);
        free(list);
        free(latency);
        json_decref(reply);
        return 2;
    }
    for (size_t k = 0; k < KIND_COUNT; k++) {
        const kind_t *kind = &s_kinds[k];
        if (!s_kind_wanted(kind, kinds)) continue;
        for (int index = 0; index < distinct; index++)
            s_make_query(kind, samples, &list[index]);
        for (int index = 0; listing && index < distinct; index++)
            fprintf(listing, "%s\t%" PRId64 "\t%s\n", kind->name, list[index].viewer,
                    list[index].text);
        double seconds = 0;
        if (warmup > 0)
            s_run(broker, kind, list, distinct, (int)warmup, (int)threads, NULL, &seconds);
        int errors =
            s_run(broker, kind, list, distinct, (int)queries, (int)threads, latency, &seconds);
        qsort(latency, (size_t)queries, sizeof *latency, s_compare);
        printf("search_bench kind=%s queries=%ld errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
               "max_ms=%.2f qps=%.0f\n",
               kind->name, queries, errors, s_percentile(latency, (int)queries, 50),
               s_percentile(latency, (int)queries, 90), s_percentile(latency, (int)queries, 99),
               latency[queries - 1], seconds > 0 ? (double)queries / seconds : 0);
        fflush(stdout);
        if (errors > 0) failed = 1;
    }
    if (listing) fclose(listing);
    free(list);
    free(latency);
    json_decref(reply);
    return failed;
}
