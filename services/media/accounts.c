/*  accounts: what media does when identity's accounts change (events).

    identity.user.created / updated also keep media's `users` projection
    (schemas/media/002_users.sql): the base user objects render.c shows as
    authors and the is_private the visibility rule reads, so a page of
    posts does not ask identity for them. created inserts (an update, which
    is always newer, wins: ON CONFLICT DO NOTHING); updated upserts the
    whole row from the payload; deleted removes it.

    identity.user.updated {id, avatar_key, ...}: the avatar identity shows
    now. media keeps it in `avatars` so the file stays referenced (an
    avatar stored by images.store is only an upload until then). Events of
    one producer arrive in order, so the last one handled is identity's
    current state; the replaced avatar's key is queued for collection.

    identity.user.deleted {id}: everything the user owned goes, in the
    event's transaction: their likes and comments (with the counters of the
    posts they were on), their saves, their posts (each with a post.deleted
    event, and with the likes, comments and saves others made on them),
    uploads, avatar, idempotency records. The files are queued; the janitor
    deletes them within a second or so. No like.deleted or comment.deleted
    events are emitted for these: every consumer handles user.deleted
    itself.

    users.sync (accounts_sync) is identity handing media the payload of a
    user.updated before it answers the change, so the author's own next
    read (a new post showing the new avatar) does not wait for the event.
    Both carry identity's row version (schemas/media/004_user_version.sql)
    and whichever comes second, if not newer, changes nothing.

    Both handlers are idempotent (a replayed event finds nothing left to
    do) and return -1 on a database error, so the subscriber retries.
*/
#include "media.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

//  The payload's id as canonical text; false when absent or malformed.
static bool s_user_id(const event_t *event, char out[21])
{
    int64_t id = 0;
    const char *text = json_string_value(json_object_get(event->payload, "id"));
    if (!text || !ids_parse(text, &id)) {
        log_warn("%s.%s without a valid id skipped", event->producer, event->topic);
        return false;
    }
    media_id_text(id, out);
    return true;
}

//  The payload's text field, "" when absent (created carries no bio,
//  website or avatar: a new account has none).
static const char *s_field(const event_t *event, const char *name)
{
    const char *value = json_string_value(json_object_get(event->payload, name));
    return value ? value : "";
}

//  Writes the projection row from the payload; `replace` overwrites an
//  existing row (updated), otherwise an existing row is kept (created).
//  0, or -1 on a database error.
static int s_project_user(db_t *db, const event_t *event, const char *user, const char *avatar_key,
                          bool replace)
{
    const char *username = s_field(event, "username");
    if (!*username) {
        log_warn("%s.%s without a username: projection left as it is", event->producer,
                 event->topic);
        return 0;
    }
    json_t *version_value = json_object_get(event->payload, "version");
    char version[24];
    snprintf(version, sizeof version, "%lld",
             json_is_integer(version_value) ? (long long)json_integer_value(version_value) : 0LL);
    const char *params[] = {user,
                            username,
                            s_field(event, "display_name"),
                            s_field(event, "bio"),
                            s_field(event, "website"),
                            avatar_key,
                            json_is_true(json_object_get(event->payload, "is_private")) ? "t" : "f",
                            version};
    long rows = db_exec(
        db,
        replace ? "INSERT INTO users (id, username, display_name, bio, website,"
                  " avatar_key, is_private, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                  " ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username,"
                  " display_name = EXCLUDED.display_name, bio = EXCLUDED.bio,"
                  " website = EXCLUDED.website, avatar_key = EXCLUDED.avatar_key,"
                  " is_private = EXCLUDED.is_private, version = EXCLUDED.version"
                : "INSERT INTO users (id, username, display_name, bio, website,"
                  " avatar_key, is_private, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                  " ON CONFLICT (id) DO NOTHING",
        8, params);
    return rows < 0 ? -1 : 0;
}

int accounts_user_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    char user[21];
    if (!s_user_id(event, user)) return 0;
    return s_project_user(db, event, user, NULL, false);
}

//  1 when the projection holds a newer version of the user than the
//  payload's (identity's users.sync came first: the event is stale and
//  changes nothing), 0 when the payload is to be applied, -1 on a database
//  error. Locks the row, so a sync and the event do not interleave.
static int s_stale(db_t *db, const event_t *event, const char *user)
{
    json_t *value = json_object_get(event->payload, "version");
    char version[24];
    snprintf(version, sizeof version, "%lld",
             json_is_integer(value) ? (long long)json_integer_value(value) : 0LL);
    const char *params[] = {user, version};
    PGresult *res =
        db_query(db, "SELECT version > $2::bigint FROM users WHERE id = $1 FOR UPDATE", 2, params);
    if (!res) return -1;
    int stale = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return stale;
}

int accounts_user_updated(db_t *db, const event_t *event, void *state)
{
    (void)state;
    char user[21];
    if (!s_user_id(event, user)) return 0;
    int stale = s_stale(db, event, user);
    if (stale != 0) return stale < 0 ? -1 : 0;
    const char *key = json_string_value(json_object_get(event->payload, "avatar_key"));
    if (key && !storage_key_valid(key)) key = NULL; // not ours: treat as none
    if (s_project_user(db, event, user, key, true) != 0) return -1;
    const char *params[] = {user, key};
    PGresult *old =
        db_query(db, "SELECT key FROM avatars WHERE user_id = $1 FOR UPDATE", 1, params);
    if (!old) return -1;
    const char *previous = PQntuples(old) == 1 ? PQgetvalue(old, 0, 0) : NULL;
    int rc = -1;
    if (previous && key && streq(previous, key)) {
        rc = 0; // no change of avatar
        goto cleanup;
    }
    if (key) {
        if (db_exec(db,
                    "INSERT INTO avatars (user_id, key) VALUES ($1, $2)"
                    " ON CONFLICT (user_id) DO UPDATE SET key = EXCLUDED.key",
                    2, params) != 1)
            goto cleanup;
        //  The upload that carried it is no longer needed as a reference.
        if (db_exec(db, "DELETE FROM uploads WHERE user_id = $1 AND kind = 'avatar' AND key = $2",
                    2, params) < 0)
            goto cleanup;
    } else if (previous && db_exec(db, "DELETE FROM avatars WHERE user_id = $1", 1, params) < 0) {
        goto cleanup;
    }
    rc = previous ? files_queue(db, &previous, 1) : 0;
cleanup:
    PQclear(old);
    return rc;
}

json_t *accounts_sync(call_t *call)
{
    const char *id = json_string_value(json_object_get(call->args, "id"));
    int64_t parsed = 0;
    if (call->viewer_id <= 0) return reply_error(401, ERR_UNAUTHENTICATED, "sign in first");
    if (!id || !ids_parse(id, &parsed) || parsed != call->viewer_id ||
        !json_is_integer(json_object_get(call->args, "version")))
        return reply_invalid(json_pack("{s:s}", "id", "must be the viewer's, with a version"),
                             "some fields are not valid");
    event_t event = {.producer = "identity",
                     .topic = "user.updated",
                     .request_id = call->request->request_id,
                     .payload = call->args};
    db_t *db = call->db;
    if (db_begin(db) != 0) return media_internal("begin");
    json_t *reply = NULL;
    if (accounts_user_updated(db, &event, call->state) != 0 || db_commit(db) != 0)
        reply = media_internal("sync user");
    if (db_in_transaction(db)) db_rollback(db);
    return reply ? reply : reply_ok(200, json_object());
}

int accounts_user_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    char user[21];
    if (!s_user_id(event, user)) return 0;
    const char *params[] = {user};
    if (db_exec(db, "DELETE FROM users WHERE id = $1", 1, params) < 0) return -1;
    //  The user's likes and comments on other posts, counters first.
    if (db_exec(db,
                "WITH gone AS (DELETE FROM likes WHERE user_id = $1 RETURNING post_id)"
                " UPDATE posts p SET like_count = greatest(p.like_count - g.n, 0)"
                " FROM (SELECT post_id, count(*) AS n FROM gone GROUP BY post_id) g"
                " WHERE p.id = g.post_id",
                1, params) < 0)
        return -1;
    if (db_exec(db,
                "WITH gone AS (DELETE FROM comments WHERE author_id = $1 RETURNING post_id)"
                " UPDATE posts p SET comment_count = greatest(p.comment_count - g.n, 0)"
                " FROM (SELECT post_id, count(*) AS n FROM gone GROUP BY post_id) g"
                " WHERE p.id = g.post_id",
                1, params) < 0)
        return -1;
    if (db_exec(db, "DELETE FROM saves WHERE user_id = $1", 1, params) < 0) return -1;
    //  Files of everything that goes, then the rows.
    if (db_exec(db,
                "INSERT INTO gc_queue (key)"
                " SELECT i.key FROM post_images i JOIN posts p ON p.id = i.post_id"
                " WHERE p.author_id = $1"
                " UNION SELECT i.thumb_key FROM post_images i JOIN posts p ON p.id = i.post_id"
                " WHERE p.author_id = $1"
                " UNION SELECT key FROM uploads WHERE user_id = $1"
                " UNION SELECT thumb_key FROM uploads WHERE user_id = $1 AND thumb_key IS NOT NULL"
                " UNION SELECT key FROM avatars WHERE user_id = $1"
                " ON CONFLICT DO NOTHING",
                1, params) < 0)
        return -1;
    PGresult *posts = db_query(db,
                               "DELETE FROM posts WHERE author_id = $1"
                               " RETURNING id, array_to_json(hashtags)::text",
                               1, params);
    if (!posts) return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(posts) && rc == 0; row++) {
        json_t *hashtags = json_loads(PQgetvalue(posts, row, 1), JSON_DECODE_ANY, NULL);
        json_t *payload = json_pack("{s:s, s:s, s:o}", "id", PQgetvalue(posts, row, 0), "author_id",
                                    user, "hashtags", hashtags ? hashtags : json_array());
        rc = events_emit(db, "post.deleted", payload);
        json_decref(payload);
    }
    int deleted = PQntuples(posts);
    PQclear(posts);
    if (rc != 0) return -1;
    if (db_exec(db, "DELETE FROM author_stats WHERE author_id = $1", 1, params) < 0 ||
        db_exec(db, "DELETE FROM uploads WHERE user_id = $1", 1, params) < 0 ||
        db_exec(db, "DELETE FROM avatars WHERE user_id = $1", 1, params) < 0 ||
        db_exec(db, "DELETE FROM idempotency WHERE user_id = $1", 1, params) < 0)
        return -1;
    log_info("user %s deleted: %d posts removed", user, deleted);
    return 0;
}
