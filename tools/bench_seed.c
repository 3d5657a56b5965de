/*  bench_seed: seeds a running system through its public API, for `make bench`.

    bench_seed [options] seed     registers users, then follows, posts, likes
                                  and comments with skewed shapes; writes
                                  users.txt, posts.txt and tokens.txt in --out
    bench_seed [options] tokens   signs in --tokens seeded users again and
                                  rewrites tokens.txt (access tokens live 15
                                  minutes; each scenario gets fresh ones)
    bench_seed [options] feedlag  measures the time from POST /posts to the
                                  post showing in a follower's feed, --samples
                                  times; prints p50 and p99 in ms

    Everything goes through the gateway, as a client would: each service
    builds its projections from the events the writes cause, the normal way.
    The shapes follow real social graphs: who gets followed, who posts and
    which posts get liked are drawn with u^3 for u uniform in [0,1), so a few
    low-numbered accounts get most followers and most posts (a heavy tail),
    and likes and comments land on the newest fifth of the posts.

    Work is spread over --threads threads, each with its own keep-alive curl
    handle; a shared atomic counter hands out the next item.
*/
#include <czmq.h>
#include <curl/curl.h>
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
} options_t;

static options_t s_opt = {
    "http://127.0.0.1:18080", "bench/out", NULL, 1000, 20, 10, 50, 10, 200, 8, 50};

typedef struct {
    char id[24];
    char username[32];
    char *token;
} user_t;

static user_t *s_users;
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

typedef enum {
    STAGE_REGISTER,
    STAGE_FOLLOW,
    STAGE_POST,
    STAGE_LIKE,
    STAGE_COMMENT,
    STAGE_LOGIN
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

//  ---- feed lag ----------------------------------------------------------

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  bench_u1 follows bench_u0 after seeding (u0 is the most followed account
//  and may be past the fan-out threshold, which is the point: both paths).
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
    int measured = 0;
    for (int i = 0; i < s_opt.samples; i++) {
        json_t *reply = NULL;
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        if (s_post(curl, 0, &seed, &reply) != 201) {
            json_decref(reply);
            continue;
        }
        char id[24];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(reply, "id")));
        json_decref(reply);
        for (int tries = 0; tries < 2000; tries++) { // bounded: 10 s at most
            json_t *feed = NULL;
            s_http(curl, "GET", "/api/v1/feed?limit=5", s_users[1].token, NULL, NULL, &feed);
            json_t *first = json_array_get(json_object_get(feed, "items"), 0);
            bool seen = first && streq(json_string_value(json_object_get(first, "id")) ?: "", id);
            json_decref(feed);
            clock_gettime(CLOCK_MONOTONIC, &now);
            double ms = (now.tv_sec - start.tv_sec) * 1e3 + (now.tv_nsec - start.tv_nsec) / 1e6;
            if (seen) {
                lags[measured++] = ms;
                break;
            }
            if (ms > 10000) break;
            struct timespec pause = {0, 5 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    curl_easy_cleanup(curl);
    if (measured == 0) {
        printf("feedlag samples=0\n");
        free(lags);
        return 1;
    }
    qsort(lags, (size_t)measured, sizeof *lags, s_compare_double);
    printf("feedlag samples=%d p50_ms=%.1f p99_ms=%.1f\n", measured, lags[measured / 2],
           lags[(int)((measured - 1) * 0.99)]);
    free(lags);
    return 0;
}

//  ---- main --------------------------------------------------------------

static const char *s_usage =
    "usage: bench_seed [--url URL] [--out DIR] [--image JPEG] [--users N] [--follows N]\n"
    "                  [--posts N] [--likes N] [--comments N] [--tokens N] [--threads N]\n"
    "                  [--samples N] seed|tokens|feedlag\n"
    "Seeds a running system through its public API for `make bench` (see bench/run.sh).\n";

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
        if (streq(arg, "--url"))
            s_opt.url = value;
        else if (streq(arg, "--out"))
            s_opt.out = value;
        else if (streq(arg, "--image"))
            s_opt.image = value;
        else if (streq(arg, "--users"))
            s_opt.users = atoi(value);
        else if (streq(arg, "--follows"))
            s_opt.follows = atoi(value);
        else if (streq(arg, "--posts"))
            s_opt.posts = atoi(value);
        else if (streq(arg, "--likes"))
            s_opt.likes = atoi(value);
        else if (streq(arg, "--comments"))
            s_opt.comments = atoi(value);
        else if (streq(arg, "--tokens"))
            s_opt.tokens = atoi(value);
        else if (streq(arg, "--threads"))
            s_opt.threads = atoi(value);
        else if (streq(arg, "--samples"))
            s_opt.samples = atoi(value);
        else {
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
        s_write_files(true);
    } else if (streq(command, "tokens")) {
        s_run_stage("login", STAGE_LOGIN, s_opt.tokens < s_opt.users ? s_opt.tokens : s_opt.users);
        s_write_files(false);
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
    curl_global_cleanup();
    return rc ? rc : (atomic_load(&s_errors) > 0 ? 3 : 0);
}
