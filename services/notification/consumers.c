/*  consumers: notifications made (and unmade) from other services' events.

      media.like.created        like       -> the post's author
      media.comment.created     comment    -> the post's author; mention -> each mentioned
      media.post.created/updated mention   -> each mentioned in the caption
      graph.follow.created      follow     -> the followee
      graph.follow.requested    follow_request -> the private account
      graph.follow.accepted     follow_accepted -> the requester
      messaging.message.created message    -> each recipient (+ message frames)

    Rules (API.md): nothing for my own action on my own content (actor ==
    recipient), nothing between two people when either blocked the other
    (the blocks projection, from graph.block.*). An unlike within
    NOTIFICATION_UNLIKE_WINDOW of the like removes its notification; a
    deleted post or comment takes its notifications along; an answered or
    cancelled follow request takes its follow_request along; a block removes
    what the two sent each other.

    Idempotent: each notification has a source_key naming what caused it,
    unique per recipient, inserted with ON CONFLICT DO NOTHING; removals
    delete by key. A replayed event therefore changes nothing, and pushes
    only go out for rows that were really inserted or removed.

    Every handler runs inside the subscriber's offset transaction, so its
    rows, its offset and the notification.push events it queues (push.c
    emits them at the end of the batch, in the same transaction) commit
    together. A payload that lacks what a handler needs is logged and
    skipped (returning -1 would retry it forever and stall its producer).

    Set-based per batch. A catch-up brings runs of hundreds of events of
    one topic (a bulk seed: 200k likes in a row), and a statement per event
    is mostly round trips. So the hot handlers (like.created/deleted,
    comment.created/deleted, follow.created/requested, post.created/
    updated) run no SQL: they append their rows to s_batch, a buffer of
    Postgres array literals, and s_flush writes the whole run with one
    statement over unnest(...): notes made (INSERT … SELECT, blocks checked
    in the statement), like notifications or comment notifications
    removed (DELETE … USING). The buffer holds one topic at a time and is
    flushed:
      - when a handler of another topic starts (s_claim; the handlers that
        stay per event flush first thing), so whatever an event does
        happens after what every earlier event did;
      - at the batch's end (on_batch_end, the EVENTS_BATCH_END hook),
        before push_flush builds the frames of what the flushes queued;
      - never after a rollback: on_batch_reset (EVENTS_BATCH_RESET) forgets
        it with the push queue.
    Likes and unlikes share a run (a like/unlike mix would otherwise be
    runs of one): an unlike is buffered apart, in s_unlikes, and the flush
    removes before it inserts. That is one by one's order as long as no
    unlike follows a buffered like of its own key, so such an unlike
    flushes first (s_like_keys): a like, an unlike and a like again of one
    pair are two flushes, the second removing, then inserting. Different
    keys touch different rows, so their order does not matter.
    Inside one run the result is exactly what one by one gives: ids are
    taken per note in event order, so the first note of a key wins as ON
    CONFLICT did (DISTINCT ON keeps it), blocks only change in the graph
    block handlers (which flush first), self-actions are filtered when
    buffered, and the inserted rows come back in id order, so the frames
    are queued in the order one by one queued them (a removal run queues
    one count per user who lost an unread notification; push_flush sends
    one per user and batch anyway). A live event is a
    batch of one: same path, flushed at its batch end, before its commit.
    The buffer, like push.c's queue, belongs to the subscriber thread: it
    is the only thread that runs handlers (service_main starts one
    subscriber), so no lock.
*/
#include "notification.h"
#include "args.h"
#include "events.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Helpers

//  payload[name] when it is an id string, else NULL.
static const char *s_id(const json_t *payload, const char *name)
{
    json_t *value = json_object_get(payload, name);
    int64_t id = 0;
    if (!json_is_string(value) || json_string_length(value) > 20 ||
        !ids_parse(json_string_value(value), &id))
        return NULL;
    return json_string_value(value);
}

static int s_skip(const event_t *event, const char *what)
{
    log_warn("%s.%s seq %lld without %s: skipped", event->producer, event->topic,
             (long long)event->seq, what);
    return 0;
}

//  The first NOTIFICATION_TEXT_MAX code points of text (new string).
static char *s_excerpt(const char *text)
{
    if (!text) return NULL;
    size_t length = strlen(text), cut = 0, count = 0;
    while (cut < length && count < NOTIFICATION_TEXT_MAX) {
        unsigned char c = (unsigned char)text[cut];
        size_t step = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        if (cut + step > length) break;
        cut += step;
        count++;
    }
    return strndup(text, cut);
}

//  True when recipient and actor blocked one another (either way); -1 on
//  a database error.
static int s_blocked(db_t *db, const char *recipient, const char *actor)
{
    const char *params[] = {recipient, actor};
    PGresult *res = db_query(db,
                             "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND"
                             " blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))",
                             2, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    int blocked = streq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    return blocked;
}

typedef struct {
    const char *recipient;
    const char *type;
    const char *actor;
    const char *post_id;         // may be NULL
    const char *comment_id;      // may be NULL
    const char *conversation_id; // may be NULL
    const char *text;            // may be NULL
    const char *source_key;
} note_t;

//  ---------------------------------------------------------------------
//  The batch's buffer (see the top of the file)

//  A Postgres array literal being built, "{"1","2",NULL": every value is
//  quoted, so one builder serves bigint[] and text[] alike.
typedef struct {
    char *data;
    size_t length, capacity;
} literal_t;

static void s_literal_put(literal_t *self, char c)
{
    if (self->length + 2 > self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 256;
        self->data = (char *)realloc(self->data, self->capacity);
        assert(self->data); // out of memory: CZMQ's policy, as zmalloc
    }
    self->data[self->length++] = c;
    self->data[self->length] = '\0';
}

//  Appends value (NULL: SQL NULL) as the next element.
static void s_literal_add(literal_t *self, const char *value)
{
    s_literal_put(self, self->length ? ',' : '{');
    if (!value) {
        for (const char *c = "NULL"; *c; c++)
            s_literal_put(self, *c);
        return;
    }
    s_literal_put(self, '"');
    for (const char *c = value; *c; c++) {
        if (*c == '"' || *c == '\\') s_literal_put(self, '\\');
        s_literal_put(self, *c);
    }
    s_literal_put(self, '"');
}

//  The finished literal (borrowed; valid until the next add or reset).
static const char *s_literal_text(literal_t *self)
{
    if (!self->length) return "{}";
    s_literal_put(self, '}');
    self->length--; // the brace stays past the end until the next add
    return self->data;
}

//  What a run of buffered events of one topic becomes at its flush.
typedef enum {
    BATCH_NOTES,           // notifications to make (note_t columns + the event's time)
    BATCH_COMMENT_REMOVALS // every notification of these comment ids
} batch_kind_t;

#define BATCH_COLUMNS 10                // the most a kind uses (BATCH_NOTES)
#define UNLIKE_COLUMNS 3                // the like's recipient, its key, the unlike's time
#define LIKE_TOPIC "media.like.created" // the run likes and unlikes share

static struct {
    char topic[96]; // "media.like.created": one of the routes in main.c
    batch_kind_t kind;
    size_t count; // buffered rows (0: the buffer is empty, topic is stale)
    literal_t columns[BATCH_COLUMNS];
} s_batch; // the subscriber thread's (see the top of the file)

//  The like notifications the run's unlikes remove, and the keys of the
//  like notes the run holds (an unlike of one of them flushes first).
static struct {
    size_t count;
    literal_t columns[UNLIKE_COLUMNS];
} s_unlikes;
static zhashx_t *s_like_keys;

//  Empties the buffers (memory is kept for the next batch).
static void s_batch_clear(void)
{
    s_batch.count = 0;
    for (int column = 0; column < BATCH_COLUMNS; column++)
        s_batch.columns[column].length = 0;
    s_unlikes.count = 0;
    for (int column = 0; column < UNLIKE_COLUMNS; column++)
        s_unlikes.columns[column].length = 0;
    if (s_like_keys) zhashx_purge(s_like_keys);
}

//  Pushes a new unread count to each user of res (rows "user_id, read" of
//  a DELETE … RETURNING) who lost an unread notification. Takes res.
static void s_removed(PGresult *res)
{
    zhashx_t *users = zhashx_new();
    for (int row = 0; row < PQntuples(res); row++)
        if (streq(PQgetvalue(res, row, 1), "f"))
            zhashx_insert(users, PQgetvalue(res, row, 0), (void *)1);
    for (void *item = zhashx_first(users); item; item = zhashx_next(users))
        push_defer_unread((const char *)zhashx_cursor(users));
    zhashx_destroy(&users);
    PQclear(res);
}

//  Runs the buffer's statement and queues the pushes of what it changed,
//  then empties the buffer. 0 or -1.
static int s_flush(db_t *db)
{
    if (s_unlikes.count) {
        //  Each unlike's window is measured from when it happened, not
        //  from when we handle it; a row any of them reaches goes once.
        const char *params[UNLIKE_COLUMNS];
        for (int column = 0; column < UNLIKE_COLUMNS; column++)
            params[column] = s_literal_text(&s_unlikes.columns[column]);
        PGresult *res = db_query(db,
                                 "DELETE FROM notifications n"
                                 " USING unnest($1::bigint[], $2::text[], $3::bigint[])"
                                 "   AS u (user_id, source_key, at_ms)"
                                 " WHERE n.user_id = u.user_id AND n.source_key = u.source_key"
                                 " AND n.created_at > (CASE WHEN u.at_ms > 0"
                                 "   THEN to_timestamp(u.at_ms / 1000.0) ELSE now() END)"
                                 "   - interval '" NOTIFICATION_UNLIKE_WINDOW "'"
                                 " RETURNING n.user_id, n.read",
                                 UNLIKE_COLUMNS, params);
        s_unlikes.count = 0;
        for (int column = 0; column < UNLIKE_COLUMNS; column++)
            s_unlikes.columns[column].length = 0;
        if (!res) {
            s_batch_clear();
            return -1;
        }
        s_removed(res);
    }
    if (s_batch.count == 0) {
        s_batch_clear(); // keys of likes that made no note (self-likes)
        return 0;
    }
    const char *params[BATCH_COLUMNS];
    for (int column = 0; column < BATCH_COLUMNS; column++)
        params[column] = s_literal_text(&s_batch.columns[column]);
    PGresult *res = NULL;
    if (s_batch.kind == BATCH_NOTES)
        //  One event at a time inserted each note unless a block stood
        //  between the two, and the first note of a key won (ON CONFLICT DO
        //  NOTHING); DISTINCT ON keeps that first one (ids grow with the
        //  events) and the blocks cannot change inside a run of one topic.
        //  The new rows come back in event order, for the frames.
        res = db_query(
            db,
            "WITH fresh AS (INSERT INTO notifications (id, user_id, type, actor_id, post_id,"
            "   comment_id, conversation_id, text, source_key, created_at)"
            " SELECT DISTINCT ON (u.user_id, u.source_key) u.id, u.user_id, u.type, u.actor_id,"
            "   u.post_id, u.comment_id, u.conversation_id, u.text, u.source_key,"
            "   CASE WHEN u.at_ms > 0 THEN to_timestamp(u.at_ms / 1000.0) ELSE now() END"
            " FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],"
            "   $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::bigint[])"
            "   AS u (id, user_id, type, actor_id, post_id, comment_id, conversation_id, text,"
            "   source_key, at_ms)"
            " WHERE NOT EXISTS (SELECT 1 FROM blocks b"
            "     WHERE b.blocker_id = u.user_id AND b.blocked_id = u.actor_id)"
            "   AND NOT EXISTS (SELECT 1 FROM blocks b"
            "     WHERE b.blocker_id = u.actor_id AND b.blocked_id = u.user_id)"
            " ORDER BY u.user_id, u.source_key, u.id"
            " ON CONFLICT (user_id, source_key) DO NOTHING RETURNING *)"
            " SELECT " NOTIFICATION_COLUMNS " FROM fresh ORDER BY id",
            10, params);
    else
        res = db_query(db,
                       "DELETE FROM notifications WHERE comment_id = ANY($1::bigint[])"
                       " RETURNING user_id, read",
                       1, params);
    s_batch_clear();
    if (!res) return -1;
    if (s_batch.kind == BATCH_NOTES)
        push_defer_notifications(res); // the rows as inserted are the frames'
    else
        s_removed(res);
    return 0;
}

//  Every handler starts here: the buffer is flushed when it holds another
//  topic's events (so what they do happens before this event, as one by
//  one), then belongs to event's topic, with rows of kind. 0 or -1.
static int s_claim_topic(db_t *db, const char *topic, batch_kind_t kind)
{
    if ((s_batch.count || s_unlikes.count) && !streq(topic, s_batch.topic) && s_flush(db) != 0)
        return -1;
    snprintf(s_batch.topic, sizeof s_batch.topic, "%s", topic);
    s_batch.kind = kind;
    return 0;
}

static int s_claim(db_t *db, const event_t *event, batch_kind_t kind)
{
    char topic[sizeof s_batch.topic];
    snprintf(topic, sizeof topic, "%s.%s", event->producer, event->topic);
    return s_claim_topic(db, topic, kind);
}

//  Appends a row of values[0..count) to the buffer.
static void s_batch_add(const char *const *values, int count)
{
    for (int column = 0; column < count; column++)
        s_literal_add(&s_batch.columns[column], values[column]);
    s_batch.count++;
}

int on_batch_reset(db_t *db, const event_t *event, void *state)
{
    s_batch_clear();
    return push_forget(db, event, state);
}

int on_batch_end(db_t *db, const event_t *event, void *state)
{
    if (s_flush(db) != 0) {
        on_batch_reset(db, event, state);
        return -1;
    }
    return push_flush(db, event, state);
}

//  Buffers one notification unless a rule forbids it (self, seen here; a
//  block, seen at the flush). The buffer must be claimed for BATCH_NOTES.
static void s_note(const event_t *event, const note_t *note)
{
    assert(s_batch.kind == BATCH_NOTES);
    if (!note->recipient || !note->actor || streq(note->recipient, note->actor)) return;
    char id[21], created_ms[24];
    ids_format(ids_next(), id, sizeof id);
    snprintf(created_ms, sizeof created_ms, "%lld", (long long)event->created_ms);
    char *text = s_excerpt(note->text);
    const char *values[] = {id,
                            note->recipient,
                            note->type,
                            note->actor,
                            note->post_id,
                            note->comment_id,
                            note->conversation_id,
                            text,
                            note->source_key,
                            created_ms};
    s_batch_add(values, BATCH_COLUMNS);
    free(text);
}

//  Makes one notification now (the handlers that are not buffered): it is
//  in the table and its frames queued when this returns. 0 or -1 (retry).
static int s_notify(db_t *db, const event_t *event, const note_t *note)
{
    if (s_claim(db, event, BATCH_NOTES) != 0) return -1;
    s_note(event, note);
    return s_flush(db);
}

//  Runs a DELETE … RETURNING user_id, read over notifications and pushes
//  a new unread count to each user who lost an unread one. 0 or -1.
static int s_remove(db_t *db, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = db_query(db, sql, nparams, params);
    if (!res) return -1;
    s_removed(res);
    return 0;
}

//  Buffers a mention notification for each id of payload[field] (an
//  array of id strings) in a post (comment_id NULL) or a comment, except
//  skip_user.
static void s_mentions(const event_t *event, const char *field, const char *actor,
                       const char *post_id, const char *comment_id, const char *text,
                       const char *skip_user)
{
    json_t *mentions = json_object_get(event->payload, field);
    size_t index;
    json_t *value;
    char key[64];
    if (comment_id)
        snprintf(key, sizeof key, "mention:comment:%s", comment_id);
    else
        snprintf(key, sizeof key, "mention:post:%s", post_id);
    json_array_foreach(mentions, index, value)
    {
        const char *user = json_string_value(value);
        int64_t ignored = 0;
        if (!user || !ids_parse(user, &ignored) || (skip_user && streq(user, skip_user))) continue;
        note_t note = {.recipient = user,
                       .type = "mention",
                       .actor = actor,
                       .post_id = post_id,
                       .comment_id = comment_id,
                       .text = text,
                       .source_key = key};
        s_note(event, &note);
    }
}

//  ---------------------------------------------------------------------
//  media

int on_post_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *post = s_id(event->payload, "id"), *author = s_id(event->payload, "author_id");
    if (!post || !author) return s_skip(event, "id or author_id");
    //  post.updated comes here too: only newly mentioned people are new
    //  rows (the key is per post).
    if (s_claim(db, event, BATCH_NOTES) != 0) return -1;
    s_mentions(event, "mentions", author, post, NULL,
               json_string_value(json_object_get(event->payload, "caption")), NULL);
    return 0;
}

int on_post_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *post = s_id(event->payload, "id");
    if (!post) return s_skip(event, "id");
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    const char *params[] = {post};
    return s_remove(db, "DELETE FROM notifications WHERE post_id = $1 RETURNING user_id, read", 1,
                    params);
}

int on_like_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *post = s_id(event->payload, "post_id");
    const char *author = s_id(event->payload, "post_author_id");
    const char *liker = s_id(event->payload, "user_id");
    if (!post || !author || !liker) return s_skip(event, "post_id, post_author_id or user_id");
    char key[64];
    snprintf(key, sizeof key, "like:%s:%s", liker, post);
    note_t note = {
        .recipient = author, .type = "like", .actor = liker, .post_id = post, .source_key = key};
    if (s_claim_topic(db, LIKE_TOPIC, BATCH_NOTES) != 0) return -1;
    s_note(event, &note);
    if (!s_like_keys) s_like_keys = zhashx_new();
    zhashx_insert(s_like_keys, key, (void *)1);
    return 0;
}

int on_like_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *post = s_id(event->payload, "post_id");
    const char *author = s_id(event->payload, "post_author_id");
    const char *liker = s_id(event->payload, "user_id");
    if (!post || !author || !liker) return s_skip(event, "post_id, post_author_id or user_id");
    char key[64], at_ms[24];
    snprintf(key, sizeof key, "like:%s:%s", liker, post);
    snprintf(at_ms, sizeof at_ms, "%lld", (long long)event->created_ms);
    //  The like it undoes, if buffered, must be inserted before it goes.
    if (s_like_keys && zhashx_lookup(s_like_keys, key) && s_flush(db) != 0) return -1;
    if (s_claim_topic(db, LIKE_TOPIC, BATCH_NOTES) != 0) return -1;
    const char *values[] = {author, key, at_ms};
    for (int column = 0; column < UNLIKE_COLUMNS; column++)
        s_literal_add(&s_unlikes.columns[column], values[column]);
    s_unlikes.count++;
    return 0;
}

int on_comment_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *comment = s_id(event->payload, "id");
    const char *post = s_id(event->payload, "post_id");
    const char *post_author = s_id(event->payload, "post_author_id");
    const char *author = s_id(event->payload, "author_id");
    if (!comment || !post || !post_author || !author)
        return s_skip(event, "id, post_id, post_author_id or author_id");
    const char *text = json_string_value(json_object_get(event->payload, "text"));
    char key[64];
    snprintf(key, sizeof key, "comment:%s", comment);
    note_t note = {.recipient = post_author,
                   .type = "comment",
                   .actor = author,
                   .post_id = post,
                   .comment_id = comment,
                   .text = text,
                   .source_key = key};
    if (s_claim(db, event, BATCH_NOTES) != 0) return -1;
    s_note(event, &note);
    //  The post's author already hears of the comment; one notification
    //  for one comment is enough.
    s_mentions(event, "mentions", author, post, comment, text, post_author);
    return 0;
}

int on_comment_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *comment = s_id(event->payload, "id");
    if (!comment) return s_skip(event, "id");
    if (s_claim(db, event, BATCH_COMMENT_REMOVALS) != 0) return -1;
    s_batch_add(&comment, 1);
    return 0;
}

//  ---------------------------------------------------------------------
//  graph

int on_follow_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *follower = s_id(event->payload, "follower_id");
    const char *followee = s_id(event->payload, "followee_id");
    if (!follower || !followee) return s_skip(event, "follower_id or followee_id");
    char key[64];
    snprintf(key, sizeof key, "follow:%s", follower);
    note_t note = {.recipient = followee, .type = "follow", .actor = follower, .source_key = key};
    if (s_claim(db, event, BATCH_NOTES) != 0) return -1;
    s_note(event, &note);
    return 0;
}

int on_follow_requested(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *follower = s_id(event->payload, "follower_id");
    const char *followee = s_id(event->payload, "followee_id");
    if (!follower || !followee) return s_skip(event, "follower_id or followee_id");
    char key[64];
    snprintf(key, sizeof key, "follow_request:%s", follower);
    note_t note = {
        .recipient = followee, .type = "follow_request", .actor = follower, .source_key = key};
    if (s_claim(db, event, BATCH_NOTES) != 0) return -1;
    s_note(event, &note);
    return 0;
}

//  Removes the followee's follow_request notification from follower.
static int s_remove_request(db_t *db, const char *follower, const char *followee)
{
    char key[64];
    snprintf(key, sizeof key, "follow_request:%s", follower);
    const char *params[] = {followee, key};
    return s_remove(db,
                    "DELETE FROM notifications WHERE user_id = $1 AND source_key = $2"
                    " RETURNING user_id, read",
                    2, params);
}

int on_follow_request_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *follower = s_id(event->payload, "follower_id");
    const char *followee = s_id(event->payload, "followee_id");
    if (!follower || !followee) return s_skip(event, "follower_id or followee_id");
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    return s_remove_request(db, follower, followee);
}

int on_follow_accepted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *follower = s_id(event->payload, "follower_id");
    const char *followee = s_id(event->payload, "followee_id");
    if (!follower || !followee) return s_skip(event, "follower_id or followee_id");
    //  The request is answered: it leaves the followee's list (the
    //  follow.created that comes with it says "follow" instead).
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    if (s_remove_request(db, follower, followee) != 0) return -1;
    char key[64];
    snprintf(key, sizeof key, "follow_accepted:%s", followee);
    note_t note = {
        .recipient = follower, .type = "follow_accepted", .actor = followee, .source_key = key};
    return s_notify(db, event, &note);
}

int on_block_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *blocker = s_id(event->payload, "blocker_id");
    const char *blocked = s_id(event->payload, "blocked_id");
    if (!blocker || !blocked) return s_skip(event, "blocker_id or blocked_id");
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    const char *params[] = {blocker, blocked};
    if (db_exec(db, "INSERT INTO blocks VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, params) < 0)
        return -1;
    return s_remove(db,
                    "DELETE FROM notifications WHERE (user_id = $1 AND actor_id = $2)"
                    " OR (user_id = $2 AND actor_id = $1) RETURNING user_id, read",
                    2, params);
}

int on_block_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *blocker = s_id(event->payload, "blocker_id");
    const char *blocked = s_id(event->payload, "blocked_id");
    if (!blocker || !blocked) return s_skip(event, "blocker_id or blocked_id");
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    const char *params[] = {blocker, blocked};
    return db_exec(db, "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2", 2, params) <
                   0
               ? -1
               : 0;
}

//  ---------------------------------------------------------------------
//  messaging

int on_message_created(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const json_t *payload = event->payload;
    const char *id = s_id(payload, "id");
    const char *conversation = s_id(payload, "conversation_id");
    const char *sender = s_id(payload, "sender_id");
    json_t *recipients = json_object_get(payload, "recipient_ids");
    json_t *post = json_object_get(payload, "post_id");
    if (!id || !conversation || !sender || !json_is_array(recipients) ||
        !json_is_string(json_object_get(payload, "text")) ||
        !json_is_string(json_object_get(payload, "created_at")) ||
        (post && !json_is_null(post) && !s_id(payload, "post_id")))
        return s_skip(event, "a valid message");
    size_t index;
    json_t *value;
    json_array_foreach(recipients, index, value)
    {
        int64_t ignored = 0;
        if (!json_is_string(value) || !ids_parse(json_string_value(value), &ignored))
            return s_skip(event, "valid recipient_ids");
    }

    char key[64];
    snprintf(key, sizeof key, "message:%s", id);
    const char *text = json_string_value(json_object_get(payload, "text"));
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    //  The frames first, so the message reaches open sockets before the
    //  notification and the counts that announce it.
    if (push_defer_message(payload) != 0) return -1;
    json_array_foreach(recipients, index, value)
    {
        const char *recipient = json_string_value(value);
        const char *params[] = {recipient, conversation, id, sender};
        if (db_exec(db,
                    "INSERT INTO unread_messages (user_id, conversation_id, message_id, sender_id)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    4, params) < 0)
            return -1;
        note_t note = {.recipient = recipient,
                       .type = "message",
                       .actor = sender,
                       .conversation_id = conversation,
                       .text = text,
                       .source_key = key};
        if (s_notify(db, event, &note) != 0) return -1;
        //  s_notify pushed the count when it made a notification. It makes
        //  none when this service already knows of a block between the two
        //  (messaging leaves members blocked at send time out of
        //  recipient_ids, so only a block racing the send gets here); the
        //  message was delivered all the same and counts as unread.
        int blocked = s_blocked(db, recipient, sender);
        if (blocked < 0) return -1;
        if (blocked) push_defer_unread(recipient);
    }
    return 0;
}

int on_conversation_read(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *conversation = s_id(event->payload, "conversation_id");
    const char *user = s_id(event->payload, "user_id");
    const char *message = s_id(event->payload, "message_id");
    if (!conversation || !user || !message)
        return s_skip(event, "conversation_id, user_id or message_id");
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    const char *params[] = {user, conversation, message};
    long removed = db_exec(db,
                           "DELETE FROM unread_messages WHERE user_id = $1"
                           " AND conversation_id = $2 AND message_id <= $3",
                           3, params);
    //  Reading a conversation reads its message notifications too.
    long marked = removed < 0
                      ? -1
                      : db_exec(db,
                                "UPDATE notifications SET read = true WHERE user_id = $1"
                                " AND conversation_id = $2 AND NOT read AND type = 'message'"
                                " AND (SELECT count(*) FROM unread_messages u"
                                "   WHERE u.user_id = $1 AND u.conversation_id = $2) = 0",
                                2, params);
    if (removed < 0 || marked < 0) return -1;
    push_defer_unread(user);
    return 0;
}

//  ---------------------------------------------------------------------
//  identity

int on_user_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *user = s_id(event->payload, "id");
    if (!user) return s_skip(event, "id");
    if (s_flush(db) != 0) return -1; // what earlier events buffered comes first
    const char *params[] = {user};
    static const char *const statements[] = {
        "DELETE FROM notifications WHERE user_id = $1",
        "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
        "DELETE FROM unread_messages WHERE user_id = $1",
        NULL,
    };
    for (int i = 0; statements[i]; i++)
        if (db_exec(db, statements[i], 1, params) < 0) return -1;
    //  What they did to others goes too; those people's counts change.
    if (s_remove(db, "DELETE FROM notifications WHERE actor_id = $1 RETURNING user_id, read", 1,
                 params) != 0)
        return -1;
    return db_exec(db, "DELETE FROM unread_messages WHERE sender_id = $1", 1, params) < 0 ? -1 : 0;
}
