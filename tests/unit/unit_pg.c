/*  unit_pg: see unit_pg.h.

    A schema gets its migrations through a temporary folder holding one
    symbolic link, <schema> -> <root>/schemas/<service>, because
    db_migrate() reads <dir>/<schema>/: the suite's schema name differs from
    the service's folder name.
*/
#include "unit_pg.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define UNIT_PG_SCHEMAS_MAX 4

struct unit_pg_t {
    char name[48];
    char url[256];
    char root[512];
    char pg_dir[128]; // temp folder of our own server, "" when shared
    int port;         // of our own server
    int schemas;
    char schema[UNIT_PG_SCHEMAS_MAX][96];
    char migrations[UNIT_PG_SCHEMAS_MAX][128];
};

//  The folder above the working directory or the binary that holds probe.
static int s_find_root(unit_pg_t *self, const char *probe)
{
    if (access(probe, R_OK) == 0 && getcwd(self->root, sizeof self->root)) return 0;
    char exe[400];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (length <= 0) return -1;
    exe[length] = '\0';
    for (int up = 0; up < 6; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = '\0';
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", exe, probe);
        if (access(path, R_OK) == 0) {
            snprintf(self->root, sizeof self->root, "%s", exe);
            return 0;
        }
    }
    return -1;
}

//  scripts/pg.sh verb on our private cluster (port only for "start").
static int s_pg(unit_pg_t *self, const char *verb, int port)
{
    char command[1200];
    if (port)
        snprintf(command, sizeof command,
                 "PG_FAST=1 bash %s/scripts/pg.sh %s %s/data %d >%s/pg.out 2>&1", self->root, verb,
                 self->pg_dir, port, self->pg_dir);
    else
        snprintf(command, sizeof command, "bash %s/scripts/pg.sh %s %s/data >>%s/pg.out 2>&1",
                 self->root, verb, self->pg_dir, self->pg_dir);
    return system(command) == 0 ? 0 : -1;
}

static void s_remove(const char *name, const char *path)
{
    char command[512];
    snprintf(command, sizeof command, "rm -rf %s", path);
    if (system(command) != 0) fprintf(stderr, "%s: cannot remove %s\n", name, path);
}

unit_pg_t *unit_pg_new(const char *name, const char *probe, int first_port, int last_port)
{
    unit_pg_t *self = (unit_pg_t *)zmalloc(sizeof *self);
    snprintf(self->name, sizeof self->name, "%s", name);
    if (s_find_root(self, probe) != 0) {
        fprintf(stderr, "%s: repository root (with %s) not found\n", name, probe);
        freen(self);
        return NULL;
    }
    const char *shared = getenv("TEST_DATABASE_URL");
    if (shared && *shared) {
        snprintf(self->url, sizeof self->url, "%s", shared);
        return self;
    }
    snprintf(self->pg_dir, sizeof self->pg_dir, "/tmp/%s.XXXXXX", name);
    if (!mkdtemp(self->pg_dir)) {
        fprintf(stderr, "%s: cannot make a temporary folder\n", name);
        freen(self);
        return NULL;
    }
    chmod(self->pg_dir, 0755); // the server runs as another user when we are root
    int port = first_port;
    while (port <= last_port && s_pg(self, "start", port) != 0)
        port++;
    if (port > last_port) {
        fprintf(stderr, "%s: cannot start postgres (see %s/pg.out)\n", name, self->pg_dir);
        self->pg_dir[0] = '\0'; // keep its log for a look
        freen(self);
        return NULL;
    }
    snprintf(self->url, sizeof self->url, "postgresql://app@127.0.0.1:%d/app", port);
    self->port = port;
    return self;
}

bool unit_pg_private(const unit_pg_t *self)
{
    return *self->pg_dir != '\0';
}

int unit_pg_stop(unit_pg_t *self)
{
    return *self->pg_dir ? s_pg(self, "stop", 0) : -1;
}

int unit_pg_start(unit_pg_t *self)
{
    return *self->pg_dir ? s_pg(self, "start", self->port) : -1;
}

void unit_pg_destroy(unit_pg_t **self_p)
{
    unit_pg_t *self = *self_p;
    if (!self) return;
    db_t *db = self->schemas > 0 ? db_new(self->url, "public") : NULL;
    for (int i = 0; i < self->schemas; i++) {
        if (db) {
            char *sql = zsys_sprintf("DROP SCHEMA IF EXISTS \"%s\" CASCADE", self->schema[i]);
            db_exec_script(db, sql);
            zstr_free(&sql);
        }
        s_remove(self->name, self->migrations[i]);
    }
    db_destroy(&db);
    if (*self->pg_dir) {
        s_pg(self, "destroy", 0);
        s_remove(self->name, self->pg_dir);
    }
    freen(self);
    *self_p = NULL;
}

const char *unit_pg_url(const unit_pg_t *self)
{
    return self->url;
}

const char *unit_pg_root(const unit_pg_t *self)
{
    return self->root;
}

db_t *unit_pg_schema(unit_pg_t *self, const char *service, const char **schema_out)
{
    if (self->schemas == UNIT_PG_SCHEMAS_MAX) return NULL;
    char *schema = self->schema[self->schemas];
    char *migrations = self->migrations[self->schemas];
    char name[sizeof self->name];
    memcpy(name, self->name, sizeof name);
    snprintf(schema, sizeof self->schema[0], "%s_%d_%u", name, (int)getpid(),
             (unsigned)(zclock_usecs() % 1000000));
    snprintf(migrations, sizeof self->migrations[0], "/tmp/%s_migrations.XXXXXX", name);
    if (!mkdtemp(migrations)) return NULL;
    self->schemas++; // from here on, unit_pg_destroy cleans it up
    char *link = zsys_sprintf("%s/%s", migrations, schema);
    char *target = zsys_sprintf("%s/schemas/%s", self->root, service);
    int rc = symlink(target, link);
    zstr_free(&link);
    zstr_free(&target);
    db_t *db = rc == 0 ? db_new(self->url, schema) : NULL;
    if (!db || db_migrate(db, migrations) < 1) {
        fprintf(stderr, "%s: migrating schemas/%s failed\n", self->name, service);
        db_destroy(&db);
        return NULL;
    }
    if (schema_out) *schema_out = schema;
    return db;
}

int64_t unit_pg_number(db_t *db, const char *sql)
{
    PGresult *res = db_query(db, sql, 0, NULL);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    int64_t value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return value;
}
