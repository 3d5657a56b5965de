/*  posts: create, read, edit, delete, a profile's grid, and the internal
    methods other services use.

      posts.create  {caption?, images:[{upload_id, alt_text?}], idempotency_key?}  -> 201 post
                    or blob = one image and images:[{alt_text?}]
      posts.get     {id}                    -> 200 post | 404
      posts.update  {id, caption?}          -> 200 post | 403 | 404
      posts.delete  {id}                    -> 204 | 403 | 404
      posts.by_user {username, limit?, cursor?} -> 200 {items, next_cursor} | 403 | 404
      posts.batch   {ids}   (internal)      -> {posts:[post]} in the order asked, invisible left out
      posts.counts  {ids}   (internal)      -> {counts:{"<id>": n}}
      posts.recent_by_author {author_id, limit} (internal) -> {items:[{id, created_at}]}

    A one-image post comes whole: the gateway sends POST /posts's image as
    the blob of posts.create, with images:[{alt_text?}], and the image's
    files are recorded in the post's transaction. A post of 2-10 images is
    made from uploads: the gateway sends each image to images.upload first
    (files.c), then calls posts.create with the upload ids. Creating the
    post consumes the uploads (deleting an uploads row and inserting the
    post_images row in one transaction keeps the files referenced
    throughout); an upload that is not the viewer's, not a post image, or
    already used is 400.

    Order of checks on an existing post: unknown or invisible to the viewer
    404, visible but not the author's 403, then the arguments' content.
    Everything that writes runs in one transaction with its event.
*/
#include "media.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Helpers shared by the handler files

media_t *media_of(call_t *call)
{
    return (media_t *)call->state;
}

json_t *media_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

json_t *media_not_found(void)
{
    return reply_error(404, ERR_NOT_FOUND, "not found");
}

json_t *media_signed_out(void)
{
    return reply_error(401, ERR_UNAUTHENTICATED, "sign in first");
}

const char *media_id_text(int64_t id, char buf[21])
{
    ids_format(id, buf, 21);
    return buf;
}

json_t *media_page(json_t *items_stolen, bool more, int64_t key1, int64_t key2)
{
    json_t *next = json_null();
    if (more) {
        char text[CURSOR_TEXT_MAX];
        cursor_encode(key1, key2, text);
        next = json_string(text);
    }
    return reply_ok(200, json_pack("{s:o, s:o}", "items", items_stolen, "next_cursor", next));
}

int media_cursor_arg(const json_t *args, int64_t *key1, int64_t *key2, json_t *fields)
{
    const char *text = NULL;
    int rc = args_string(args, "cursor", false, 1, CURSOR_TEXT_MAX, &text, fields);
    if (rc != 1) return rc;
    if (cursor_decode(text, key1, key2) != 0) {
        json_object_set_new(fields, "cursor", json_string("is not a cursor this server issued"));
        return -1;
    }
    return 1;
}

bool media_post_id_arg(const json_t *args, int64_t *id)
{
    json_t *fields = json_object();
    int rc = args_id(args, "id", true, id, fields);
    json_decref(fields);
    return rc == 1;
}

json_t *media_page_args(const json_t *args, int *limit, int64_t *cursor_key)
{
    json_t *fields = json_object();
    int64_t ignored = 0;
    args_limit(args, limit, fields);
    media_cursor_arg(args, cursor_key, &ignored, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    return NULL;
}

PGresult *media_page_query(db_t *db, const char *sql, int n, const char *const *leading,
                           int64_t cursor_key, int limit)
{
    assert(n >= 0 && n <= 2);
    char cursor_text[21], limit_text[12];
    snprintf(cursor_text, sizeof cursor_text, "%lld", (long long)cursor_key);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    const char *params[4];
    for (int i = 0; i < n; i++)
        params[i] = leading[i];
    params[n] = cursor_text;
    params[n + 1] = limit_text;
    return db_query(db, sql, n + 2, params);
}

int media_page_rows(const PGresult *res, int limit, int key_column, bool *more, int64_t *last)
{
    int rows = PQntuples(res);
    *more = rows > limit;
    if (*more) rows = limit;
    *last = 0;
    if (rows > 0) ids_parse(PQgetvalue(res, rows - 1, key_column), last);
    return rows;
}

int media_idempotency_claim(call_t *call, const char *idempotency_key, const char *scope,
                            json_t **reply)
{
    if (!idempotency_key) return 0;
    int claimed = idempotency_claim(call->db, call->viewer_id, idempotency_key, scope, reply);
    if (claimed < 0) *reply = media_internal("idempotency claim");
    return claimed;
}

json_t *media_finish_create(call_t *call, const char *idempotency_key, const char *topic,
                            json_t *payload, json_t *reply, const char *what)
{
    db_t *db = call->db;
    if (events_emit(db, topic, payload) != 0 ||
        (idempotency_key && idempotency_store(db, call->viewer_id, idempotency_key, reply) != 0) ||
        db_commit(db) != 0) {
        json_decref(reply);
        reply = media_internal(what);
    }
    json_decref(payload);
    return reply;
}

json_t *posts_check_visible(call_t *call, int64_t post_id, int64_t *author_out)
{
    visibility_t *vis = visibility_new(call);
    json_t *reply = posts_load_visible(call, vis, post_id, author_out);
    visibility_destroy(&vis);
    return reply;
}

json_t *posts_visible_arg(call_t *call, int64_t *post_id, int64_t *author_out)
{
    if (call->viewer_id <= 0) return media_signed_out();
    if (!media_post_id_arg(call->args, post_id)) return media_not_found();
    return posts_check_visible(call, *post_id, author_out);
}

json_t *posts_load_visible(call_t *call, visibility_t *vis, int64_t post_id, int64_t *author_out)
{
    char id[21];
    const char *params[] = {media_id_text(post_id, id)};
    PGresult *res = db_query(call->db, "SELECT author_id FROM posts WHERE id = $1", 1, params);
    if (!res) return media_internal("load post");
    int64_t author = 0;
    bool found = PQntuples(res) == 1 && ids_parse(PQgetvalue(res, 0, 0), &author);
    PQclear(res);
    if (!found) return media_not_found();
    bool visible = false;
    json_t *failure = NULL;
    if (visibility_authors(vis, &author, 1, &visible, &failure) != 0) return failure;
    if (!visible) return media_not_found();
    *author_out = author;
    return NULL;
}

//  Reads args[name] as an array of at most max ids into a new JSON array of
//  id strings (canonical, for SQL as JSON text). NULL after recording a 400.
static json_t *s_ids_arg(const json_t *args, const char *name, size_t max, json_t *fields)
{
    json_t *array = json_object_get(args, name);
    if (!json_is_array(array) || json_array_size(array) > max) {
        char message[64];
        snprintf(message, sizeof message, "must be an array of at most %zu ids", max);
        json_object_set_new(fields, name, json_string(message));
        return NULL;
    }
    json_t *ids = json_array();
    size_t index;
    json_t *value;
    json_array_foreach(array, index, value)
    {
        int64_t id = 0;
        if (!json_is_string(value) || json_string_length(value) > 20 ||
            !ids_parse(json_string_value(value), &id)) {
            json_object_set_new(fields, name, json_string("must hold ids (strings of digits)"));
            json_decref(ids);
            return NULL;
        }
        char text[21];
        json_array_append_new(ids, json_string(media_id_text(id, text)));
    }
    return ids;
}

//  A 200 reply packed straight into call->reply_packed: pages of posts
//  skip the jansson tree (render.c, "packing a post").
typedef struct {
    msgpack_sbuffer buffer;
    msgpack_packer packer;
} packed_reply_t;

//  {status: 200, body: …}, the body packed next by the caller.
static void s_packed_begin(packed_reply_t *self)
{
    msgpack_sbuffer_init(&self->buffer);
    msgpack_packer_init(&self->packer, &self->buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&self->packer, 2);
    msgpack_pack_str_with_body(&self->packer, "status", 6);
    msgpack_pack_int(&self->packer, 200);
    msgpack_pack_str_with_body(&self->packer, "body", 4);
}

//  Hands the packed reply to the framework and returns the reply for the
//  log; or, with failure (stolen), drops it and returns failure.
static json_t *s_packed_end(packed_reply_t *self, call_t *call, json_t *failure)
{
    if (!failure) {
        call->reply_packed_size = self->buffer.size; // release empties the buffer
        call->reply_packed = msgpack_sbuffer_release(&self->buffer);
    }
    msgpack_sbuffer_destroy(&self->buffer);
    return failure ? failure : reply_ok(200, NULL);
}

//  One post by id as the viewer sees it (NULL reply) or the reply to send.
static json_t *s_read_post(call_t *call, int64_t post_id, json_t **post_out)
{
    *post_out = NULL;
    char viewer[21], id[21];
    const char *params[] = {media_id_text(call->viewer_id, viewer), media_id_text(post_id, id)};
    PGresult *res = db_query(call->db, POST_SELECT " FROM posts p WHERE p.id = $2", 2, params);
    if (!res) return media_internal("read post");
    json_t *failure = NULL;
    json_t *posts = render_posts(call, NULL, res, PQntuples(res), &failure);
    PQclear(res);
    if (!posts) return failure;
    if (json_array_size(posts) == 0) {
        json_decref(posts);
        return media_not_found();
    }
    *post_out = json_incref(json_array_get(posts, 0));
    json_decref(posts);
    return NULL;
}

static char *s_dump(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
}

json_t *media_text_parse(call_t *call, const char *text, bool hashtags, media_text_t *parsed)
{
    *parsed = (media_text_t){0};
    json_t *candidates = text_mention_candidates(text);
    json_t *failure = NULL;
    int rc = text_resolve_mentions(call, candidates, &parsed->mention_ids, &parsed->mention_names,
                                   &failure);
    json_decref(candidates);
    if (rc != 0) {
        media_text_clear(parsed);
        return failure;
    }
    if (hashtags) {
        parsed->hashtags = text_hashtags(text);
        parsed->hashtags_text = s_dump(parsed->hashtags);
    }
    parsed->ids_text = s_dump(parsed->mention_ids);
    parsed->names_text = s_dump(parsed->mention_names);
    return NULL;
}

void media_text_clear(media_text_t *parsed)
{
    json_decref(parsed->hashtags);
    json_decref(parsed->mention_ids);
    json_decref(parsed->mention_names);
    free(parsed->hashtags_text);
    free(parsed->ids_text);
    free(parsed->names_text);
    *parsed = (media_text_t){0};
}

//  ---------------------------------------------------------------------
//  posts.create

typedef struct {
    int64_t upload_id;
    const char *alt_text;
} new_image_t;

//  Validates args.images into images[]; returns their count (0 after
//  recording a 400). With sent (the image came with the request), it is
//  one item without an upload_id.
static size_t s_images_arg(const json_t *args, new_image_t *images, bool sent, json_t *fields)
{
    json_t *array = json_object_get(args, "images");
    if (!array) {
        json_object_set_new(fields, "images", json_string("is required: 1 to 10 images"));
        return 0;
    }
    if (!json_is_array(array) || json_array_size(array) < 1 ||
        json_array_size(array) > MEDIA_IMAGES_MAX) {
        json_object_set_new(fields, "images", json_string("must hold 1 to 10 images"));
        return 0;
    }
    if (sent) {
        json_t *item = json_array_get(array, 0);
        json_t *inner = json_object();
        const char *alt = "";
        bool ok = json_array_size(array) == 1 && json_is_object(item) &&
                  !json_object_get(item, "upload_id") &&
                  args_string(item, "alt_text", false, 0, MEDIA_ALT_TEXT_MAX, &alt, inner) >= 0;
        json_t *alt_problem = json_object_get(inner, "alt_text");
        if (!ok)
            json_object_set_new(fields, alt_problem ? "alt_text" : "images",
                                alt_problem ? json_incref(alt_problem)
                                            : json_string("the image sent with the request is the"
                                                          " only one, with no upload_id"));
        json_decref(inner);
        images[0] = (new_image_t){.upload_id = 0, .alt_text = alt};
        return ok ? 1 : 0;
    }
    size_t count = 0, index;
    json_t *item;
    json_array_foreach(array, index, item)
    {
        json_t *inner = json_object();
        int64_t id = 0;
        const char *alt = "";
        bool ok = json_is_object(item) && args_id(item, "upload_id", true, &id, inner) == 1 &&
                  args_string(item, "alt_text", false, 0, MEDIA_ALT_TEXT_MAX, &alt, inner) >= 0;
        for (size_t j = 0; ok && j < count; j++)
            ok = images[j].upload_id != id;
        if (!ok) {
            json_t *alt_problem = json_object_get(inner, "alt_text");
            json_object_set_new(fields, alt_problem ? "alt_text" : "images",
                                alt_problem ? json_incref(alt_problem)
                                            : json_string("each image needs its own upload"));
            json_decref(inner);
            return 0;
        }
        json_decref(inner);
        images[count].upload_id = id;
        images[count].alt_text = alt;
        count++;
    }
    return count;
}

//  After a replayed create, the uploads the retry made are not needed:
//  drop them now instead of in 24 hours.
static void s_drop_uploads(call_t *call, const new_image_t *images, size_t count)
{
    db_t *db = call->db;
    if (db_begin(db) != 0) return;
    char viewer[21];
    media_id_text(call->viewer_id, viewer);
    for (size_t i = 0; i < count; i++) {
        char id[21];
        const char *params[] = {media_id_text(images[i].upload_id, id), viewer};
        if (db_exec(db,
                    "WITH gone AS (DELETE FROM uploads WHERE id = $1 AND user_id = $2"
                    " RETURNING key, thumb_key) INSERT INTO gc_queue (key)"
                    " SELECT key FROM gone UNION SELECT thumb_key FROM gone"
                    " WHERE thumb_key IS NOT NULL ON CONFLICT DO NOTHING",
                    2, params) < 0) {
            db_rollback(db);
            return;
        }
    }
    if (db_commit(db) != 0) db_rollback(db);
}

//  Records images[i] of a new post: the sent image's files, or the
//  viewer's upload it names (consumed). NULL, or the reply to send.
static json_t *s_add_image(call_t *call, const char *post_id, const new_image_t *image,
                           size_t position_index, files_image_t *sent)
{
    db_t *db = call->db;
    char viewer[21], upload[21], position[24];
    media_id_text(call->viewer_id, viewer);
    snprintf(position, sizeof position, "%zu", position_index);
    if (sent) {
        if (files_image_store(db, media_of(call)->storage, sent) != 0)
            return media_internal("store image");
        char width[12], height[12];
        snprintf(width, sizeof width, "%d", sent->full.width);
        snprintf(height, sizeof height, "%d", sent->full.height);
        const char *params[] = {post_id, position, sent->key,      sent->thumb_key,
                                width,   height,   image->alt_text};
        if (db_exec(db,
                    "INSERT INTO post_images (post_id, position, key, thumb_key, width, height,"
                    " alt_text) VALUES ($1, $2::smallint, $3, $4, $5::int, $6::int, $7)",
                    7, params) != 1)
            return media_internal("insert post image");
        return NULL;
    }
    const char *params[] = {media_id_text(image->upload_id, upload), viewer, post_id, position,
                            image->alt_text};
    long moved = db_exec(db,
                         "WITH used AS (DELETE FROM uploads WHERE id = $1 AND user_id = $2"
                         " AND kind = 'post' RETURNING key, thumb_key, width, height)"
                         " INSERT INTO post_images (post_id, position, key, thumb_key, width,"
                         " height, alt_text) SELECT $3, $4::smallint, key, thumb_key, width,"
                         " height, $5 FROM used",
                         5, params);
    if (moved < 0) return media_internal("insert post image");
    if (moved == 0)
        return reply_invalid(
            json_pack("{s:s}", "images", "names an upload that does not exist or was used"),
            "some fields are not valid");
    return NULL;
}

json_t *posts_create(call_t *call)
{
    if (call->viewer_id <= 0) return media_signed_out();
    //  A one-image post comes with its image (the gateway's POST /posts):
    //  processed first, so its 413 or 415 comes before any 400, as when
    //  images.upload ran before this call; it saves that call and the
    //  uploads row. More images come as uploads.
    files_image_t sent;
    bool with_image = call->blob != NULL;
    if (with_image) {
        json_t *error = files_image_prepare(call, IMAGE_KIND_POST, &sent);
        if (error) return error;
    }
    json_t *fields = json_object();
    const char *caption = "", *idempotency_key = NULL;
    new_image_t images[MEDIA_IMAGES_MAX];
    args_string(call->args, "caption", false, 0, MEDIA_CAPTION_MAX, &caption, fields);
    idempotency_arg(call->args, &idempotency_key, fields);
    size_t count = s_images_arg(call->args, images, with_image, fields);
    if (json_object_size(fields) > 0) {
        if (with_image) files_image_release(call->db, &sent, false);
        return reply_invalid(fields, "some fields are not valid");
    }
    json_decref(fields);

    db_t *db = call->db;
    media_text_t parsed = {0};
    json_t *users = NULL;
    PGresult *res = NULL;
    json_t *reply = media_text_parse(call, caption, true, &parsed);
    if (reply) goto cleanup;
    users = render_users(call, &call->viewer_id, 1, &reply);
    if (!users) goto cleanup;
    char viewer[21], post_id[21];
    media_id_text(call->viewer_id, viewer);
    const json_t *author = json_object_get(users, viewer);
    if (!author) {
        reply = media_signed_out(); // the account is gone
        goto cleanup;
    }
    media_id_text(ids_next(), post_id);

    if (db_begin(db) != 0) {
        reply = media_internal("begin");
        goto cleanup;
    }
    int claimed = media_idempotency_claim(call, idempotency_key, "posts.create", &reply);
    if (claimed == 1) {
        db_rollback(db);
        if (!with_image) s_drop_uploads(call, images, count);
    }
    if (claimed != 0) goto cleanup;
    //  The post, then its images, each consuming one of the viewer's uploads.
    const char *post_params[] = {post_id,         viewer,           caption, parsed.hashtags_text,
                                 parsed.ids_text, parsed.names_text};
    if (db_exec(db,
                "INSERT INTO posts (id, author_id, caption, hashtags, mention_ids,"
                " mention_names) VALUES ($1, $2, $3,"
                " ARRAY(SELECT json_array_elements_text($4::json)),"
                " ARRAY(SELECT json_array_elements_text($5::json)::bigint),"
                " ARRAY(SELECT json_array_elements_text($6::json)))",
                6, post_params) != 1) {
        reply = media_internal("insert post");
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++) {
        reply = s_add_image(call, post_id, &images[i], i, with_image ? &sent : NULL);
        if (reply) goto cleanup;
    }
    const char *stats_params[] = {viewer};
    if (db_exec(db,
                "INSERT INTO author_stats (author_id, posts_count) VALUES ($1, 1)"
                " ON CONFLICT (author_id) DO UPDATE SET posts_count = author_stats.posts_count + 1",
                1, stats_params) != 1) {
        reply = media_internal("count post");
        goto cleanup;
    }
    const char *read_params[] = {viewer, post_id};
    res = db_query(db, POST_SELECT " FROM posts p WHERE p.id = $2", 2, read_params);
    if (!res || PQntuples(res) != 1) {
        reply = media_internal("read new post");
        goto cleanup;
    }
    json_t *payload =
        json_pack("{s:s, s:s, s:s, s:O, s:O, s:s}", "id", post_id, "author_id", viewer, "caption",
                  caption, "hashtags", parsed.hashtags, "mentions", parsed.mention_ids,
                  "created_at", PQgetvalue(res, 0, POST_COL_CREATED_AT));
    reply = media_finish_create(call, idempotency_key, "post.created", payload,
                                reply_ok(201, render_post(res, 0, author)), "create post");
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    //  Committed exactly when the answer is the new post (a replayed
    //  create stored no file).
    if (with_image) files_image_release(db, &sent, reply_status(reply) == 201);
    PQclear(res);
    media_text_clear(&parsed);
    json_decref(users);
    return reply;
}

//  ---------------------------------------------------------------------
//  Reading, editing, deleting one post

//  GET /posts/{id} is the busiest single post: packed straight into the
//  reply, as pages are.
json_t *posts_get(call_t *call)
{
    int64_t id = 0;
    if (!media_post_id_arg(call->args, &id)) return media_not_found();
    char viewer[21], post_id[21];
    const char *params[] = {media_id_text(call->viewer_id, viewer), media_id_text(id, post_id)};
    PGresult *res = db_query(call->db, POST_SELECT " FROM posts p WHERE p.id = $2", 2, params);
    if (!res) return media_internal("read post");
    packed_reply_t packed;
    s_packed_begin(&packed);
    json_t *failure = NULL;
    int shown = render_post_pack_one(call, res, &packed.packer, &failure);
    PQclear(res);
    if (shown == 0) failure = media_not_found();
    return s_packed_end(&packed, call, shown == 1 ? NULL : failure);
}

//  The post args.id for a change by its author: NULL with *id set when the
//  viewer is the author, else the reply (401 signed out, 404 unknown or
//  invisible, 403 someone else's).
static json_t *s_own_post_arg(call_t *call, int64_t *id)
{
    int64_t author = 0;
    json_t *reply = posts_visible_arg(call, id, &author);
    if (reply) return reply;
    if (author != call->viewer_id)
        return reply_error(403, ERR_FORBIDDEN, "only the author may change this post");
    return NULL;
}

json_t *posts_update(call_t *call)
{
    int64_t id = 0;
    json_t *reply = s_own_post_arg(call, &id);
    if (reply) return reply;
    json_t *fields = json_object();
    const char *caption = NULL;
    int present = args_string(call->args, "caption", false, 0, MEDIA_CAPTION_MAX, &caption, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    json_t *post = NULL;
    if (present == 0) { // an empty PATCH changes nothing
        reply = s_read_post(call, id, &post);
        return reply ? reply : reply_ok(200, post);
    }

    db_t *db = call->db;
    media_text_t parsed = {0};
    json_t *payload = NULL;
    reply = media_text_parse(call, caption, true, &parsed);
    if (reply) goto cleanup;
    char post_id[21], viewer[21];
    const char *params[] = {media_id_text(id, post_id),
                            media_id_text(call->viewer_id, viewer),
                            caption,
                            parsed.hashtags_text,
                            parsed.ids_text,
                            parsed.names_text};
    if (db_begin(db) != 0) {
        reply = media_internal("begin");
        goto cleanup;
    }
    long updated =
        db_exec(db,
                "UPDATE posts SET caption = $3,"
                " hashtags = ARRAY(SELECT json_array_elements_text($4::json)),"
                " mention_ids = ARRAY(SELECT json_array_elements_text($5::json)::bigint),"
                " mention_names = ARRAY(SELECT json_array_elements_text($6::json)),"
                " updated_at = now() WHERE id = $1 AND author_id = $2",
                6, params);
    if (updated < 0) {
        reply = media_internal("update post");
        goto cleanup;
    }
    if (updated == 0) { // deleted meanwhile
        reply = media_not_found();
        goto cleanup;
    }
    payload = json_pack("{s:s, s:s, s:s, s:O, s:O}", "id", post_id, "author_id", viewer, "caption",
                        caption, "hashtags", parsed.hashtags, "mentions", parsed.mention_ids);
    if (events_emit(db, "post.updated", payload) != 0 || db_commit(db) != 0) {
        reply = media_internal("update post");
        goto cleanup;
    }
    reply = s_read_post(call, id, &post);
    if (!reply) reply = reply_ok(200, post);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    media_text_clear(&parsed);
    json_decref(payload);
    return reply;
}

json_t *posts_delete(call_t *call)
{
    int64_t id = 0;
    json_t *reply = s_own_post_arg(call, &id);
    if (reply) return reply;

    db_t *db = call->db;
    PGresult *keys = NULL, *gone = NULL;
    json_t *payload = NULL;
    char post_id[21], viewer[21];
    const char *params[] = {media_id_text(id, post_id), media_id_text(call->viewer_id, viewer)};
    if (db_begin(db) != 0) return media_internal("begin");
    keys = db_query(db,
                    "SELECT key FROM post_images WHERE post_id = $1 UNION"
                    " SELECT thumb_key FROM post_images WHERE post_id = $1",
                    1, params);
    if (!keys) {
        reply = media_internal("read post images");
        goto cleanup;
    }
    gone = db_query(db,
                    "DELETE FROM posts WHERE id = $1 AND author_id = $2"
                    " RETURNING array_to_json(hashtags)::text",
                    2, params);
    if (!gone) {
        reply = media_internal("delete post");
        goto cleanup;
    }
    if (PQntuples(gone) != 1) {
        reply = media_not_found(); // deleted meanwhile
        goto cleanup;
    }
    int key_count = PQntuples(keys);
    const char **key_list = (const char **)zmalloc(sizeof(char *) * (size_t)(key_count + 1));
    for (int row = 0; row < key_count; row++)
        key_list[row] = PQgetvalue(keys, row, 0);
    json_t *hashtags = json_loads(PQgetvalue(gone, 0, 0), JSON_DECODE_ANY, NULL);
    payload = json_pack("{s:s, s:s, s:o}", "id", post_id, "author_id", viewer, "hashtags",
                        hashtags ? hashtags : json_array());
    bool ok = files_queue(db, key_list, (size_t)key_count) == 0 &&
              db_exec(db,
                      "UPDATE author_stats SET posts_count = greatest(posts_count - 1, 0)"
                      " WHERE author_id = $1",
                      1, params + 1) >= 0 &&
              events_emit(db, "post.deleted", payload) == 0 && db_commit(db) == 0;
    if (ok) {
        //  Collect now rather than at the janitor's next round: the files
        //  of a deleted post should stop being served at once.
        files_collect(db, media_of(call)->storage, key_list, (size_t)key_count);
        reply = reply_ok(204, NULL);
    } else {
        reply = media_internal("delete post");
    }
    freen(key_list);
cleanup:
    if (db_in_transaction(db)) db_rollback(db);
    PQclear(keys);
    PQclear(gone);
    json_decref(payload);
    return reply;
}

//  ---------------------------------------------------------------------
//  Lists

//  The account named username as identity answers it: the reply (the
//  caller decrefs it) with *user borrowed from it, or an error reply with
//  *user NULL.
static json_t *s_owner_from_identity(call_t *call, const char *username, json_t **user)
{
    *user = NULL;
    json_t *args = json_pack("{s:s}", "username", username);
    json_t *found = rpc_call(call->rpc, "identity", "users.by_username", call->viewer_id, args,
                             NULL, call->request->deadline_ms);
    json_decref(args);
    int status = reply_status(found);
    if (status == 200) {
        *user = reply_body(found);
        return found;
    }
    json_decref(found);
    if (status == 404 || status == 400) return reply_error(404, ERR_NOT_FOUND, "no such user");
    return reply_error(503, ERR_UNAVAILABLE, "user profiles are unavailable right now");
}

//  A profile grid page: rows [0, rows) of res, all by user, then the
//  cursor as media_page makes it.
static json_t *s_grid_reply(call_t *call, const PGresult *res, int rows, const json_t *user,
                            bool more, int64_t last)
{
    packed_reply_t packed;
    s_packed_begin(&packed);
    msgpack_pack_map(&packed.packer, 2);
    msgpack_pack_str_with_body(&packed.packer, "items", 5);
    int rc = render_posts_pack_author(res, rows, user, &packed.packer);
    msgpack_pack_str_with_body(&packed.packer, "next_cursor", 11);
    if (more) {
        char text[CURSOR_TEXT_MAX];
        cursor_encode(last, 0, text);
        msgpack_pack_str_with_body(&packed.packer, text, strlen(text));
    } else {
        msgpack_pack_nil(&packed.packer);
    }
    return s_packed_end(&packed, call, rc == 0 ? NULL : media_internal("packing posts"));
}

json_t *posts_by_user(call_t *call)
{
    json_t *fields = json_object();
    const char *username = NULL;
    int limit = 20;
    int64_t before = INT64_MAX, ignored = 0;
    //  Any string: a name that cannot exist is identity's 404, not a 400.
    args_string(call->args, "username", true, 0, 1024, &username, fields);
    args_limit(call->args, &limit, fields);
    media_cursor_arg(call->args, &before, &ignored, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);

    //  A signed-in viewer's grid starts from media's users projection: graph
    //  decides it (can_view), so no call to identity. An anonymous viewer's
    //  is decided by is_private alone, which must be identity's own; so is
    //  a signed-in one's when graph does not answer, or the projection does
    //  not hold the name yet.
    json_t *found = call->viewer_id > 0 ? render_user_by_username(call, username) : NULL;
    json_t *user = found;
    visibility_t *vis = visibility_new(call);
    visibility_profile_t seen = user ? visibility_profile(vis, user, false) : VISIBILITY_UNDECIDED;
    if (seen == VISIBILITY_UNDECIDED) {
        json_decref(found);
        found = s_owner_from_identity(call, username, &user);
        seen = user ? visibility_profile(vis, user, true) : VISIBILITY_UNDECIDED;
    }
    visibility_destroy(&vis);
    if (!user) return found; // identity's error
    json_t *reply = NULL;
    if (seen == VISIBILITY_HIDDEN) {
        reply = reply_error(404, ERR_NOT_FOUND, "no such user");
    } else if (seen == VISIBILITY_PRIVATE) {
        reply = reply_error(403, ERR_FORBIDDEN, "this account is private");
    } else {
        char viewer[21];
        const char *leading[] = {media_id_text(call->viewer_id, viewer),
                                 json_string_value(json_object_get(user, "id"))};
        PGresult *res = media_page_query(call->db,
                                         POST_SELECT " FROM posts p WHERE p.author_id = $2::bigint"
                                                     " AND p.id < $3::bigint ORDER BY p.id DESC"
                                                     " LIMIT $4::int",
                                         2, leading, before, limit);
        if (!res) {
            reply = media_internal("list posts");
        } else {
            bool more = false;
            int64_t last = 0;
            int rows = media_page_rows(res, limit, POST_COL_ID, &more, &last);
            reply = s_grid_reply(call, res, rows, user, more, last);
            PQclear(res);
        }
    }
    json_decref(found);
    return reply;
}

//  posts.batch's reply for the rows of res: the posts in the order of ids
//  (id strings), each once, packed straight into call->reply_packed
//  (render_posts_pack): a feed page is the busiest caller.
static json_t *s_batch_reply(call_t *call, const PGresult *res, const json_t *ids)
{
    int rows = PQntuples(res);
    zhashx_t *row_of = zhashx_new(); // id -> row + 1, dropped once taken
    for (int row = 0; row < rows; row++)
        zhashx_update(row_of, PQgetvalue(res, row, POST_COL_ID), (void *)(intptr_t)(row + 1));
    int *order = (int *)zmalloc(sizeof(int) * (size_t)(rows > 0 ? rows : 1));
    size_t count = 0;
    size_t index;
    json_t *id;
    json_array_foreach(ids, index, id)
    {
        intptr_t found = (intptr_t)zhashx_lookup(row_of, json_string_value(id));
        if (found == 0) continue;
        order[count++] = (int)found - 1;
        zhashx_delete(row_of, json_string_value(id));
    }
    zhashx_destroy(&row_of);

    packed_reply_t packed;
    s_packed_begin(&packed);
    msgpack_pack_map(&packed.packer, 1);
    msgpack_pack_str_with_body(&packed.packer, "posts", 5);
    json_t *failure = NULL;
    int rc = render_posts_pack(call, res, order, count, &packed.packer, &failure);
    free(order);
    return s_packed_end(&packed, call, rc == 0 ? NULL : failure);
}

json_t *posts_batch(call_t *call)
{
    json_t *fields = json_object();
    json_t *ids = s_ids_arg(call->args, "ids", MEDIA_BATCH_MAX, fields);
    if (!ids) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    char viewer[21];
    char *ids_text = s_dump(ids);
    const char *params[] = {media_id_text(call->viewer_id, viewer), ids_text};
    PGresult *res = db_query(call->db,
                             POST_SELECT " FROM posts p WHERE p.id = ANY(ARRAY("
                                         "SELECT json_array_elements_text($2::json)::bigint))",
                             2, params);
    free(ids_text);
    json_t *reply = NULL;
    if (!res) {
        reply = media_internal("batch posts");
        goto cleanup;
    }
    reply = s_batch_reply(call, res, ids);
    PQclear(res);
cleanup:
    json_decref(ids);
    return reply;
}

json_t *posts_counts(call_t *call)
{
    json_t *fields = json_object();
    json_t *ids = s_ids_arg(call->args, "ids", MEDIA_COUNTS_MAX, fields);
    if (!ids) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    char *ids_text = s_dump(ids);
    const char *params[] = {ids_text};
    PGresult *res = db_query(call->db,
                             "SELECT author_id, posts_count FROM author_stats WHERE author_id ="
                             " ANY(ARRAY(SELECT json_array_elements_text($1::json)::bigint))",
                             1, params);
    free(ids_text);
    if (!res) {
        json_decref(ids);
        return media_internal("count posts");
    }
    json_t *counts = json_object();
    size_t index;
    json_t *id;
    json_array_foreach(ids, index, id)
    {
        json_object_set_new(counts, json_string_value(id), json_integer(0));
    }
    for (int row = 0; row < PQntuples(res); row++)
        json_object_set_new(counts, PQgetvalue(res, row, 0),
                            json_integer(atoll(PQgetvalue(res, row, 1))));
    PQclear(res);
    json_decref(ids);
    return reply_ok(200, json_pack("{s:o}", "counts", counts));
}

json_t *posts_recent_by_author(call_t *call)
{
    json_t *fields = json_object();
    int64_t author = 0;
    int limit = 20;
    args_id(call->args, "author_id", true, &author, fields);
    args_limit(call->args, &limit, fields);
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    char author_text[21], limit_text[12];
    snprintf(limit_text, sizeof limit_text, "%d", limit);
    const char *params[] = {media_id_text(author, author_text), limit_text};
    PGresult *res = db_query(call->db,
                             "SELECT id, to_char(created_at AT TIME ZONE 'UTC',"
                             " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM posts"
                             " WHERE author_id = $1 ORDER BY id DESC LIMIT $2::int",
                             2, params);
    if (!res) return media_internal("recent posts");
    json_t *items = json_array();
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(items, json_pack("{s:s, s:s}", "id", PQgetvalue(res, row, 0),
                                               "created_at", PQgetvalue(res, row, 1)));
    PQclear(res);
    return reply_ok(200, json_pack("{s:o}", "items", items));
}
