/*  harness: a whole stack for integration tests, and HTTP helpers.

    harness_start() brings up, from a clean state:
      - a fresh database: CREATE DATABASE with a unique name on the server
        of TEST_DATABASE_URL when set (the test runner starts one Postgres
        for every suite), else a private cluster started with scripts/pg.sh
        in a temporary folder;
      - the broker, the listed services and the gateway, as child processes
        found in <dir of argv[0]>/../../bin/ (so a SAN=1 test binary runs
        the SAN=1 programs), each with its log in a temporary folder;
    and waits (bounded) until the gateway's /readyz answers 200.

    Ports: a suite owns ten ports from base_port: +0 the gateway, +1 the
    broker, +2 the events XSUB (publishers connect), +3 the events XPUB
    (subscribers connect), +4 the private Postgres when one is started.

    harness_stop() stops the gateway, then the services, then the broker
    (SIGTERM, SIGKILL after a bound), drops the database, and reports a
    problem for every child that did not exit 0 on SIGTERM or whose log
    holds a sanitizer report, printing the tail of its log. It runs at exit
    too, and children get SIGTERM if the test process dies (PDEATHSIG), so
    a failing or crashing test leaves nothing running.

    Usage:
        harness_config_t config = {.name = "identity", .base_port = 17300,
                                   .services = (const char *[]){"identity", NULL}};
        if (harness_start(&config, argv[0]) != 0) return 1;
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        return harness_stop(failed) + failed ? 1 : 0;
*/
#ifndef HARNESS_H_INCLUDED
#define HARNESS_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;            // suite name: database name and log folder
    int base_port;               // first of this suite's ten ports
    const char *const *services; // NULL-terminated service names to start
    const char *const *env;      // NULL-terminated "NAME=value" for every child; may be NULL
    int ready_timeout_ms;        // 0 = 60000
} harness_config_t;

//  Starts the stack. 0, or -1 (after stopping whatever had started and
//  printing what went wrong).
int harness_start(const harness_config_t *config, const char *argv0);

//  Stops the stack. failed_tests > 0 keeps the logs (their folder is
//  printed). Returns the number of problems (see above). Safe to call
//  twice; harness_start may be called again afterwards.
int harness_stop(int failed_tests);

//  "http://127.0.0.1:<gateway port>". Borrowed.
const char *harness_base_url(void);
//  "tcp://127.0.0.1:<broker port>", for calling services directly with
//  rpc.h (call zsys_handler_set(NULL) first, so CZMQ leaves the harness's
//  signal handlers alone). Borrowed.
const char *harness_broker_url(void);
//  The DATABASE_URL the services got. Borrowed.
const char *harness_database_url(void);
//  The repository root (holds schemas/). Borrowed.
const char *harness_repo_dir(void);

//  Sends a signal to a running child by name ("identity", "broker",
//  "gateway"). 0, or -1 when there is no such child.
int harness_signal(const char *name, int signal_number);

//  Waits (at most timeout_ms) until the named child has exited, e.g. after
//  harness_signal(name, SIGTERM), and reaps it. 0 when it exited 0 without
//  a sanitizer report; -1 otherwise (the problem is also counted by
//  harness_stop), on timeout, or when there is no such running child.
int harness_wait_exit(const char *name, int timeout_ms);

//  Starts the named child again with the environment it was first started
//  with (its log is appended to), and waits until the stack answers: polls
//  /readyz until 200, bounded by the config's ready_timeout_ms. A child
//  still running is stopped first (SIGTERM, SIGKILL after a bound); one
//  that exited is reaped and judged as harness_stop would. 0 or -1.
int harness_restart(const char *name);

//  ---- HTTP -----------------------------------------------------------------
typedef struct {
    long status;  // 0 when the request failed (no answer, timeout)
    json_t *json; // the parsed body, or NULL (empty or not JSON)
    char *body;   // the raw body, NUL-terminated
    size_t body_size;
    char *headers; // the raw header block
} http_response_t;

//  Sends method path (relative to harness_base_url, e.g. "/api/v1/me").
//  token: a bearer token or NULL. body: NULL for none, sent as
//  application/json unless headers set Content-Type. headers: NULL or a
//  NULL-terminated list of "Name: value". Returns response->status. The
//  request is bounded (30 s).
long http_request(const char *method, const char *path, const char *token, const char *body,
                  const char *const *headers, http_response_t *response);
//  Same with a body of explicit size (may hold NUL or invalid UTF-8 bytes).
long http_request_raw(const char *method, const char *path, const char *token, const char *body,
                      size_t body_size, const char *const *headers, http_response_t *response);
//  Same with a JSON body (borrowed; NULL for none).
long http_json(const char *method, const char *path, const char *token, const json_t *body,
               http_response_t *response);
void http_response_clear(http_response_t *response);

//  Copies the value of header name (case-insensitive) into buf; returns buf,
//  or NULL when absent.
const char *http_header(const http_response_t *response, const char *name, char *buf, size_t size);

//  Registers username (email <username>@example.com) through the gateway.
//  Returns the 201 body {user, access_token, refresh_token, …} (caller
//  decrefs), or NULL when registration did not answer 201.
json_t *harness_register(const char *username, const char *password);
//  Borrowed string member of object (NULL when absent or not a string).
const char *harness_str(const json_t *object, const char *key);

//  response->json.error.code, or "" when there is none. Borrowed.
const char *http_error_code(const http_response_t *response);
//  response->json.error.fields[field] is present.
bool http_error_names(const http_response_t *response, const char *field);

#endif
