/*  test_broker: the broker, rpc.c, worker.c and service.c end to end.

    Real processes: the broker binary and mock_echo workers (both found next
    to this test binary: <dir of this binary>/../../bin, so the ASan build
    tests the ASan binaries), started on 127.0.0.1:18200-18239 with their
    logs silenced (BROKER_TEST_LOGS=1 shows them). The test process is the
    client (rpc.c) and, for protocol abuse, speaks raw frames.

    Every child is started with PR_SET_PDEATHSIG and recorded; the group
    teardown and an atexit handler kill whatever is left, so a failing
    assertion (cmocka longjmps out of the test) or a crash leaves nothing
    running. Every wait is bounded.
*/
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "rpc.h"
#include "worker.h"

#include <czmq.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#define BROKER_A "tcp://127.0.0.1:18200"
#define EVENTS_PUB_A "tcp://127.0.0.1:18201"
#define EVENTS_SUB_A "tcp://127.0.0.1:18202"
#define PORT_A 18200
#define BROKER_B "tcp://127.0.0.1:18210"
#define EVENTS_PUB_B "tcp://127.0.0.1:18211"
#define EVENTS_SUB_B "tcp://127.0.0.1:18212"
#define BROKER_C "tcp://127.0.0.1:18220"
#define EVENTS_PUB_C "tcp://127.0.0.1:18221"
#define EVENTS_SUB_C "tcp://127.0.0.1:18222"
//  Every broker here holds requests for a service without workers (and,
//  just after its start, for any name) this long: BROKER_HOLD_MS.
#define HOLD_MS 1500
#define CHILDREN_MAX 32

extern char **environ;

static char s_broker_bin[PATH_MAX];
static char s_mock_bin[PATH_MAX];
static pid_t s_children[CHILDREN_MAX];
static pid_t s_broker_a;
static int64_t s_broker_a_started; // mono ms
static rpc_client_t *s_client;     // on broker A

//  ---------------------------------------------------------------------
//  Child processes

//  Starts binary with the environment plus overrides ("NAME=value", NULL
//  terminated). The environment is built before fork: the child only execs.
static pid_t s_spawn(const char *binary, const char *const *overrides)
{
    size_t count = 0;
    while (environ[count])
        count++;
    const char **envp = (const char **)zmalloc(sizeof(char *) * (count + 32));
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        bool replaced = false;
        for (size_t j = 0; overrides[j]; j++) {
            size_t name_length = (size_t)(strchr(overrides[j], '=') - overrides[j]);
            if (strncmp(environ[i], overrides[j], name_length + 1) == 0) replaced = true;
        }
        if (!replaced) envp[used++] = environ[i];
    }
    for (size_t j = 0; overrides[j] && used < count + 31; j++)
        envp[used++] = overrides[j];
    envp[used] = NULL;
    bool verbose = getenv("BROKER_TEST_LOGS") != NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!verbose) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, STDERR_FILENO);
        }
        char *argv[] = {(char *)binary, NULL};
        execve(binary, argv, (char *const *)envp);
        _exit(127);
    }
    freen(envp);
    assert_true(pid > 0);
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (s_children[i] == 0) {
            s_children[i] = pid;
            break;
        }
    return pid;
}

//  Sends sig and reaps the child, SIGKILLing it after 5 s. Returns its
//  exit code, or 128 + the signal that ended it.
static int s_stop(pid_t pid, int sig)
{
    if (pid <= 0) return -1;
    kill(pid, sig);
    int status = 0;
    bool reaped = false;
    for (int i = 0; i < 500 && !reaped; i++) {
        reaped = waitpid(pid, &status, WNOHANG) != 0;
        if (!reaped) usleep(10000);
    }
    if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (s_children[i] == pid) s_children[i] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

//  SIGTERM must be a clean exit: status 0, which also means no sanitizer
//  report from the child (they exit non-zero when they find something).
static void s_stop_cleanly(pid_t pid)
{
    assert_int_equal(s_stop(pid, SIGTERM), 0);
}

static void s_kill_all(void)
{
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (s_children[i] > 0) {
            kill(s_children[i], SIGCONT);
            (void)s_stop(s_children[i], SIGKILL);
        }
}

static bool s_alive(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

//  extra: one more "NAME=value" for the broker, or NULL.
static pid_t s_start_broker_with(const char *url, const char *pub, const char *sub,
                                 const char *extra)
{
    char a[64], b[64], c[64], d[64];
    snprintf(a, sizeof a, "BROKER_URL=%s", url);
    snprintf(b, sizeof b, "EVENTS_PUB_URL=%s", pub);
    snprintf(c, sizeof c, "EVENTS_SUB_URL=%s", sub);
    snprintf(d, sizeof d, "BROKER_HOLD_MS=%d", HOLD_MS);
    const char *env[] = {a, b, c, d, "LOG_LEVEL=debug", extra, NULL};
    return s_spawn(s_broker_bin, env);
}

static pid_t s_start_broker(const char *url, const char *pub, const char *sub)
{
    return s_start_broker_with(url, pub, sub, NULL);
}

static pid_t s_start_mock(const char *url, const char *service, int workers)
{
    char a[64], b[64], c[32];
    snprintf(a, sizeof a, "BROKER_URL=%s", url);
    snprintf(b, sizeof b, "SERVICE=%s", service);
    snprintf(c, sizeof c, "WORKERS=%d", workers);
    const char *env[] = {a, b, c, "LOG_LEVEL=debug", NULL};
    return s_spawn(s_mock_bin, env);
}

//  ---------------------------------------------------------------------
//  Calls

static json_t *s_call(rpc_client_t *client, const char *service, const char *method,
                      json_t *args_stolen, int timeout_ms)
{
    json_t *reply =
        rpc_call(client, service, method, 0, args_stolen, NULL, envelope_now_ms() + timeout_ms);
    json_decref(args_stolen);
    return reply;
}

//  The pid that served a whoami call, or 0 when it failed.
static int64_t s_whoami(rpc_client_t *client, const char *service, int timeout_ms)
{
    json_t *reply = s_call(client, service, "whoami", NULL, timeout_ms);
    int64_t pid = reply_status(reply) == 200
                      ? json_integer_value(json_object_get(reply_body(reply), "pid"))
                      : 0;
    json_decref(reply);
    return pid;
}

//  Waits (bounded) until whoami calls have been served by every pid given.
static bool s_wait_served_by(rpc_client_t *client, const char *service, const pid_t *pids,
                             size_t count, int64_t within_ms)
{
    bool seen[8] = {false};
    int64_t until = zclock_mono() + within_ms;
    while (zclock_mono() < until) {
        int64_t pid = s_whoami(client, service, 300);
        for (size_t i = 0; i < count; i++)
            if (pid == pids[i]) seen[i] = true;
        size_t seen_count = 0;
        for (size_t i = 0; i < count; i++)
            seen_count += seen[i];
        if (seen_count == count) return true;
        if (pid == 0) zclock_sleep(50);
    }
    return false;
}

//  ---------------------------------------------------------------------
//  Tests

static pid_t s_spread_a, s_spread_b;

static void test_two_workers_share_load(void **state)
{
    s_spread_a = s_start_mock(BROKER_A, "spread", 2);
    s_spread_b = s_start_mock(BROKER_A, "spread", 2);
    pid_t pids[] = {s_spread_a, s_spread_b};
    assert_true(s_wait_served_by(s_client, "spread", pids, 2, 5000));

    int served_a = 0, served_b = 0;
    for (int i = 0; i < 20; i++) {
        int64_t pid = s_whoami(s_client, "spread", 2000);
        served_a += pid == s_spread_a;
        served_b += pid == s_spread_b;
    }
    print_message("20 requests: %d to worker A, %d to worker B\n", served_a, served_b);
    assert_int_equal(served_a + served_b, 20);
    //  LRU over 4 worker threads: round robin, 10 each; allow some slack.
    assert_true(served_a >= 5 && served_b >= 5);
}

static void test_sigkill_worker_loses_no_later_request(void **state)
{
    assert_true(s_spread_a > 0 && s_spread_b > 0);
    s_stop(s_spread_a, SIGKILL);
    zclock_sleep(50); // the kernel has closed its sockets; let zmq see it
    for (int i = 0; i < 20; i++) {
        int64_t started = zclock_mono();
        int64_t pid = s_whoami(s_client, "spread", 2000);
        int64_t took = zclock_mono() - started;
        assert_int_equal(pid, s_spread_b);
        //  Well under the 2 s deadline even on a loaded 2-core machine: the
        //  request went to the live worker, it did not wait out a timeout.
        assert_true(took < 1500);
    }
    //  Requests in parallel too: several clients at once, all answered.
    rpc_client_t *clients[4];
    for (int i = 0; i < 4; i++)
        clients[i] = rpc_client_new(BROKER_A);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_whoami(clients[i], "spread", 2000), s_spread_b);
    for (int i = 0; i < 4; i++)
        rpc_client_destroy(&clients[i]);
}

static void test_no_worker_is_503_at_once(void **state)
{
    //  Past the hold of a fresh broker, a name no worker ever had fails fast.
    int64_t grace_left = s_broker_a_started + HOLD_MS + 100 - zclock_mono();
    if (grace_left > 0) zclock_sleep((int)grace_left);
    for (int i = 0; i < 5; i++) {
        int64_t started = zclock_mono();
        json_t *reply = s_call(s_client, "nobody-here", "anything", NULL, 5000);
        int64_t took = zclock_mono() - started;
        assert_int_equal(reply_status(reply), 503);
        assert_string_equal(reply_error_code(reply), ERR_UNAVAILABLE);
        assert_true(took < 100);
        json_decref(reply);
    }
}

//  A thread calling slow.sleep {ms: 800}; the status is in s_sleep_status.
static int s_sleep_status;
static void *s_sleep_call(void *arg)
{
    json_t *reply = s_call(s_client, "slow", "sleep", json_pack("{s:i}", "ms", 800), 3000);
    s_sleep_status = reply_status(reply);
    json_decref(reply);
    return NULL;
}

static void test_slow_worker_504_and_late_reply_discarded(void **state)
{
    pid_t slow = s_start_mock(BROKER_A, "slow", 1);
    assert_true(s_wait_served_by(s_client, "slow", &slow, 1, 5000));

    int64_t started = zclock_mono();
    json_t *reply = s_call(s_client, "slow", "sleep", json_pack("{s:i}", "ms", 1200), 500);
    int64_t took = zclock_mono() - started;
    print_message("504 after %lld ms (deadline 500)\n", (long long)took);
    assert_int_equal(reply_status(reply), 504);
    assert_string_equal(reply_error_code(reply), ERR_TIMEOUT);
    assert_in_range(took, 300, 700);
    json_decref(reply);

    //  The worker is still busy: this call waits in the broker's queue,
    //  the late sleep reply arrives meanwhile and must be skipped.
    reply = s_call(s_client, "slow", "echo", json_pack("{s:i}", "n", 2), 3000);
    assert_int_equal(reply_status(reply), 200);
    assert_int_equal(json_integer_value(json_object_get(reply_body(reply), "n")), 2);
    assert_null(json_object_get(reply_body(reply), "slept_ms"));
    json_decref(reply);
    reply = s_call(s_client, "slow", "echo", json_pack("{s:i}", "n", 3), 3000);
    assert_int_equal(json_integer_value(json_object_get(reply_body(reply), "n")), 3);
    json_decref(reply);

    //  A request waiting in the broker's queue behind the busy worker gets
    //  its 504 at its own deadline too, and the busy one still completes.
    pthread_t thread;
    pthread_create(&thread, NULL, s_sleep_call, NULL);
    zclock_sleep(100);
    rpc_client_t *other = rpc_client_new(BROKER_A);
    started = zclock_mono();
    reply = s_call(other, "slow", "echo", NULL, 300);
    took = zclock_mono() - started;
    assert_int_equal(reply_status(reply), 504);
    assert_in_range(took, 200, 500);
    json_decref(reply);
    rpc_client_destroy(&other);
    pthread_join(thread, NULL);
    assert_int_equal(s_sleep_status, 200);
    s_stop_cleanly(slow);
}

//  The request a worker holds when it dies is answered 503 quickly, not
//  left to time out.
typedef struct {
    pid_t pid;
    int delay_ms;
} killer_t;

static void *s_killer(void *arg)
{
    killer_t *killer = (killer_t *)arg;
    zclock_sleep(killer->delay_ms);
    kill(killer->pid, SIGKILL);
    return NULL;
}

static void test_busy_worker_killed_is_503(void **state)
{
    pid_t doomed = s_start_mock(BROKER_A, "doomed", 1);
    assert_true(s_wait_served_by(s_client, "doomed", &doomed, 1, 5000));
    killer_t killer = {doomed, 300};
    pthread_t thread;
    pthread_create(&thread, NULL, s_killer, &killer);
    int64_t started = zclock_mono();
    json_t *reply = s_call(s_client, "doomed", "sleep", json_pack("{s:i}", "ms", 5000), 4000);
    int64_t took = zclock_mono() - started;
    pthread_join(thread, NULL);
    s_stop(doomed, SIGKILL);
    print_message("busy worker killed: %d after %lld ms\n", reply_status(reply), (long long)took);
    assert_int_equal(reply_status(reply), 503);
    assert_true(took < 2500);
    json_decref(reply);
}

static void test_silent_worker_dropped_then_back(void **state)
{
    pid_t frozen = s_start_mock(BROKER_A, "frozen", 1);
    pid_t awake = s_start_mock(BROKER_A, "frozen", 1);
    pid_t pids[] = {frozen, awake};
    assert_true(s_wait_served_by(s_client, "frozen", pids, 2, 5000));
    kill(frozen, SIGSTOP);
    zclock_sleep(4200); // liveness window (3 s) plus a heartbeat round
    for (int i = 0; i < 10; i++)
        assert_int_equal(s_whoami(s_client, "frozen", 1000), awake);
    kill(frozen, SIGCONT);
    //  It finds itself unknown to the broker and registers again.
    assert_true(s_wait_served_by(s_client, "frozen", pids, 2, 8000));
    s_stop_cleanly(frozen);
    s_stop_cleanly(awake);
}

static void test_broker_restart(void **state)
{
    pid_t broker = s_start_broker(BROKER_B, EVENTS_PUB_B, EVENTS_SUB_B);
    pid_t worker = s_start_mock(BROKER_B, "phoenix", 2);
    rpc_client_t *client = rpc_client_new(BROKER_B);
    assert_true(s_wait_served_by(client, "phoenix", &worker, 1, 5000));

    int signals[] = {SIGKILL, SIGTERM};
    for (int round = 0; round < 2; round++) {
        int status = s_stop(broker, signals[round]);
        assert_int_equal(status, signals[round] == SIGTERM ? 0 : 128 + SIGKILL);
        json_t *reply = s_call(client, "phoenix", "echo", NULL, 200);
        assert_int_equal(reply_status(reply), 504); // no broker: timeout, no hang
        json_decref(reply);
        broker = s_start_broker(BROKER_B, EVENTS_PUB_B, EVENTS_SUB_B);
        int64_t started = zclock_mono();
        bool back = s_wait_served_by(client, "phoenix", &worker, 1, 10000);
        print_message("broker restart (signal %d): calls succeed again after %lld ms\n",
                      signals[round], (long long)(zclock_mono() - started));
        assert_true(back);
        assert_true(zclock_mono() - started < 6000);
    }
    rpc_client_destroy(&client);
    s_stop_cleanly(worker);
    s_stop_cleanly(broker);
}

static void test_events_pass_through_the_proxy(void **state)
{
    zsock_t *pub = zsock_new_pub(">" EVENTS_PUB_A);
    zsock_t *sub = zsock_new_sub(">" EVENTS_SUB_A, "test.");
    assert_non_null(pub);
    assert_non_null(sub);
    zsock_set_rcvtimeo(sub, 100);
    //  Subscriptions travel SUB -> XPUB -> XSUB -> PUB asynchronously;
    //  publish until one arrives.
    bool received = false;
    int64_t until = zclock_mono() + 5000;
    while (!received && zclock_mono() < until) {
        zstr_sendx(pub, "other.ignored", "x", NULL);
        zstr_sendx(pub, "test.hello", "payload", NULL);
        char *topic = NULL, *body = NULL;
        if (zstr_recvx(sub, &topic, &body, NULL) == 2) {
            assert_string_equal(topic, "test.hello");
            assert_string_equal(body, "payload");
            received = true;
        }
        zstr_free(&topic);
        zstr_free(&body);
    }
    assert_true(received);
    zsock_destroy(&pub);
    zsock_destroy(&sub);
}

//  Sends raw frames (strings; NULL ends the list) from sock.
static void s_send_raw(zsock_t *sock, ...)
{
    zmsg_t *msg = zmsg_new();
    va_list ap;
    va_start(ap, sock);
    for (const char *frame = va_arg(ap, const char *); frame; frame = va_arg(ap, const char *))
        zmsg_addstr(msg, frame);
    va_end(ap);
    zmsg_send(&msg, sock);
}

//  True when the next message within 2 s is ["", SW01, DISCONNECT].
static bool s_got_disconnect(zsock_t *sock)
{
    zsock_set_rcvtimeo(sock, 2000);
    while (true) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg) return false;
        zframe_t *command = zmsg_size(msg) == 3 ? zmsg_last(msg) : NULL;
        bool heartbeat = command && zframe_streq(command, PROTOCOL_HEARTBEAT);
        bool disconnect = command && zframe_streq(command, PROTOCOL_DISCONNECT);
        zmsg_destroy(&msg);
        if (!heartbeat) return disconnect;
    }
}

static void test_malformed_frames_are_ignored(void **state)
{
    char deadline[32];
    snprintf(deadline, sizeof deadline, "%lld", (long long)(envelope_now_ms() + 5000));
    zsock_t *raw = zsock_new_dealer(">" BROKER_A);
    zsock_set_linger(raw, 0);
    s_send_raw(raw, "", NULL);
    s_send_raw(raw, "x", NULL);
    s_send_raw(raw, "x", "y", "z", NULL);
    s_send_raw(raw, "", "SC01", NULL);
    s_send_raw(raw, "", "SC01", "spread", NULL);
    s_send_raw(raw, "", "SC01", "spread", "c1", "not-a-number", "envelope", NULL);
    s_send_raw(raw, "", "SC01", "spread", "", deadline, "envelope", NULL);
    s_send_raw(raw, "", "SC01", "spread", "c2", "99999999999999999999999", "x", NULL);
    s_send_raw(raw, "", "SC01", "spread", "c3", deadline, "x", "extra", NULL);
    s_send_raw(raw, "", "XX99", "spread", "c4", deadline, "x", NULL);
    s_send_raw(raw, "", "SW01", NULL);
    s_send_raw(raw, "", "SW01", "DISCONNECT", NULL);
    zmsg_t *binary = zmsg_new();
    zmsg_addmem(binary, "", 0);
    zmsg_addstr(binary, "SC01");
    zmsg_addmem(binary, "\0\xff\xfe", 3);
    zmsg_addstr(binary, "c5");
    zmsg_addstr(binary, deadline);
    zmsg_addmem(binary, "\xc1", 1);
    zmsg_send(&binary, raw);

    //  A request whose envelope is not msgpack reaches a worker and comes
    //  back as 400 invalid.
    s_send_raw(raw, "", "SC01", "spread", "c6", deadline, "not msgpack", NULL);
    zsock_set_rcvtimeo(raw, 2000);
    bool got_400 = false, got_503 = false;
    for (int i = 0; i < 2; i++) {
        zmsg_t *msg = zmsg_recv(raw);
        assert_non_null(msg);
        if (zmsg_size(msg) == 3) {
            //  The echo of its DISCONNECT (an unknown worker leaving).
            assert_true(zframe_streq(zmsg_last(msg), PROTOCOL_DISCONNECT));
            zmsg_destroy(&msg);
            i--;
            continue;
        }
        assert_int_equal(zmsg_size(msg), 5);
        zframe_t *frame = zmsg_last(msg);
        json_t *reply = envelope_reply_decode(zframe_data(frame), zframe_size(frame));
        assert_non_null(reply);
        got_400 |= reply_status(reply) == 400; // c6
        got_503 |= reply_status(reply) == 503; // c5: a service name nobody has
        json_decref(reply);
        zmsg_destroy(&msg);
    }
    assert_true(got_400 && got_503);
    zsock_destroy(&raw);

    //  Anything from a worker before READY, or a bad READY, is DISCONNECTed.
    const char *before_ready[][4] = {{"HEARTBEAT", NULL},
                                     {"REPLY", "client", "c7", "reply"},
                                     {"BOGUS", NULL},
                                     {"READY", NULL},
                                     {"READY", "Bad Name!"}};
    for (size_t i = 0; i < sizeof before_ready / sizeof before_ready[0]; i++) {
        zsock_t *worker = zsock_new_dealer(">" BROKER_A);
        zsock_set_linger(worker, 0);
        zmsg_t *msg = zmsg_new();
        zmsg_addmem(msg, "", 0);
        zmsg_addstr(msg, "SW01");
        for (int j = 0; j < 4 && before_ready[i][j]; j++)
            zmsg_addstr(msg, before_ready[i][j]);
        zmsg_send(&msg, worker);
        assert_true(s_got_disconnect(worker));
        zsock_destroy(&worker);
    }
    //  A registered worker that says READY twice, or replies to nothing.
    const char *confusions[][4] = {{"READY", "rawsvc", NULL}, {"REPLY", "a", "b", "c"}};
    for (size_t i = 0; i < 2; i++) {
        zsock_t *worker = zsock_new_dealer(">" BROKER_A);
        zsock_set_linger(worker, 0);
        s_send_raw(worker, "", "SW01", "READY", "rawsvc", NULL);
        zmsg_t *msg = zmsg_new();
        zmsg_addmem(msg, "", 0);
        zmsg_addstr(msg, "SW01");
        for (int j = 0; j < 4 && confusions[i][j]; j++)
            zmsg_addstr(msg, confusions[i][j]);
        zmsg_send(&msg, worker);
        assert_true(s_got_disconnect(worker));
        zsock_destroy(&worker);
    }

    //  Bytes that are not ZMTP at all.
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(PORT_A)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (connect(tcp, (struct sockaddr *)&address, sizeof address) == 0) {
        static const char junk[] = "GET / HTTP/1.1\r\n\r\n\xff\x00\x01garbage";
        ssize_t written = write(tcp, junk, sizeof junk);
        (void)written;
    }
    close(tcp);

    //  The broker is alive and serves normally.
    zclock_sleep(100);
    assert_true(s_alive(s_broker_a));
    assert_int_equal(s_whoami(s_client, "spread", 2000), s_spread_b);
}

//  ---------------------------------------------------------------------
//  Holding, bounds, leaving and draining (rolling restarts)

//  A thread making one call on its own client; the result lands in the
//  struct. Tests keep their jobs static: a failed assertion leaves the test
//  while its thread still runs, and the thread must not then write into a
//  stack frame that is gone (ASan would report that instead of the failure).
typedef struct {
    const char *endpoint;
    const char *service;
    const char *method;
    int ms; // args.ms for sleep
    int timeout_ms;
    int status;
    int64_t took_ms;
} call_job_t;

static void *s_call_job(void *arg)
{
    call_job_t *job = (call_job_t *)arg;
    rpc_client_t *client = rpc_client_new(job->endpoint);
    int64_t started = zclock_mono();
    json_t *reply = s_call(client, job->service, job->method, json_pack("{s:i}", "ms", job->ms),
                           job->timeout_ms);
    job->took_ms = zclock_mono() - started;
    job->status = reply_status(reply);
    json_decref(reply);
    rpc_client_destroy(&client);
    return NULL;
}

static void test_hold_until_a_worker_comes(void **state)
{
    //  A service that had a worker, now has none (a stop-start restart).
    pid_t old = s_start_mock(BROKER_A, "held", 1);
    assert_true(s_wait_served_by(s_client, "held", &old, 1, 5000));
    s_stop_cleanly(old);
    static call_job_t job;
    job = (call_job_t){BROKER_A, "held", "echo", 0, 5000, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, s_call_job, &job);
    zclock_sleep(400);
    pid_t fresh = s_start_mock(BROKER_A, "held", 1);
    pthread_join(thread, NULL);
    print_message("held request: %d after %lld ms\n", job.status, (long long)job.took_ms);
    assert_int_equal(job.status, 200);
    assert_true(job.took_ms >= 300);
    s_stop_cleanly(fresh);
}

static void test_hold_ends_503(void **state)
{
    //  "held" has no worker now. The hold (HOLD_MS) ends first: 503.
    int64_t started = zclock_mono();
    json_t *reply = s_call(s_client, "held", "echo", NULL, 5000);
    int64_t took = zclock_mono() - started;
    print_message("hold ran out: %d after %lld ms\n", reply_status(reply), (long long)took);
    assert_int_equal(reply_status(reply), 503);
    assert_string_equal(reply_error_code(reply), ERR_UNAVAILABLE);
    assert_null(json_object_get(json_object_get(reply, "error"), "retry"));
    assert_in_range(took, HOLD_MS - 200, HOLD_MS + 1500);
    json_decref(reply);
    //  The deadline comes first: still 503 (no worker came), just before
    //  the caller's deadline, so the caller learns the true reason.
    started = zclock_mono();
    reply = s_call(s_client, "held", "echo", NULL, 400);
    took = zclock_mono() - started;
    assert_int_equal(reply_status(reply), 503);
    assert_string_equal(reply_error_code(reply), ERR_UNAVAILABLE);
    assert_in_range(took, 300, 1200);
    json_decref(reply);
}

//  Sends a raw client request from sock with an envelope of size bytes.
static void s_send_request_raw(zsock_t *sock, const char *service, const char *correlation,
                               size_t size)
{
    char deadline[32];
    snprintf(deadline, sizeof deadline, "%lld", (long long)(envelope_now_ms() + 5000));
    char *envelope = (char *)zmalloc(size);
    memset(envelope, 'x', size);
    zmsg_t *msg = zmsg_new();
    zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, PROTOCOL_CLIENT);
    zmsg_addstr(msg, service);
    zmsg_addstr(msg, correlation);
    zmsg_addstr(msg, deadline);
    zmsg_addmem(msg, envelope, size);
    zmsg_send(&msg, sock);
    freen(envelope);
}

//  The status of the next reply on sock within timeout_ms, its correlation
//  copied to correlation_out; 0 when none came.
static int s_recv_status(zsock_t *sock, int timeout_ms, char *correlation_out)
{
    zsock_set_rcvtimeo(sock, timeout_ms);
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg) return 0;
    int status = -1;
    if (zmsg_size(msg) == 5) {
        zmsg_first(msg);
        zmsg_next(msg);
        zmsg_next(msg);
        char *correlation = zframe_strdup(zmsg_next(msg));
        if (correlation_out) snprintf(correlation_out, 16, "%s", correlation);
        freen(correlation);
        zframe_t *frame = zmsg_last(msg);
        json_t *reply = envelope_reply_decode(zframe_data(frame), zframe_size(frame));
        status = reply_status(reply);
        json_decref(reply);
    }
    zmsg_destroy(&msg);
    return status;
}

static void test_queue_bounds(void **state)
{
    //  Broker C: 2 requests per service, 8 KiB over all queues.
    pid_t broker = s_start_broker_with(BROKER_C, EVENTS_PUB_C, EVENTS_SUB_C, "BROKER_QUEUE_MAX=2");
    zclock_sleep(100);
    pid_t worker = s_start_mock(BROKER_C, "bounded", 1);
    rpc_client_t *client = rpc_client_new(BROKER_C);
    assert_true(s_wait_served_by(client, "bounded", &worker, 1, 5000));
    s_stop_cleanly(worker); // known, no worker: requests are held
    zsock_t *raw = zsock_new_dealer(">" BROKER_C);
    zsock_set_linger(raw, 0);
    s_send_request_raw(raw, "bounded", "q1", 10);
    s_send_request_raw(raw, "bounded", "q2", 10);
    s_send_request_raw(raw, "bounded", "q3", 10);
    char correlation[16] = "";
    int64_t started = zclock_mono();
    assert_int_equal(s_recv_status(raw, 1000, correlation), 503); // the third, at once
    assert_string_equal(correlation, "q3");
    assert_true(zclock_mono() - started < 500);
    //  The two held ones end with the hold.
    assert_int_equal(s_recv_status(raw, 3000, NULL), 503);
    assert_int_equal(s_recv_status(raw, 3000, NULL), 503);
    zsock_destroy(&raw);
    rpc_client_destroy(&client);
    s_stop_cleanly(broker);

    broker = s_start_broker_with(BROKER_C, EVENTS_PUB_C, EVENTS_SUB_C, "BROKER_QUEUE_BYTES=8192");
    raw = zsock_new_dealer(">" BROKER_C);
    zsock_set_linger(raw, 0);
    //  Just started: any name is held; 5 KiB fits, 5 KiB more does not.
    s_send_request_raw(raw, "anything", "b1", 5000);
    s_send_request_raw(raw, "anything", "b2", 5000);
    started = zclock_mono();
    assert_int_equal(s_recv_status(raw, 1000, correlation), 503);
    assert_string_equal(correlation, "b2");
    assert_true(zclock_mono() - started < 500);
    assert_int_equal(s_recv_status(raw, 3000, correlation), 503); // b1, its hold over
    assert_string_equal(correlation, "b1");
    zsock_destroy(&raw);
    s_stop_cleanly(broker);
}

//  A request the broker sent before it read the worker's DISCONNECT is
//  served by that worker, which leaves only at the broker's echo.
static void test_leaving_worker_answers_what_crossed(void **state)
{
    worker_t *worker = worker_new(BROKER_A, "crossing");
    assert_non_null(worker);
    //  Wait until the broker knows it (its READY went out at once).
    worker_request_t request;
    for (int i = 0; i < 20; i++)
        worker_recv(worker, &request, 50);
    static call_job_t job;
    job = (call_job_t){BROKER_A, "crossing", "echo", 0, 5000, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, s_call_job, &job);
    zclock_sleep(300); // the REQUEST is in our socket, not read
    assert_int_equal(worker_leave(worker), 0);
    assert_int_equal(worker_drain(worker, &request, 3000), 1);
    json_t *ok = reply_ok(200, json_pack("{s:b}", "served", 1));
    size_t size = 0;
    char *bytes = envelope_reply_encode(ok, &size);
    json_decref(ok);
    assert_int_equal(worker_send(worker, &request, bytes, size), 0);
    free(bytes);
    int64_t started = zclock_mono();
    assert_int_equal(worker_drain(worker, &request, 3000), 0); // the echo
    assert_true(zclock_mono() - started < 1000);
    worker_destroy(&worker);
    pthread_join(thread, NULL);
    assert_int_equal(job.status, 200);

    //  An idle worker's DISCONNECT is echoed at once.
    worker = worker_new(BROKER_A, "crossing");
    for (int i = 0; i < 10; i++)
        worker_recv(worker, &request, 50);
    assert_int_equal(worker_leave(worker), 0);
    started = zclock_mono();
    assert_int_equal(worker_drain(worker, &request, 3000), 0);
    assert_true(zclock_mono() - started < 1000);
    worker_destroy(&worker);
}

//  A service on SIGTERM answers the request it holds and exits 0.
static void test_service_sigterm_answers_what_it_holds(void **state)
{
    pid_t service = s_start_mock(BROKER_A, "graceful", 1);
    assert_true(s_wait_served_by(s_client, "graceful", &service, 1, 5000));
    static call_job_t job;
    job = (call_job_t){BROKER_A, "graceful", "sleep", 600, 5000, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, s_call_job, &job);
    zclock_sleep(200);
    s_stop_cleanly(service);
    pthread_join(thread, NULL);
    assert_int_equal(job.status, 200);
    assert_true(job.took_ms >= 500);
}

//  The broker on SIGTERM forwards the reply of the request in progress,
//  answers new ones with a retryable 503 (rpc.c sends them again), says
//  BYE to its clients, and exits 0; the call sent during the drain is
//  served by the next broker.
static void test_broker_drain_and_bye(void **state)
{
    pid_t broker = s_start_broker(BROKER_C, EVENTS_PUB_C, EVENTS_SUB_C);
    pid_t worker = s_start_mock(BROKER_C, "drained", 2);
    rpc_client_t *client = rpc_client_new(BROKER_C);
    assert_true(s_wait_served_by(client, "drained", &worker, 1, 5000));
    zsock_t *raw = zsock_new_dealer(">" BROKER_C);
    zsock_set_linger(raw, 0);
    s_send_request_raw(raw, "nobody-at-all", "r1", 10); // so the broker knows this client
    assert_int_equal(s_recv_status(raw, 3000, NULL), 503);

    static call_job_t slow;
    slow = (call_job_t){BROKER_C, "drained", "sleep", 800, 5000, 0, 0};
    pthread_t slow_thread;
    pthread_create(&slow_thread, NULL, s_call_job, &slow);
    zclock_sleep(200);
    kill(broker, SIGTERM);
    zclock_sleep(100);
    static call_job_t late;
    late = (call_job_t){BROKER_C, "drained", "echo", 0, 6000, 0, 0};
    pthread_t late_thread;
    pthread_create(&late_thread, NULL, s_call_job, &late);
    pthread_join(slow_thread, NULL);
    assert_int_equal(slow.status, 200); // answered during the drain
    //  A second SIGTERM, during the drain or the exit after it, still ends
    //  in a clean exit (rpc_zsys_ignore_stop_signals).
    assert_int_equal(s_stop(broker, SIGTERM), 0);
    //  The raw client's last message from the broker is BYE.
    zsock_set_rcvtimeo(raw, 2000);
    zmsg_t *bye = zmsg_recv(raw);
    assert_non_null(bye);
    assert_int_equal(zmsg_size(bye), 3);
    assert_true(zframe_streq(zmsg_last(bye), RPC_BYE));
    zmsg_destroy(&bye);
    zsock_destroy(&raw);

    broker = s_start_broker(BROKER_C, EVENTS_PUB_C, EVENTS_SUB_C);
    pthread_join(late_thread, NULL);
    print_message("call made while the broker drained: %d after %lld ms\n", late.status,
                  (long long)late.took_ms);
    assert_int_equal(late.status, 200);
    rpc_client_destroy(&client);
    s_stop_cleanly(worker);
    s_stop_cleanly(broker);
}

//  A request in progress when the broker drains still gets the calls it
//  makes to other services (they carry its deadline) served, so it
//  completes; the drain ends when it has.
static void test_broker_drain_serves_nested_calls(void **state)
{
    pid_t broker = s_start_broker(BROKER_C, EVENTS_PUB_C, EVENTS_SUB_C);
    pid_t child = s_start_mock(BROKER_C, "child", 1);
    rpc_client_t *client = rpc_client_new(BROKER_C);
    assert_true(s_wait_served_by(client, "child", &child, 1, 5000));
    worker_t *parent = worker_new(BROKER_C, "parent");
    worker_request_t request;
    for (int i = 0; i < 10; i++)
        worker_recv(parent, &request, 50);
    static call_job_t job;
    job = (call_job_t){BROKER_C, "parent", "echo", 0, 5000, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, s_call_job, &job);
    assert_int_equal(worker_recv(parent, &request, 3000), 1); // in progress
    envelope_request_t envelope;
    assert_int_equal(envelope_request_decode(request.envelope, request.envelope_size, &envelope),
                     0);
    kill(broker, SIGTERM);
    zclock_sleep(200); // draining
    //  The nested call, with the parent's deadline: served.
    json_t *nested = rpc_call(client, "child", "echo", 0, NULL, NULL, envelope.deadline_ms);
    assert_int_equal(reply_status(nested), 200);
    json_decref(nested);
    json_t *ok = reply_ok(200, json_pack("{s:b}", "parent", 1));
    size_t size = 0;
    char *bytes = envelope_reply_encode(ok, &size);
    json_decref(ok);
    assert_int_equal(worker_send(parent, &request, bytes, size), 0);
    free(bytes);
    envelope_request_clear(&envelope);
    pthread_join(thread, NULL);
    assert_int_equal(job.status, 200);
    assert_int_equal(s_stop(broker, SIGTERM), 0); // exits once the parent answered
    worker_destroy(&parent);
    rpc_client_destroy(&client);
    s_stop_cleanly(child);
}

static void test_clean_shutdown(void **state)
{
    s_stop_cleanly(s_spread_b);
    s_stop_cleanly(s_broker_a);
}

//  ---------------------------------------------------------------------

static int s_group_setup(void **state)
{
    s_broker_a = s_start_broker(BROKER_A, EVENTS_PUB_A, EVENTS_SUB_A);
    s_broker_a_started = zclock_mono();
    s_client = rpc_client_new(BROKER_A);
    return s_client ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    rpc_client_destroy(&s_client);
    s_kill_all();
    return 0;
}

//  Finds the broker and mock binaries in ../../bin from this binary.
static void s_find_binaries(const char *argv0)
{
    char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length > 0)
        self[length] = '\0';
    else
        snprintf(self, sizeof self, "%s", argv0);
    char *dir = dirname(self);
    snprintf(s_broker_bin, sizeof s_broker_bin, "%s/../../bin/broker", dir);
    snprintf(s_mock_bin, sizeof s_mock_bin, "%s/../../bin/mock_echo", dir);
}

int main(int argc, char **argv)
{
    setenv("LOG_LEVEL", "error", 0); // 504s are expected here, not news
    log_init("test_broker");
    s_find_binaries(argv[0]);
    if (access(s_broker_bin, X_OK) != 0 || access(s_mock_bin, X_OK) != 0) {
        fprintf(stderr, "test_broker: build %s and %s first\n", s_broker_bin, s_mock_bin);
        return 1;
    }
    atexit(s_kill_all);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_workers_share_load),
        cmocka_unit_test(test_sigkill_worker_loses_no_later_request),
        cmocka_unit_test(test_no_worker_is_503_at_once),
        cmocka_unit_test(test_slow_worker_504_and_late_reply_discarded),
        cmocka_unit_test(test_busy_worker_killed_is_503),
        cmocka_unit_test(test_events_pass_through_the_proxy),
        cmocka_unit_test(test_malformed_frames_are_ignored),
        cmocka_unit_test(test_silent_worker_dropped_then_back),
        cmocka_unit_test(test_broker_restart),
        cmocka_unit_test(test_hold_until_a_worker_comes),
        cmocka_unit_test(test_hold_ends_503),
        cmocka_unit_test(test_queue_bounds),
        cmocka_unit_test(test_leaving_worker_answers_what_crossed),
        cmocka_unit_test(test_service_sigterm_answers_what_it_holds),
        cmocka_unit_test(test_broker_drain_and_bye),
        cmocka_unit_test(test_broker_drain_serves_nested_calls),
        cmocka_unit_test(test_clean_shutdown),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
