/*  media: what the service's files share.

    The media service owns posts, their images, likes, comments, saves,
    the hashtags and mentions parsed from captions and comments, and the
    image files themselves (behind storage.h). One media_t, filled by main()
    from the environment, is read-only while workers run.

    Files: main.c (wiring, the janitor thread), image.c (libvips), storage.c
    (the file store), files.c (uploads, references and garbage collection,
    images.upload / images.store / media.get), posts.c, likes.c,
    comments.c, saves.c (handlers), render.c (post and comment objects,
    author hydration), visibility.c (the one visibility decision), text.c
    (hashtags and mentions), idempotency.c (Idempotency-Key), accounts.c
    (identity events).
*/
#ifndef MEDIA_H_INCLUDED
#define MEDIA_H_INCLUDED

#include "service.h"
#include "image.h"
#include "storage.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MEDIA_CAPTION_MAX 2200
#define MEDIA_COMMENT_MAX 1000
#define MEDIA_ALT_TEXT_MAX 1000
#define MEDIA_IMAGES_MAX 10
#define MEDIA_BATCH_MAX 100   // posts.batch, posts.recent_by_author
#define MEDIA_COUNTS_MAX 1000 // posts.counts
#define MEDIA_IDEMPOTENCY_KEY_MAX 255

typedef struct {
    storage_t *storage;
} media_t;

media_t *media_of(call_t *call);

//  ---- handlers -------------------------------------------------------------
json_t *images_upload(call_t *call); // files.c
json_t *images_store(call_t *call);  // files.c
json_t *media_get(call_t *call);     // files.c
json_t *posts_create(call_t *call);  // posts.c
json_t *posts_get(call_t *call);
json_t *posts_update(call_t *call);
json_t *posts_delete(call_t *call);
json_t *posts_by_user(call_t *call);
json_t *posts_batch(call_t *call);
json_t *posts_counts(call_t *call);
json_t *posts_recent_by_author(call_t *call);
json_t *likes_create(call_t *call); // likes.c
json_t *likes_delete(call_t *call);
json_t *likes_list(call_t *call);
json_t *comments_create(call_t *call); // comments.c
json_t *comments_list(call_t *call);
json_t *comments_delete(call_t *call);
json_t *saves_create(call_t *call); // saves.c
json_t *saves_delete(call_t *call);
json_t *saves_list(call_t *call);

//  ---- event handlers (accounts.c) -------------------------------------------
int accounts_user_created(db_t *db, const event_t *event, void *state);
int accounts_user_updated(db_t *db, const event_t *event, void *state);
int accounts_user_deleted(db_t *db, const event_t *event, void *state);
//  users.sync {user.updated payload}: the viewer's own change, from identity
//  before it answers it (accounts.c).
json_t *accounts_sync(call_t *call);

//  ---- files.c: references and garbage collection ----------------------------
//  Inside the caller's transaction: queues keys (NULL entries skipped) for
//  collection once nothing references them. 0 or -1.
int files_queue(db_t *db, const char *const *keys, size_t count);
//  Outside any transaction: removes each queued key that nothing references
//  any more (file and row). Returns the number removed, or -1.
int files_collect(db_t *db, storage_t *storage, const char *const *keys, size_t count);
//  The janitor's round: expires old uploads and idempotency records and
//  collects up to limit queued keys. Returns the number of files removed, or -1.
int files_sweep(db_t *db, storage_t *storage, int limit);

//  An uploaded image on its way to a reference: its renditions, their
//  keys, and whether their files were written.
typedef struct {
    image_rendition_t full;
    image_rendition_t thumb; // empty for an avatar
    char key[STORAGE_KEY_MAX];
    char thumb_key[STORAGE_KEY_MAX]; // "" for an avatar
    bool stored;
} files_image_t;
//  Processes call->blob into *image (before any transaction: the image
//  work is the cost). NULL, or the reply to send: 401, 400 without a blob,
//  413, 415.
json_t *files_image_prepare(call_t *call, image_kind_t kind, files_image_t *image);
//  Inside the caller's transaction: writes both renditions' files if
//  missing and records them, under each key's lock (the collector's race,
//  files.c). 0 or -1. A reference to the keys must follow in the same
//  transaction.
int files_image_store(db_t *db, storage_t *storage, files_image_t *image);
//  After the transaction: when it did not commit (committed false) but
//  the files were written, queues them for the collector, which deletes
//  what nothing references. Frees the renditions.
void files_image_release(db_t *db, files_image_t *image, bool committed);

//  ---- visibility.c: the one place that decides who sees whose posts --------
typedef struct visibility_t visibility_t;

typedef enum {
    VISIBILITY_VISIBLE = 0, // the viewer may see the account's posts
    VISIBILITY_PRIVATE,     // a private account the viewer does not follow (403 for lists)
    VISIBILITY_HIDDEN,      // blocked either way, or unknown (404)
    VISIBILITY_UNDECIDED    // user is not identity's own answer and graph did not answer
} visibility_profile_t;

visibility_t *visibility_new(call_t *call);
void visibility_destroy(visibility_t **self_p);
//  visible[i] = whether the viewer may see posts of ids[i]. 0, or -1 when
//  it cannot be decided (identity did not answer; *failure gets a reply).
int visibility_authors(visibility_t *self, const int64_t *ids, size_t count, bool *visible,
                       json_t **failure);
//  For a list of one account's posts (the profile grid). fresh: user is
//  identity's answer to this request (its is_private decides, with graph's
//  follow edge); otherwise it came from the projection and graph's
//  can_view decides (graph hears of every switch before PATCH /me
//  answers), or VISIBILITY_UNDECIDED when graph does not answer.
visibility_profile_t visibility_profile(visibility_t *self, const json_t *user, bool fresh);
//  blocked[i] = whether ids[i] and the viewer blocked each other (false
//  for everyone when graph does not answer). 0 or -1.
int visibility_blocked(visibility_t *self, const int64_t *ids, size_t count, bool *blocked);

//  ---- render.c: post and comment objects -------------------------------------
//  Columns of POST_SELECT, in order; $1 is the viewer id (0 = anonymous).
//  OFFSET 0 keeps liked_by_me and saved_by_me one index probe per post: in
//  a generic plan Postgres otherwise hashes every like of the viewer for
//  each page (graph/relations.c says more).
#define POST_SELECT                                                                                \
    "SELECT p.id, p.author_id, p.caption, array_to_json(p.hashtags)::text,"                        \
    " array_to_json(p.mention_names)::text, p.like_count, p.comment_count,"                        \
    " to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"              \
    " to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"              \
    " EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = $1::bigint OFFSET 0),"  \
    " EXISTS (SELECT 1 FROM saves s WHERE s.user_id = $1::bigint AND s.post_id = p.id OFFSET 0),"  \
    " (SELECT json_agg(json_build_array(i.key, i.thumb_key, i.width, i.height, i.alt_text)"        \
    "  ORDER BY i.position)::text FROM post_images i WHERE i.post_id = p.id),"                     \
    " (SELECT json_build_array(u.username, u.avatar_key)::text FROM users u"                       \
    "  WHERE u.id = p.author_id)"
enum {
    POST_COL_ID,
    POST_COL_AUTHOR_ID,
    POST_COL_CAPTION,
    POST_COL_HASHTAGS,
    POST_COL_MENTIONS,
    POST_COL_LIKE_COUNT,
    POST_COL_COMMENT_COUNT,
    POST_COL_CREATED_AT,
    POST_COL_UPDATED_AT,
    POST_COL_LIKED,
    POST_COL_SAVED,
    POST_COL_IMAGES,
    //  [username, avatar_key] from the users projection, NULL when it does
    //  not hold the author yet: what a post shows of its author, without
    //  a second query (render_posts asks identity for the rest).
    POST_COL_AUTHOR,
    POST_COLUMNS
};

//  The base user of the account named username (any case) from the users
//  projection, or NULL when it has no such name (or on a database error):
//  the caller then asks identity. Its is_private may lag a switch: never
//  a visibility input. New object.
json_t *render_user_by_username(call_t *call, const char *username);
//  Base users for ids (duplicates and zeros ignored): from media's users
//  projection, and identity users.batch for the ids it does not hold.
//  Returns an object "<id>" -> base user (new reference), or NULL with
//  *failure set to the reply to answer (503 when identity is down).
json_t *render_users(call_t *call, const int64_t *ids, size_t count, json_t **failure);
//  The same; projection false asks identity for every id (decisions that
//  must not lag an account's change, such as is_private for visibility).
json_t *render_users_from(call_t *call, const int64_t *ids, size_t count, bool projection,
                          json_t **failure);
//  {id, username, avatar_url} of a base user (new reference).
json_t *render_author(const json_t *user);
//  Post objects for rows [0, rows) of res (POST_SELECT columns), in row
//  order, leaving out posts the viewer may not see and posts whose author
//  is gone. vis may be NULL (a new one is used). Returns a new array, or
//  NULL with *failure set.
json_t *render_posts(call_t *call, visibility_t *vis, const PGresult *res, int rows,
                     json_t **failure);
//  One post object from row of res with author (a base user, borrowed).
json_t *render_post(const PGresult *res, int row, const json_t *author);
//  The array of post objects for rows order[0..count) of res (POST_SELECT
//  columns; indices, in the order they go out), packed as msgpack without
//  building them as jansson trees, leaving out what render_posts leaves
//  out. 0, or -1 with *failure set to the reply to answer.
int render_posts_pack(call_t *call, const PGresult *res, const int *order, size_t count,
                      msgpack_packer *packer, json_t **failure);
//  The post object of res's one row packed, when the viewer may see it:
//  1 packed, 0 nothing packed (no row, not visible, author gone), or -1
//  with *failure set.
int render_post_pack_one(call_t *call, const PGresult *res, msgpack_packer *packer,
                         json_t **failure);
//  The array of post objects for rows [0, rows) of res, all by author (a
//  base user, borrowed; visibility decided by the caller), packed. 0 or -1.
int render_posts_pack_author(const PGresult *res, int rows, const json_t *author,
                             msgpack_packer *packer);
//  "/media/<key>" (new string), or JSON null for a NULL key.
json_t *render_media_url(const char *key);

//  ---- text.c: hashtags and mentions -------------------------------------------
#define TEXT_HASHTAGS_MAX 30
#define TEXT_HASHTAG_MAX_CHARS 100
#define TEXT_MENTIONS_MAX 50
//  Hashtags (#tag: Unicode letters, digits and '_', lower-cased, without
//  '#'), distinct, in order of first appearance; a new array of strings.
json_t *text_hashtags(const char *text);
//  Candidate usernames (@name: [a-z0-9._]{1,30}, lower-cased, without '@'),
//  distinct, in order of first appearance; a new array of strings.
json_t *text_mention_candidates(const char *text);
//  Resolves candidates with identity users.by_usernames and keeps the
//  existing ones, in order: *ids_out (array of id strings) and
//  *names_out (array of usernames), both new. 0, or -1 with *failure set.
int text_resolve_mentions(call_t *call, const json_t *candidates, json_t **ids_out,
                          json_t **names_out, json_t **failure);

//  ---- idempotency.c ---------------------------------------------------------
//  Inside the caller's transaction, claims key for (viewer, scope). Returns
//  0 when the request is new (go on, then idempotency_store before commit),
//  1 when it was done before (*replay_out = the first reply: roll back and
//  answer it), -1 on a database error.
int idempotency_claim(db_t *db, int64_t viewer_id, const char *key, const char *scope,
                      json_t **replay_out);
//  Records the reply of a claimed key (inside the same transaction). 0 or -1.
int idempotency_store(db_t *db, int64_t viewer_id, const char *key, const json_t *reply);
//  Reads args.idempotency_key: 1 present (set), 0 absent, -1 invalid
//  (recorded in fields).
int idempotency_arg(const json_t *args, const char **key_out, json_t *fields);

//  ---- small helpers (posts.c) --------------------------------------------------
json_t *media_internal(const char *what);
json_t *media_not_found(void);
json_t *media_signed_out(void);
//  Loads the post id (args.id) the viewer may see: *author_out its author.
//  NULL on success, else the reply (400 bad id, 404 unknown or invisible).
json_t *posts_load_visible(call_t *call, visibility_t *vis, int64_t post_id, int64_t *author_out);
//  Formats an id into a buffer of 21 bytes and returns it.
const char *media_id_text(int64_t id, char buf[21]);
//  A page reply {items, next_cursor}.
json_t *media_page(json_t *items_stolen, bool more, int64_t key1, int64_t key2);
//  Reads args.cursor: 1 and the keys when present, 0 absent, -1 invalid.
int media_cursor_arg(const json_t *args, int64_t *key1, int64_t *key2, json_t *fields);
//  What a caption or a comment says besides its words: its hashtags (new
//  JSON arrays; NULL when not asked for) and the mentions of existing
//  users (ids and names), each also as the JSON text bound to SQL.
typedef struct {
    json_t *hashtags;
    json_t *mention_ids;
    json_t *mention_names;
    char *hashtags_text;
    char *ids_text;
    char *names_text;
} media_text_t;
//  Fills *parsed from text (hashtags too when asked). NULL, or the reply
//  when the mentions could not be resolved (*parsed then empty).
json_t *media_text_parse(call_t *call, const char *text, bool hashtags, media_text_t *parsed);
//  Frees what media_text_parse made; safe on an empty one.
void media_text_clear(media_text_t *parsed);
//  Whether args.id is an id (a post's or a comment's); *id set when it is.
//  Handlers answer 404 when not: a path segment that is no id names nothing.
bool media_post_id_arg(const json_t *args, int64_t *id);
//  The prologue of an action of the signed-in viewer on the post args.id:
//  NULL with *post_id and *author_out set, or the reply (401 signed out,
//  404 not an id, no such post or not visible to the viewer).
json_t *posts_visible_arg(call_t *call, int64_t *post_id, int64_t *author_out);
//  posts_load_visible with a visibility context of its own.
json_t *posts_check_visible(call_t *call, int64_t post_id, int64_t *author_out);
//  Reads args.limit into *limit and the first key of args.cursor into
//  *cursor_key (both keep the caller's default when absent). NULL, or the
//  400 reply naming the bad fields.
json_t *media_page_args(const json_t *args, int *limit, int64_t *cursor_key);
//  Runs a page query: the n (0..2) leading params, then $n+1 the cursor key
//  and $n+2 limit + 1 (the extra row says whether there is a next page).
PGresult *media_page_query(db_t *db, const char *sql, int n, const char *const *leading,
                           int64_t cursor_key, int limit);
//  The rows of such a page to render (at most limit); *more whether there
//  is a next page, *last the id in key_column of the last row shown (0
//  when none), for media_page.
int media_page_rows(const PGresult *res, int limit, int key_column, bool *more, int64_t *last);
//  Inside a create's transaction: claims idempotency_key (NULL: none was
//  sent) under scope. 0 go on; 1 with *reply the first request's reply (a
//  replay: roll back and answer it); -1 with *reply the 500.
int media_idempotency_claim(call_t *call, const char *idempotency_key, const char *scope,
                            json_t **reply);
//  The end of a create: emits topic with payload (taken), stores reply
//  under the idempotency key when one was sent, commits. Returns reply, or
//  (reply freed) the 500 naming what.
json_t *media_finish_create(call_t *call, const char *idempotency_key, const char *topic,
                            json_t *payload, json_t *reply, const char *what);

#endif
