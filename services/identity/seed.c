/*  seed: bulk accounts for `make bench` (the internal method identity.seed;
    docs/contracts.md, "Benchmark seeding"). Refused (403) unless the
    service runs with IDENTITY_SEED_ENABLED=1: no route leads here, and a
    production service never invents accounts.

        identity.seed {from, count, password}
          -> {created, from, count, seconds}

    Writes seeded accounts number from .. from + count - 1 (count <=
    SEED_CHUNK_MAX, so one call stays well inside an RPC deadline; the
    caller loops over chunks). Account i is

        id        ((86400000 + i) << 23) | (8190 << 10)   (ids.h layout:
                  made on 2025-01-02 plus i ms, shard 8190, which no leased
                  shard reaches, so seeded ids never meet real ones and
                  graph.seed and media.seed can name account i without asking)
        username  bench_u<i>, email bench_u<i>@bench.example,
        display   "Bench User <i>", public.

    Why here and not through auth.register: every registration pays one
    argon2id hash (tens of ms by design), so 100,000 accounts take an hour.
    Here every account of a call shares one hash of `password`, computed
    once per call, and the rows go in with one INSERT ... SELECT
    generate_series. Each new row emits the same user.created payload
    auth.register emits (store_user_event), all in one events_emit_many in
    the same transaction, so graph, search and the others build their
    projections the normal way. Accounts that already exist (a repeated
    call, or a real bench_u<i>) are skipped by ON CONFLICT and emit nothing.
*/
#include "identity.h"
#include "args.h"
#include "config.h"
#include "errors.h"
#include "events.h"
#include "log.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>

#define SEED_CHUNK_MAX 50000
#define SEED_USERS_MAX 10000000

json_t *identity_seed(call_t *call);

json_t *identity_seed(call_t *call)
{
    if (config_int("IDENTITY_SEED_ENABLED", 0) != 1)
        return reply_error(403, ERR_FORBIDDEN,
                           "seeding is off (IDENTITY_SEED_ENABLED=1 turns it on)");
    json_t *fields = json_object();
    int64_t from = 0, count = 0;
    args_int(call->args, "from", true, 0, SEED_USERS_MAX - 1, &from, fields);
    args_int(call->args, "count", true, 1, SEED_CHUNK_MAX, &count, fields);
    const char *password = NULL;
    args_string(call->args, "password", true, IDENTITY_PASSWORD_MIN, IDENTITY_PASSWORD_MAX,
                &password, fields);
    if (json_object_size(fields) == 0 && from + count > SEED_USERS_MAX)
        json_object_set_new(fields, "count", json_string("from + count is too large"));
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t start = zclock_mono();
    char hash[crypto_pwhash_STRBYTES];
    if (password_hash(identity_of(call), password, hash) != 0)
        return identity_internal("seed password hashing");

    db_t *db = call->db;
    json_t *reply = NULL, *payloads = json_array();
    PGresult *res = NULL;
    char from_text[24], last_text[24];
    snprintf(from_text, sizeof from_text, "%" PRId64, from);
    snprintf(last_text, sizeof last_text, "%" PRId64, from + count - 1);
    const char *params[] = {from_text, last_text, hash};
    if (db_begin(db) != 0) {
        reply = identity_internal("begin");
        goto cleanup;
    }
    //  In id order, so the primary key fills page after page.
    res = db_query(db,
                   "INSERT INTO users (id, username, email, password_hash, display_name,"
                   " created_at, updated_at)"
                   " SELECT ((86400000 + i) << 23) | (8190 << 10), 'bench_u' || i,"
                   "  'bench_u' || i || '@bench.example', $3, 'Bench User ' || i, t, t"
                   " FROM generate_series($1::bigint, $2::bigint) i,"
                   "  LATERAL (SELECT to_timestamp((1735689600000 + 86400000 + i) / 1000.0) AS t) x"
                   " ORDER BY i ON CONFLICT DO NOTHING RETURNING " STORE_USER_COLUMNS,
                   3, params);
    if (!res) {
        reply = identity_internal("seed users");
        goto cleanup;
    }
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(payloads, store_user_event(res, row, false));
    if (events_emit_many(db, "user.created", payloads) != 0 || db_commit(db) != 0) {
        reply = identity_internal("seed user events");
        goto cleanup;
    }
    log_info("identity.seed: %d accounts from %" PRId64 " in %" PRId64 " ms", PQntuples(res), from,
             zclock_mono() - start);
    reply = reply_ok(200, json_pack("{s:i, s:I, s:I, s:f}", "created", PQntuples(res), "from",
                                    (json_int_t)from, "count", (json_int_t)count, "seconds",
                                    (double)(zclock_mono() - start) / 1000.0));
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(res);
    json_decref(payloads);
    sodium_memzero(hash, sizeof hash);
    return reply;
}
