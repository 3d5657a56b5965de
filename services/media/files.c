/*  files: image uploads, references to stored keys, and their collection.

    Handlers:
      images.upload (blob = image bytes)   -> 201 {upload_id, key, thumb_key, url, thumb_url,
                                               width, height}   (posts: gateway, one per image)
      images.store  {kind:"avatar"} + blob -> 201 {key, url, width, height}   (identity)
      media.get     {key, check?}          -> 200 {content_type, size} + blob (gateway)

    References. A key is in use while an uploads row, a post_images row
    (key or thumb_key) or an avatars row names it. Whoever removes a
    reference queues the key in gc_queue in the same transaction;
    files_collect() later deletes the file of a queued key that nothing
    references any more.

    The race that matters is a new upload of bytes whose key is being
    collected (content addressing makes equal bytes share a key). Both
    sides take a transaction-scoped advisory lock on the key:
      upload:  lock(key); write the file if it is missing; insert the
               reference; commit
      collect: lock(key); if no reference exists: delete the file and the
               files row; commit
    Under the lock the collector's check sees every committed reference,
    and an upload that comes after a collection writes the file again. A
    reference moving from an upload to a post (posts.create) happens in one
    transaction, so a collector sees one or the other, never neither.

    The janitor thread (main.c) calls files_sweep() every second: it
    expires uploads never used in a post (after 24 hours) and
    idempotency records (after 24 h), and collects queued keys.
*/
#include "media.h"
#include "args.h"
#include "errors.h"
#include "ids.h"
#include "image.h"
#include "log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_SQL "SELECT pg_advisory_xact_lock(hashtextextended($1, 7302))"

int files_queue(db_t *db, const char *const *keys, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!keys[i] || !*keys[i]) continue;
        const char *params[] = {keys[i]};
        if (db_exec(db, "INSERT INTO gc_queue (key) VALUES ($1) ON CONFLICT DO NOTHING", 1,
                    params) < 0)
            return -1;
    }
    return 0;
}

//  Collects one key in its own transaction. 1 removed, 0 kept, -1 error.
static int s_collect_one(db_t *db, storage_t *storage, const char *key)
{
    const char *params[] = {key};
    if (db_begin(db) != 0) return -1;
    int rc = -1;
    if (db_exec(db, LOCK_SQL, 1, params) < 0) goto cleanup;
    PGresult *res =
        db_query(db,
                 "SELECT EXISTS (SELECT 1 FROM uploads WHERE key = $1 OR thumb_key = $1)"
                 " OR EXISTS (SELECT 1 FROM post_images WHERE key = $1 OR thumb_key = $1)"
                 " OR EXISTS (SELECT 1 FROM avatars WHERE key = $1)",
                 1, params);
    if (!res) goto cleanup;
    bool used = PQntuples(res) == 1 && streq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (db_exec(db, "DELETE FROM gc_queue WHERE key = $1", 1, params) < 0) goto cleanup;
    if (!used) {
        if (db_exec(db, "DELETE FROM files WHERE key = $1", 1, params) < 0) goto cleanup;
        //  Deleted while the lock is held; if the commit then fails, the
        //  row survives a missing file, which the next upload of the same
        //  bytes writes again (storage_put checks the disk, not the row).
        if (storage_key_valid(key) && storage_delete(storage, key) != 0) goto cleanup;
    }
    if (db_commit(db) != 0) goto cleanup;
    rc = used ? 0 : 1;
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    return rc;
}

int files_collect(db_t *db, storage_t *storage, const char *const *keys, size_t count)
{
    int removed = 0;
    for (size_t i = 0; i < count; i++) {
        if (!keys[i] || !*keys[i]) continue;
        int rc = s_collect_one(db, storage, keys[i]);
        if (rc < 0) return -1;
        removed += rc;
    }
    return removed;
}

int files_sweep(db_t *db, storage_t *storage, int limit)
{
    //  Expired uploads: delete them and queue their keys, in one statement.
    if (db_exec(db,
                "WITH gone AS (DELETE FROM uploads WHERE created_at < now() - interval '24 hours'"
                " RETURNING key, thumb_key)"
                " INSERT INTO gc_queue (key) SELECT key FROM gone UNION"
                " SELECT thumb_key FROM gone WHERE thumb_key IS NOT NULL ON CONFLICT DO NOTHING",
                0, NULL) < 0)
        return -1;
    if (db_exec(db, "DELETE FROM idempotency WHERE created_at < now() - interval '24 hours'", 0,
                NULL) < 0)
        return -1;
    char limit_text[16];
    snprintf(limit_text, sizeof limit_text, "%d", limit);
    const char *params[] = {limit_text};
    PGresult *res =
        db_query(db, "SELECT key FROM gc_queue ORDER BY queued_at LIMIT $1::int", 1, params);
    if (!res) return -1;
    int removed = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        int rc = s_collect_one(db, storage, PQgetvalue(res, row, 0));
        if (rc < 0) {
            removed = -1;
            break;
        }
        removed += rc;
    }
    PQclear(res);
    return removed;
}

//  ---------------------------------------------------------------------
//  Uploads

static json_t *s_image_error(image_status_t status)
{
    if (status == IMAGE_TOO_LARGE)
        return reply_error(413, ERR_TOO_LARGE, "the image is over 10 MiB or over 40 megapixels");
    return reply_error(415, ERR_UNSUPPORTED_MEDIA_TYPE,
                       "the file is not a JPEG, PNG or WebP image that can be decoded");
}

//  Inside a transaction: locks key, writes the file if missing and
//  records it in files. 0 or -1.
static int s_store(db_t *db, storage_t *storage, const char *key, const image_rendition_t *r)
{
    const char *lock_params[] = {key};
    if (db_exec(db, LOCK_SQL, 1, lock_params) < 0) return -1;
    if (storage_put(storage, key, r->data, r->size) != 0) return -1;
    char size[24];
    snprintf(size, sizeof size, "%zu", r->size);
    const char *params[] = {key, storage_content_type(key), size};
    return db_exec(db,
                   "INSERT INTO files (key, content_type, size) VALUES ($1, $2, $3::int)"
                   " ON CONFLICT DO NOTHING",
                   3, params) < 0
               ? -1
               : 0;
}

json_t *files_image_prepare(call_t *call, image_kind_t kind, files_image_t *image)
{
    memset(image, 0, sizeof *image);
    if (call->viewer_id <= 0) return media_signed_out();
    if (!call->blob || call->blob_size == 0)
        return reply_invalid(json_pack("{s:s}", "image", "is required"), "no image was sent");
    image_status_t status =
        image_process(call->blob, call->blob_size, kind, &image->full, &image->thumb);
    if (status != IMAGE_OK) return s_image_error(status);
    storage_t *storage = media_of(call)->storage;
    storage_key(storage, image->full.data, image->full.size, image->full.ext, image->key);
    if (image->thumb.data)
        storage_key(storage, image->thumb.data, image->thumb.size, image->thumb.ext,
                    image->thumb_key);
    return NULL;
}

int files_image_store(db_t *db, storage_t *storage, files_image_t *image)
{
    image->stored = true; // from the first write on, whatever follows
    if (s_store(db, storage, image->key, &image->full) != 0) return -1;
    if (image->thumb.data && s_store(db, storage, image->thumb_key, &image->thumb) != 0) return -1;
    return 0;
}

void files_image_release(db_t *db, files_image_t *image, bool committed)
{
    if (db_in_transaction(db)) db_rollback(db);
    if (image->stored && !committed) {
        //  Files may be on disk without a reference: let the collector
        //  decide (it checks for references under the key's lock).
        const char *keys[] = {image->key, image->thumb.data ? image->thumb_key : NULL};
        if (db_begin(db) == 0) {
            if (files_queue(db, keys, 2) != 0 || db_commit(db) != 0) db_rollback(db);
        }
    }
    image_rendition_clear(&image->full);
    image_rendition_clear(&image->thumb);
    image->stored = false;
}

//  Processes call->blob and records an upload of kind. Returns the reply.
static json_t *s_upload(call_t *call, image_kind_t kind)
{
    files_image_t image;
    json_t *reply = files_image_prepare(call, kind, &image);
    if (reply) return reply;
    db_t *db = call->db;
    const image_rendition_t *full = &image.full;
    char id[21], viewer[21], width[12], height[12];
    media_id_text(ids_next(), id);
    media_id_text(call->viewer_id, viewer);
    snprintf(width, sizeof width, "%d", full->width);
    snprintf(height, sizeof height, "%d", full->height);
    const char *params[] = {id,
                            viewer,
                            kind == IMAGE_KIND_AVATAR ? "avatar" : "post",
                            image.key,
                            image.thumb.data ? image.thumb_key : NULL,
                            width,
                            height};
    bool committed = false;
    if (db_begin(db) != 0) {
        reply = media_internal("begin");
    } else if (files_image_store(db, media_of(call)->storage, &image) != 0) {
        reply = media_internal("store image");
    } else if (db_exec(db,
                       "INSERT INTO uploads (id, user_id, kind, key, thumb_key, width, height)"
                       " VALUES ($1, $2, $3, $4, $5, $6::int, $7::int)",
                       7, params) != 1 ||
               db_commit(db) != 0) {
        reply = media_internal("record upload");
    } else {
        committed = true;
        json_t *body = json_object();
        if (kind == IMAGE_KIND_POST) {
            json_object_set_new(body, "upload_id", json_string(id));
            json_object_set_new(body, "thumb_key", json_string(image.thumb_key));
            json_object_set_new(body, "thumb_url", render_media_url(image.thumb_key));
        }
        json_object_set_new(body, "key", json_string(image.key));
        json_object_set_new(body, "url", render_media_url(image.key));
        json_object_set_new(body, "width", json_integer(full->width));
        json_object_set_new(body, "height", json_integer(full->height));
        reply = reply_ok(201, body);
    }
    files_image_release(db, &image, committed);
    return reply;
}

json_t *images_upload(call_t *call)
{
    return s_upload(call, IMAGE_KIND_POST);
}

json_t *images_store(call_t *call)
{
    json_t *fields = json_object();
    const char *kind = NULL;
    args_string(call->args, "kind", true, 1, 32, &kind, fields);
    if (kind && !streq(kind, "avatar"))
        json_object_set_new(fields, "kind", json_string("must be \"avatar\""));
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    return s_upload(call, IMAGE_KIND_AVATAR);
}

json_t *media_get(call_t *call)
{
    json_t *fields = json_object();
    const char *key = NULL;
    bool check = false;
    args_string(call->args, "key", true, 0, STORAGE_KEY_MAX, &key, fields);
    args_bool(call->args, "check", false, &check, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    if (!storage_key_valid(key)) return media_not_found();
    media_t *media = media_of(call);
    if (check) {
        //  A conditional GET: only whether the key still exists matters.
        int exists = storage_exists(media->storage, key);
        if (exists < 0) return media_internal("check file");
        if (!exists) return media_not_found();
        return reply_ok(200, json_pack("{s:s}", "content_type", storage_content_type(key)));
    }
    void *data = NULL;
    size_t size = 0;
    int rc = storage_get(media->storage, key, &data, &size);
    if (rc == 1) return media_not_found();
    if (rc != 0) return media_internal("read file");
    json_t *body = json_pack("{s:s, s:I}", "content_type", storage_content_type(key), "size",
                             (json_int_t)size);
    call->reply_blob = data;
    call->reply_blob_size = size;
    return reply_ok(200, body);
}
