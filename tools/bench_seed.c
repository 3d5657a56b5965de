/*  bench_seed: seeds a running system through its public API, for `make bench`.

    bench_seed [options] seed     registers users, then follows, posts, likes
                                  and comments with skewed shapes, then
                                  conversations with messages; writes
                                  users.txt, posts.txt, tokens.txt and
                                  conversations.txt in --out
    bench_seed [options] tokens   signs in --tokens seeded users again and
                                  rewrites tokens.txt (access tokens live 15
                                  minutes; each scenario gets fresh ones)
    bench_seed [options] feedlag  measures the time to a post showing in a
                                  follower's feed, --samples times, both from
                                  the start of POST /posts (upload and image
                                  processing included) and from its 201
                                  reply; prints p50 and p99 of each in ms
    bench_seed [options] bulk     seeds the `default` and `large` scales
                                  through the services' own seed methods
                                  (identity.seed, graph.seed, media.seed,
                                  called through --broker), waits until
                                  every consumer has handled the events
                                  (--database), then signs --tokens users in
                                  and makes their conversations through the
                                  API; writes the same four files

    Everything goes through the gateway, as a client would: each service
    builds its projections from the events the writes cause, the normal way.
    The shapes follow real social graphs: who gets followed, who posts and
    which posts get liked are drawn with u^3 for u uniform in [0,1), so a few
    low-numbered accounts get most followers and most posts (a heavy tail),
    and likes and comments land on the newest fifth of the posts.

    Work is spread over --threads threads, each with its own keep-alive curl
    handle; a shared atomic counter hands out the next item.

    bulk. Registering 100,000 accounts through the API costs an argon2id
    hash each, and 1,000,000 posts an image each: hours. Each service's
    seed method (services/<name>/seed.c, docs/contracts.md) instead writes
    its own schema and outbox in set-based statements, a chunk a call, so
    consumers build their projections from the events the normal way.
    Stages: accounts (sharing one password hash), follows, one real post
    through the API (its image is what every seeded post shows), posts,
    then likes and comments. After the follows, the posts and the likes
    and comments, it polls (every 200 ms) each consumer's event_offsets
    row for the producer against the producer's outbox size, in the one
    database of the embedded system, and prints how long each consumer
    took to catch up after the stage's last write: lines
    "bulk: catchup <stage> <consumer> <seconds> <producer's events so far>",
    or "bulk: behind <stage> <consumer> <seconds> <handled> <events>" for one
    still working after --wait-max seconds (the run goes on). Seeded account i is
    bench_u<i> with the id ((86400000 + i) << 23) | (8190 << 10)
    (identity.seed's layout).

    Conversations (both modes, through POST /conversations and POST
    /conversations/{id}/messages, as clients would). They are only among
    the token users, bench_u0 .. bench_u<T-1> with T = min(--tokens,
    --users), the ones the scenarios sign in as: messaging answers 404 to
    anyone else, so a scenario reading another user's conversation would
    measure 404s. --conversations one-to-one conversations pair token user
    k mod T with the one d = 1 + k / T places further round the ring
    (distinct pairs while d < T / 2), and --groups groups of 8 (a creator
    and 7 others three places apart, when T >= 24); each gets --messages
    messages from its participants in turn. conversations.txt has one line
    "username conversation_id" per participant, so the wrk script picks a
    conversation of the signed-in user. With --conversations 0 and
    --groups 0 (the system has no messaging yet) there are none.
*/
#include "envelope.h"
#include "errors.h"
#include "rpc.h"

#include <czmq.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASSWORD "bench-password-1"

typedef struct {
    const char *url;
    const char *out;
    const char *image;
    int users, follows, posts, likes, comments, tokens, threads, samples;
    int conversations, groups, messages; // among the token users
    const char *broker;                  // bulk: the broker's client endpoint
    const char *database;                // bulk: the system's database (catch-up polling)
    int wait_max;                        // bulk: seconds a consumer may take to catch up
} options_t;

static options_t s_opt = {"http://127.0.0.1:18080",
                          "bench/out",
                          NULL,
                          1000,
                          20,
                          10,
                          50,
                          10,
                          200,
                          8,
                          50,
                          200,
                          5,
                          30,
                          "tcp://127.0.0.1:18100",
                          "postgresql://app@127.0.0.1:18090/app",
                          1800};

typedef struct {
    char id[24];
    char username[32];
    char *token;
} user_t;

static user_t *s_users;

#define GROUP_SIZE 8 // a seeded group: its creator and 7 others

typedef struct {
    int members[GROUP_SIZE]; // user indexes, the creator first
    int count;
    char id[24]; // set once created
} conversation_t;

static conversation_t *s_conversations;
static int s_conversation_count;
static char (*s_posts)[24];
static atomic_int s_next;
static atomic_int s_errors;
static atomic_int s_posts_made;

//  ---- HTTP --------------------------------------------------------------

typedef struct {
    char *data;
    size_t size;
} buffer_t;

static size_t s_collect(char *data, size_t size, size_t count, void *arg)
{
    buffer_t *buffer = arg;
    size_t more = size * count;
    char *grown = realloc(buffer->data, buffer->size + more + 1);
    if (!grown) return 0;
    memcpy(grown + buffer->size, data, more);
    buffer->data = grown;
    buffer->size += more;
    buffer->data[buffer->size] = '\0';
    return more;
}

//  Sends one request; returns the status and, when json_out is given, the
//  parsed body (caller decrefs). mime, when set, is the multipart body.
static long s_http(CURL *curl, const char *method, const char *path, const char *token,
                   const char *body, curl_mime *mime, json_t **json_out)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", s_opt.url, path);
    buffer_t buffer = {NULL, 0};
    struct curl_slist *headers = NULL;
    char auth[2048];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buffer);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (body) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    if (mime) curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (json_out) *json_out = buffer.data ? json_loads(buffer.data, 0, NULL) : NULL;
    free(buffer.data);
    curl_slist_free_all(headers);
    return status;
}

//  ---- skewed choices ----------------------------------------------------

static int s_skewed(unsigned *seed, int n)
{
    double u = (double)rand_r(seed) / ((double)RAND_MAX + 1.0);
    int index = (int)(n * u * u * u);
    return index < n ? index : n - 1;
}

static int s_uniform(unsigned *seed, int n)
{
    return (int)((double)rand_r(seed) / ((double)RAND_MAX + 1.0) * n);
}

//  ---- stages ------------------------------------------------------------

static void s_register_one(CURL *curl, int i)
{
    user_t *user = &s_users[i];
    snprintf(user->username, sizeof user->username, "bench_u%d", i);
    char body[256];
    snprintf(body, sizeof body,
             "{\"username\":\"%s\",\"email\":\"%s@bench.example\",\"password\":\"" PASSWORD
             "\",\"display_name\":\"Bench User %d\"}",
             user->username, user->username, i);
    json_t *reply = NULL;
    long status = s_http(curl, "POST", "/api/v1/auth/register", NULL, body, NULL, &reply);
    if (status == 409) { // already seeded earlier: sign in instead
        json_decref(reply);
        snprintf(body, sizeof body, "{\"login\":\"%s\",\"password\":\"" PASSWORD "\"}",
                 user->username);
        status = s_http(curl, "POST", "/api/v1/auth/login", NULL, body, NULL, &reply);
    }
    if (status != 200 && status != 201) {
        atomic_fetch_add(&s_errors, 1);
        json_decref(reply);
        return;
    }
    const char *id = json_string_value(json_object_get(json_object_get(reply, "user"), "id"));
    snprintf(user->id, sizeof user->id, "%s", id ? id : "");
    user->token = strdup(json_string_value(json_object_get(reply, "access_token")));
    json_decref(reply);
}

static void s_follow_one(CURL *curl, int i, unsigned *seed)
{
    for (int k = 0; k < s_opt.follows; k++) {
        int target = s_skewed(seed, s_opt.users);
        if (target == i) continue;
        char path[128];
        snprintf(path, sizeof path, "/api/v1/users/%s/follow", s_users[target].username);
        long status = s_http(curl, "POST", path, s_users[i].token, "{}", NULL, NULL);
        if (status != 200) atomic_fetch_add(&s_errors, 1);
    }
}

static const char *s_tags[] = {"sunset", "food",   "travel", "cats",    "nofilter",
                               "beach",  "coffee", "city",   "friends", "art"};

static long s_post(CURL *curl, int author, unsigned *seed, json_t **reply)
{
    curl_mime *mime = curl_mime_init(curl);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "image");
    curl_mime_filedata(part, s_opt.image);
    curl_mime_type(part, "image/jpeg");
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "caption");
    char caption[128];
    snprintf(caption, sizeof caption, "A photo by %s #%s #%s", s_users[author].username,
             s_tags[s_uniform(seed, 10)], s_tags[s_skewed(seed, 10)]);
    curl_mime_data(part, caption, CURL_ZERO_TERMINATED);
    long status = s_http(curl, "POST", "/api/v1/posts", s_users[author].token, NULL, mime, reply);
    curl_mime_free(mime);
    return status;
}

static void s_post_one(CURL *curl, unsigned *seed)
{
    int author = s_skewed(seed, s_opt.users);
    json_t *reply = NULL;
    if (s_post(curl, author, seed, &reply) == 201) {
        int slot = atomic_fetch_add(&s_posts_made, 1);
        const char *id = json_string_value(json_object_get(reply, "id"));
        snprintf(s_posts[slot], sizeof s_posts[slot], "%s", id ? id : "");
    } else {
        atomic_fetch_add(&s_errors, 1);
    }
    json_decref(reply);
}

//  Likes or comments on the newest fifth of the posts.
static void s_engage_one(CURL *curl, unsigned *seed, bool comment)
{
    int made = atomic_load(&s_posts_made);
    if (made == 0) return;
    int recent = made / 5 > 0 ? made / 5 : made;
    const char *post = s_posts[made - 1 - s_uniform(seed, recent)];
    int user = s_uniform(seed, s_opt.users);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s/%s", post, comment ? "comments" : "like");
    long status = s_http(curl, "POST", path, s_users[user].token,
                         comment ? "{\"text\":\"Nice one! #bench\"}" : "{}", NULL, NULL);
    if (status != 200 && status != 201) atomic_fetch_add(&s_errors, 1);
}

static void s_login_one(CURL *curl, int i)
{
    char body[160];
    snprintf(body, sizeof body, "{\"login\":\"bench_u%d\",\"password\":\"" PASSWORD "\"}", i);
    json_t *reply = NULL;
    if (s_http(curl, "POST", "/api/v1/auth/login", NULL, body, NULL, &reply) == 200) {
        free(s_users[i].token);
        s_users[i].token = strdup(json_string_value(json_object_get(reply, "access_token")));
        const char *id = json_string_value(json_object_get(json_object_get(reply, "user"), "id"));
        snprintf(s_users[i].id, sizeof s_users[i].id, "%s", id ? id : "");
        snprintf(s_users[i].username, sizeof s_users[i].username, "bench_u%d", i);
    } else {
        atomic_fetch_add(&s_errors, 1);
    }
    json_decref(reply);
}

//  The token users' conversations (see the file-top comment): pairs round
//  the ring, then groups. Returns how many were planned.
static int s_plan_conversations(void)
{
    int n_tokens = s_opt.tokens < s_opt.users ? s_opt.tokens : s_opt.users;
    int pairs = n_tokens >= 2 ? s_opt.conversations : 0;
    int groups = n_tokens >= 24 ? s_opt.groups : 0;
    if (pairs < 0) pairs = 0;
    if (groups < 0) groups = 0;
    s_conversations = calloc((size_t)(pairs + groups) + 1, sizeof *s_conversations);
    for (int k = 0; k < pairs; k++) {
        conversation_t *conversation = &s_conversations[k];
        int a = k % n_tokens, d = 1 + (k / n_tokens) % (n_tokens - 1);
        conversation->members[0] = a;
        conversation->members[1] = (a + d) % n_tokens;
        conversation->count = 2;
    }
    for (int g = 0; g < groups; g++) {
        conversation_t *conversation = &s_conversations[pairs + g];
        int creator = (g * 37) % n_tokens;
        conversation->members[0] = creator;
        for (int j = 1; j < GROUP_SIZE; j++)
            conversation->members[j] = (creator + 1 + 3 * (j - 1)) % n_tokens;
        conversation->count = GROUP_SIZE;
    }
    s_conversation_count = pairs + groups;
    return s_conversation_count;
}

//  Creates conversation k as its first member, then sends --messages
//  messages from its members in turn.
static void s_converse_one(CURL *curl, int k)
{
    conversation_t *conversation = &s_conversations[k];
    const user_t *creator = &s_users[conversation->members[0]];
    if (!creator->token) {
        atomic_fetch_add(&s_errors, 1);
        return;
    }
    json_t *names = json_array();
    for (int j = 1; j < conversation->count; j++)
        json_array_append_new(names, json_string(s_users[conversation->members[j]].username));
    json_t *args = json_pack("{s:o}", "participants", names);
    char *body = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    json_t *reply = NULL;
    long status = s_http(curl, "POST", "/api/v1/conversations", creator->token, body, NULL, &reply);
    free(body);
    const char *id = json_string_value(json_object_get(reply, "id"));
    if ((status != 200 && status != 201) || !id) { // 200: that 1:1 existed already
        atomic_fetch_add(&s_errors, 1);
        json_decref(reply);
        return;
    }
    snprintf(conversation->id, sizeof conversation->id, "%s", id);
    json_decref(reply);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation->id);
    for (int m = 0; m < s_opt.messages; m++) {
        const user_t *sender = &s_users[conversation->members[m % conversation->count]];
        char text[128];
        snprintf(text, sizeof text, "{\"text\":\"Bench message %d from %s\"}", m, sender->username);
        if (!sender->token || s_http(curl, "POST", path, sender->token, text, NULL, NULL) != 201)
            atomic_fetch_add(&s_errors, 1);
    }
}

typedef enum {
    STAGE_REGISTER,
    STAGE_FOLLOW,
    STAGE_POST,
    STAGE_LIKE,
    STAGE_COMMENT,
    STAGE_LOGIN,
    STAGE_CONVERSE
} stage_t;

typedef struct {
    stage_t stage;
    int count;
} stage_run_t;

static void *s_stage_thread(void *arg)
{
    stage_run_t *run = arg;
    CURL *curl = curl_easy_init();
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)pthread_self();
    int i;
    while ((i = atomic_fetch_add(&s_next, 1)) < run->count) {
        switch (run->stage) {
        case STAGE_REGISTER:
            s_register_one(curl, i);
            break;
        case STAGE_FOLLOW:
            s_follow_one(curl, i, &seed);
            break;
        case STAGE_POST:
            s_post_one(curl, &seed);
            break;
        case STAGE_LIKE:
            s_engage_one(curl, &seed, false);
            break;
        case STAGE_COMMENT:
            s_engage_one(curl, &seed, true);
            break;
        case STAGE_LOGIN:
            s_login_one(curl, i);
            break;
        case STAGE_CONVERSE:
            s_converse_one(curl, i);
            break;
        }
    }
    curl_easy_cleanup(curl);
    return NULL;
}

static void s_run_stage(const char *name, stage_t stage, int count)
{
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    atomic_store(&s_next, 0);
    int errors_before = atomic_load(&s_errors);
    stage_run_t run = {stage, count};
    pthread_t threads[64];
    int n = s_opt.threads < 64 ? s_opt.threads : 64;
    for (int t = 0; t < n; t++)
        pthread_create(&threads[t], NULL, s_stage_thread, &run);
    for (int t = 0; t < n; t++)
        pthread_join(threads[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    fprintf(stderr, "seed: %-9s %7d in %6.1f s (%d errors)\n", name, count, seconds,
            atomic_load(&s_errors) - errors_before);
}

//  ---- files -------------------------------------------------------------

static void s_write_files(bool users_and_posts)
{
    char path[512];
    FILE *file;
    if (users_and_posts) {
        snprintf(path, sizeof path, "%s/users.txt", s_opt.out);
        if ((file = fopen(path, "w"))) {
            for (int i = 0; i < s_opt.users; i++)
                if (s_users[i].id[0]) fprintf(file, "%s %s\n", s_users[i].id, s_users[i].username);
            fclose(file);
        }
        snprintf(path, sizeof path, "%s/posts.txt", s_opt.out);
        if ((file = fopen(path, "w"))) {
            int made = atomic_load(&s_posts_made);
            for (int i = 0; i < made; i++)
                if (s_posts[i][0]) fprintf(file, "%s\n", s_posts[i]);
            fclose(file);
        }
    }
    snprintf(path, sizeof path, "%s/tokens.txt", s_opt.out);
    if ((file = fopen(path, "w"))) {
        int n = s_opt.tokens < s_opt.users ? s_opt.tokens : s_opt.users;
        for (int i = 0; i < n; i++)
            if (s_users[i].token)
                fprintf(file, "%s %s %s\n", s_users[i].token, s_users[i].id, s_users[i].username);
        fclose(file);
    }
}

//  One line "username conversation_id" per participant of each conversation
//  made, for bench/lua/scenario.lua.
static void s_write_conversations(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/conversations.txt", s_opt.out);
    FILE *file = fopen(path, "w");
    if (!file) return;
    for (int k = 0; k < s_conversation_count; k++) {
        const conversation_t *conversation = &s_conversations[k];
        if (!conversation->id[0]) continue;
        for (int j = 0; j < conversation->count; j++)
            fprintf(file, "%s %s\n", s_users[conversation->members[j]].username, conversation->id);
    }
    fclose(file);
}

//  Seeds the token users' conversations and writes conversations.txt.
static void s_seed_conversations(void)
{
    if (s_plan_conversations() > 0) s_run_stage("converse", STAGE_CONVERSE, s_conversation_count);
    s_write_conversations();
}

//  ---- feed lag ----------------------------------------------------------

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_ms_since(const struct timespec *from)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - from->tv_sec) * 1e3 + (now.tv_nsec - from->tv_nsec) / 1e6;
}

//  Sorts ms[0..n) and prints " <prefix>p50_ms=… <prefix>p99_ms=…" (the
//  upper middle; the nearest rank below 99%).
static void s_print_quantiles(const char *prefix, double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof *ms, s_compare_double);
    printf(" %sp50_ms=%.1f %sp99_ms=%.1f", prefix, ms[n / 2], prefix, ms[(int)((n - 1) * 0.99)]);
}

//  bench_u1 follows bench_u0 after seeding (u0 is the most followed account
//  and may be past the fan-out threshold, which is the point: both paths).
//  Each sample is timed twice: from the start of POST /posts (the upload and
//  libvips' work included: what a poster waits for) and from its 201 reply
//  (the event path alone: outbox, broker, feed's consumer). The follower
//  polls GET /feed?limit=5 every 5 ms, so both carry up to ~5 ms plus one
//  GET /feed of resolution.
static int s_feed_lag(void)
{
    CURL *curl = curl_easy_init();
    unsigned seed = 7;
    s_login_one(curl, 0);
    s_login_one(curl, 1);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/users/%s/follow", s_users[0].username);
    s_http(curl, "POST", path, s_users[1].token, "{}", NULL, NULL);
    double *lags = calloc((size_t)s_opt.samples, sizeof *lags);
    double *after_reply = calloc((size_t)s_opt.samples, sizeof *after_reply);
    double *post_ms = calloc((size_t)s_opt.samples, sizeof *post_ms);
    int measured = 0;
    for (int i = 0; i < s_opt.samples; i++) {
        json_t *reply = NULL;
        struct timespec start, replied;
        clock_gettime(CLOCK_MONOTONIC, &start);
        if (s_post(curl, 0, &seed, &reply) != 201) {
            json_decref(reply);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &replied);
        char id[24];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(reply, "id")));
        json_decref(reply);
        for (int tries = 0; tries < 2000; tries++) { // bounded: 10 s at most
            json_t *feed = NULL;
            s_http(curl, "GET", "/api/v1/feed?limit=5", s_users[1].token, NULL, NULL, &feed);
            json_t *first = json_array_get(json_object_get(feed, "items"), 0);
            bool seen = first && streq(json_string_value(json_object_get(first, "id")) ?: "", id);
            json_decref(feed);
            double ms = s_ms_since(&start);
            if (seen) {
                after_reply[measured] = s_ms_since(&replied);
                post_ms[measured] = ms - after_reply[measured];
                lags[measured++] = ms;
                break;
            }
            if (ms > 10000) break;
            struct timespec pause = {0, 5 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    curl_easy_cleanup(curl);
    int rc = 1;
    if (measured == 0) {
        printf("feedlag samples=0\n");
        goto cleanup;
    }
    printf("feedlag samples=%d", measured);
    s_print_quantiles("", lags, measured);
    s_print_quantiles("after_reply_", after_reply, measured);
    s_print_quantiles("post_", post_ms, measured);
    printf("\n");
    rc = 0;
cleanup:
    free(lags);
    free(after_reply);
    free(post_ms);
    return rc;
}

//  ---- bulk: the services' seed methods -------------------------------------

#define BULK_POSTS_CHUNK 20000  // media.seed posts a call
#define BULK_ROWS_CHUNK 50000   // media.seed likes / comments a call
#define BULK_USERS_CHUNK 20000  // identity.seed accounts a call
#define BULK_CALL_MS 120000     // one seed call's deadline
#define BULK_POSTS_SAMPLE 10000 // post ids written to posts.txt

static rpc_client_t *s_rpc;
static json_t *s_post_ids; // every seeded post id, oldest first

static double s_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

//  Calls service.method with args (stolen); returns body.created, or -1
//  after printing the reply. With ids, appends the body's ids.
static long s_seed_call(const char *service, const char *method, json_t *args_stolen, json_t *ids)
{
    json_t *reply =
        rpc_call(s_rpc, service, method, 0, args_stolen, NULL, envelope_now_ms() + BULK_CALL_MS);
    json_decref(args_stolen);
    json_t *created = json_object_get(reply_body(reply), "created");
    long value = reply_status(reply) == 200 && json_is_integer(created)
                     ? (long)json_integer_value(created)
                     : -1;
    if (value < 0) {
        char *text = json_dumps(reply, JSON_COMPACT);
        fprintf(stderr, "bulk: %s %s failed: %s\n", service, method, text ? text : "?");
        free(text);
    } else if (ids)
        json_array_extend(ids, json_object_get(reply_body(reply), "ids"));
    json_decref(reply);
    return value;
}

//  Who consumes whom (the route tables of services/*/main.c and
//  services/search/projections.c).
static const struct {
    const char *producer;
    const char *consumers[7];
} s_consumers[] = {
    {"identity", {"graph", "media", "feed", "messaging", "search", "notification", NULL}},
    {"graph", {"feed", "search", "notification", NULL}},
    {"media", {"feed", "search", "notification", NULL}},
};

//  The first column of the first row of sql as an integer, or -1.
static long long s_pg_scalar(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    long long value = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return value;
}

//  Waits until every consumer of producer that exists in the database has
//  handled the producer's whole outbox; prints each one's time after
//  stage_end, or ("behind") how far one got when --wait-max passed first.
//  Returns 0, or -1 when the producer is unknown.
static int s_wait_consumers(PGconn *pg, const char *producer, const char *stage_name,
                            double stage_end)
{
    size_t which = 0;
    while (which < sizeof s_consumers / sizeof s_consumers[0] &&
           strcmp(s_consumers[which].producer, producer) != 0)
        which++;
    if (which == sizeof s_consumers / sizeof s_consumers[0]) return -1;
    const char *const *consumers = s_consumers[which].consumers;
    bool done[7] = {false};
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.outbox", producer);
    long long target = s_pg_scalar(pg, sql);
    for (int i = 0; consumers[i]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                 " ON n.oid = c.relnamespace"
                 " WHERE n.nspname = '%s' AND c.relname = 'event_offsets'",
                 consumers[i]);
        if (s_pg_scalar(pg, sql) != 1) done[i] = true; // not running here
    }
    while (true) {
        bool all = true;
        for (int i = 0; consumers[i]; i++) {
            if (done[i]) continue;
            snprintf(sql, sizeof sql,
                     "SELECT coalesce((SELECT last_seq FROM %s.event_offsets"
                     " WHERE producer = '%s'), 0)",
                     consumers[i], producer);
            if (s_pg_scalar(pg, sql) >= target) {
                done[i] = true;
                printf("bulk: catchup %s %s %.1f %lld\n", stage_name, consumers[i],
                       s_seconds() - stage_end, target);
                fflush(stdout);
            } else
                all = false;
        }
        if (all) break;
        if (s_seconds() - stage_end > s_opt.wait_max) {
            //  Reported, not fatal: the benchmark goes on with that consumer
            //  still working, and the report says so.
            for (int i = 0; consumers[i]; i++) {
                if (done[i]) continue;
                snprintf(sql, sizeof sql,
                         "SELECT coalesce((SELECT last_seq FROM %s.event_offsets"
                         " WHERE producer = '%s'), 0)",
                         consumers[i], producer);
                printf("bulk: behind %s %s %d %lld %lld\n", stage_name, consumers[i],
                       s_opt.wait_max, s_pg_scalar(pg, sql), target);
            }
            fflush(stdout);
            break;
        }
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return 0;
}

//  Calls media.seed likes or comments until total rows exist.
static long s_seed_engagement(const char *what, long total)
{
    long made = 0;
    for (int calls = 0; made < total && calls < 1000; calls++) {
        long want = total - made < BULK_ROWS_CHUNK ? total - made : BULK_ROWS_CHUNK;
        long got = s_seed_call(
            "media", "media.seed",
            json_pack("{s:s, s:i, s:i}", "what", what, "users", s_opt.users, "count", (int)want),
            NULL);
        if (got < 0) return -1;
        made += got;
    }
    return made;
}

static int s_bulk(void)
{
    PGconn *pg = PQconnectdb(s_opt.database);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bulk: cannot connect to %s: %s", s_opt.database, PQerrorMessage(pg));
        PQfinish(pg);
        return 1;
    }
    s_rpc = rpc_client_new(s_opt.broker);
    s_post_ids = json_array();
    int rc = 1;
    double start = s_seconds(), stage = start;
    long count = 0;

    //  Accounts.
    for (int from = 0; from < s_opt.users; from += BULK_USERS_CHUNK) {
        int n = s_opt.users - from < BULK_USERS_CHUNK ? s_opt.users - from : BULK_USERS_CHUNK;
        long got = s_seed_call(
            "identity", "identity.seed",
            json_pack("{s:i, s:i, s:s}", "from", from, "count", n, "password", PASSWORD), NULL);
        if (got < 0) goto cleanup;
        count += got;
    }
    printf("bulk: seed identity accounts=%ld seconds=%.1f\n", count, s_seconds() - stage);
    if (s_wait_consumers(pg, "identity", "accounts", s_seconds()) != 0) goto cleanup;

    //  Follows, about 1,000 followers (~50,000 edges at 50 each) a call.
    stage = s_seconds();
    count = 0;
    int per_call = s_opt.follows > 0 ? 50000 / s_opt.follows : 20000;
    if (per_call < 1) per_call = 1;
    if (per_call > 20000) per_call = 20000;
    for (int from = 0; from < s_opt.users; from += per_call) {
        int n = s_opt.users - from < per_call ? s_opt.users - from : per_call;
        long got = s_seed_call("graph", "graph.seed",
                               json_pack("{s:i, s:i, s:i, s:i}", "users", s_opt.users, "from", from,
                                         "count", n, "follows", s_opt.follows),
                               NULL);
        if (got < 0) goto cleanup;
        count += got;
    }
    printf("bulk: seed graph follows=%ld seconds=%.1f\n", count, s_seconds() - stage);
    fflush(stdout);
    if (s_wait_consumers(pg, "graph", "follows", s_seconds()) != 0) goto cleanup;

    //  One real post through the API: its stored image is every seeded
    //  post's image.
    CURL *curl = curl_easy_init();
    unsigned seed = 11;
    json_t *reply = NULL;
    s_login_one(curl, 0);
    long status = s_users[0].token ? s_post(curl, 0, &seed, &reply) : 0;
    curl_easy_cleanup(curl);
    char image_post[24] = "";
    const char *id = json_string_value(json_object_get(reply, "id"));
    snprintf(image_post, sizeof image_post, "%s", id ? id : "");
    json_decref(reply);
    if (status != 201 || !image_post[0]) {
        fprintf(stderr, "bulk: the image post through the API failed (%ld)\n", status);
        goto cleanup;
    }

    //  Posts, spread over the 30 days before now (one end_ms for every chunk).
    stage = s_seconds();
    count = 0;
    json_int_t end_ms = envelope_now_ms() - 60000;
    for (int from = 0; from < s_opt.posts; from += BULK_POSTS_CHUNK) {
        int n = s_opt.posts - from < BULK_POSTS_CHUNK ? s_opt.posts - from : BULK_POSTS_CHUNK;
        long got = s_seed_call("media", "media.seed",
                               json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:I}", "what", "posts",
                                         "users", s_opt.users, "from", from, "count", n, "total",
                                         s_opt.posts, "image_post", image_post, "end_ms", end_ms),
                               s_post_ids);
        if (got < 0) goto cleanup;
        count += got;
    }
    printf("bulk: seed media posts=%ld seconds=%.1f\n", count, s_seconds() - stage);
    fflush(stdout);
    if (s_wait_consumers(pg, "media", "posts", s_seconds()) != 0) goto cleanup;

    //  Likes and comments on recent posts.
    stage = s_seconds();
    long likes = s_seed_engagement("likes", s_opt.likes);
    long comments = likes >= 0 ? s_seed_engagement("comments", s_opt.comments) : -1;
    if (likes < 0 || comments < 0) goto cleanup;
    printf("bulk: seed media likes=%ld comments=%ld seconds=%.1f\n", likes, comments,
           s_seconds() - stage);
    fflush(stdout);
    if (s_wait_consumers(pg, "media", "likes+comments", s_seconds()) != 0) goto cleanup;

    //  Fresh planner statistics and visibility maps, dead rows gone, as a
    //  settled database has them some time after a bulk import: without
    //  the vacuum, autovacuum was still working through the 4 GB of the
    //  `default` import when the first scenarios started, and index-only
    //  scans fetched heap pages (13,259 in one trim statement's plan).
    stage = s_seconds();
    PQclear(PQexec(pg, "VACUUM (ANALYZE)"));
    printf("bulk: vacuum analyze seconds=%.1f\n", s_seconds() - stage);
    printf("bulk: total seconds=%.1f\n", s_seconds() - start);
    fflush(stdout);

    //  The files the scenarios read: every account, a spread of posts.
    for (int i = 0; i < s_opt.users; i++) {
        snprintf(s_users[i].username, sizeof s_users[i].username, "bench_u%d", i);
        snprintf(s_users[i].id, sizeof s_users[i].id, "%lld",
                 (long long)(((86400000LL + i) << 23) | (8190LL << 10)));
    }
    size_t total = json_array_size(s_post_ids);
    size_t step = total > BULK_POSTS_SAMPLE ? total / BULK_POSTS_SAMPLE : 1;
    for (size_t i = 0; i < total && s_posts_made < s_opt.posts; i += step) {
        int slot = atomic_fetch_add(&s_posts_made, 1);
        snprintf(s_posts[slot], sizeof s_posts[slot], "%s",
                 json_string_value(json_array_get(s_post_ids, i)));
    }
    s_write_files(true);
    rc = 0;
cleanup:
    json_decref(s_post_ids);
    rpc_client_destroy(&s_rpc);
    PQfinish(pg);
    return rc;
}

//  ---- main --------------------------------------------------------------

static const char *s_usage =
    "usage: bench_seed [--url URL] [--out DIR] [--image JPEG] [--users N] [--follows N]\n"
    "                  [--posts N] [--likes N] [--comments N] [--tokens N] [--threads N]\n"
    "                  [--samples N] [--broker URL] [--database URL] [--wait-max S]\n"
    "                  [--conversations N] [--groups N] [--messages N]\n"
    "                  seed|tokens|feedlag|bulk\n"
    "Seeds a running system for `make bench` (see bench/run.sh): through its public API\n"
    "(seed), or through the services' seed methods (bulk; needs the broker and the\n"
    "system's database, and the services started with *_SEED_ENABLED=1).\n";

//  The --options: each sets one field of s_opt, a text or a number.
static const struct {
    const char *name;
    const char **text;
    int *number;
} s_options[] = {
    {"--url", &s_opt.url, NULL},
    {"--out", &s_opt.out, NULL},
    {"--image", &s_opt.image, NULL},
    {"--broker", &s_opt.broker, NULL},
    {"--database", &s_opt.database, NULL},
    {"--users", NULL, &s_opt.users},
    {"--follows", NULL, &s_opt.follows},
    {"--posts", NULL, &s_opt.posts},
    {"--likes", NULL, &s_opt.likes},
    {"--comments", NULL, &s_opt.comments},
    {"--tokens", NULL, &s_opt.tokens},
    {"--threads", NULL, &s_opt.threads},
    {"--samples", NULL, &s_opt.samples},
    {"--wait-max", NULL, &s_opt.wait_max},
    {"--conversations", NULL, &s_opt.conversations},
    {"--groups", NULL, &s_opt.groups},
    {"--messages", NULL, &s_opt.messages},
};

//  Sets option name to value. 0, or -1 for an unknown name.
static int s_set_option(const char *name, const char *value)
{
    for (size_t i = 0; i < sizeof s_options / sizeof s_options[0]; i++) {
        if (!streq(name, s_options[i].name)) continue;
        if (s_options[i].text)
            *s_options[i].text = value;
        else
            *s_options[i].number = atoi(value);
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *command = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (streq(arg, "--help") || streq(arg, "-h")) {
            fputs(s_usage, stdout);
            return 0;
        }
        if (arg[0] != '-') {
            command = arg;
            continue;
        }
        if (!value) {
            fputs(s_usage, stderr);
            return 2;
        }
        i++;
        if (s_set_option(arg, value) != 0) {
            fputs(s_usage, stderr);
            return 2;
        }
    }
    if (!command || s_opt.users < 2 || s_opt.threads < 1) {
        fputs(s_usage, stderr);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s_users = calloc((size_t)s_opt.users, sizeof *s_users);
    s_posts = calloc((size_t)s_opt.posts + 1, sizeof *s_posts);
    int rc = 0;
    if (streq(command, "seed")) {
        s_run_stage("register", STAGE_REGISTER, s_opt.users);
        s_run_stage("follow", STAGE_FOLLOW, s_opt.users);
        if (s_opt.image) {
            s_run_stage("post", STAGE_POST, s_opt.posts);
            s_run_stage("like", STAGE_LIKE, s_opt.likes);
            s_run_stage("comment", STAGE_COMMENT, s_opt.comments);
        }
        s_seed_conversations();
        s_write_files(true);
    } else if (streq(command, "tokens")) {
        s_run_stage("login", STAGE_LOGIN, s_opt.tokens < s_opt.users ? s_opt.tokens : s_opt.users);
        s_write_files(false);
    } else if (streq(command, "bulk")) {
        rc = s_opt.image ? s_bulk() : 2;
        if (rc == 0)
            s_run_stage("login", STAGE_LOGIN,
                        s_opt.tokens < s_opt.users ? s_opt.tokens : s_opt.users);
        if (rc == 0) s_seed_conversations();
        if (rc == 0) s_write_files(false);
    } else if (streq(command, "feedlag")) {
        rc = s_opt.image ? s_feed_lag() : 2;
    } else {
        fputs(s_usage, stderr);
        rc = 2;
    }
    for (int i = 0; i < s_opt.users; i++)
        free(s_users[i].token);
    free(s_users);
    free(s_posts);
    free(s_conversations);
    curl_global_cleanup();
    return rc ? rc : (atomic_load(&s_errors) > 0 ? 3 : 0);
}
