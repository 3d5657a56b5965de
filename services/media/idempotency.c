/*  idempotency: the Idempotency-Key of POST /posts and POST
    /posts/{id}/comments (API.md "retries").

    The gateway passes the header as args.idempotency_key. A handler that
    creates something claims (viewer, key) inside its own transaction,
    before it writes anything:

        INSERT ... ON CONFLICT (user_id, key) DO UPDATE ... WHERE the
        existing record is older than 24 h

    The insert takes the unique-index entry, so a concurrent retry with the
    same key waits on it until the first transaction ends; then it finds
    the committed record and replays its reply (status and body exactly as
    first sent). Because the claim and idempotency_store() are in the same
    transaction as the creation, a record exists if and only if the
    creation committed; a failed first attempt (400, 503) leaves nothing,
    so a corrected retry with the same key is served normally. A key reused
    for another request (another endpoint, another post) is 409 conflict.
*/
#include "media.h"
#include "args.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

int idempotency_arg(const json_t *args, const char **key_out, json_t *fields)
{
    const char *key = NULL;
    int rc =
        args_string(args, "idempotency_key", false, 1, MEDIA_IDEMPOTENCY_KEY_MAX, &key, fields);
    if (rc != 1) return rc;
    for (const char *p = key; *p; p++)
        if (*p < 0x21 || *p > 0x7e) {
            json_object_set_new(fields, "idempotency_key",
                                json_string("must be printable ASCII without spaces"));
            return -1;
        }
    *key_out = key;
    return 1;
}

int idempotency_claim(db_t *db, int64_t viewer_id, const char *key, const char *scope,
                      json_t **replay_out)
{
    *replay_out = NULL;
    char viewer[21];
    const char *params[] = {media_id_text(viewer_id, viewer), key, scope};
    long claimed = db_exec(db,
                           "INSERT INTO idempotency (user_id, key, scope) VALUES ($1, $2, $3)"
                           " ON CONFLICT (user_id, key) DO UPDATE SET scope = EXCLUDED.scope,"
                           " reply = NULL, created_at = now()"
                           " WHERE idempotency.created_at < now() - interval '24 hours'",
                           3, params);
    if (claimed < 0) return -1;
    if (claimed == 1) return 0;
    PGresult *res = db_query(
        db, "SELECT scope, reply FROM idempotency WHERE user_id = $1 AND key = $2", 2, params);
    if (!res) return -1;
    int rc = -1;
    if (PQntuples(res) == 1) {
        if (!streq(PQgetvalue(res, 0, 0), scope)) {
            *replay_out =
                reply_error(409, ERR_CONFLICT, "this Idempotency-Key was used for another request");
            rc = 1;
        } else if (!PQgetisnull(res, 0, 1)) {
            *replay_out = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
            rc = *replay_out ? 1 : -1;
        }
    }
    PQclear(res);
    if (rc == -1) log_error("idempotency record without a reply");
    return rc;
}

int idempotency_store(db_t *db, int64_t viewer_id, const char *key, const json_t *reply)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    if (!text) return -1;
    char viewer[21];
    const char *params[] = {media_id_text(viewer_id, viewer), key, text};
    long updated =
        db_exec(db, "UPDATE idempotency SET reply = $3 WHERE user_id = $1 AND key = $2", 3, params);
    free(text);
    return updated == 1 ? 0 : -1;
}
