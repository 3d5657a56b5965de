/*  db: one libpq connection, lazily prepared statements, transactions and
    the migration runner.

    Statements. Every db_query() looks its SQL text up in a per-connection
    hash (sql -> statement name "sN"); on a miss it PQprepare()s the text
    under the next name and remembers it. The hash belongs to the connection:
    when the connection is replaced the hash is emptied and statements are
    prepared again on first use. A statement whose cached plan the server
    refuses after a schema change ("cached plan must not change result
    type", 0A000) or that the server forgot (26000) is prepared again once.
    SQL text is meant to be constant (values travel as $n parameters); the
    cache is still bounded (DB_STATEMENTS_MAX) in case it is not.

    Broken connections. Before each call a connection that libpq already
    knows is bad is replaced (same URL, same schema set-up). When a call
    fails because the connection died under it and no transaction is open,
    the connection is replaced and the statement sent once more: the server
    dropped it with "terminating connection" (57P01 and friends) before
    running it, or died; in the rare second case an autocommit write could
    run twice, which is one more reason for writes that matter to run in a
    transaction. Inside a transaction nothing is retried: the transaction is
    gone with the connection, so every further call fails (SQLSTATE 08006)
    until the caller rolls back, and a later autocommit statement can never
    run where the caller believes it is inside the transaction.

    Schema. After connecting, the schema is created if missing and
    search_path is set to "<schema>, public": SQL names tables without a
    prefix, and extensions (pg_trgm, unaccent: one copy per database) are
    created WITH SCHEMA public by migrations and reachable from every schema.

    Errors. The SQLSTATE of the failed call is kept until the next query,
    exec, script, begin or commit (db_rollback leaves it, so a caller can
    roll back first and look at why afterwards). Integrity violations
    (class 23) are expected answers (a taken username) and log at debug
    level, a lost connection at warn (it is retried or reported again),
    everything else as an error. Server notices go to the debug log rather
    than libpq's default of raw stderr lines.

    Memory. libpq grows a connection's output buffer to the largest
    message it ever sent and keeps it for the connection's life: one bulk
    statement (a seed chunk binds arrays of 50,000 values) left two 16 MiB
    buffers in media for good. A statement whose parameters add up to
    DB_RECYCLE_PARAM_BYTES or more marks the connection, and it is replaced
    as soon as no transaction is open (after that statement in autocommit,
    else at commit or rollback). Ordinary statements never come near it, so
    this costs one reconnect per bulk write.

    Deadlines. A service sets the deadline of the request it serves
    (db_set_deadline); db_begin then sends BEGIN with SET LOCAL
    statement_timeout and lock_timeout of the time left, in the same
    simple-query message (one round trip, no more than BEGIN alone), so a
    request never holds its worker past its deadline waiting on a lock or
    a slow statement: the statement fails (SQLSTATE 55P03 or 57014), the
    transaction rolls back and its locks go. Only transactions get it:
    autocommit statements stay without (an extra SET per query would cost a
    round trip), which is acceptable because the writes that take locks run
    in transactions. SET LOCAL ends with the transaction, so nothing leaks
    to the next request on the connection.

    Migrations. db_migrate() takes a session advisory lock keyed on the
    schema name, creates schema_migrations, then applies each .sql file of
    <dir>/<schema>/ in name order (NNN_name.sql) that is not yet recorded,
    each file and its record in one transaction. A second starter waits on
    the lock and then finds everything recorded. A migration file must not
    contain its own BEGIN/COMMIT. A missing folder is an error, not "no
    migrations": started from the wrong directory, a service should stop.
*/
#include "db.h"

#include "config.h"
#include "log.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  First key of the two-int advisory lock that serializes migrations and
//  table creation per schema (the second is hashtext(schema)). The outbox
//  publisher uses the one-bigint form, which Postgres keeps apart.
#define DB_MIGRATION_LOCK 7301

#define DB_SCRIPT_MAX (16 * 1024 * 1024)
//  Statements kept per connection; SQL text should be constant (values go
//  in $n parameters), this only bounds the damage when it is not.
#define DB_STATEMENTS_MAX 1024
//  Parameters this large mark the connection to be replaced (see Memory).
#define DB_RECYCLE_PARAM_BYTES (1024 * 1024)

struct db_t {
    PGconn *conn;
    char *url;
    char *schema;
    zhashx_t *statements;    // sql text -> statement name (owned strings)
    unsigned next_statement; // names are "s1", "s2"… per connection
    bool in_transaction;     // the caller's view: between begin and commit/rollback
    bool transaction_broken; // the connection died inside the transaction
    bool session_bad;        // connected but the schema set-up failed
    bool buffers_grown;      // sent parameters of DB_RECYCLE_PARAM_BYTES or more
    int64_t deadline_ms;     // unix ms of the request being served, 0 = none
    char sqlstate[6];
};

static void s_notice(void *arg, const char *message)
{
    size_t length = strlen(message);
    while (length > 0 && message[length - 1] == '\n')
        length--;
    log_debug("db notice: %.*s", (int)length, message);
}

static void s_set_sqlstate(db_t *self, const char *sqlstate)
{
    snprintf(self->sqlstate, sizeof self->sqlstate, "%s", sqlstate ? sqlstate : "");
}

//  Keeps the SQLSTATE of a failed result (or 08006 when the connection is
//  gone and the server said nothing) and logs the message.
static void s_record_error(db_t *self, const PGresult *result, const char *what)
{
    const char *sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : NULL;
    if (!sqlstate) sqlstate = PQstatus(self->conn) == CONNECTION_BAD ? "08006" : "XX000";
    s_set_sqlstate(self, sqlstate);
    const char *message = result ? PQresultErrorMessage(result) : "";
    if (!message || !*message) message = PQerrorMessage(self->conn);
    size_t length = strlen(message);
    while (length > 0 && message[length - 1] == '\n')
        length--;
    if (strncmp(sqlstate, "23", 2) == 0)
        log_debug("db %s: %s: %.*s", what, sqlstate, (int)length, message);
    else if (PQstatus(self->conn) == CONNECTION_BAD)
        log_warn("db %s: %s: %.*s", what, sqlstate, (int)length, message); // retried or reported
    else
        log_error("db %s: %s: %.*s", what, sqlstate, (int)length, message);
}

static bool s_result_ok(const PGresult *result)
{
    ExecStatusType status = PQresultStatus(result);
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

//  Runs one utility statement with the simple protocol. 0 or -1.
static int s_simple(db_t *self, const char *sql, const char *what)
{
    PGresult *result = PQexec(self->conn, sql);
    int rc = 0;
    if (!s_result_ok(result)) {
        s_record_error(self, result, what);
        rc = -1;
    }
    PQclear(result);
    return rc;
}

//  How Postgres plans our prepared statements (DB_PLAN_CACHE_MODE).
//  Postgres' default ("auto") plans the first five executions of a
//  statement for their parameters and keeps doing so whenever the generic
//  plan looks costlier: measured on the profile path, re-planning the graph
//  relations query took 0.66 ms of a 0.73 ms call, and forcing generic
//  plans cut Postgres' CPU per GET /users/{u} from 0.68 ms to 0.38 ms
//  (docs/benchmarks.md). Our statements are key lookups and index-ordered
//  pages whose best plan does not depend on the values, so generic plans
//  are the default; a service whose plans do depend on them (search: the
//  trigram and prefix queries) sets "auto" before service_main().
static const char *s_plan_cache_setting(void)
{
    const char *mode = getenv("DB_PLAN_CACHE_MODE");
    if (mode && streq(mode, "auto")) return "SET plan_cache_mode = auto";
    if (mode && streq(mode, "force_custom_plan")) return "SET plan_cache_mode = force_custom_plan";
    if (mode && *mode && !streq(mode, "force_generic_plan"))
        log_warn("db: DB_PLAN_CACHE_MODE=%s is not auto, force_generic_plan or "
                 "force_custom_plan; using force_generic_plan",
                 mode);
    return "SET plan_cache_mode = force_generic_plan";
}

//  Creates the schema if missing and points search_path at it.
static int s_setup_session(db_t *self)
{
    char *quoted = PQescapeIdentifier(self->conn, self->schema, strlen(self->schema));
    if (!quoted) {
        log_error("db: cannot quote schema name: %s", PQerrorMessage(self->conn));
        return -1;
    }
    char *create = zsys_sprintf("CREATE SCHEMA IF NOT EXISTS %s", quoted);
    char *path = zsys_sprintf("SET search_path TO %s, public", quoted);
    PQfreemem(quoted);
    //  Two connections creating the same schema at once can both pass the
    //  IF NOT EXISTS check; the loser gets a unique violation and retries.
    int rc = s_simple(self, create, "create schema");
    if (rc != 0 && PQstatus(self->conn) == CONNECTION_OK)
        rc = s_simple(self, create, "create schema");
    if (rc == 0) rc = s_simple(self, path, "set search_path");
    if (rc == 0) rc = s_simple(self, s_plan_cache_setting(), "set plan_cache_mode");
    zstr_free(&create);
    zstr_free(&path);
    return rc;
}

//  (Re)connects: a fresh connection, no prepared statements, no
//  transaction. 0 or -1 (then self->conn is a bad connection, never NULL).
static int s_connect(db_t *self)
{
    if (self->conn) PQfinish(self->conn);
    zhashx_purge(self->statements);
    self->next_statement = 0;
    self->session_bad = false;
    self->buffers_grown = false;
    //  The program's name as the session's application_name (unless the
    //  URL sets one): pg_stat_activity then says which service holds a
    //  connection, and bench/cpu.sh counts Postgres's CPU per service.
    const char *keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {self->url, log_program(), NULL};
    self->conn = PQconnectdbParams(keywords, values, 1);
    if (!self->conn) {
        log_error("db: out of memory connecting");
        return -1;
    }
    if (PQstatus(self->conn) != CONNECTION_OK) {
        char *masked = config_mask_url(self->url);
        const char *message = PQerrorMessage(self->conn);
        size_t length = strlen(message);
        while (length > 0 && message[length - 1] == '\n')
            length--;
        log_error("db: cannot connect to %s: %.*s", masked ? masked : "?", (int)length, message);
        freen(masked);
        return -1;
    }
    PQsetNoticeProcessor(self->conn, s_notice, NULL);
    //  A half set-up session must not be used: the next call reconnects.
    self->session_bad = s_setup_session(self) != 0;
    return self->session_bad ? -1 : 0;
}

//  Makes sure a usable connection is there before a call. Inside a
//  transaction a lost connection cannot be replaced (the transaction died
//  with it). 0 or -1 (SQLSTATE 08006 recorded).
static int s_ready(db_t *self)
{
    if (self->in_transaction && self->transaction_broken) {
        s_set_sqlstate(self, "08006");
        log_error("db: the connection was lost inside this transaction; roll back");
        return -1;
    }
    if (PQstatus(self->conn) == CONNECTION_OK && !self->session_bad) return 0;
    if (self->in_transaction) {
        self->transaction_broken = true;
        s_set_sqlstate(self, "08006");
        log_error("db: the connection was lost inside a transaction");
        return -1;
    }
    log_warn("db: connection lost, reconnecting");
    if (s_connect(self) != 0) {
        s_set_sqlstate(self, "08006");
        return -1;
    }
    return 0;
}

//  True when a call failed because the connection died (the statement may
//  be sent again on a new connection if no transaction is open).
static bool s_connection_lost(db_t *self)
{
    if (PQstatus(self->conn) != CONNECTION_BAD) return false;
    if (self->in_transaction) self->transaction_broken = true;
    return true;
}

//  Marks the connection when this call's parameters will grow libpq's
//  output buffer past DB_RECYCLE_PARAM_BYTES.
static void s_note_param_bytes(db_t *self, int nparams, const char *const *params)
{
    size_t bytes = 0;
    for (int i = 0; params && i < nparams; i++)
        if (params[i]) bytes += strlen(params[i]);
    if (bytes >= DB_RECYCLE_PARAM_BYTES) self->buffers_grown = true;
}

//  Outside a transaction, replaces a connection whose buffers a bulk
//  statement grew (a failed reconnect leaves a bad connection, which the
//  next call replaces as usual).
static void s_recycle_if_grown(db_t *self)
{
    if (!self->buffers_grown || self->in_transaction) return;
    log_debug("db: replacing the connection after a bulk statement");
    s_connect(self);
}

db_t *db_new(const char *url, const char *schema)
{
    assert(url);
    assert(schema);
    db_t *self = (db_t *)zmalloc(sizeof(db_t));
    self->url = strdup(url);
    self->schema = strdup(schema);
    self->statements = zhashx_new();
    zhashx_set_destructor(self->statements, (zhashx_destructor_fn *)zstr_free);
    if (s_connect(self) != 0) {
        db_destroy(&self);
        return NULL;
    }
    return self;
}

void db_destroy(db_t **self_p)
{
    assert(self_p);
    db_t *self = *self_p;
    if (!self) return;
    if (self->conn) PQfinish(self->conn);
    zhashx_destroy(&self->statements);
    freen(self->url);
    freen(self->schema);
    freen(self);
    *self_p = NULL;
}

PGconn *db_conn(db_t *self)
{
    assert(self);
    return self->conn;
}

const char *db_schema(db_t *self)
{
    assert(self);
    return self->schema;
}

PGresult *db_query(db_t *self, const char *sql, int nparams, const char *const *params)
{
    assert(self);
    assert(sql);
    self->sqlstate[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s_ready(self) != 0) return NULL;
        const char *name = (const char *)zhashx_lookup(self->statements, sql);
        if (!name) {
            if (zhashx_size(self->statements) >= DB_STATEMENTS_MAX) {
                //  SQL built at run time would grow the cache without end.
                log_warn("db: %d statements prepared; starting over", DB_STATEMENTS_MAX);
                PQclear(PQexec(self->conn, "DEALLOCATE ALL"));
                zhashx_purge(self->statements);
            }
            char *new_name = zsys_sprintf("s%u", ++self->next_statement);
            PGresult *prepared = PQprepare(self->conn, new_name, sql, nparams, NULL);
            if (!s_result_ok(prepared)) {
                s_record_error(self, prepared, "prepare");
                PQclear(prepared);
                zstr_free(&new_name);
                if (s_connection_lost(self) && !self->in_transaction) continue;
                return NULL;
            }
            PQclear(prepared);
            zhashx_insert(self->statements, sql, new_name);
            name = new_name;
        }
        s_note_param_bytes(self, nparams, params);
        PGresult *result =
            PQexecPrepared(self->conn, name, nparams, (const char *const *)params, NULL, NULL, 0);
        if (s_result_ok(result)) {
            s_recycle_if_grown(self); // a PGresult outlives its connection
            return result;
        }
        s_record_error(self, result, "query");
        const char *sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : NULL;
        bool stale = sqlstate && (streq(sqlstate, "0A000") || streq(sqlstate, "26000"));
        PQclear(result);
        if (s_connection_lost(self) && !self->in_transaction) continue;
        if (stale && !self->in_transaction && attempt == 0) {
            //  Forget the statement (and its server-side copy) and prepare again.
            char *deallocate = zsys_sprintf("DEALLOCATE %s", name);
            PQclear(PQexec(self->conn, deallocate));
            zstr_free(&deallocate);
            zhashx_delete(self->statements, sql);
            continue;
        }
        return NULL;
    }
    return NULL;
}

long db_exec(db_t *self, const char *sql, int nparams, const char *const *params)
{
    PGresult *result = db_query(self, sql, nparams, params);
    if (!result) return -1;
    long count = atol(PQcmdTuples(result));
    PQclear(result);
    return count;
}

int db_exec_script(db_t *self, const char *sql)
{
    assert(self);
    assert(sql);
    self->sqlstate[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s_ready(self) != 0) return -1;
        PGresult *result = PQexec(self->conn, sql);
        if (s_result_ok(result)) {
            PQclear(result);
            return 0;
        }
        s_record_error(self, result, "script");
        PQclear(result);
        if (s_connection_lost(self) && !self->in_transaction) continue;
        return -1;
    }
    return -1;
}

const char *db_last_sqlstate(db_t *self)
{
    assert(self);
    return self->sqlstate;
}

bool db_last_was_unique_violation(db_t *self)
{
    assert(self);
    return streq(self->sqlstate, "23505");
}

void db_set_deadline(db_t *self, int64_t deadline_ms)
{
    assert(self);
    self->deadline_ms = deadline_ms > 0 ? deadline_ms : 0;
}

int db_begin(db_t *self)
{
    assert(self);
    assert(!self->in_transaction); // nesting is not supported
    char begin[160] = "BEGIN";
    if (self->deadline_ms) {
        //  At least 1 ms: 0 would mean "no limit" to Postgres, and a
        //  request past its deadline should fail at once, not run free.
        int64_t left = self->deadline_ms - zclock_time();
        if (left < 1) left = 1;
        snprintf(begin, sizeof begin,
                 "BEGIN; SET LOCAL statement_timeout = %lld; SET LOCAL lock_timeout = %lld",
                 (long long)left, (long long)left);
    }
    if (db_exec_script(self, begin) != 0) return -1;
    self->in_transaction = true;
    self->transaction_broken = false;
    return 0;
}

int db_commit(db_t *self)
{
    assert(self);
    if (!self->in_transaction) {
        log_error("db: commit without a transaction");
        s_set_sqlstate(self, "25P01");
        return -1;
    }
    self->sqlstate[0] = '\0';
    int rc = -1;
    if (self->transaction_broken || PQstatus(self->conn) != CONNECTION_OK) {
        s_set_sqlstate(self, "08006");
        log_error("db: commit after the connection was lost");
    } else {
        PGresult *result = PQexec(self->conn, "COMMIT");
        if (!s_result_ok(result))
            s_record_error(self, result, "commit");
        else if (!streq(PQcmdStatus(result), "COMMIT")) {
            //  COMMIT of an aborted transaction "succeeds" as ROLLBACK.
            s_set_sqlstate(self, "25P02");
            log_warn("db: commit of a failed transaction rolled back");
        } else
            rc = 0;
        PQclear(result);
    }
    self->in_transaction = false;
    self->transaction_broken = false;
    s_recycle_if_grown(self);
    return rc;
}

void db_rollback(db_t *self)
{
    assert(self);
    if (PQstatus(self->conn) == CONNECTION_OK && PQtransactionStatus(self->conn) != PQTRANS_IDLE)
        PQclear(PQexec(self->conn, "ROLLBACK"));
    self->in_transaction = false;
    self->transaction_broken = false;
    s_recycle_if_grown(self);
}

bool db_in_transaction(db_t *self)
{
    assert(self);
    return self->in_transaction;
}

//  ---- migrations ----------------------------------------------------------

static int s_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

//  Reads a whole file into a new NUL-terminated string; NULL on failure.
static char *s_read_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    char *text = NULL;
    struct stat info;
    if (fstat(fileno(file), &info) == 0 && info.st_size >= 0 && info.st_size < DB_SCRIPT_MAX) {
        size_t size = (size_t)info.st_size;
        text = (char *)zmalloc(size + 1);
        if (fread(text, 1, size, file) != size)
            freen(text);
        else
            text[size] = '\0';
    }
    fclose(file);
    return text;
}

//  The .sql file names in folder, sorted; *count_out gets their number. NULL
//  when the folder cannot be read.
static char **s_list_migrations(const char *folder, size_t *count_out)
{
    DIR *dir = opendir(folder);
    if (!dir) return NULL;
    size_t count = 0, capacity = 16;
    char **names = (char **)zmalloc(capacity * sizeof(char *));
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        size_t length = strlen(entry->d_name);
        if (entry->d_name[0] == '.' || length <= 4 || !streq(entry->d_name + length - 4, ".sql"))
            continue;
        if (count == capacity) {
            capacity *= 2;
            names = (char **)realloc(names, capacity * sizeof(char *));
            assert(names);
        }
        names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof(char *), s_compare_names);
    *count_out = count;
    return names;
}

//  Applies one file in its own transaction. 1 applied, 0 already there, -1.
static int s_apply_migration(db_t *self, const char *folder, const char *name)
{
    char *version = strndup(name, strlen(name) - 4);
    const char *params[] = {version};
    PGresult *found =
        db_query(self, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, params);
    if (!found) {
        freen(version);
        return -1;
    }
    bool applied = PQntuples(found) > 0;
    PQclear(found);
    if (applied) {
        freen(version);
        return 0;
    }
    char *path = zsys_sprintf("%s/%s", folder, name);
    char *script = s_read_file(path);
    int rc = -1;
    if (!script)
        log_error("db: cannot read migration %s: %s", path, strerror(errno));
    else if (db_begin(self) == 0) {
        if (db_exec_script(self, script) == 0 &&
            db_exec(self, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, params) == 1 &&
            db_commit(self) == 0) {
            log_info("db: applied migration %s", path);
            rc = 1;
        } else {
            db_rollback(self);
            log_error("db: migration %s failed (SQLSTATE %s)", path, self->sqlstate);
        }
    }
    freen(script);
    zstr_free(&path);
    freen(version);
    return rc;
}

int db_migrate(db_t *self, const char *dir)
{
    assert(self);
    assert(dir);
    assert(!self->in_transaction);
    char *folder = zsys_sprintf("%s/%s", dir, self->schema);
    size_t count = 0;
    char **names = s_list_migrations(folder, &count);
    if (!names) {
        log_error("db: cannot read migrations folder %s: %s", folder, strerror(errno));
        zstr_free(&folder);
        return -1;
    }
    char lock_key[16];
    snprintf(lock_key, sizeof lock_key, "%d", DB_MIGRATION_LOCK);
    const char *lock_params[] = {lock_key, self->schema};
    int applied = -1;
    if (db_exec(self, "SELECT pg_advisory_lock($1::int, hashtext($2))", 2, lock_params) < 0)
        goto cleanup;
    if (db_exec_script(self, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             " version text PRIMARY KEY,"
                             " applied_at timestamptz NOT NULL DEFAULT now())") == 0) {
        applied = 0;
        for (size_t index = 0; index < count; index++) {
            int rc = s_apply_migration(self, folder, names[index]);
            if (rc < 0) {
                applied = -1;
                break;
            }
            applied += rc;
        }
    }
    //  A migration may have changed session settings; put ours back. The
    //  unlock is skipped on a lost connection (the server released it).
    if (PQstatus(self->conn) == CONNECTION_OK) {
        s_setup_session(self);
        db_exec(self, "SELECT pg_advisory_unlock($1::int, hashtext($2))", 2, lock_params);
    }
cleanup:
    for (size_t index = 0; index < count; index++)
        freen(names[index]);
    freen(names);
    zstr_free(&folder);
    return applied;
}

const char *db_schemas_dir(void)
{
    return config_str("SCHEMAS_DIR", "schemas");
}
