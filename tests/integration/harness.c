/*  harness: starts and stops a whole stack for an integration suite, and
    talks HTTP to its gateway (see harness.h for the contract).

    The stack is one global: a suite runs one stack at a time, cmocka tests
    are plain functions without a fixture to carry it, and the atexit and
    signal paths need to find the children anyway. Children are tracked in
    start order; stopping walks that list backwards (gateway first, broker
    last), so no program loses its peer while it still has work in flight.

    Everything is bounded: the readiness wait, each HTTP request, each
    child's shutdown (SIGTERM, then SIGKILL after HARNESS_STOP_MS), so a
    broken program makes a test fail, never hang.
*/
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HARNESS_MAX_CHILDREN 16
#define HARNESS_MAX_ENV 256
#define HARNESS_STOP_MS 20000
#define HARNESS_HTTP_TIMEOUT_MS 30000
#define HARNESS_DEFAULT_SECRET "harness-test-jwt-secret-0123456789abcdef"

typedef struct {
    char name[64];
    char log_path[PATH_MAX];
    pid_t pid;
} child_t;

static bool s_atexit_set;

static struct {
    bool running;
    char suite[64];
    char repo[PATH_MAX];
    char bin[PATH_MAX];
    char tmp[PATH_MAX];    // logs, and the private cluster when there is one
    char pg_dir[PATH_MAX]; // set when we started a cluster with pg.sh
    char admin_url[1024];  // where CREATE/DROP DATABASE run
    char db_name[128];
    char db_url[2048];
    char base_url[64];
    char broker_url[64];
    child_t children[HARNESS_MAX_CHILDREN];
    int child_count;
    int ready_timeout_ms;
    int problems; // found before harness_stop (harness_wait_exit, harness_restart)
} s_stack;

static void s_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

//  snprintf that reports truncation instead of hiding it (paths here come
//  from mkdtemp and realpath and are short, but a cut path must not be used).
static bool s_format(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool s_format(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool s_exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (!s_format(path, sizeof path, "%s/%s", dir, name)) return false;
    return access(path, F_OK) == 0;
}

//  ---- locating the tree ----------------------------------------------------

static int s_locate(const char *argv0)
{
    char self[PATH_MAX];
    if (!realpath(argv0, self)) {
        s_say("cannot resolve %s: %s", argv0, strerror(errno));
        return -1;
    }
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    //  <build>/tests/integration/test_x -> <build>/bin
    char bin[PATH_MAX + 16];
    snprintf(bin, sizeof bin, "%s/../../bin", self);
    if (!realpath(bin, s_stack.bin)) {
        s_say("no bin folder at %s", bin);
        return -1;
    }
    //  The repository: the nearest parent holding schemas/ and scripts/.
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self);
    while (true) {
        if (s_exists(dir, "schemas") && s_exists(dir, "scripts/pg.sh")) {
            snprintf(s_stack.repo, sizeof s_stack.repo, "%s", dir);
            return 0;
        }
        char *last = strrchr(dir, '/');
        if (!last || last == dir) break;
        *last = '\0';
    }
    s_say("cannot find the repository (schemas/ and scripts/pg.sh) above %s", self);
    return -1;
}

//  ---- removing the temporary folder ------------------------------------

static int s_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void s_remove_tree(const char *path)
{
    if (*path) nftw(path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

//  ---- the database -----------------------------------------------------

static int s_run_admin(const char *sql)
{
    PGconn *conn = PQconnectdb(s_stack.admin_url);
    if (PQstatus(conn) != CONNECTION_OK) {
        s_say("cannot connect to %s: %s", s_stack.admin_url, PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    PGresult *res = PQexec(conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc) s_say("%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return rc;
}

//  Appends key='value' (libpq quoting) to out.
static void s_conninfo_append(char *out, size_t size, const char *key, const char *value)
{
    size_t used = strlen(out);
    if (used + 1 >= size) return;
    int n = snprintf(out + used, size - used, "%s%s='", used ? " " : "", key);
    if (n < 0 || (size_t)n >= size - used) return;
    used += (size_t)n;
    for (const char *p = value; *p && used + 3 < size; p++) {
        if (*p == '\'' || *p == '\\') out[used++] = '\\';
        out[used++] = *p;
    }
    if (used + 1 < size) out[used++] = '\'';
    out[used] = '\0';
}

static int s_start_private_cluster(int port)
{
    s_format(s_stack.pg_dir, sizeof s_stack.pg_dir, "%s/pg", s_stack.tmp);
    char command[PATH_MAX * 3];
    s_format(command, sizeof command,
             "PG_FAST=1 bash '%s/scripts/pg.sh' start '%s' %d 2>>'%s/pg.log'", s_stack.repo,
             s_stack.pg_dir, port, s_stack.tmp);
    FILE *pipe = popen(command, "r");
    if (!pipe) {
        s_say("cannot run pg.sh");
        return -1;
    }
    char line[1024] = "";
    char url[1024] = "";
    while (fgets(line, sizeof line, pipe))
        if (strncmp(line, "postgres", 8) == 0) snprintf(url, sizeof url, "%s", line);
    int status = pclose(pipe);
    url[strcspn(url, "\r\n")] = '\0';
    if (status != 0 || !*url) {
        s_say("pg.sh start failed (see %s/pg.log)", s_stack.tmp);
        return -1;
    }
    snprintf(s_stack.admin_url, sizeof s_stack.admin_url, "%s", url);
    return 0;
}

static int s_database_create(int pg_port)
{
    const char *shared = getenv("TEST_DATABASE_URL");
    if (shared && *shared) {
        snprintf(s_stack.admin_url, sizeof s_stack.admin_url, "%s", shared);
    } else if (s_start_private_cluster(pg_port) != 0) {
        return -1;
    }
    //  it_<suite>_<pid>_<ms>: unique per run, so suites (and a crashed
    //  earlier run) never share a database.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(s_stack.db_name, sizeof s_stack.db_name, "it_%s_%d_%lld", s_stack.suite, (int)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", s_stack.db_name);
    if (s_run_admin(sql) != 0) {
        s_stack.db_name[0] = '\0';
        return -1;
    }
    char *error = NULL;
    PQconninfoOption *options = PQconninfoParse(s_stack.admin_url, &error);
    if (!options) {
        s_say("cannot parse %s: %s", s_stack.admin_url, error ? error : "");
        PQfreemem(error);
        return -1;
    }
    s_stack.db_url[0] = '\0';
    for (PQconninfoOption *o = options; o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
            s_conninfo_append(s_stack.db_url, sizeof s_stack.db_url, o->keyword, o->val);
    s_conninfo_append(s_stack.db_url, sizeof s_stack.db_url, "dbname", s_stack.db_name);
    PQconninfoFree(options);
    return 0;
}

static void s_database_drop(void)
{
    if (s_stack.db_name[0]) {
        char sql[256];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", s_stack.db_name);
        s_run_admin(sql);
        s_stack.db_name[0] = '\0';
    }
    if (s_stack.pg_dir[0]) {
        char command[PATH_MAX * 3];
        snprintf(command, sizeof command, "bash '%s/scripts/pg.sh' destroy '%s' >/dev/null 2>&1",
                 s_stack.repo, s_stack.pg_dir);
        if (system(command) != 0) s_say("pg.sh destroy %s failed", s_stack.pg_dir);
        s_stack.pg_dir[0] = '\0';
    }
}

//  ---- children ---------------------------------------------------------

typedef struct {
    char *entries[HARNESS_MAX_ENV + 1];
    int count;
} env_t;

//  Adds "NAME=value", replacing an earlier entry of the same name.
static void s_env_put(env_t *env, const char *entry)
{
    const char *equals = strchr(entry, '=');
    if (!equals) return;
    size_t name_length = (size_t)(equals - entry) + 1;
    for (int i = 0; i < env->count; i++) {
        if (strncmp(env->entries[i], entry, name_length) == 0) {
            free(env->entries[i]);
            env->entries[i] = strdup(entry);
            return;
        }
    }
    if (env->count < HARNESS_MAX_ENV) {
        env->entries[env->count++] = strdup(entry);
        env->entries[env->count] = NULL;
    }
}

static void s_env_putf(env_t *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_env_putf(env_t *env, const char *fmt, ...)
{
    char entry[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(entry, sizeof entry, fmt, ap);
    va_end(ap);
    s_env_put(env, entry);
}

static void s_env_clear(env_t *env)
{
    for (int i = 0; i < env->count; i++)
        free(env->entries[i]);
    env->count = 0;
    env->entries[0] = NULL;
}

//  The children's environment, kept from harness_start to harness_stop so
//  harness_restart starts a child again exactly as it was started.
static env_t s_child_env;

//  Starts name into the slot child (a new one, or the slot of a child that
//  is gone); its log is appended to. 0 or -1.
static int s_spawn_into(child_t *child, const char *name, char *const envp[])
{
    snprintf(child->name, sizeof child->name, "%s", name);
    s_format(child->log_path, sizeof child->log_path, "%s/%s.log", s_stack.tmp, name);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", s_stack.bin, name);
    if (access(path, X_OK) != 0) {
        s_say("%s is missing (build it first)", path);
        return -1;
    }
    int log_fd = open(child->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        s_say("cannot open %s: %s", child->log_path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(log_fd);
        return -1;
    }
    if (pid == 0) {
        //  Die with the test process, however it ends.
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0) dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        //  From the repository, so relative defaults (schemas, web) resolve.
        if (chdir(s_stack.repo) != 0) _exit(127);
        char *argv[] = {path, NULL};
        execve(path, argv, envp);
        _exit(127);
    }
    close(log_fd);
    child->pid = pid;
    return 0;
}

static int s_spawn(const char *name, char *const envp[])
{
    if (s_stack.child_count >= HARNESS_MAX_CHILDREN) return -1;
    if (s_spawn_into(&s_stack.children[s_stack.child_count], name, envp) != 0) return -1;
    s_stack.child_count++;
    return 0;
}

//  Shows the last lines of a child's log on stderr.
static void s_log_tail(const child_t *child, int lines)
{
    FILE *file = fopen(child->log_path, "r");
    if (!file) return;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    long start = size > 8192 ? size - 8192 : 0;
    fseek(file, start, SEEK_SET);
    char *text = calloc(1, (size_t)(size - start) + 1);
    size_t got = text ? fread(text, 1, (size_t)(size - start), file) : 0;
    fclose(file);
    if (!text) return;
    text[got] = '\0';
    const char *from = text + got;
    int seen = 0;
    while (from > text && seen <= lines) {
        from--;
        if (*from == '\n') seen++;
    }
    s_say("---- last lines of %s ----", child->log_path);
    fputs(from, stderr);
    fputc('\n', stderr);
    free(text);
}

//  True when the child's log holds a sanitizer report.
static bool s_log_has_report(const child_t *child)
{
    static const char *const patterns[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                           "runtime error:", NULL};
    FILE *file = fopen(child->log_path, "r");
    if (!file) return false;
    bool found = false;
    char line[4096];
    while (!found && fgets(line, sizeof line, file))
        for (int i = 0; patterns[i] && !found; i++)
            found = strstr(line, patterns[i]) != NULL;
    fclose(file);
    return found;
}

//  Reaps a child that already exited; true when it had.
static bool s_exited(child_t *child, int *status)
{
    if (child->pid <= 0) return true;
    pid_t pid = waitpid(child->pid, status, WNOHANG);
    return pid == child->pid;
}

//  Stops one child. Returns the number of problems it showed.
static int s_stop_child(child_t *child)
{
    if (child->pid <= 0) return 0;
    int problems = 0;
    int status = 0;
    bool gone = s_exited(child, &status);
    if (gone) {
        s_say("%s had already exited before the stop", child->name);
        problems++;
    } else {
        kill(child->pid, SIGTERM);
        long long deadline = s_now_ms() + HARNESS_STOP_MS;
        while (!(gone = s_exited(child, &status)) && s_now_ms() < deadline)
            s_sleep_ms(20);
        if (!gone) {
            s_say("%s did not stop within %d ms of SIGTERM; killing it", child->name,
                  HARNESS_STOP_MS);
            kill(child->pid, SIGKILL);
            waitpid(child->pid, &status, 0);
            problems++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                s_say("%s died of signal %d", child->name, WTERMSIG(status));
            else
                s_say("%s exited with status %d", child->name, WEXITSTATUS(status));
            problems++;
        }
    }
    child->pid = 0;
    if (s_log_has_report(child)) {
        s_say("%s printed a sanitizer report", child->name);
        problems++;
    }
    if (problems) s_log_tail(child, 40);
    return problems;
}

static void s_on_signal(int signal_number)
{
    //  Async-signal-safe: kill the children and leave with the signal.
    for (int i = 0; i < s_stack.child_count; i++)
        if (s_stack.children[i].pid > 0) kill(s_stack.children[i].pid, SIGKILL);
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

static void s_atexit(void)
{
    if (s_stack.running) harness_stop(1);
}

//  ---- start and stop -----------------------------------------------------

static int s_wait_ready(int timeout_ms)
{
    char url[128];
    snprintf(url, sizeof url, "%s/readyz", s_stack.base_url);
    long long deadline = s_now_ms() + timeout_ms;
    long last = 0;
    while (s_now_ms() < deadline) {
        for (int i = 0; i < s_stack.child_count; i++) {
            int status;
            if (s_exited(&s_stack.children[i], &status)) {
                s_say("%s exited during start (status %d)", s_stack.children[i].name, status);
                s_stack.children[i].pid = 0;
                s_log_tail(&s_stack.children[i], 40);
                return -1;
            }
        }
        CURL *curl = curl_easy_init();
        if (curl) {
            curl_easy_setopt(curl, CURLOPT_URL, url);
            curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
            curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
            curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
            FILE *sink = fopen("/dev/null", "w");
            curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
            if (curl_easy_perform(curl) == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &last);
            if (sink) fclose(sink);
            curl_easy_cleanup(curl);
            if (last == 200) return 0;
        }
        s_sleep_ms(100);
    }
    s_say("the stack was not ready within %d ms (last /readyz status %ld)", timeout_ms, last);
    for (int i = 0; i < s_stack.child_count; i++)
        s_log_tail(&s_stack.children[i], 15);
    return -1;
}

int harness_start(const harness_config_t *config, const char *argv0)
{
    if (s_stack.running) {
        s_say("a stack is already running");
        return -1;
    }
    memset(&s_stack, 0, sizeof s_stack);
    s_stack.running = true;
    if (!s_atexit_set) {
        atexit(s_atexit);
        s_atexit_set = true;
    }
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    //  The suite name goes into a database name: keep [a-z0-9_].
    size_t n = 0;
    for (const char *p = config->name ? config->name : "suite"; *p && n < 40; p++)
        s_stack.suite[n++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p : '_';
    s_stack.suite[n] = '\0';

    env_t env = {.count = 0};
    int base = config->base_port;
    if (s_locate(argv0) != 0) goto failed;
    snprintf(s_stack.tmp, sizeof s_stack.tmp, "/tmp/itest-%s-XXXXXX", s_stack.suite);
    if (!mkdtemp(s_stack.tmp)) {
        s_say("mkdtemp: %s", strerror(errno));
        s_stack.tmp[0] = '\0';
        goto failed;
    }
    //  Postgres runs as another user when we are root: let it reach pg/.
    chmod(s_stack.tmp, 0755);
    if (s_database_create(base + 4) != 0) goto failed;

    for (char **e = environ; *e; e++)
        s_env_put(&env, *e);
    s_env_putf(&env, "BROKER_URL=tcp://127.0.0.1:%d", base + 1);
    s_env_putf(&env, "EVENTS_PUB_URL=tcp://127.0.0.1:%d", base + 2);
    s_env_putf(&env, "EVENTS_SUB_URL=tcp://127.0.0.1:%d", base + 3);
    s_env_putf(&env, "GATEWAY_LISTEN=127.0.0.1:%d", base);
    s_env_putf(&env, "DATABASE_URL=%s", s_stack.db_url);
    s_env_putf(&env, "SCHEMAS_DIR=%s/schemas", s_stack.repo);
    s_env_putf(&env, "MEDIA_DIR=%s/media", s_stack.tmp);
    s_env_putf(&env, "WEB_ROOT=%s/web", s_stack.repo);
    s_env_put(&env, "JWT_SECRET=" HARNESS_DEFAULT_SECRET);
    s_env_put(&env, "CURSOR_SECRET=harness-test-cursor-secret-0123456789abcdef");
    s_env_put(&env, "AUTH_RATE_LIMIT_PER_MIN=0");
    s_env_put(&env, "WORKERS=2");
    char services[512] = "";
    for (int i = 0; config->services && config->services[i]; i++) {
        size_t used = strlen(services);
        snprintf(services + used, sizeof services - used, "%s%s", i ? "," : "",
                 config->services[i]);
    }
    s_env_putf(&env, "GATEWAY_SERVICES=%s", services);
    s_stack.ready_timeout_ms = config->ready_timeout_ms > 0 ? config->ready_timeout_ms : 60000;
    for (int i = 0; config->env && config->env[i]; i++)
        s_env_put(&env, config->env[i]);
    snprintf(s_stack.base_url, sizeof s_stack.base_url, "http://127.0.0.1:%d", base);
    snprintf(s_stack.broker_url, sizeof s_stack.broker_url, "tcp://127.0.0.1:%d", base + 1);

    if (s_spawn("broker", env.entries) != 0) goto failed;
    for (int i = 0; config->services && config->services[i]; i++)
        if (s_spawn(config->services[i], env.entries) != 0) goto failed;
    if (s_spawn("gateway", env.entries) != 0) goto failed;
    if (s_wait_ready(s_stack.ready_timeout_ms) != 0) goto failed;
    s_child_env = env; // kept for harness_restart; harness_stop frees it
    return 0;

failed:
    s_env_clear(&env);
    harness_stop(1);
    return -1;
}

int harness_stop(int failed_tests)
{
    if (!s_stack.running) return 0;
    int problems = 0;
    for (int i = s_stack.child_count - 1; i >= 0; i--)
        problems += s_stop_child(&s_stack.children[i]);
    s_stack.child_count = 0;
    problems += s_stack.problems;
    s_stack.problems = 0;
    s_env_clear(&s_child_env);
    s_database_drop();
    if (s_stack.tmp[0]) {
        if (failed_tests > 0 || problems > 0 || getenv("HARNESS_KEEP_LOGS"))
            s_say("logs kept in %s", s_stack.tmp);
        else
            s_remove_tree(s_stack.tmp);
    }
    s_stack.running = false;
    curl_global_cleanup();
    return problems;
}

const char *harness_base_url(void)
{
    return s_stack.base_url;
}

const char *harness_broker_url(void)
{
    return s_stack.broker_url;
}

const char *harness_database_url(void)
{
    return s_stack.db_url;
}

const char *harness_repo_dir(void)
{
    return s_stack.repo;
}

int harness_signal(const char *name, int signal_number)
{
    for (int i = 0; i < s_stack.child_count; i++)
        if (s_stack.children[i].pid > 0 && strcmp(s_stack.children[i].name, name) == 0)
            return kill(s_stack.children[i].pid, signal_number);
    return -1;
}

static child_t *s_child_named(const char *name)
{
    for (int i = 0; i < s_stack.child_count; i++)
        if (strcmp(s_stack.children[i].name, name) == 0) return &s_stack.children[i];
    return NULL;
}

//  Judges how a child that exited (status from waitpid) ended, the way
//  s_stop_child judges a stop: exit 0 and no sanitizer report, else a
//  problem (counted for harness_stop) and its log tail. 0 or -1.
static int s_judge_exit(child_t *child, int status)
{
    child->pid = 0;
    int problems = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            s_say("%s died of signal %d", child->name, WTERMSIG(status));
        else
            s_say("%s exited with status %d", child->name, WEXITSTATUS(status));
        problems++;
    }
    if (s_log_has_report(child)) {
        s_say("%s printed a sanitizer report", child->name);
        problems++;
    }
    if (problems) s_log_tail(child, 40);
    s_stack.problems += problems;
    return problems ? -1 : 0;
}

int harness_wait_exit(const char *name, int timeout_ms)
{
    child_t *child = s_child_named(name);
    if (!child || child->pid <= 0) return -1;
    long long deadline = s_now_ms() + timeout_ms;
    int status = 0;
    while (!s_exited(child, &status)) {
        if (s_now_ms() >= deadline) {
            s_say("%s did not exit within %d ms", name, timeout_ms);
            return -1;
        }
        s_sleep_ms(20);
    }
    return s_judge_exit(child, status);
}

int harness_restart(const char *name)
{
    child_t *child = s_child_named(name);
    if (!child || !s_stack.running) {
        s_say("no child %s to restart", name);
        return -1;
    }
    //  Still running: stop it first (SIGTERM, bounded). Exited (after
    //  harness_signal) but not reaped yet: reap it and judge its exit.
    int status = 0;
    if (child->pid > 0) {
        if (s_exited(child, &status))
            s_judge_exit(child, status);
        else
            s_stack.problems += s_stop_child(child);
    }
    if (s_spawn_into(child, name, s_child_env.entries) != 0) {
        child->pid = 0;
        return -1;
    }
    return s_wait_ready(s_stack.ready_timeout_ms);
}

//  ---- HTTP -----------------------------------------------------------------

typedef struct {
    char *data;
    size_t size;
} buffer_t;

static size_t s_collect(char *data, size_t size, size_t count, void *user)
{
    buffer_t *buffer = user;
    size_t bytes = size * count;
    char *grown = realloc(buffer->data, buffer->size + bytes + 1);
    if (!grown) return 0;
    memcpy(grown + buffer->size, data, bytes);
    buffer->data = grown;
    buffer->size += bytes;
    buffer->data[buffer->size] = '\0';
    return bytes;
}

long http_request_raw(const char *method, const char *path, const char *token, const char *body,
                      size_t body_size, const char *const *headers, http_response_t *response)
{
    memset(response, 0, sizeof *response);
    CURL *curl = curl_easy_init();
    if (!curl) return 0;
    char url[4096];
    snprintf(url, sizeof url, "%s%s", s_stack.base_url, path);
    struct curl_slist *list = NULL;
    bool has_type = false;
    for (int i = 0; headers && headers[i]; i++) {
        list = curl_slist_append(list, headers[i]);
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0) has_type = true;
    }
    if (body && !has_type)
        list = curl_slist_append(list, "Content-Type: application/json; charset=utf-8");
    //  No "Expect: 100-continue" round trip: the gateway sees every body at once.
    list = curl_slist_append(list, "Expect:");
    char authorization[8192];
    if (token) {
        snprintf(authorization, sizeof authorization, "Authorization: Bearer %s", token);
        list = curl_slist_append(list, authorization);
    }
    buffer_t content = {NULL, 0}, head = {NULL, 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_size);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &content);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)HARNESS_HTTP_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
    else
        fprintf(stderr, "harness: %s %s: %s\n", method, path, curl_easy_strerror(rc));
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    response->body = content.data ? content.data : strdup("");
    response->body_size = content.size;
    response->headers = head.data ? head.data : strdup("");
    if (content.size > 0)
        response->json = json_loadb(content.data, content.size, JSON_DECODE_ANY, NULL);
    return response->status;
}

long http_request(const char *method, const char *path, const char *token, const char *body,
                  const char *const *headers, http_response_t *response)
{
    return http_request_raw(method, path, token, body, body ? strlen(body) : 0, headers, response);
}

long http_json(const char *method, const char *path, const char *token, const json_t *body,
               http_response_t *response)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ALLOW_NUL) : NULL;
    long status = http_request(method, path, token, text, NULL, response);
    free(text);
    return status;
}

void http_response_clear(http_response_t *response)
{
    json_decref(response->json);
    free(response->body);
    free(response->headers);
    memset(response, 0, sizeof *response);
}

const char *http_header(const http_response_t *response, const char *name, char *buf, size_t size)
{
    size_t name_length = strlen(name);
    for (const char *line = response->headers; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        if (length > name_length && strncasecmp(line, name, name_length) == 0 &&
            line[name_length] == ':') {
            const char *value = line + name_length + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            size_t value_length = (size_t)(line + length - value);
            while (value_length > 0 &&
                   (value[value_length - 1] == '\r' || value[value_length - 1] == ' '))
                value_length--;
            snprintf(buf, size, "%.*s", (int)value_length, value);
            return buf;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

const char *http_error_code(const http_response_t *response)
{
    json_t *code = json_object_get(json_object_get(response->json, "error"), "code");
    return json_is_string(code) ? json_string_value(code) : "";
}

bool http_error_names(const http_response_t *response, const char *field)
{
    json_t *fields = json_object_get(json_object_get(response->json, "error"), "fields");
    return json_object_get(fields, field) != NULL;
}

json_t *harness_register(const char *username, const char *password)
{
    char email[256];
    snprintf(email, sizeof email, "%s@example.com", username);
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "username", username, "email", email, "password", password);
    http_response_t response;
    long status = http_json("POST", "/api/v1/auth/register", NULL, body, &response);
    json_decref(body);
    json_t *session = NULL;
    if (status == 201 && json_is_object(response.json))
        session = json_incref(response.json);
    else
        s_say("register %s: status %ld: %s", username, status, response.body);
    http_response_clear(&response);
    return session;
}

const char *harness_str(const json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    return json_is_string(value) ? json_string_value(value) : NULL;
}
