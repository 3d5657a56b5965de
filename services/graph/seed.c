/*  seed: bulk follows for `make bench` (the internal method graph.seed;
    docs/contracts.md, "Benchmark seeding"). Refused (403) unless the
    service runs with GRAPH_SEED_ENABLED=1: no route leads here.

        graph.seed {users, from, count, follows}
          -> {created, from, count, seconds}

    Writes the follows of seeded accounts from .. from + count - 1 (count
    <= SEED_CHUNK_MAX followers a call; the caller loops) among `users`
    seeded accounts, whose ids follow identity.seed's layout:
    ((86400000 + i) << 23) | (8190 << 10). Graph does not ask identity:
    the accounts reach its users projection through identity's
    user.created events, as any account does.

    Shape (a real social graph's): each follower makes a number of follows
    drawn uniformly from 0 .. 2 × `follows`; each followee is account
    floor(users × u^3) for u uniform in [0, 1), so a few low-numbered
    accounts are followed by most people and most by few (a heavy tail).
    Repeats and self-follows are dropped, so the mean lands a little under
    `follows` (the reply says how many were made). A follow's id is made
    on 2025-01-03 plus the follower's number in ms, sequence = its draw
    number, shard 8190: unique, older than every seeded post, never a
    real id.

    One statement per call inserts the edges (INSERT ... SELECT
    generate_series, ON CONFLICT DO NOTHING), adds them to the counts rows
    (in user id order, as graph_counts_apply does) and returns the new
    edges; each emits the follow.created payload follows.create emits, all
    through one events_emit_many in the same transaction.
*/
#include "graph.h"
#include "args.h"
#include "config.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define SEED_CHUNK_MAX 20000
#define SEED_USERS_MAX 10000000
#define SEED_FOLLOWS_MAX 500 // 2 × follows draws must fit the 10-bit sequence

json_t *graph_seed(call_t *call);

//  $1 first follower, $2 last follower, $3 users, $4 mean follows. The
//  "+ 0 * i" and "+ 0 * k" make each LATERAL depend on its row, so random()
//  is drawn again per row.
static const char s_follows_sql[] =
    "WITH edges AS ("
    "  SELECT ((172800000 + i) << 23) | (8190 << 10) | k AS id,"
    "   ((86400000 + i) << 23) | (8190 << 10) AS follower_id,"
    "   ((86400000 + t) << 23) | (8190 << 10) AS followee_id"
    "  FROM generate_series($1::bigint, $2::bigint) i,"
    "   LATERAL generate_series(0, floor(random() * (2 * $4::int + 1))::int - 1 + 0 * i::int) k,"
    "   LATERAL (SELECT floor(power(random(), 3) * $3::int)::bigint + 0 * k AS t) x"
    "  WHERE t <> i),"
    " added AS ("
    "  INSERT INTO follows (id, follower_id, followee_id)"
    "  SELECT id, follower_id, followee_id FROM edges ORDER BY follower_id, followee_id"
    "  ON CONFLICT DO NOTHING RETURNING id, follower_id, followee_id),"
    " counted AS ("
    "  INSERT INTO counts (user_id, followers_count, following_count)"
    "  SELECT u, sum(fr)::bigint, sum(fg)::bigint FROM ("
    "   SELECT followee_id AS u, 1 AS fr, 0 AS fg FROM added"
    "   UNION ALL SELECT follower_id, 0, 1 FROM added) c"
    "  GROUP BY u ORDER BY u"
    "  ON CONFLICT (user_id) DO UPDATE SET"
    "  followers_count = counts.followers_count + EXCLUDED.followers_count,"
    "  following_count = counts.following_count + EXCLUDED.following_count)"
    " SELECT id, follower_id, followee_id FROM added ORDER BY id";

json_t *graph_seed(call_t *call)
{
    if (config_int("GRAPH_SEED_ENABLED", 0) != 1)
        return reply_error(403, ERR_FORBIDDEN, "seeding is off (GRAPH_SEED_ENABLED=1 turns it on)");
    json_t *fields = json_object();
    int64_t users = 0, from = 0, count = 0, follows = 0;
    args_int(call->args, "users", true, 2, SEED_USERS_MAX, &users, fields);
    args_int(call->args, "from", true, 0, SEED_USERS_MAX - 1, &from, fields);
    args_int(call->args, "count", true, 1, SEED_CHUNK_MAX, &count, fields);
    args_int(call->args, "follows", true, 0, SEED_FOLLOWS_MAX, &follows, fields);
    if (json_object_size(fields) == 0 && from + count > users)
        json_object_set_new(fields, "count", json_string("from + count is above users"));
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    int64_t start = zclock_mono();
    db_t *db = call->db;
    json_t *reply = NULL, *payloads = json_array();
    PGresult *res = NULL;
    char first[24], last[24], users_text[24], follows_text[24];
    snprintf(first, sizeof first, "%" PRId64, from);
    snprintf(last, sizeof last, "%" PRId64, from + count - 1);
    snprintf(users_text, sizeof users_text, "%" PRId64, users);
    snprintf(follows_text, sizeof follows_text, "%" PRId64, follows);
    const char *params[] = {first, last, users_text, follows_text};
    if (db_begin(db) != 0) {
        reply = reply_error(500, ERR_INTERNAL, "cannot begin");
        goto cleanup;
    }
    res = db_query(db, s_follows_sql, 4, params);
    if (!res) {
        reply = reply_error(500, ERR_INTERNAL, "cannot seed follows");
        goto cleanup;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        char when[32];
        ids_format_time(ids_time_ms(strtoll(PQgetvalue(res, row, 0), NULL, 10)), when, sizeof when);
        json_array_append_new(payloads, json_pack("{s:s, s:s, s:s}", "follower_id",
                                                  PQgetvalue(res, row, 1), "followee_id",
                                                  PQgetvalue(res, row, 2), "created_at", when));
    }
    if (events_emit_many(db, "follow.created", payloads) != 0 || db_commit(db) != 0) {
        reply = reply_error(500, ERR_INTERNAL, "cannot seed follow events");
        goto cleanup;
    }
    log_info("graph.seed: %d follows of %" PRId64 " accounts in %" PRId64 " ms", PQntuples(res),
             count, zclock_mono() - start);
    reply = reply_ok(200, json_pack("{s:i, s:I, s:I, s:f}", "created", PQntuples(res), "from",
                                    (json_int_t)from, "count", (json_int_t)count, "seconds",
                                    (double)(zclock_mono() - start) / 1000.0));
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(res);
    json_decref(payloads);
    return reply;
}
