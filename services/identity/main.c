/*  identity: accounts, credentials, refresh tokens and profiles.

    main() reads the identity settings into one identity_t (setting the
    defaults into the environment so config_log shows the values in use),
    and hands the method table to service_main(), which owns everything
    else: workers, database connections, migrations, the outbox publisher.
    on_start() refuses to run with a weak JWT_SECRET and computes the dummy
    password hash that keeps unknown-user logins as slow as real ones.
*/
#include "identity.h"
#include "config.h"
#include "log.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>

static identity_t s_identity;

json_t *identity_seed(call_t *call); // seed.c: benchmarks only (IDENTITY_SEED_ENABLED=1)

static const service_method_t s_methods[] = {
    {"auth.register", auth_register},
    {"auth.login", auth_login},
    {"auth.refresh", auth_refresh},
    {"auth.logout", auth_logout},
    {"me.get", me_get},
    {"me.update", me_update},
    {"me.password", me_password},
    {"me.delete", me_delete},
    {"me.avatar_put", me_avatar_put},
    {"me.avatar_delete", me_avatar_delete},
    {"users.get", users_get},
    {"users.by_username", users_by_username},
    {"users.by_usernames", users_by_usernames},
    {"users.batch", users_batch},
    {"identity.seed", identity_seed},
    {NULL, NULL},
};

static const char *const s_config_names[] = {
    "JWT_SECRET",
    "ACCESS_TOKEN_TTL",
    "PASSWORD_OPSLIMIT",
    "PASSWORD_MEMLIMIT_MIB",
    "IDENTITY_SEED_ENABLED",
    NULL,
};

static const char s_usage[] =
    "Accounts, credentials, refresh tokens and profiles (services/identity/README.md).\n"
    "\n"
    "Identity settings:\n"
    "  JWT_SECRET             HS256 key for access tokens, at least 32 bytes (required)\n"
    "  ACCESS_TOKEN_TTL       access token lifetime in seconds (default 900, at most 900)\n"
    "  PASSWORD_OPSLIMIT      argon2id passes (default and minimum 2)\n"
    "  PASSWORD_MEMLIMIT_MIB  argon2id memory in MiB (default and minimum 19)";

static int s_on_start(db_t *db, void *state)
{
    (void)db;
    identity_t *self = state;
    if (!token_secret_ok(self->jwt_secret)) {
        log_error("JWT_SECRET must be set to at least %d bytes", TOKEN_SECRET_MIN_BYTES);
        return -1;
    }
    if (password_init(self) != 0) return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "identity: libsodium failed to initialise\n");
        return 1;
    }
    setenv("ACCESS_TOKEN_TTL", "900", 0);
    setenv("PASSWORD_OPSLIMIT", "2", 0);
    setenv("PASSWORD_MEMLIMIT_MIB", "19", 0);

    s_identity.jwt_secret = config_str("JWT_SECRET", "");
    int64_t ttl = config_int("ACCESS_TOKEN_TTL", IDENTITY_ACCESS_TTL_MAX);
    if (ttl < 1 || ttl > IDENTITY_ACCESS_TTL_MAX) ttl = IDENTITY_ACCESS_TTL_MAX;
    s_identity.access_ttl = (int)ttl;
    password_configure(&s_identity);

    service_def_t def = {
        .name = "identity",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = NULL,
        .produces_events = true,
        .uses_database = true,
        .state = &s_identity,
        .on_start = s_on_start,
        .config_names = s_config_names,
    };
    return service_main(&def, argc, argv);
}
