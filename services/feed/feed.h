/*  feed: what the service's files share.

    The feed owns no primary data: every table (schemas/feed/) is a
    projection of graph, media and identity events, kept by the handlers in
    fanout.c (timelines, follow edges, post metadata) and activity.c /
    interactions.c (activity groups, my likes and comments). The read
    methods (timeline.c, activity.c, interactions.c) answer a page with one
    query and hydrate it with one batch RPC per owner of the objects.

    One feed_t, filled by main() from the environment, is read-only while
    the workers and the subscriber run, so threads share it without locks.
*/
#ifndef FEED_H_INCLUDED
#define FEED_H_INCLUDED

#include "events.h"
#include "service.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define FEED_DEFAULT_FANOUT_THRESHOLD 1000
#define FEED_DEFAULT_TIMELINE_MAX 1000
#define FEED_DEFAULT_BACKFILL 50
//  A fan-out trims the timelines of about one recipient in this many (see
//  fanout.c), so a timeline holds FEED_TIMELINE_MAX plus about half this
//  many rows on average. A trim reads up to FEED_TIMELINE_MAX rows of its
//  timeline: at one in 64 the trims took more Postgres time than the
//  fan-out's inserts for the bench's authors (about 370 followers each);
//  one in 256 took them from 38 to 10 ms per batch of posts
//  (docs/benchmarks.md, session 7).
#define FEED_TRIM_ONE_IN 256

typedef struct {
    int64_t fanout_threshold; // authors with more followers are pulled at read time
    int64_t timeline_max;     // rows kept per timeline
    int64_t backfill;         // posts copied into a timeline on a new follow
} feed_t;

//  ---- handlers -------------------------------------------------------------
json_t *timeline_get(call_t *call);      // GET /feed
json_t *activity_list(call_t *call);     // GET /activity
json_t *interactions_list(call_t *call); // GET /me/interactions

//  ---- event handlers (0 done or skipped, -1 retry) ---------------------------
//  fanout.c
int fanout_on_follow_created(db_t *db, const event_t *event, void *state);
int fanout_on_follow_deleted(db_t *db, const event_t *event, void *state);
int fanout_on_follow_requested(db_t *db, const event_t *event, void *state);
int fanout_on_follow_request_deleted(db_t *db, const event_t *event, void *state);
int fanout_on_block_created(db_t *db, const event_t *event, void *state);
int fanout_on_block_deleted(db_t *db, const event_t *event, void *state);
int fanout_on_post_created(db_t *db, const event_t *event, void *state);
int fanout_on_post_updated(db_t *db, const event_t *event, void *state);
int fanout_on_post_deleted(db_t *db, const event_t *event, void *state);
int fanout_on_user_deleted(db_t *db, const event_t *event, void *state);
//  interactions.c (likes and comments feed both activity and interactions)
int interactions_on_like_created(db_t *db, const event_t *event, void *state);
int interactions_on_like_deleted(db_t *db, const event_t *event, void *state);
int interactions_on_comment_created(db_t *db, const event_t *event, void *state);
int interactions_on_comment_deleted(db_t *db, const event_t *event, void *state);

//  ---- activity.c: the activity store, used by the event handlers -------------
//  Adds actor to owner's group (type, post_id or 0, the UTC day of at_ms)
//  because of source_id (0 when an actor has one source per group: likes,
//  follows, requests). Nothing when owner == actor, either is deleted, or
//  they block each other. Idempotent. 0 or -1.
int activity_add(db_t *db, int64_t owner_id, const char *type, int64_t post_id, int64_t actor_id,
                 int64_t source_id, int64_t at_ms);
//  The same for many adds in one statement, exactly as one by one in
//  order: activity_add_to appends one add to adds (a JSON array; nothing
//  when owner == actor or an id is not positive), activity_add_many runs
//  them (an empty array is a no-op). 0 or -1.
void activity_add_to(json_t *adds, int64_t owner_id, const char *type, int64_t post_id,
                     int64_t actor_id, int64_t source_id, int64_t at_ms);
int activity_add_many(db_t *db, const json_t *adds);

//  Deferred events of one topic (hot handlers: likes, comments, follows).
//  A flush function handles rows (the topic's deferred events, in order,
//  borrowed) with a few set-based statements, exactly as its handler would
//  have one by one. 0 or -1.
typedef int (*activity_flush_fn)(db_t *db, const json_t *rows, const feed_t *feed);
//  Appends row (stolen) to the batch's deferred events of flush's topic,
//  after flushing those of another topic. 0 or -1.
int activity_defer(db_t *db, void *state, activity_flush_fn flush, json_t *row);
//  Flushes the deferred events: every handler that is not deferred calls
//  it first, so the order between topics is kept. 0 or -1.
int activity_flush_pending(db_t *db, void *state);
//  True when the deferred events are flush's (a run of its topic is open).
bool activity_deferring(activity_flush_fn flush);

//  The subscriber's batch hooks (EVENTS_BATCH_END, EVENTS_BATCH_RESET):
//  activity_add defers its groups' actor_count and latest_ms to the end of
//  the batch (summed, one UPDATE); activity_flush flushes the deferred
//  events, then writes those counts (every removal writes them first, so
//  it sees exact counts); activity_forget drops both when the batch rolls
//  back. 0 or -1.
int activity_flush(db_t *db, const event_t *event, void *state);
int activity_forget(db_t *db, const event_t *event, void *state);
//  Removes actor's source_id from owner's groups of (type, post_id) on any
//  day; the actor leaves a group with its last source, a group leaves with
//  its last actor. 0 or -1.
int activity_remove(db_t *db, int64_t owner_id, const char *type, int64_t post_id, int64_t actor_id,
                    int64_t source_id);
//  activity_remove for each pair (owners[i], actors[i]) (SQL array
//  literals) on post posts[i] (NULL: post 0 for all) with source 0; pairs
//  with a deleted account are left alone. 0 or -1.
int activity_remove_many(db_t *db, const char *type, const char *owners, const char *posts,
                         const char *actors);
//  Removes everything source_id (a comment, or a post's caption mentions)
//  put into any group. 0 or -1.
int activity_remove_source(db_t *db, int64_t source_id);
//  Removes mention sources of post_id whose owner is not in keep (a SQL
//  array literal of ids, "{}" for none). 0 or -1.
int activity_remove_mentions_except(db_t *db, int64_t post_id, const char *keep);
//  Groups of owner_id below (before_ms, before_id) (INT64_MAX for the
//  first page), newest first, at most count: columns id, type, post_id
//  ("0" for none), latest_ms, actor_count, actors ("1,2,3": the 3 newest,
//  NULL when none). NULL on error.
PGresult *activity_page(db_t *db, int64_t owner_id, int64_t before_ms, int64_t before_id,
                        int count);
//  Removes every group about post_id. 0 or -1.
int activity_remove_post(db_t *db, int64_t post_id);
//  Removes what a and b did to each other's content (a block). 0 or -1.
int activity_remove_between(db_t *db, int64_t a, int64_t b);
//  Removes user_id's groups and every trace of user_id as an actor. 0 or -1.
int activity_remove_user(db_t *db, int64_t user_id);

//  ---- timeline.c -------------------------------------------------------------
//  The ids of viewer_id's feed below before_id (INT64_MAX for the first
//  page), newest first, at most count: one column post_id. NULL on error.
PGresult *timeline_page(db_t *db, int64_t viewer_id, int64_t before_id, int count);
//  The posts of ids (a JSON array of id strings, borrowed) as the viewer
//  sees them, in that order, invisible and deleted ones left out: one media
//  posts.batch call (at most 100 ids). NULL with *reply_out set to the
//  error to return when media did not answer.
json_t *feed_hydrate_posts(call_t *call, json_t *ids, json_t **reply_out);

//  ---- util.c -----------------------------------------------------------------
feed_t *feed_of(call_t *call);
//  500 internal after logging what failed.
json_t *feed_internal(const char *what);
//  The reply to return when a call to another service failed: its status
//  and code for 503/504, else 503 unavailable (logged).
json_t *feed_upstream_error(const char *what, const json_t *reply);
//  401 when the call has no viewer (the gateway already refuses; this
//  guards internal callers).
json_t *feed_require_viewer(call_t *call);

//  Reads args.limit and args.cursor (one key) into *limit and *key1/*key2
//  (0 when absent). Returns NULL, or a 400 reply naming the fields.
json_t *feed_page_args(const json_t *args, int *limit, int64_t *key1, int64_t *key2);

//  An id member of an event payload: a decimal string (or an integer).
//  0 when absent or malformed.
int64_t feed_payload_id(const json_t *payload, const char *name);
//  The same for a value (an element of an array of ids).
int64_t feed_json_id(const json_t *value);
//  payload.created_at (RFC 3339) in unix ms; the event's own time when
//  absent or malformed.
int64_t feed_payload_time_ms(const event_t *event, const char *name);
//  Formats unix ms as RFC 3339 UTC with milliseconds into buf (>= 25 bytes).
//  Decimal text of id in buf (>= 21 bytes); returns buf.
const char *feed_id_text(int64_t id, char *buf);

//  Runs sql (one statement) with rows, a JSON array (borrowed), as its
//  parameter $1 (read with jsonb_to_recordset): db_exec's result.
long feed_exec_rows(db_t *db, const char *sql, const json_t *rows);

//  A growable SQL array literal of ids ("{1,2,3}").
typedef struct {
    char *text;
    size_t length, capacity;
    size_t count;
} feed_ids_t;
void feed_ids_init(feed_ids_t *self);
void feed_ids_add(feed_ids_t *self, int64_t id);
//  "{…}" (valid until the next add or free). Borrowed.
const char *feed_ids_literal(feed_ids_t *self);
void feed_ids_free(feed_ids_t *self);

#endif
