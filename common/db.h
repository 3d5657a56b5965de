/*  db: one PostgreSQL connection per worker thread, prepared statements,
    transactions and the migration runner.

    A db_t is owned by one thread and never shared: libpq connections are
    not thread-safe, and one connection per worker thread means a request
    never waits for a pool. Statements are prepared lazily on first use,
    keyed by their SQL text, and kept for the connection's life; callers
    write plain SQL with $1..$n and get the speed of prepared statements.
    Every parameter is text (or NULL); results come back as text.

    The connection's search_path is the service's schema, so SQL names
    tables without a schema prefix and a service cannot reach another
    schema by accident (DESIGN.md decision 4).

    When the server goes away, the next call on a broken connection resets
    it once (statements are prepared again) before it reports failure.
*/
#ifndef DB_H_INCLUDED
#define DB_H_INCLUDED

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct db_t db_t;

//  Connects to url (a libpq conninfo or URI) and sets search_path to schema
//  (created if missing). Returns NULL on failure (logged).
db_t *db_new(const char *url, const char *schema);
void db_destroy(db_t **self_p);
PGconn *db_conn(db_t *self);
const char *db_schema(db_t *self);

//  Runs sql (prepared once per connection) with n text params. Returns the
//  result, owned by the caller (PQclear), or NULL on error (logged; the
//  SQLSTATE of the last error is kept, see db_last_sqlstate). A command
//  that returns no rows still returns a PGRES_COMMAND_OK result.
PGresult *db_query(db_t *self, const char *sql, int nparams, const char *const *params);

//  Like db_query for statements whose rows the caller does not need.
//  Returns the affected row count, or -1 on error.
long db_exec(db_t *self, const char *sql, int nparams, const char *const *params);

//  Runs a plain SQL script (several statements, no params). 0 or -1.
int db_exec_script(db_t *self, const char *sql);

//  SQLSTATE of the last failed call ("23505" unique violation…), "" if none.
const char *db_last_sqlstate(db_t *self);
bool db_last_was_unique_violation(db_t *self);

//  Transactions. db_begin starts one; db_commit commits (returns -1 if the
//  commit failed, e.g. serialization); db_rollback is safe to call when no
//  transaction is open. Nesting is not supported (asserted).
int db_begin(db_t *self);
//  The deadline (unix ms, 0 = none) of the request this connection serves:
//  every transaction db_begin starts from now on gets statement_timeout and
//  lock_timeout of the time left (at least 1 ms), so it cannot wait past
//  it. service.c sets it around each request.
void db_set_deadline(db_t *self, int64_t deadline_ms);
int db_commit(db_t *self);
void db_rollback(db_t *self);
bool db_in_transaction(db_t *self);

//  Applies schemas/<schema>/NNN_name.sql files of dir in order, each in its
//  own transaction, recording them in <schema>.schema_migrations; files
//  already recorded are skipped. Concurrent starters serialize on an
//  advisory lock, so N instances starting together apply each file once.
//  Returns the number applied, or -1 on failure.
int db_migrate(db_t *self, const char *dir);

//  Directory holding schemas/<name>: SCHEMAS_DIR, else "schemas" relative to
//  the working directory. Borrowed.
const char *db_schemas_dir(void);

#endif
