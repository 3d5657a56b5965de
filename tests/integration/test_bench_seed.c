/*  test_bench_seed: what `make bench` relies on from tools/bench_seed.c and
    bench/lua/scenario.lua for the direct-message scenarios and the feed lag
    (bench/run.sh), against a small stack (identity, graph, media, feed,
    messaging; base port 19250).

      - `bench_seed seed` with --conversations/--groups/--messages makes the
        planned one-to-one conversations and groups among the token users
        only, each with its messages, and conversations.txt lists exactly
        their participants: every listed user reads the conversation (200,
        the messages sent), every other token user gets 404 (what the
        scenario would measure if it picked them);
      - with --conversations 0 --groups 0 (no messaging) the file is empty;
      - wrk with bench/lua/scenario.lua messages_list and message_send
        serves requests with no non-2xx (the token/conversation join);
      - `bench_seed feedlag` prints p50/p99 from the start of POST /posts,
        from its reply, and of POST /posts itself, consistently.

    bench_seed is the one next to the stack's programs (<dir of argv[0]>/
    ../../bin), so a SAN=1 run checks it under the sanitizers too. Every
    child is bounded (curl timeouts, wrk -d1s, feedlag's own 10 s a sample).
*/
#include "fixtures.h"
#include "harness.h"

#include <czmq.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#define BASE_PORT 19250
#define USERS 30
#define PAIRS 12
#define GROUPS 2
#define MESSAGES 3
#define MAX_LINES 128

static char s_seed_bin[1024];
static char s_dir[64];

typedef struct {
    char a[512];
    char b[512];
} pair_t;

//  Runs a shell command; returns its stdout (caller frees) and sets *rc to
//  its exit status (-1 when it did not exit normally).
static char *s_run(int *rc, const char *fmt, ...)
{
    char command[4096];
    va_list args;
    va_start(args, fmt);
    vsnprintf(command, sizeof command, fmt, args);
    va_end(args);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    size_t size = 0, cap = 4096;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + size, 1, cap - size - 1, pipe)) > 0) {
        size += got;
        if (cap - size < 1024) out = realloc(out, cap *= 2);
    }
    out[size] = '\0';
    int status = pclose(pipe);
    *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

//  Reads "<a> ... <b>" lines of path: a the first word, b the word at
//  index b_word (0-based). Returns the count.
static int s_read_pairs(const char *path, int b_word, pair_t *pairs, int max)
{
    FILE *file = fopen(path, "r");
    if (!file) return -1;
    char line[2048];
    int n = 0;
    while (n < max && fgets(line, sizeof line, file)) {
        char *save = NULL, *word = strtok_r(line, " \n", &save);
        if (!word) continue;
        snprintf(pairs[n].a, sizeof pairs[n].a, "%s", word);
        for (int i = 1; i <= b_word && word; i++)
            word = strtok_r(NULL, " \n", &save);
        snprintf(pairs[n].b, sizeof pairs[n].b, "%s", word ? word : "");
        n++;
    }
    fclose(file);
    return n;
}

static void test_conversations_among_token_users(void **state)
{
    (void)state;
    int rc;
    free(s_run(&rc,
               "%s --url %s --out %s --users %d --tokens %d --threads 4 --conversations %d"
               " --groups %d --messages %d seed",
               s_seed_bin, harness_base_url(), s_dir, USERS, USERS, PAIRS, GROUPS, MESSAGES));
    assert_int_equal(rc, 0);

    char path[256];
    static pair_t tokens[MAX_LINES], members[MAX_LINES]; // token→name, name→conversation
    snprintf(path, sizeof path, "%s/tokens.txt", s_dir);
    assert_int_equal(s_read_pairs(path, 2, tokens, MAX_LINES), USERS);
    snprintf(path, sizeof path, "%s/conversations.txt", s_dir);
    int lines = s_read_pairs(path, 1, members, MAX_LINES);
    assert_int_equal(lines, PAIRS * 2 + GROUPS * 8);

    //  Each distinct conversation: its listed members read it, no one else does.
    int conversations = 0, groups = 0;
    for (int i = 0; i < lines; i++) {
        bool first = true;
        for (int j = 0; j < i; j++)
            if (streq(members[j].b, members[i].b)) first = false;
        if (!first) continue;
        conversations++;
        const char *id = members[i].b;
        int listed = 0;
        for (int t = 0; t < USERS; t++) {
            bool member = false;
            for (int j = 0; j < lines; j++)
                if (streq(members[j].b, id) && streq(members[j].a, tokens[t].b)) member = true;
            listed += member;
            char url[128];
            http_response_t page;
            snprintf(url, sizeof url, "/api/v1/conversations/%s/messages", id);
            long status = fx_call("GET", url, tokens[t].a, NULL, &page);
            assert_int_equal(status, member ? 200 : 404);
            if (member)
                assert_int_equal(json_array_size(json_object_get(page.json, "items")), MESSAGES);
            http_response_clear(&page);
        }
        assert_true(listed == 2 || listed == 8);
        groups += listed == 8;
    }
    assert_int_equal(conversations, PAIRS + GROUPS);
    assert_int_equal(groups, GROUPS);
}

static void test_no_conversations_when_asked_for_none(void **state)
{
    (void)state;
    char out[128], path[256];
    snprintf(out, sizeof out, "%s/none", s_dir);
    int rc;
    free(s_run(&rc,
               "mkdir -p %s && %s --url %s --out %s --users 2 --tokens 2 --threads 2"
               " --conversations 0 --groups 0 seed",
               out, s_seed_bin, harness_base_url(), out));
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/conversations.txt", out);
    FILE *file = fopen(path, "r");
    assert_non_null(file);
    assert_int_equal(fgetc(file), EOF);
    fclose(file);
}

//  wrk's "N requests in" and whether it reported non-2xx answers.
static void s_wrk(const char *scenario)
{
    int rc;
    char *out = s_run(&rc, "wrk -t1 -c2 -d1s -s %s/bench/lua/scenario.lua %s -- %s %s 2>&1",
                      harness_repo_dir(), harness_base_url(), scenario, s_dir);
    assert_int_equal(rc, 0);
    const char *served = strstr(out, " requests in ");
    assert_non_null(served);
    while (served > out && served[-1] != '\n' && served[-1] != ' ')
        served--;
    if (atoi(served) <= 0 || strstr(out, "Non-2xx")) print_message("%s\n", out);
    assert_true(atoi(served) > 0);
    assert_null(strstr(out, "Non-2xx"));
    free(out);
}

static void test_wrk_scenarios_answer_2xx(void **state)
{
    (void)state;
    s_wrk("messages_list");
    s_wrk("message_send");
}

//  The value of key=… in a "feedlag k=v …" line, or -1.
static double s_value(const char *line, const char *key)
{
    char needle[64];
    snprintf(needle, sizeof needle, " %s=", key);
    const char *at = strstr(line, needle);
    return at ? atof(at + strlen(needle)) : -1;
}

static void test_feedlag_prints_both_lags(void **state)
{
    (void)state;
    size_t size = 0;
    unsigned char *png = fx_png(3, &size);
    char image[128];
    snprintf(image, sizeof image, "%s/image.png", s_dir);
    FILE *file = fopen(image, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(png, 1, size, file), size);
    fclose(file);
    free(png);
    int rc;
    char *line = s_run(&rc, "%s --url %s --out %s --users 2 --samples 3 --image %s feedlag",
                       s_seed_bin, harness_base_url(), s_dir, image);
    if (rc != 0) print_message("%s\n", line);
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(line, "feedlag samples=3 ", 18), 0);
    double p50 = s_value(line, "p50_ms"), p99 = s_value(line, "p99_ms");
    double after50 = s_value(line, "after_reply_p50_ms"),
           after99 = s_value(line, "after_reply_p99_ms");
    double post50 = s_value(line, "post_p50_ms"), post99 = s_value(line, "post_p99_ms");
    assert_true(p50 > 0 && p99 >= p50);
    assert_true(after50 >= 0 && after99 >= after50 && after50 <= p50 && after99 <= p99);
    assert_true(post50 > 0 && post99 >= post50 && post50 <= p50);
    free(line);
}

int main(int argc, char **argv)
{
    (void)argc;
    zsys_handler_set(NULL);
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(s_seed_bin, sizeof s_seed_bin, "%s/../../bin/bench_seed", dirname(self));
    snprintf(s_dir, sizeof s_dir, "/tmp/test_bench_seed.XXXXXX");
    if (!mkdtemp(s_dir)) return 1;
    static const char *const services[] = {"identity", "graph", "media", "feed", "messaging", NULL};
    static const char *const env[] = {"AUTH_RATE_LIMIT_PER_MIN=0", NULL};
    harness_config_t config = {
        .name = "bench_seed", .base_port = BASE_PORT, .services = services, .env = env};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversations_among_token_users),
        cmocka_unit_test(test_no_conversations_when_asked_for_none),
        cmocka_unit_test(test_wrk_scenarios_answer_2xx),
        cmocka_unit_test(test_feedlag_prints_both_lags),
    };
    int failed = cmocka_run_group_tests_name("bench_seed", tests, NULL, NULL);
    int problems = harness_stop(failed);
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", s_dir);
    if (system(command) != 0) problems++;
    return failed || problems ? 1 : 0;
}
