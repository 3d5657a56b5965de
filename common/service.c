/*  service: the wiring every service's main.c shares (see service.h).

    Start-up, in order: configuration (defaults are put into the environment
    so the config log line shows what is really used), --help, the shard of
    the id generator, then, for a service with a database, one connection to
    create the events tables, apply schemas/<name>/ and run on_start. Only
    then do the event publisher and subscriber and the WORKERS threads start,
    so no request ever meets a half-migrated schema.

    Threads. Each worker thread owns a worker_t (its own DEALER to the broker,
    so the broker load-balances across threads exactly as across processes),
    a db_t and an rpc_client_t; nothing is shared between threads except the
    read-only service_def_t. All of them are created by the main thread
    before the threads start, so a bad endpoint or an unreachable database
    fails the start with a clear message instead of a half-running service.

    Every request the broker hands over gets exactly one reply, even one
    that is malformed (400) or whose deadline has passed (504, not served):
    the broker counts the worker busy until it replies.

    Shutdown. CZMQ's signal handler sets zsys_interrupted on SIGTERM/SIGINT.
    Each thread notices it within one worker_recv timeout, after finishing
    the request it holds, and leaves (worker.h): DISCONNECT first, so the
    broker stops routing to it, then it serves whatever the broker sent
    before reading the DISCONNECT, until the broker's echo (at most
    LEAVE_MAX_MS), so no request delivered to it goes unanswered. The main
    thread joins them, stops the event threads and returns 0.
*/
#include "service.h"
#include "config.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "worker.h"

#include <czmq.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BROKER_URL "tcp://127.0.0.1:5555"
#define DEFAULT_EVENTS_PUB_URL "tcp://127.0.0.1:5556"
#define DEFAULT_EVENTS_SUB_URL "tcp://127.0.0.1:5557"
#define DEFAULT_DATABASE_URL "postgresql://127.0.0.1:5432/app?user=app"
#define WORKERS_MAX 256
//  How long a starting service waits for its database (e.g. Postgres still
//  starting in a container next to it).
#define DB_CONNECT_ATTEMPTS 30
//  worker_recv timeout: how quickly an idle thread notices a shutdown.
#define RECV_SLICE_MS 250
//  How long a leaving thread waits for the broker's DISCONNECT echo: the
//  broker answers at once, or after the one request crossing our
//  DISCONNECT is served; no echo (a broker that is down) ends it here.
#define LEAVE_MAX_MS 3000

typedef struct {
    const service_def_t *def;
    worker_t *worker;
    db_t *db;
    rpc_client_t *rpc;
    pthread_t thread;
    bool running;
} worker_thread_t;

//  ---------------------------------------------------------------------
//  Dispatch

//  True when reply has the shape the envelope decoder accepts.
static bool s_reply_is_valid(const json_t *reply)
{
    json_t *status = json_object_get(reply, "status");
    if (!json_is_integer(status) || json_integer_value(status) < 100 ||
        json_integer_value(status) > 599)
        return false;
    json_t *error = json_object_get(reply, "error");
    if (error) return json_is_object(error) && json_is_string(json_object_get(error, "code"));
    return json_object_get(reply, "body") != NULL;
}

json_t *service_dispatch(const service_def_t *def, call_t *call)
{
    const char *method = call->request->method;
    service_handler_fn handler = NULL;
    for (const service_method_t *entry = def->methods; entry && entry->method; entry++)
        if (streq(entry->method, method)) {
            handler = entry->handler;
            break;
        }
    json_t *reply = NULL;
    if (handler)
        reply = handler(call);
    else if (def->produces_events && streq(method, "events.replay") && call->db)
        reply = events_replay(call->db, call->args);
    else
        return reply_error(404, ERR_NOT_FOUND, "unknown method");

    if (!reply) {
        log_error("%s returned no reply", method);
        return reply_error(500, ERR_INTERNAL, "internal error");
    }
    if (!s_reply_is_valid(reply)) {
        log_error("%s returned a malformed reply", method);
        json_decref(reply);
        return reply_error(500, ERR_INTERNAL, "internal error");
    }
    return reply;
}

//  ---------------------------------------------------------------------
//  Worker threads

//  A request that carried a blob this large (an upload: a few MiB in, and
//  several more for the image work) leaves that much freed memory in the
//  thread's malloc arena, and glibc keeps it: the process would hold the
//  peak of its busiest upload as its RSS for good. So after such a
//  request the free pages go back to the system (malloc_trim), but only
//  once a worker thread has waited a whole RECV_SLICE_MS for work: a trim
//  after every upload made the next one fault the same pages back in
//  (page faults, madvise and TLB flushes were 13% of media's CPU under a
//  stream of uploads), while the pages a busy process keeps reusing are
//  its working set, not a leak. One trim serves every arena.
#define SERVICE_TRIM_BYTES (256 * 1024)
//  Likewise after a request that ran this long (bulk work: a seed chunk of
//  50,000 rows and their events), or whose reply was this large (a page of
//  events.replay for a consumer catching up): each frees far more than a
//  page of posts does.
#define SERVICE_TRIM_AFTER_MS 1000
#define SERVICE_TRIM_REPLY_BYTES (64 * 1024)

//  Set by a large request, cleared by the idle thread that trims.
static atomic_bool s_trim_pending;

//  Decodes, runs and answers one request.
static void s_serve(worker_thread_t *self, worker_request_t *work)
{
    int64_t started = zclock_mono();
    envelope_request_t request;
    json_t *reply = NULL;
    void *reply_blob = NULL;
    size_t reply_blob_size = 0;
    char *bytes = NULL;
    size_t size = 0;
    if (envelope_request_decode(work->envelope, work->envelope_size, &request) == -1) {
        log_warn("malformed request envelope");
        reply = reply_error(400, ERR_INVALID, "malformed request envelope");
    } else {
        if (!request.request_id[0])
            log_new_request_id(request.request_id, sizeof request.request_id);
        log_set_request_id(request.request_id);
        if (request.deadline_ms <= envelope_now_ms()) {
            //  The caller has given up already: do not do the work.
            log_debug("%s: deadline passed before it was served, skipped", request.method);
            reply =
                reply_error(504, ERR_TIMEOUT, "the deadline passed before the request was served");
        } else {
            call_t call = {.request = &request,
                           .args = request.args,
                           .viewer_id = request.viewer_id,
                           .db = self->db,
                           .rpc = self->rpc,
                           .state = self->def->state,
                           .blob = work->blob,
                           .blob_size = work->blob_size};
            if (self->db) db_set_deadline(self->db, request.deadline_ms);
            reply = service_dispatch(self->def, &call);
            if (self->db) db_set_deadline(self->db, 0);
            reply_blob = call.reply_blob;
            reply_blob_size = call.reply_blob_size;
            bytes = (char *)call.reply_packed;
            size = call.reply_packed_size;
        }
    }
    int status = reply_status(reply);
    bool large = work->blob_size >= SERVICE_TRIM_BYTES || reply_blob_size >= SERVICE_TRIM_BYTES ||
                 zclock_mono() - started >= SERVICE_TRIM_AFTER_MS;
    if (!bytes) bytes = envelope_reply_encode(reply, &size);
    if (!bytes) {
        log_error("cannot encode the reply of %s", request.method);
        json_decref(reply);
        reply = reply_error(500, ERR_INTERNAL, "internal error");
        status = 500;
        bytes = envelope_reply_encode(reply, &size);
        freen(reply_blob); // it belonged to the reply that was lost
    }
    if (size >= SERVICE_TRIM_REPLY_BYTES) large = true;
    if (bytes &&
        worker_send_blob(self->worker, work, bytes, size, reply_blob, reply_blob_size) == -1)
        log_warn("cannot send the reply of %s", request.method);
    worker_request_clear(work);
    int64_t took = zclock_mono() - started;
    if (status >= 500)
        log_warn("%s -> %d in %lld ms", request.method, status, (long long)took);
    else
        log_debug("%s -> %d in %lld ms", request.method, status, (long long)took);
    free(bytes);
    free(reply_blob);
    json_decref(reply);
    envelope_request_clear(&request);
    log_set_request_id(NULL);
    if (large) atomic_store(&s_trim_pending, true);
}

static void *s_worker_thread(void *arg)
{
    worker_thread_t *self = (worker_thread_t *)arg;
    while (!zsys_interrupted) {
        worker_request_t work;
        int rc = worker_recv(self->worker, &work, RECV_SLICE_MS);
        if (rc == -1) break;
        if (rc == 1) s_serve(self, &work);
        if (rc == 0 && atomic_exchange(&s_trim_pending, false)) malloc_trim(0);
    }
    //  DISCONNECT now rather than after every thread has finished, then
    //  answer what crossed it.
    if (worker_leave(self->worker) == 0) {
        int64_t until = zclock_mono() + LEAVE_MAX_MS;
        int rc;
        worker_request_t work;
        while ((rc = worker_drain(self->worker, &work, (int)(until - zclock_mono()))) == 1)
            s_serve(self, &work);
        if (rc == -1) log_warn("left without the broker's DISCONNECT echo");
    }
    worker_destroy(&self->worker);
    return NULL;
}

//  ---------------------------------------------------------------------
//  Start-up

//  Connects, retrying for a while so a service may start before its
//  database is ready. NULL when it never came up or we were interrupted.
static db_t *s_db_connect(const char *url, const char *schema)
{
    for (int attempt = 1; attempt <= DB_CONNECT_ATTEMPTS && !zsys_interrupted; attempt++) {
        db_t *db = db_new(url, schema);
        if (db) return db;
        log_warn("database not reachable (attempt %d of %d)", attempt, DB_CONNECT_ATTEMPTS);
        zclock_sleep(1000);
    }
    return NULL;
}

//  Creates the events tables, migrates and runs on_start. 0 or -1.
static int s_prepare_database(const service_def_t *def, const char *url)
{
    db_t *db = s_db_connect(url, def->name);
    if (!db) return -1;
    int rc = -1;
    if (events_ensure_tables(db) == -1) {
        log_error("cannot create the events tables");
        goto cleanup;
    }
    int applied = db_migrate(db, db_schemas_dir());
    if (applied < 0) {
        log_error("migrations failed");
        goto cleanup;
    }
    log_info("migrations applied: %d", applied);
    if (def->on_start && def->on_start(db, def->state) == -1) {
        log_error("on_start failed");
        goto cleanup;
    }
    rc = 0;
cleanup:
    db_destroy(&db);
    return rc;
}

//  Leases an id shard for this process: the first of 0..8191 whose
//  session advisory lock (namespaced by service) this connection gets.
//  Replicas started from one environment (compose --scale, a Deployment)
//  thus get different shards without configuration, so two of them can
//  never make the same id in the same millisecond. The lock lasts as long
//  as the returned connection, which the caller keeps open for the life of
//  the process. Returns the connection, or NULL when no shard is free.
static db_t *s_lease_shard(const char *url, const char *name, int *shard_out)
{
    db_t *db = s_db_connect(url, name);
    if (!db) return NULL;
    const char *params[] = {name};
    PGresult *res = db_query(db,
                             "SELECT s FROM generate_series(0, 8191) AS s"
                             " WHERE pg_try_advisory_lock(hashtext('shard:' || $1), s) LIMIT 1",
                             1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        db_destroy(&db);
        return NULL;
    }
    *shard_out = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return db;
}

//  Builds the --help text: the service's paragraph and the variables.
static char *s_usage(const service_def_t *def)
{
    char extra[512] = "";
    size_t used = 0;
    for (size_t i = 0; def->config_names && def->config_names[i]; i++)
        used += (size_t)snprintf(extra + used, used < sizeof extra ? sizeof extra - used : 0,
                                 "  %s\n", def->config_names[i]);
    return zsys_sprintf("Usage: %s [--help]\n\n%s\n\n"
                        "Environment (default):\n"
                        "  BROKER_URL       broker for requests (" DEFAULT_BROKER_URL ")\n"
                        "  EVENTS_PUB_URL   broker's event input (" DEFAULT_EVENTS_PUB_URL ")\n"
                        "  EVENTS_SUB_URL   broker's event output (" DEFAULT_EVENTS_SUB_URL ")\n"
                        "%s"
                        "  WORKERS          worker threads (4)\n"
                        "  SHARD            id generator shard, 0..8191, or auto: leased from\n"
                        "                   Postgres per process (auto; 0 without a database)\n"
                        "  LOG_LEVEL        debug|info|warn|error (info)\n"
                        "%s",
                        def->name, def->usage ? def->usage : "",
                        def->uses_database
                            ? "  DATABASE_URL     PostgreSQL (" DEFAULT_DATABASE_URL ")\n"
                              "  SCHEMAS_DIR      folder holding schemas/<name>/ (schemas)\n"
                            : "",
                        extra);
}

//  Logs the effective configuration: the common names and the service's.
static void s_log_config(const service_def_t *def)
{
    const char *names[64];
    size_t count = 0;
    static const char *const common[] = {"BROKER_URL", "EVENTS_PUB_URL", "EVENTS_SUB_URL",
                                         "WORKERS",    "SHARD",          "LOG_LEVEL"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        names[count++] = common[i];
    if (def->uses_database) {
        names[count++] = "DATABASE_URL";
        names[count++] = "SCHEMAS_DIR";
    }
    for (size_t i = 0; def->config_names && def->config_names[i] && count < 63; i++)
        names[count++] = def->config_names[i];
    names[count] = NULL;
    config_log(names);
}

int service_main(const service_def_t *def, int argc, char **argv)
{
    assert(def && def->name && def->methods);
    assert(!def->produces_events || def->uses_database);
    assert(!def->consumes || def->uses_database);
    char *usage = s_usage(def);
    bool help = config_wants_help(argc, argv, usage);
    zstr_free(&usage);
    if (help) return 0;

    setenv("BROKER_URL", DEFAULT_BROKER_URL, 0);
    setenv("EVENTS_PUB_URL", DEFAULT_EVENTS_PUB_URL, 0);
    setenv("EVENTS_SUB_URL", DEFAULT_EVENTS_SUB_URL, 0);
    setenv("WORKERS", "4", 0);
    setenv("SHARD", def->uses_database ? "auto" : "0", 0);
    setenv("LOG_LEVEL", "info", 0);
    if (def->uses_database) {
        setenv("DATABASE_URL", DEFAULT_DATABASE_URL, 0);
        setenv("SCHEMAS_DIR", "schemas", 0);
    }
    log_init(def->name);
    s_log_config(def);
    //  Installs CZMQ's SIGINT/SIGTERM handler (zsys_interrupted) now, so a
    //  signal during migrations is a clean stop too.
    zsys_init();

    const char *broker_url = config_str("BROKER_URL", DEFAULT_BROKER_URL);
    const char *database_url = config_str("DATABASE_URL", DEFAULT_DATABASE_URL);
    int64_t workers = config_int("WORKERS", 4);
    if (workers < 1 || workers > WORKERS_MAX) {
        log_error("WORKERS must be 1..%d", WORKERS_MAX);
        return 2;
    }
    db_t *shard_lease = NULL;
    bool shard_auto = streq(config_str("SHARD", "auto"), "auto");
    int64_t shard = shard_auto ? 0 : config_int("SHARD", -1);
    if (shard < 0 || shard > INT32_MAX || ids_set_shard((int)shard) == -1) {
        log_error("SHARD must be 0..8191 or auto");
        return 2;
    }
    if (def->uses_database && s_prepare_database(def, database_url) == -1) return 1;
    if (shard_auto && def->uses_database) {
        int leased = 0;
        shard_lease = s_lease_shard(database_url, def->name, &leased);
        if (!shard_lease || ids_set_shard(leased) == -1) {
            log_error("cannot lease an id shard (SHARD=auto)");
            db_destroy(&shard_lease);
            return 1;
        }
        log_info("id shard %d leased", leased);
    }
    if (!def->uses_database && def->on_start && def->on_start(NULL, def->state) == -1) {
        log_error("on_start failed");
        return 1;
    }

    int rc = 1;
    events_publisher_t *publisher = NULL;
    events_subscriber_t *subscriber = NULL;
    worker_thread_t *threads = (worker_thread_t *)zmalloc(sizeof *threads * (size_t)workers);
    if (def->produces_events) {
        publisher = events_publisher_new(database_url, def->name,
                                         config_str("EVENTS_PUB_URL", DEFAULT_EVENTS_PUB_URL));
        if (!publisher) {
            log_error("cannot start the event publisher");
            goto cleanup;
        }
    }
    if (def->consumes && def->consumes[0].topic) {
        subscriber = events_subscriber_new(database_url, def->name,
                                           config_str("EVENTS_SUB_URL", DEFAULT_EVENTS_SUB_URL),
                                           broker_url, def->consumes, def->state);
        if (!subscriber) {
            log_error("cannot start the event subscriber");
            goto cleanup;
        }
    }
    for (int64_t i = 0; i < workers; i++) {
        worker_thread_t *thread = &threads[i];
        thread->def = def;
        thread->worker = worker_new(broker_url, def->name);
        thread->rpc = rpc_client_new(broker_url);
        thread->db = def->uses_database ? s_db_connect(database_url, def->name) : NULL;
        if (!thread->worker || !thread->rpc || (def->uses_database && !thread->db)) {
            log_error("cannot set up worker thread %lld", (long long)i);
            goto cleanup;
        }
    }
    for (int64_t i = 0; i < workers; i++) {
        if (pthread_create(&threads[i].thread, NULL, s_worker_thread, &threads[i]) != 0) {
            log_error("cannot start worker thread %lld", (long long)i);
            zsys_interrupted = 1; // stops the ones already running
            goto cleanup;
        }
        threads[i].running = true;
    }
    log_info("%s serving with %lld workers via %s", def->name, (long long)workers, broker_url);
    while (!zsys_interrupted)
        zclock_sleep(100);
    log_info("%s stopping", def->name);
    rc = 0;

cleanup:
    rpc_zsys_ignore_stop_signals();
    for (int64_t i = 0; i < workers; i++) {
        if (threads[i].running) pthread_join(threads[i].thread, NULL);
        worker_destroy(&threads[i].worker);
        rpc_client_destroy(&threads[i].rpc);
        db_destroy(&threads[i].db);
    }
    freen(threads);
    events_subscriber_destroy(&subscriber);
    events_publisher_destroy(&publisher);
    db_destroy(&shard_lease);
    log_info("%s stopped", def->name);
    return rc;
}
