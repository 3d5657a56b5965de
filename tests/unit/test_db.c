/*  test_db: db.c against a real PostgreSQL.

    The server is TEST_DATABASE_URL when set (tests/run.sh starts one for
    every suite); otherwise this binary starts its own with scripts/pg.sh in
    a temporary folder on the first free port of 17100..17109 and destroys
    it at the end. Every run works in its own schema (test_db_<pid>_<rand>),
    dropped at the end, so runs against a shared server do not meet. The
    server-restart case runs only against a server this binary started.
*/
#include "db.h"
#include "log.h"
#include "unit_pg.h"

#include <czmq.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#define PORT_FIRST 17100
#define PORT_LAST 17109

static unit_pg_t *s_pg;
static char s_url[256];
static char s_schema[64];
static char s_migrations[128]; // temp folder holding <schema>/NNN_x.sql

//  ---- fixture ---------------------------------------------------------------

static int s_group_setup(void **state)
{
    log_init("test_db");
    s_pg = unit_pg_new("test_db", "scripts/pg.sh", PORT_FIRST, PORT_LAST);
    if (!s_pg) return -1;
    snprintf(s_url, sizeof s_url, "%s", unit_pg_url(s_pg));
    snprintf(s_schema, sizeof s_schema, "test_db_%d_%u", (int)getpid(),
             (unsigned)(zclock_usecs() % 1000000));
    snprintf(s_migrations, sizeof s_migrations, "/tmp/test_db_migrations.XXXXXX");
    if (!mkdtemp(s_migrations)) return -1;
    return 0;
}

static int s_drop_schema(const char *schema)
{
    db_t *db = db_new(s_url, "public");
    if (!db) return -1;
    char *sql = zsys_sprintf("DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    int rc = db_exec_script(db, sql);
    zstr_free(&sql);
    db_destroy(&db);
    return rc;
}

static int s_group_teardown(void **state)
{
    s_drop_schema(s_schema);
    char *schema2 = zsys_sprintf("%s_mt", s_schema);
    s_drop_schema(schema2);
    zstr_free(&schema2);
    char command[512];
    snprintf(command, sizeof command, "rm -rf %s", s_migrations);
    if (system(command) != 0) fprintf(stderr, "test_db: cannot remove %s\n", s_migrations);
    unit_pg_destroy(&s_pg);
    return 0;
}

static void s_write_file(const char *schema, const char *name, const char *text)
{
    char *folder = zsys_sprintf("%s/%s", s_migrations, schema);
    mkdir(folder, 0755);
    char *path = zsys_sprintf("%s/%s", folder, name);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
    zstr_free(&path);
    zstr_free(&folder);
}

static long s_count(db_t *db, const char *sql)
{
    PGresult *result = db_query(db, sql, 0, NULL);
    assert_non_null(result);
    assert_int_equal(PQntuples(result), 1);
    long count = atol(PQgetvalue(result, 0, 0));
    PQclear(result);
    return count;
}

//  ---- tests -----------------------------------------------------------------

static void test_bad_url(void **state)
{
    db_t *db = db_new("postgresql://app@127.0.0.1:1/app?connect_timeout=2", "x");
    assert_null(db);
}

static void test_query_and_exec(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_string_equal(db_schema(db), s_schema);
    assert_non_null(db_conn(db));
    assert_int_equal(db_exec_script(db, "CREATE TABLE items (id int PRIMARY KEY, name text);"
                                        "CREATE TABLE other (x int);"),
                     0);
    //  The table landed in our schema, named without a prefix.
    const char *schema_param[] = {s_schema};
    PGresult *result =
        db_query(db, "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'items'",
                 1, schema_param);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "1");
    PQclear(result);
    //  The session is named after the program, unless the URL names it.
    result = db_query(db, "SELECT current_setting('application_name')", 0, NULL);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "test_db");
    PQclear(result);
    char *named_url =
        zsys_sprintf("%s%sapplication_name=by_url", s_url, strchr(s_url, '?') ? "&" : "?");
    db_t *named = db_new(named_url, s_schema);
    assert_non_null(named);
    result = db_query(named, "SELECT current_setting('application_name')", 0, NULL);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "by_url");
    PQclear(result);
    db_destroy(&named);
    zstr_free(&named_url);

    const char *row1[] = {"1", "one"};
    const char *row2[] = {"2", NULL};
    const char *insert = "INSERT INTO items (id, name) VALUES ($1, $2)";
    assert_int_equal(db_exec(db, insert, 2, row1), 1);
    assert_int_equal(db_exec(db, insert, 2, row2), 1);

    //  A command that returns nothing still returns a result.
    const char *no_id[] = {"99"};
    result = db_query(db, "UPDATE items SET name = 'x' WHERE id = $1", 1, no_id);
    assert_non_null(result);
    assert_int_equal(PQresultStatus(result), PGRES_COMMAND_OK);
    PQclear(result);
    assert_int_equal(
        db_exec(db, "UPDATE items SET name = name || '!' WHERE id > $1", 1, (const char *[]){"0"}),
        2);

    result = db_query(db, "SELECT id, name FROM items ORDER BY id", 0, NULL);
    assert_non_null(result);
    assert_int_equal(PQntuples(result), 2);
    assert_string_equal(PQgetvalue(result, 0, 1), "one!");
    assert_true(PQgetisnull(result, 1, 1));
    PQclear(result);

    //  Errors: SQLSTATE kept, cleared by the next good call.
    assert_null(db_query(db, "SELECT nope FROM items", 0, NULL));
    assert_string_equal(db_last_sqlstate(db), "42703");
    assert_int_equal(db_exec(db, "SELECT 1", 0, NULL), 1);
    assert_string_equal(db_last_sqlstate(db), "");
    assert_int_equal(db_exec_script(db, "SELECT 1; SELECT * FROM missing_table"), -1);
    assert_string_equal(db_last_sqlstate(db), "42P01");
    db_destroy(&db);
    assert_null(db);
    db_destroy(&db); // safe twice
}

//  A bulk statement (parameters of 1 MiB or more) grows libpq's output
//  buffer for good, so the connection is replaced once no transaction is
//  open: at once in autocommit, at commit or rollback inside one. Its
//  result and the transaction's work are intact, and statements keep working.
//  The server process of the connection as it is now (no query: a query
//  could itself replace the connection).
static int s_connection_pid(db_t *db)
{
    return PQbackendPID(db_conn(db));
}

static void test_bulk_statement_replaces_connection(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    size_t size = 1536 * 1024;
    char *big = malloc(size + 1);
    assert_non_null(big);
    memset(big, 'x', size);
    big[size] = '\0';
    const char *big_param[] = {big};
    const char *length_sql = "SELECT length($1::text)";

    int pid = s_connection_pid(db);
    PGresult *result = db_query(db, length_sql, 1, (const char *[]){"abc"});
    assert_non_null(result);
    PQclear(result);
    assert_int_equal(s_connection_pid(db), pid); // small: the same connection

    result = db_query(db, length_sql, 1, big_param);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "1572864");
    PQclear(result);
    int replaced = s_connection_pid(db);
    assert_int_not_equal(replaced, pid);
    assert_int_equal(db_exec(db, "SELECT 1", 0, NULL), 1); // prepared again on the new one

    //  Inside a transaction: kept until the commit, which keeps the write.
    assert_int_equal(db_exec_script(db, "CREATE TABLE bulk_rows (body text)"), 0);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "INSERT INTO bulk_rows (body) VALUES ($1)", 1, big_param), 1);
    assert_int_equal(s_connection_pid(db), replaced);
    assert_int_equal(db_commit(db), 0);
    assert_int_not_equal(s_connection_pid(db), replaced);
    result = db_query(db, "SELECT length(body) FROM bulk_rows", 0, NULL);
    assert_non_null(result);
    assert_int_equal(PQntuples(result), 1);
    assert_string_equal(PQgetvalue(result, 0, 0), "1572864");
    PQclear(result);

    //  And at a rollback, which undoes the write.
    replaced = s_connection_pid(db);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "INSERT INTO bulk_rows (body) VALUES ($1)", 1, big_param), 1);
    db_rollback(db);
    assert_int_not_equal(s_connection_pid(db), replaced);
    assert_int_equal(db_exec(db, "SELECT 1 FROM bulk_rows", 0, NULL), 1);
    free(big);
    db_destroy(&db);
}

static void test_prepared_statement_reuse(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    const char *sql = "SELECT $1::int + 1";
    for (int i = 0; i < 5; i++) {
        char number[16];
        snprintf(number, sizeof number, "%d", i);
        const char *params[] = {number};
        PGresult *result = db_query(db, sql, 1, params);
        assert_non_null(result);
        assert_int_equal(atoi(PQgetvalue(result, 0, 0)), i + 1);
        PQclear(result);
    }
    const char *params[] = {sql};
    PGresult *result =
        db_query(db, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1, params);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "1");
    PQclear(result);
    //  Three statements prepared so far on this connection.
    assert_int_equal(s_count(db, "SELECT count(*) FROM pg_prepared_statements"), 3);
    //  SQL built at run time cannot grow the cache without bound.
    for (int i = 0; i < 1100; i++) {
        char text[64];
        snprintf(text, sizeof text, "SELECT %d", i);
        assert_int_equal(db_exec(db, text, 0, NULL), 1);
    }
    assert_true(s_count(db, "SELECT count(*) FROM pg_prepared_statements") <= 1024);
    db_destroy(&db);
}

static void test_stale_plan_is_prepared_again(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_int_equal(db_exec_script(db, "CREATE TABLE shape (a int); INSERT INTO shape VALUES (1)"),
                     0);
    PGresult *result = db_query(db, "SELECT * FROM shape", 0, NULL);
    assert_non_null(result);
    assert_int_equal(PQnfields(result), 1);
    PQclear(result);
    assert_int_equal(db_exec_script(db, "ALTER TABLE shape ADD COLUMN b int DEFAULT 2"), 0);
    result = db_query(db, "SELECT * FROM shape", 0, NULL);
    assert_non_null(result);
    assert_int_equal(PQnfields(result), 2);
    PQclear(result);
    db_destroy(&db);
}

static void test_unique_violation(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_int_equal(db_exec_script(db, "CREATE TABLE names (name text UNIQUE)"), 0);
    const char *params[] = {"ann"};
    const char *insert = "INSERT INTO names (name) VALUES ($1)";
    assert_int_equal(db_exec(db, insert, 1, params), 1);
    assert_false(db_last_was_unique_violation(db));
    assert_int_equal(db_exec(db, insert, 1, params), -1);
    assert_true(db_last_was_unique_violation(db));
    assert_string_equal(db_last_sqlstate(db), "23505");
    //  Inside a transaction: rollback keeps the SQLSTATE for the caller.
    assert_int_equal(db_begin(db), 0);
    assert_null(db_query(db, insert, 1, params));
    db_rollback(db);
    assert_true(db_last_was_unique_violation(db));
    db_destroy(&db);
}

static void test_transactions(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_int_equal(db_exec_script(db, "CREATE TABLE ledger (n int)"), 0);
    const char *insert = "INSERT INTO ledger (n) VALUES ($1)";
    assert_false(db_in_transaction(db));
    db_rollback(db); // safe with no transaction

    assert_int_equal(db_begin(db), 0);
    assert_true(db_in_transaction(db));
    assert_int_equal(db_exec(db, insert, 1, (const char *[]){"1"}), 1);
    db_rollback(db);
    assert_false(db_in_transaction(db));
    assert_int_equal(s_count(db, "SELECT count(*) FROM ledger"), 0);

    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, insert, 1, (const char *[]){"2"}), 1);
    assert_int_equal(db_commit(db), 0);
    assert_false(db_in_transaction(db));
    assert_int_equal(s_count(db, "SELECT count(*) FROM ledger"), 1);

    //  A failed statement dooms the transaction: commit reports it.
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, insert, 1, (const char *[]){"3"}), 1);
    assert_int_equal(db_exec(db, insert, 1, (const char *[]){"not a number"}), -1);
    assert_int_equal(db_exec(db, insert, 1, (const char *[]){"4"}), -1);
    assert_int_equal(db_commit(db), -1);
    assert_false(db_in_transaction(db));
    assert_int_equal(s_count(db, "SELECT count(*) FROM ledger"), 1);

    //  Commit with no transaction is an error, not a crash.
    assert_int_equal(db_commit(db), -1);
    db_destroy(&db);
}

//  A transaction begun under a deadline cannot wait past it: neither on a
//  lock another connection holds (lock_timeout 55P03, or statement_timeout
//  57014, whichever fires first) nor in a slow statement (57014); without a deadline there is no
//  limit, and the setting does not outlive the transaction.
static void test_deadline_bounds_transactions(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    db_t *holder = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_non_null(holder);
    assert_int_equal(db_exec_script(db, "CREATE TABLE locked (id int PRIMARY KEY, n int);"
                                        "INSERT INTO locked VALUES (1, 0)"),
                     0);
    assert_int_equal(db_begin(holder), 0);
    assert_int_equal(db_exec(holder, "UPDATE locked SET n = n + 1 WHERE id = 1", 0, NULL), 1);

    const char *update = "UPDATE locked SET n = n + 10 WHERE id = 1";
    db_set_deadline(db, zclock_time() + 300);
    int64_t started = zclock_mono();
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, update, 0, NULL), -1);
    int64_t waited = zclock_mono() - started;
    //  Whichever of the two equal timeouts the server noticed first.
    assert_true(streq(db_last_sqlstate(db), "55P03") || streq(db_last_sqlstate(db), "57014"));
    db_rollback(db);
    assert_true(waited >= 200 && waited < 3000); // the lock was held, the deadline ended it

    db_set_deadline(db, zclock_time() + 200);
    started = zclock_mono();
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "SELECT pg_sleep(10)", 0, NULL), -1);
    assert_string_equal(db_last_sqlstate(db), "57014");
    db_rollback(db);
    assert_true(zclock_mono() - started < 3000);

    //  A deadline already passed: the transaction's first statement fails.
    db_set_deadline(db, zclock_time() - 1000);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "SELECT pg_sleep(1)", 0, NULL), -1);
    db_rollback(db);

    //  No deadline: no limit inside transactions, and none left over
    //  outside them.
    db_set_deadline(db, 0);
    assert_int_equal(db_begin(db), 0);
    PGresult *result = db_query(db, "SHOW statement_timeout", 0, NULL);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "0");
    PQclear(result);
    assert_int_equal(db_commit(db), 0);
    result = db_query(db, "SHOW lock_timeout", 0, NULL);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "0");
    PQclear(result);

    assert_int_equal(db_commit(holder), 0);
    //  Once the lock is free, a deadline with time left lets the write through.
    db_set_deadline(db, zclock_time() + 5000);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, update, 0, NULL), 1);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(s_count(db, "SELECT n FROM locked WHERE id = 1"), 11);
    db_destroy(&holder);
    db_destroy(&db);
}

static int s_backend_pid(db_t *db)
{
    return (int)s_count(db, "SELECT pg_backend_pid()");
}

static void s_terminate(int pid)
{
    db_t *killer = db_new(s_url, s_schema);
    assert_non_null(killer);
    char number[16];
    snprintf(number, sizeof number, "%d", pid);
    const char *params[] = {number};
    PGresult *result = db_query(killer, "SELECT pg_terminate_backend($1::int)", 1, params);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "t");
    PQclear(result);
    //  The backend exits asynchronously; wait (bounded) until it is gone.
    for (int i = 0; i < 100; i++) {
        if (db_exec(killer, "SELECT 1 FROM pg_stat_activity WHERE pid = $1::int", 1, params) == 0)
            break;
        zclock_sleep(20);
    }
    db_destroy(&killer);
}

static void test_reset_after_terminate(void **state)
{
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_int_equal(db_exec_script(db, "CREATE TABLE IF NOT EXISTS ledger (n int)"), 0);
    int pid = s_backend_pid(db);
    s_terminate(pid);
    //  The next call reconnects transparently and prepares again.
    int new_pid = s_backend_pid(db);
    assert_int_not_equal(pid, new_pid);
    //  Only what ran since: pg_backend_pid() and this count.
    assert_int_equal(s_count(db, "SELECT count(*) FROM pg_prepared_statements"), 2);
    //  search_path survived the reconnection.
    assert_true(s_count(db, "SELECT count(*) FROM ledger") >= 0);

    //  Inside a transaction the loss is reported and sticks until rollback.
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec(db, "INSERT INTO ledger (n) VALUES (7)", 0, NULL), 1);
    s_terminate(new_pid);
    assert_int_equal(db_exec(db, "INSERT INTO ledger (n) VALUES (8)", 0, NULL), -1);
    assert_int_equal(db_exec(db, "INSERT INTO ledger (n) VALUES (9)", 0, NULL), -1);
    assert_string_equal(db_last_sqlstate(db), "08006");
    assert_int_equal(db_commit(db), -1);
    assert_false(db_in_transaction(db));
    assert_int_equal(s_count(db, "SELECT count(*) FROM ledger WHERE n IN (7, 8, 9)"), 0);
    db_destroy(&db);
}

static void test_reset_after_server_restart(void **state)
{
    if (!unit_pg_private(s_pg)) skip(); // never stop a server other suites share
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_int_equal(s_count(db, "SELECT 41 + 1"), 42);
    assert_int_equal(unit_pg_stop(s_pg), 0);
    //  While the server is down calls fail cleanly.
    assert_null(db_query(db, "SELECT 41 + 1", 0, NULL));
    assert_string_equal(db_last_sqlstate(db), "08006");
    assert_int_equal(unit_pg_start(s_pg), 0);
    assert_int_equal(s_count(db, "SELECT 41 + 1"), 42);
    db_destroy(&db);
}

static void test_migrations(void **state)
{
    s_write_file(s_schema, "002_second.sql", "INSERT INTO migration_log (name) VALUES ('002');");
    s_write_file(s_schema, "001_first.sql",
                 "CREATE TABLE migration_log (position serial, name text);\n"
                 "INSERT INTO migration_log (name) VALUES ('001');");
    s_write_file(s_schema, "010_third.sql", "INSERT INTO migration_log (name) VALUES ('010');");
    s_write_file(s_schema, "README.md", "not a migration");
    db_t *db = db_new(s_url, s_schema);
    assert_non_null(db);
    assert_int_equal(db_migrate(db, s_migrations), 3);
    PGresult *result = db_query(db, "SELECT name FROM migration_log ORDER BY position", 0, NULL);
    assert_non_null(result);
    assert_int_equal(PQntuples(result), 3);
    assert_string_equal(PQgetvalue(result, 0, 0), "001");
    assert_string_equal(PQgetvalue(result, 1, 0), "002");
    assert_string_equal(PQgetvalue(result, 2, 0), "010");
    PQclear(result);
    assert_int_equal(s_count(db, "SELECT count(*) FROM schema_migrations"), 3);
    result = db_query(db, "SELECT version FROM schema_migrations ORDER BY version", 0, NULL);
    assert_non_null(result);
    assert_string_equal(PQgetvalue(result, 0, 0), "001_first");
    PQclear(result);

    //  A re-run applies nothing; a new file applies alone.
    assert_int_equal(db_migrate(db, s_migrations), 0);
    s_write_file(s_schema, "011_fourth.sql", "INSERT INTO migration_log (name) VALUES ('011');");
    assert_int_equal(db_migrate(db, s_migrations), 1);
    assert_int_equal(s_count(db, "SELECT count(*) FROM migration_log"), 4);

    //  A failing file is rolled back entirely and not recorded; fixed, it applies.
    s_write_file(s_schema, "012_broken.sql",
                 "INSERT INTO migration_log (name) VALUES ('012');\nSELEC oops;");
    assert_int_equal(db_migrate(db, s_migrations), -1);
    assert_int_equal(s_count(db, "SELECT count(*) FROM migration_log"), 4);
    assert_int_equal(s_count(db, "SELECT count(*) FROM schema_migrations"), 4);
    s_write_file(s_schema, "012_broken.sql", "INSERT INTO migration_log (name) VALUES ('012');");
    assert_int_equal(db_migrate(db, s_migrations), 1);
    assert_int_equal(s_count(db, "SELECT count(*) FROM migration_log"), 5);
    //  The session is still usable and pointed at the schema.
    assert_int_equal(s_count(db, "SELECT count(*) FROM migration_log WHERE name = '012'"), 1);

    //  No folder for the schema: an error, not a silent success.
    db_t *other = db_new(s_url, "test_db_no_such_folder");
    assert_non_null(other);
    assert_int_equal(db_migrate(other, s_migrations), -1);
    db_exec_script(other, "DROP SCHEMA test_db_no_such_folder CASCADE");
    db_destroy(&other);
    db_destroy(&db);
}

typedef struct {
    pthread_barrier_t *barrier;
    const char *schema;
    int applied;
} migrator_t;

static void *s_migrator(void *arg)
{
    migrator_t *migrator = (migrator_t *)arg;
    pthread_barrier_wait(migrator->barrier);
    db_t *db = db_new(s_url, migrator->schema);
    migrator->applied = db ? db_migrate(db, s_migrations) : -2;
    db_destroy(&db);
    return NULL;
}

static void test_concurrent_migrations(void **state)
{
    char *schema = zsys_sprintf("%s_mt", s_schema);
    s_write_file(schema, "001_a.sql",
                 "CREATE TABLE applied (name text);\n"
                 "SELECT pg_sleep(0.2);\n"
                 "INSERT INTO applied VALUES ('001');");
    s_write_file(schema, "002_b.sql", "SELECT pg_sleep(0.1); INSERT INTO applied VALUES ('002');");
    s_write_file(schema, "003_c.sql", "INSERT INTO applied VALUES ('003');");
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 3);
    migrator_t migrators[3];
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        migrators[i] = (migrator_t){&barrier, schema, 0};
        pthread_create(&threads[i], NULL, s_migrator, &migrators[i]);
    }
    int total = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        assert_true(migrators[i].applied >= 0);
        total += migrators[i].applied;
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(total, 3);
    db_t *db = db_new(s_url, schema);
    assert_non_null(db);
    assert_int_equal(s_count(db, "SELECT count(*) FROM applied"), 3);
    assert_int_equal(s_count(db, "SELECT count(DISTINCT name) FROM applied"), 3);
    db_destroy(&db);
    zstr_free(&schema);
}

static void test_schemas_dir(void **state)
{
    unsetenv("SCHEMAS_DIR");
    assert_string_equal(db_schemas_dir(), "schemas");
    setenv("SCHEMAS_DIR", "/opt/app/schemas", 1);
    assert_string_equal(db_schemas_dir(), "/opt/app/schemas");
    unsetenv("SCHEMAS_DIR");
}

typedef struct {
    pthread_barrier_t *barrier;
    const char *schema;
    bool ok;
} connector_t;

static void *s_connector(void *arg)
{
    connector_t *connector = (connector_t *)arg;
    pthread_barrier_wait(connector->barrier);
    db_t *db = db_new(s_url, connector->schema);
    connector->ok = db != NULL;
    db_destroy(&db);
    return NULL;
}

static void test_schema_created_concurrently(void **state)
{
    //  Connections creating the same new schema at once all succeed.
    char *schema = zsys_sprintf("%s_mt", s_schema);
    assert_int_equal(s_drop_schema(schema), 0);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 8);
    connector_t connectors[8];
    pthread_t threads[8];
    for (int i = 0; i < 8; i++) {
        connectors[i] = (connector_t){&barrier, schema, false};
        pthread_create(&threads[i], NULL, s_connector, &connectors[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        assert_true(connectors[i].ok);
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(s_drop_schema(schema), 0);
    zstr_free(&schema);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_query_and_exec),
        cmocka_unit_test(test_prepared_statement_reuse),
        cmocka_unit_test(test_bulk_statement_replaces_connection),
        cmocka_unit_test(test_stale_plan_is_prepared_again),
        cmocka_unit_test(test_unique_violation),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_deadline_bounds_transactions),
        cmocka_unit_test(test_reset_after_terminate),
        cmocka_unit_test(test_reset_after_server_restart),
        cmocka_unit_test(test_migrations),
        cmocka_unit_test(test_schema_created_concurrently),
        cmocka_unit_test(test_concurrent_migrations),
        cmocka_unit_test(test_schemas_dir),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
