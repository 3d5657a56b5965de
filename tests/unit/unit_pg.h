/*  unit_pg: the Postgres server a unit suite runs against.

    `make test` starts one server for every suite and passes its URL in
    TEST_DATABASE_URL; a suite run alone starts a private one (scripts/pg.sh,
    PG_FAST) in a temporary folder, on the first free port of the range the
    suite owns, and unit_pg_destroy stops and removes it. Either way the
    suite then works in a schema of its own (unit_pg_schema), migrated from
    schemas/<service>/ and dropped at the end, so suites sharing the server
    never see each other's rows.
*/
#ifndef UNIT_PG_H_INCLUDED
#define UNIT_PG_H_INCLUDED

#include "db.h"

#include <stdbool.h>

typedef struct unit_pg_t unit_pg_t;

//  The server for suite `name` (used in folder, schema and message
//  names): TEST_DATABASE_URL's, or a private one on a port in [first_port,
//  last_port]. probe is a file relative to the repository root (say
//  "schemas/search/001_init.sql") that identifies the root from the
//  working directory or from the test binary's place. NULL, with a message
//  on stderr, when no server can be had.
unit_pg_t *unit_pg_new(const char *name, const char *probe, int first_port, int last_port);
//  Stops and removes a private server, drops the schemas made by
//  unit_pg_schema and their migration folders.
void unit_pg_destroy(unit_pg_t **self_p);

//  postgresql:// URL of the server's "app" database.
const char *unit_pg_url(const unit_pg_t *self);
//  The repository root (holds scripts/ and schemas/).
const char *unit_pg_root(const unit_pg_t *self);

//  For a suite that tests losing the server: stops / starts again (same
//  port) a private server. -1 when the server is shared (never stop one
//  that other suites use) or pg.sh failed.
bool unit_pg_private(const unit_pg_t *self);
int unit_pg_stop(unit_pg_t *self);
int unit_pg_start(unit_pg_t *self);

//  A connection in a fresh schema "<name>_<pid>_<n>" (its name in
//  *schema_out when not NULL, valid until unit_pg_destroy) with the
//  migrations of schemas/<service>/ applied. NULL on failure (printed).
db_t *unit_pg_schema(unit_pg_t *self, const char *service, const char **schema_out);

//  The answer of a query of one row and one value, as a number; fails the
//  running cmocka test when the query fails or answers another shape.
int64_t unit_pg_number(db_t *db, const char *sql);

#endif
