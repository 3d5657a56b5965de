/*  search: what the service's files share.

    The service answers from its own projections (schemas/search/), which
    the event handlers in projections.c build from identity, graph and
    media events; it never reads another schema. Handlers choose ids with
    one SQL query per page and hydrate them with one batch RPC: media
    posts.batch for posts (which applies visibility again), identity
    users.batch plus users_decorate() (common/users.h) for users.

    Files: search.c (the service definition, shared state, argument and
    list helpers, hydration), projections.c (event handlers), users.c
    (user search, suggested accounts), posts.c (post search, explore),
    hashtags.c (hashtag search, tag pages, trends).

    One search_t, filled by main() (or a test), is shared by all threads:
    its settings are read-only while workers run; the trends cache has its
    own mutex. The event buffers (run, deltas) belong to the one subscriber
    thread (service.c starts one per process; handlers and batch hooks run
    only there), so they need no lock; search_init's memset empties them.
*/
#ifndef SEARCH_H_INCLUDED
#define SEARCH_H_INCLUDED

#include "service.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SEARCH_QUERY_MAX 100 // code points of a search query
#define SEARCH_TAG_MAX 100   // code points of a hashtag
#define SEARCH_POSTS_BATCH_MAX 100
#define SEARCH_TRENDS_MAX 100  // tags kept per window (and the largest limit)
#define SEARCH_TREND_WINDOWS 3 // 1h, 24h, 7d

//  Calls service.method with args (borrowed) for call's viewer before
//  call's deadline; returns a new reply object (errors.h). Tests replace
//  rpc_call with a fake through search_t.rpc.
typedef json_t *(*search_rpc_fn)(call_t *call, const char *service, const char *method,
                                 const json_t *args);

typedef struct {
    int64_t computed_ms; // envelope_now_ms() when items was computed; 0 = never
    json_t *items;       // [{tag, count, score}] best first, at most SEARCH_TRENDS_MAX
} search_trends_cache_t;

//  The hot event handlers' batch buffers (projections.c). A run is the
//  buffered events of one topic, in order: up to three ids each (which,
//  depends on the topic). Deltas are counter changes not written yet, one
//  entry per row: posts (like_count, comment_count) or users
//  (followers_count). Only the subscriber thread touches them. Every batch
//  ends with them empty (posts NULL), so search_destroy has nothing to free.
#define SEARCH_RUN_MAX 500     // events in a run (a subscriber batch's size)
#define SEARCH_DELTAS_MAX 1000 // rows with unwritten deltas, per table

typedef struct {
    int kind;     // the run's topic (projections.c, s_kinds); 0 = empty
    size_t count; // events in the run
    int64_t ids[3][SEARCH_RUN_MAX];
    json_t *posts; // a run of post.created: [{id, author_id, caption, hashtags}], or NULL
} search_run_t;

typedef struct {
    size_t count; // rows
    int64_t ids[SEARCH_DELTAS_MAX];
    int64_t deltas[2][SEARCH_DELTAS_MAX];
} search_deltas_t;

typedef struct {
    int64_t trends_ttl_ms; // how long a computed trends list is served (0 = always recompute)
    bool seed_enabled;     // search.seed answers (SEARCH_SEED_ENABLED=1; benchmarks only)
    search_rpc_fn rpc;     // NULL = rpc_call through call->rpc
    pthread_mutex_t trends_lock;
    search_trends_cache_t trends[SEARCH_TREND_WINDOWS];
    search_run_t run;          // the subscriber thread's buffered events
    search_run_t undo;         // deletions riding along run's creations (projections.c)
    search_deltas_t deltas[2]; // its unwritten counters: [0] posts, [1] users
} search_t;

//  ---- search.c ------------------------------------------------------------
//  Initialises state (trends cache, lock) with the given settings; 0 or -1.
int search_init(search_t *self, int64_t trends_ttl_ms, search_rpc_fn rpc);
void search_destroy(search_t *self);

//  The service definition (method table, events consumed) for state.
//  Returns a pointer to a static def that refers to state.
const service_def_t *search_service_def(search_t *state);

//  500 internal, after logging what failed.
json_t *search_internal(const char *what);

//  A page request: limit (default 20, at most 100) and the cursor's keys.
typedef struct {
    int limit;
    bool has_cursor;
    int64_t key1, key2;
} search_page_t;

//  Reads args.limit and args.cursor into page. Problems go into fields
//  (400 when json_object_size(fields) > 0 afterwards). 0 or -1.
int search_page_args(const json_t *args, search_page_t *page, json_t *fields);

//  Reads args[name] (required text, 1..max code points after trimming
//  spaces, one leading `strip` character removed when strip != 0) into
//  out (size bytes). 1 ok, -1 invalid (recorded in fields).
int search_text_arg(const json_t *args, const char *name, size_t max_codepoints, char strip,
                    char *out, size_t size, json_t *fields);

//  {items, next_cursor}: next_cursor encodes (key1, key2) when more is
//  true, else null. Takes items.
json_t *search_list_body(json_t *items_stolen, bool more, int64_t key1, int64_t key2);

//  Calls another service (through search_t.rpc when set).
json_t *search_rpc(call_t *call, const char *service, const char *method, const json_t *args);

//  Post objects for ids (at most SEARCH_POSTS_BATCH_MAX) as the viewer sees
//  them, in ids' order, with one media posts.batch. On success returns NULL
//  and sets *items (new array; invisible or deleted posts left out); on
//  failure returns the error reply to answer with.
json_t *search_hydrate_posts(call_t *call, const int64_t *ids, size_t count, json_t **items);

//  Decorated user objects for ids (at most 100), in ids' order, with one
//  identity users.batch and users_decorate(). Same convention as above.
json_t *search_hydrate_users(call_t *call, const int64_t *ids, size_t count, json_t **items);

//  Decimal text of id into buf (>= 21 bytes); returns buf.
const char *search_id_text(int64_t id, char *buf);

//  Parses a result column that holds a bigint.
int64_t search_column_int(const PGresult *res, int row, int column);

//  The SQL condition "the viewer ($n) may see content by the author whose
//  users row is u": public or self or an approved follower, and no block
//  either way. Used with the viewer's id as a text parameter; viewer 0
//  (anonymous) sees public authors only.
#define SEARCH_VISIBLE_SQL(viewer)                                                                 \
    "(NOT u.is_private OR u.id = " viewer " OR EXISTS (SELECT 1 FROM follows f"                    \
    " WHERE f.follower_id = " viewer " AND f.followee_id = u.id))"                                 \
    " AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = " viewer                        \
    " AND b.blocked_id = u.id) OR (b.blocker_id = u.id AND b.blocked_id = " viewer "))"

//  ---- handlers -------------------------------------------------------------
json_t *search_users(call_t *call);    // users.c
json_t *explore_users(call_t *call);   // users.c
json_t *search_posts(call_t *call);    // posts.c
json_t *explore_posts(call_t *call);   // posts.c
json_t *search_hashtags(call_t *call); // hashtags.c
json_t *hashtags_get(call_t *call);    // hashtags.c
json_t *hashtags_posts(call_t *call);  // hashtags.c
json_t *trends_hashtags(call_t *call); // hashtags.c
json_t *search_seed(call_t *call);     // seed.c (internal, benchmarks only)

//  ---- projections.c --------------------------------------------------------
//  The routes, with the EVENTS_BATCH_END hook that writes what the batch
//  buffered and the EVENTS_BATCH_RESET hook that forgets it.
extern const events_route_t search_consumes[];

#endif
