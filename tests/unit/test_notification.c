/*  test_notification: the notification service's event handlers against a
    real PostgreSQL, without the rest of the system.

    The Makefile links unit tests with libcommon only, so this file includes
    the service's sources (all but main.c) directly and calls the handlers
    as the subscriber does: inside a transaction, with an event_t, the
    batch's buffer flushed at its end. It stops short of push_flush (that
    would call identity): it reads the queue push_flush would build its
    frames from, and forgets it.

    The point is the set-based batch (consumers.c): one interleaved
    sequence handled in ONE transaction must leave exactly what the same
    sequence leaves handled one transaction per event (the pre-batch
    behaviour), rows, unread counts and the frames queued.

    The unread counters (unread_counts, kept by the triggers of
    schemas/notification/002_unread_counts.sql) are checked against
    count(*) of the rows after every step of every test here: after
    statements written by hand that reach several users at once or change
    nothing that counts, through the handlers and the API (marking read up
    to an id, reading a conversation, another user marking read, removals),
    and with a request marking read while a batch holds the counter.

    The server is TEST_DATABASE_URL when set, else one this binary starts
    with scripts/pg.sh on the first free port of 17800..17809. Each mode
    works in a schema of its own (unit_pg_schema). User ids are small
    integers; posts are 101, 102; comments 201, 202.
*/
#include "../../services/notification/consumers.c"
#include "../../services/notification/notifications.c"
#include "../../services/notification/push.c"

#include "unit_pg.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define PORT_FIRST 17800
#define PORT_LAST 17809

static unit_pg_t *t_pg;
//  Every connection a test opens, closed by t_teardown even when an assert
//  left its transaction open (else dropping the schemas would wait on it).
static db_t *t_dbs[8];
static size_t t_db_count;

//  A connection in a fresh migrated schema; its name in *schema_out when
//  not NULL (for a second connection to it).
static db_t *t_schema_named(const char **schema_out)
{
    assert_true(t_db_count < sizeof t_dbs / sizeof t_dbs[0]);
    db_t *db = unit_pg_schema(t_pg, "notification", schema_out);
    assert_non_null(db);
    t_dbs[t_db_count++] = db;
    return db;
}

static db_t *t_schema(void)
{
    return t_schema_named(NULL);
}

//  The counter tests share one schema (unit_pg makes only a few per
//  suite), emptied before each; its name is for a second connection.
static db_t *t_counts_db;
static const char *t_counts_schema;

static db_t *t_counts_clean(void)
{
    if (!t_counts_db) {
        t_counts_db = t_schema_named(&t_counts_schema);
        //  notifications.read pushes a count into the outbox.
        assert_int_equal(events_ensure_tables(t_counts_db), 0);
    }
    if (db_in_transaction(t_counts_db)) db_rollback(t_counts_db); // a failed test's
    assert_int_equal(db_exec_script(t_counts_db, "TRUNCATE notifications, unread_messages, blocks,"
                                                 " unread_counts, outbox"),
                     0);
    return t_counts_db;
}

static int t_setup(void **state)
{
    log_init("test_notification");
    //  message.created names its sender through identity: with no broker
    //  the call fails at once (frames without names) instead of waiting
    //  for one, and nothing reaches a broker on the default port.
    setenv("BROKER_URL", "none://", 1);
    t_pg = unit_pg_new("test_notification", "schemas/notification/001_init.sql", PORT_FIRST,
                       PORT_LAST);
    return t_pg ? 0 : -1;
}

static int t_teardown(void **state)
{
    for (size_t i = 0; i < t_db_count; i++)
        db_destroy(&t_dbs[i]);
    unit_pg_destroy(&t_pg);
    return 0;
}

//  ---- the sequence -------------------------------------------------------------

typedef struct {
    events_handler_fn handler;
    const char *producer;
    const char *topic;
    const char *payload; // JSON with ' for " (the test's own shorthand)
    int64_t at_s;        // the event's time, seconds after the run's start
} step_t;

//  A caption with every character an array literal must escape, and a
//  comment longer than a notification's text (multibyte, to cut on code
//  points).
#define TRICKY_CAPTION "say \\\"hi\\\", {x} \\\\ ok NULL"
#define TRICKY_CAPTION_STORED "say \"hi\", {x} \\ ok NULL"

static const step_t t_steps[] = {
    //  graph: duplicates, self, a block both ways, a request answered
    {on_follow_created, "graph", "follow.created", "{'follower_id':'2','followee_id':'1'}", 0},
    {on_follow_created, "graph", "follow.created", "{'follower_id':'3','followee_id':'1'}", 1},
    {on_follow_created, "graph", "follow.created", "{'follower_id':'2','followee_id':'1'}", 2},
    {on_follow_created, "graph", "follow.created", "{'follower_id':'1','followee_id':'1'}", 3},
    {on_block_created, "graph", "block.created", "{'blocker_id':'4','blocked_id':'1'}", 4},
    {on_follow_created, "graph", "follow.created", "{'follower_id':'4','followee_id':'1'}", 5},
    {on_follow_created, "graph", "follow.created", "{'follower_id':'1','followee_id':'4'}", 6},
    {on_follow_requested, "graph", "follow.requested", "{'follower_id':'7','followee_id':'1'}", 7},
    {on_follow_requested, "graph", "follow.requested", "{'follower_id':'7','followee_id':'1'}", 8},
    {on_follow_accepted, "graph", "follow.accepted", "{'follower_id':'7','followee_id':'1'}", 9},
    //  media: likes with a duplicate, self and blocked; like, unlike, like
    //  of one pair; an unlike past the window
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'2'}", 10},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'3'}", 11},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'1'}", 12},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'2'}", 13},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'4'}", 14},
    {on_like_deleted, "media", "like.deleted",
     "{'post_id':'101','post_author_id':'1','user_id':'2'}", 15},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'2'}", 16},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'6'}", 17},
    {on_like_deleted, "media", "like.deleted",
     "{'post_id':'101','post_author_id':'1','user_id':'6'}", 17 + 1200},
    //  comments with mentions (the post's author, the commenter), one
    //  deleted then replayed
    {on_comment_created, "media", "comment.created",
     "{'id':'201','post_id':'101','post_author_id':'1','author_id':'3','text':'hi @a',"
     "'mentions':['1','5','3']}",
     1300},
    {on_comment_created, "media", "comment.created",
     "{'id':'202','post_id':'101','post_author_id':'1','author_id':'5','text':'LONG',"
     "'mentions':['2']}",
     1301},
    {on_comment_deleted, "media", "comment.deleted", "{'id':'201'}", 1302},
    {on_comment_created, "media", "comment.created",
     "{'id':'201','post_id':'101','post_author_id':'1','author_id':'3','text':'hi @a',"
     "'mentions':['1','5','3']}",
     1303},
    {on_post_created, "media", "post.created",
     "{'id':'102','author_id':'1','caption':'" TRICKY_CAPTION "','mentions':['2','4','1']}", 1304},
    //  identity: user 3 goes, and what they did with them
    {on_user_deleted, "identity", "user.deleted", "{'id':'3'}", 1305},
    //  media again: a like by the deleted user (made, as before: no
    //  tombstones here), likes of two posts, a comment deleted twice
    {on_like_created, "media", "like.created",
     "{'post_id':'102','post_author_id':'1','user_id':'3'}", 1306},
    {on_like_created, "media", "like.created",
     "{'post_id':'101','post_author_id':'1','user_id':'5'}", 1307},
    {on_like_created, "media", "like.created",
     "{'post_id':'102','post_author_id':'1','user_id':'5'}", 1308},
    {on_comment_deleted, "media", "comment.deleted", "{'id':'209'}", 1309},
    {on_comment_deleted, "media", "comment.deleted", "{'id':'209'}", 1310},
    //  likes and unlikes share a run: an unlike of a like made in an
    //  earlier run rides along (removed first), a like again after it, an
    //  unlike of nothing, an unlike of a like of this run (flushes first);
    //  then a run that starts with an unlike
    {on_like_created, "media", "like.created",
     "{'post_id':'103','post_author_id':'1','user_id':'2'}", 1311},
    {on_comment_deleted, "media", "comment.deleted", "{'id':'210'}", 1312},
    {on_like_created, "media", "like.created",
     "{'post_id':'103','post_author_id':'1','user_id':'5'}", 1313},
    {on_like_deleted, "media", "like.deleted",
     "{'post_id':'103','post_author_id':'1','user_id':'2'}", 1314},
    {on_like_created, "media", "like.created",
     "{'post_id':'103','post_author_id':'1','user_id':'2'}", 1315},
    {on_like_deleted, "media", "like.deleted",
     "{'post_id':'103','post_author_id':'1','user_id':'7'}", 1316},
    {on_like_deleted, "media", "like.deleted",
     "{'post_id':'103','post_author_id':'1','user_id':'5'}", 1317},
    {on_comment_deleted, "media", "comment.deleted", "{'id':'211'}", 1318},
    {on_like_deleted, "media", "like.deleted",
     "{'post_id':'103','post_author_id':'1','user_id':'2'}", 1319},
    {on_like_created, "media", "like.created",
     "{'post_id':'103','post_author_id':'1','user_id':'5'}", 1320},
};
#define STEPS (sizeof t_steps / sizeof t_steps[0])

//  The payload of step (new): ' becomes ", LONG a 400-code-point text.
static json_t *t_payload(const step_t *step)
{
    char *text = strdup(step->payload);
    assert_non_null(text);
    for (char *c = text; *c; c++)
        if (*c == '\'') *c = '"';
    json_error_t error;
    json_t *payload = json_loads(text, 0, &error);
    free(text);
    assert_non_null(payload);
    const char *given = json_string_value(json_object_get(payload, "text"));
    if (given && streq(given, "LONG")) {
        char long_text[601];
        for (int i = 0; i < 200; i++)
            memcpy(long_text + 3 * i, "\xc3\xa9z", 3); // é z: 400 code points, 600 bytes
        long_text[600] = '\0';
        json_object_set_new(payload, "text", json_string(long_text));
    }
    return payload;
}

//  Appends the frames queued so far to log, one line each ("N user type
//  actor" for a notification, "U user" for a count, "R user" for the
//  rest), and forgets them as push_flush would after emitting.
static void t_take_frames(zlistx_t *log)
{
    for (size_t i = 0; i < s_queue.count; i++) {
        const frame_t *frame = &s_queue.frames[i];
        char *line;
        if (frame->kind == FRAME_NOTIFICATION)
            line = zsys_sprintf("N %s %s %s", frame->user_id,
                                PQgetvalue(frame->row, frame->row_index, NOTE_TYPE),
                                PQgetvalue(frame->row, frame->row_index, NOTE_ACTOR));
        else
            line = zsys_sprintf("%c %s", frame->kind == FRAME_UNREAD ? 'U' : 'R', frame->user_id);
        zlistx_add_end(log, line);
        zstr_free(&line);
    }
    push_forget(NULL, NULL, NULL);
}

//  Runs t_steps on db, all in one transaction (batched) or one each;
//  the frames queued go to log.
static void t_run(db_t *db, bool batched, int64_t start_ms, zlistx_t *log)
{
    if (batched) assert_int_equal(db_begin(db), 0);
    for (size_t i = 0; i < STEPS; i++) {
        const step_t *step = &t_steps[i];
        json_t *payload = t_payload(step);
        event_t event = {.producer = step->producer,
                         .seq = (int64_t)i + 1,
                         .topic = step->topic,
                         .request_id = "",
                         .created_ms = start_ms + step->at_s * 1000,
                         .payload = payload};
        if (!batched) assert_int_equal(db_begin(db), 0);
        assert_int_equal(step->handler(db, &event, NULL), 0);
        if (!batched) {
            //  on_batch_end without its push_flush: the buffer, then the frames.
            assert_int_equal(s_flush(db), 0);
            t_take_frames(log);
            assert_int_equal(db_commit(db), 0);
        }
        json_decref(payload);
    }
    if (batched) {
        assert_int_equal(s_flush(db), 0);
        t_take_frames(log);
        assert_int_equal(db_commit(db), 0);
    }
    assert_int_equal(s_batch.count, 0);
    assert_int_equal(s_unlikes.count, 0);
}

//  Every notification of db, one line each, without the ids (taken per
//  run): in id order, or by_key (user, source key).
#define T_ROWS_SQL(order)                                                                          \
    "SELECT coalesce(string_agg(concat_ws('|', user_id, type, actor_id, post_id, comment_id,"      \
    " conversation_id, length(text), text, source_key, read, created_at), E'\\n' ORDER BY " order  \
    "), '') FROM notifications"
static char *t_rows(db_t *db, bool by_key)
{
    PGresult *res =
        db_query(db, by_key ? T_ROWS_SQL("user_id, source_key") : T_ROWS_SQL("id"), 0, NULL);
    assert_non_null(res);
    char *rows = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return rows;
}

//  A one-value query's answer as a number.
static long t_number(db_t *db, const char *sql)
{
    return (long)unit_pg_number(db, sql);
}

//  The lines of log that start with prefix (0: all), joined (new).
static char *t_lines(zlistx_t *log, char prefix)
{
    char *joined = strdup("");
    for (char *line = (char *)zlistx_first(log); line; line = (char *)zlistx_next(log))
        if (!prefix || line[0] == prefix) {
            char *longer = zsys_sprintf("%s%s\n", joined, line);
            free(joined);
            joined = longer;
        }
    return joined;
}

//  The users of log's "U" lines, sorted and distinct, joined (new).
static char *t_unread_users(zlistx_t *log)
{
    zlistx_t *users = zlistx_new();
    zlistx_set_destructor(users, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(users, (zlistx_duplicator_fn *)strdup);
    zlistx_set_comparator(users, (zlistx_comparator_fn *)strcmp);
    for (char *line = (char *)zlistx_first(log); line; line = (char *)zlistx_next(log))
        if (line[0] == 'U' && !zlistx_find(users, line)) zlistx_add_end(users, line);
    zlistx_sort(users);
    char *joined = t_lines(users, 'U');
    zlistx_destroy(&users);
    return joined;
}

static zlistx_t *t_log_new(void)
{
    zlistx_t *log = zlistx_new();
    zlistx_set_destructor(log, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(log, (zlistx_duplicator_fn *)strdup);
    return log;
}

//  ---- unread counters ------------------------------------------------------------

//  How many users' counters differ from count(*) of their rows (a missing
//  counter row is 0 and 0) or are negative: must be none.
#define T_DRIFT_SQL(what)                                                                          \
    "WITH truth AS (SELECT user_id, sum(notifications) AS notifications,"                          \
    "   sum(messages) AS messages"                                                                 \
    " FROM (SELECT user_id, count(*) FILTER (WHERE NOT read) AS notifications, 0 AS messages"      \
    "     FROM notifications GROUP BY user_id"                                                     \
    "   UNION ALL SELECT user_id, 0, count(*) FROM unread_messages GROUP BY user_id) counted"      \
    " GROUP BY user_id)"                                                                           \
    " SELECT " what " FROM unread_counts c FULL JOIN truth t USING (user_id)"                      \
    " WHERE coalesce(c.notifications, 0) <> coalesce(t.notifications, 0)"                          \
    "   OR coalesce(c.messages, 0) <> coalesce(t.messages, 0)"                                     \
    "   OR c.notifications < 0 OR c.messages < 0"

static void t_counts_in_step(db_t *db)
{
    long drift = t_number(db, T_DRIFT_SQL("count(*)"));
    if (drift > 0) {
        PGresult *res = db_query(db,
                                 T_DRIFT_SQL("string_agg(concat_ws(' ', user_id, 'counter',"
                                             " c.notifications, c.messages, 'rows',"
                                             " t.notifications, t.messages), '; ')"),
                                 0, NULL);
        fprintf(stderr, "counters out of step: %s\n", res ? PQgetvalue(res, 0, 0) : "?");
        PQclear(res);
    }
    assert_int_equal(drift, 0);
}

//  One of notifications.c's handlers as the service runs it for viewer
//  (a user id), with args (taken; NULL: none). The reply (new).
static json_t *t_api(db_t *db, service_handler_fn handler, const char *viewer, json_t *args)
{
    if (!args) args = json_object();
    envelope_request_t request = {.viewer_id = strtoll(viewer, NULL, 10), .args = args};
    call_t call = {.request = &request, .args = args, .viewer_id = request.viewer_id, .db = db};
    json_t *reply = handler(&call);
    json_decref(args);
    return reply;
}

//  notifications.read for viewer up to up_to (NULL: all); its status.
static int t_read(db_t *db, const char *viewer, const char *up_to)
{
    json_t *reply =
        t_api(db, notifications_read, viewer, up_to ? json_pack("{s:s}", "up_to_id", up_to) : NULL);
    int status = reply_status(reply);
    json_decref(reply);
    return status;
}

//  count(*) of user's unread notifications (messages false) or unread
//  messages (true).
static long t_rows_unread(db_t *db, const char *user, bool messages)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             messages ? "SELECT count(*) FROM unread_messages WHERE user_id = %s"
                      : "SELECT count(*) FROM notifications WHERE user_id = %s AND NOT read",
             user);
    return t_number(db, sql);
}

//  Every way the service reads user's counts answers count(*) of the rows,
//  in today's shapes: notifications.unread_count {count},
//  notifications.unread {notifications, messages}, and the data of the
//  unread_count frames (s_unread_counts).
static void t_api_counts(db_t *db, const char *user)
{
    long notes = t_rows_unread(db, user, false), messages = t_rows_unread(db, user, true);
    json_t *reply = t_api(db, notifications_unread_count, user, NULL);
    assert_int_equal(reply_status(reply), 200);
    assert_int_equal(json_object_size(reply_body(reply)), 1);
    assert_true(json_is_integer(json_object_get(reply_body(reply), "count")));
    assert_int_equal(json_integer_value(json_object_get(reply_body(reply), "count")), notes);
    json_decref(reply);

    reply = t_api(db, notifications_unread, user, NULL);
    assert_int_equal(reply_status(reply), 200);
    json_t *body = reply_body(reply);
    assert_int_equal(json_object_size(body), 2);
    assert_int_equal(json_integer_value(json_object_get(body, "notifications")), notes);
    assert_int_equal(json_integer_value(json_object_get(body, "messages")), messages);
    json_decref(reply);

    json_t *users = json_pack("[s]", user);
    json_t *counts = s_unread_counts(db, users);
    assert_non_null(counts);
    json_t *data = json_object_get(counts, user);
    assert_int_equal(json_object_size(data), 2);
    assert_int_equal(json_integer_value(json_object_get(data, "notifications")), notes);
    assert_int_equal(json_integer_value(json_object_get(data, "messages")), messages);
    json_decref(counts);
    json_decref(users);
}

//  Counters in step for everyone, and the API's answers for users "1".."5".
static void t_check_all(db_t *db)
{
    t_counts_in_step(db);
    for (int user = 1; user <= 5; user++) {
        char id[8];
        snprintf(id, sizeof id, "%d", user);
        t_api_counts(db, id);
    }
}

//  user's counters as "notifications/messages" ("-" without a row), for
//  comparisons before and after.
static char *t_counter(db_t *db, const char *user)
{
    const char *params[] = {user};
    PGresult *res = db_query(db,
                             "SELECT coalesce((SELECT notifications || '/' || messages"
                             " FROM unread_counts WHERE user_id = $1), '-')",
                             1, params);
    assert_non_null(res);
    char *counter = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return counter;
}

static void t_counter_is(db_t *db, const char *user, const char *expected)
{
    char *counter = t_counter(db, user);
    assert_string_equal(counter, expected);
    free(counter);
}

//  Runs steps as one batch (one transaction, the buffer flushed at its
//  end, the frames forgotten), all dated now.
static void t_batch(db_t *db, const step_t *steps, size_t count)
{
    assert_int_equal(db_begin(db), 0);
    for (size_t i = 0; i < count; i++) {
        json_t *payload = t_payload(&steps[i]);
        event_t event = {.producer = steps[i].producer,
                         .seq = (int64_t)i + 1,
                         .topic = steps[i].topic,
                         .request_id = "",
                         .created_ms = envelope_now_ms(),
                         .payload = payload};
        assert_int_equal(steps[i].handler(db, &event, NULL), 0);
        json_decref(payload);
    }
    assert_int_equal(s_flush(db), 0);
    push_forget(NULL, NULL, NULL);
    assert_int_equal(db_commit(db), 0);
}
#define T_BATCH(db, ...)                                                                           \
    do {                                                                                           \
        const step_t steps_[] = {__VA_ARGS__};                                                     \
        t_batch(db, steps_, sizeof steps_ / sizeof steps_[0]);                                     \
    } while (0)

//  The id of user's n-th notification, oldest first from 0, or newest
//  first from -1 (new).
static char *t_note_id(db_t *db, const char *user, int n)
{
    char offset[16];
    snprintf(offset, sizeof offset, "%d", n < 0 ? -n - 1 : n);
    const char *params[] = {user, offset};
    PGresult *res = db_query(db,
                             n < 0 ? "SELECT id FROM notifications WHERE user_id = $1"
                                     " ORDER BY id DESC OFFSET $2 LIMIT 1"
                                   : "SELECT id FROM notifications WHERE user_id = $1"
                                     " ORDER BY id OFFSET $2 LIMIT 1",
                             2, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    char *id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return id;
}

//  ---- tests --------------------------------------------------------------------

static void test_batch_equals_one_by_one(void **state)
{
    db_t *one = t_schema(), *batch = t_schema();
    //  An hour ago, so every like is inside its unlike window but the one
    //  20 minutes late.
    int64_t start_ms = envelope_now_ms() - 3600 * 1000;
    zlistx_t *one_log = t_log_new(), *batch_log = t_log_new();
    t_run(one, false, start_ms, one_log);
    t_run(batch, true, start_ms, batch_log);

    //  The same rows, in the same order, with the same times.
    char *one_rows = t_rows(one, false), *batch_rows = t_rows(batch, false);
    assert_string_equal(batch_rows, one_rows);
    free(one_rows);
    free(batch_rows);
    assert_int_equal(t_number(batch, "SELECT count(*) FROM blocks"), 1);

    //  Concretely: user 1 has a follow (2; 3 was deleted, 4 blocked, 1 is
    //  self), likes of 101 by 2 (liked again after the unlike), 6 (unliked
    //  too late) and 5, likes of 102 by 3 (after their deletion: as before)
    //  and 5, like of 103 by 5 (its first like and 2's two undone, then 5
    //  again), and comment 202 (201 went with user 3); user 2 the mentions
    //  in 202 and post 102; user 7 follow_accepted; the request is gone.
    db_t *dbs[] = {one, batch};
    for (int i = 0; i < 2; i++) {
        db_t *db = dbs[i];
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"), 11);
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE user_id = 1"
                                      " AND NOT read"),
                         8);
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE user_id = 1"
                                      " AND source_key IN ('follow:2', 'like:2:101', 'like:6:101',"
                                      " 'like:5:101', 'like:3:102', 'like:5:102', 'like:5:103',"
                                      " 'comment:202')"),
                         8);
        assert_int_equal(t_number(db, "SELECT (extract(epoch FROM created_at) * 1000)::bigint FROM"
                                      " notifications WHERE source_key = 'like:5:103'") -
                             (start_ms + 1320000),
                         0);
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE user_id = 2"
                                      " AND source_key IN ('mention:comment:202',"
                                      " 'mention:post:102')"),
                         2);
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE user_id = 7"
                                      " AND source_key = 'follow_accepted:1' AND actor_id = 1"),
                         1);
        assert_int_equal(t_number(db,
                                  "SELECT count(*) FROM notifications"
                                  " WHERE 3 IN (user_id, actor_id) AND source_key <> 'like:3:102'"
                                  "   OR 4 IN (user_id, actor_id) OR user_id = actor_id"),
                         0);
        //  The caption survived the array literal; the comment was cut to
        //  300 code points.
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"
                                      " WHERE text = '" TRICKY_CAPTION_STORED "'"),
                         1);
        assert_int_equal(t_number(db, "SELECT length(text) FROM notifications"
                                      " WHERE source_key = 'mention:comment:202'"),
                         300);
        //  The like made again after its unlike is dated by the new like.
        assert_int_equal(t_number(db, "SELECT (extract(epoch FROM created_at) * 1000)::bigint FROM"
                                      " notifications WHERE source_key = 'like:2:101'") -
                             (start_ms + 16000),
                         0);
        //  The counters followed, batched or not: one statement of the
        //  batch made, or removed, the notifications of several users.
        t_counts_in_step(db);
        t_counter_is(db, "1", "8/0");
    }

    //  The same notification frames in the same order, and a count for
    //  the same users.
    char *one_notes = t_lines(one_log, 'N'), *batch_notes = t_lines(batch_log, 'N');
    assert_string_equal(batch_notes, one_notes);
    assert_true(strstr(batch_notes, "N 1 like 2\n") != NULL);
    char *one_users = t_unread_users(one_log), *batch_users = t_unread_users(batch_log);
    assert_string_equal(batch_users, one_users);
    assert_string_equal(batch_users, "U 1\nU 2\nU 5\nU 7\n");
    //  Each notification frame of the batch is followed, later, by a count
    //  for its user (push_flush sends a user's last one).
    char *all = t_lines(batch_log, 0);
    for (const char *line = strstr(all, "N "); line; line = strstr(line + 1, "\nN ")) {
        char user[32];
        assert_int_equal(sscanf(line + (*line == '\n'), "N %31s", user), 1);
        char *count = zsys_sprintf("\nU %s\n", user);
        assert_non_null(strstr(line + 1, count));
        zstr_free(&count);
    }
    free(all);
    free(one_notes);
    free(batch_notes);
    free(one_users);
    free(batch_users);

    //  The whole batch again (a batch rolled back at its commit runs
    //  again) leaves the same rows: the duplicates make nothing, what the
    //  sequence removes and makes again (like:2:101, comment 201) is
    //  remade the same, with a new id.
    char *before = t_rows(batch, true);
    zlistx_t *replay_log = t_log_new();
    t_run(batch, true, start_ms, replay_log);
    char *after = t_rows(batch, true);
    assert_string_equal(after, before);
    t_counts_in_step(batch);
    free(before);
    free(after);
    zlistx_destroy(&replay_log);
    zlistx_destroy(&one_log);
    zlistx_destroy(&batch_log);
}

//  A batch that rolls back forgets its buffer; the literal builder quotes.
static void test_reset_and_literals(void **state)
{
    db_t *db = t_schema();
    assert_int_equal(db_begin(db), 0);
    json_t *payload =
        json_pack("{ssssss}", "post_id", "101", "post_author_id", "1", "user_id", "2");
    event_t event = {.producer = "media",
                     .seq = 1,
                     .topic = "like.created",
                     .request_id = "",
                     .created_ms = envelope_now_ms(),
                     .payload = payload};
    assert_int_equal(on_like_created(db, &event, NULL), 0);
    assert_int_equal(s_batch.count, 1);
    db_rollback(db);
    assert_int_equal(on_batch_reset(db, NULL, NULL), 0);
    assert_int_equal(s_batch.count, 0);
    assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"), 0);
    //  A live event is a batch of one, written at its end.
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(on_like_created(db, &event, NULL), 0);
    assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"), 0);
    assert_int_equal(s_flush(db), 0);
    assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"), 1);
    assert_int_equal(s_queue.count, 2); // its notification and the count
    push_forget(NULL, NULL, NULL);
    assert_int_equal(db_commit(db), 0);
    json_decref(payload);

    //  Likes and unlikes share a run: an unlike of another key waits with
    //  the likes; an unlike of a like still buffered flushes it first; a
    //  rollback forgets both buffers.
    const char *liker_2 = "{\"post_id\":\"105\",\"post_author_id\":\"1\",\"user_id\":\"2\"}";
    const char *liker_3 = "{\"post_id\":\"105\",\"post_author_id\":\"1\",\"user_id\":\"3\"}";
    json_t *like_2 = json_loads(liker_2, 0, NULL), *like_3 = json_loads(liker_3, 0, NULL);
    event.payload = like_2;
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(on_like_created(db, &event, NULL), 0);
    event.topic = "like.deleted";
    event.payload = like_3;
    assert_int_equal(on_like_deleted(db, &event, NULL), 0);
    assert_int_equal(s_batch.count, 1);
    assert_int_equal(s_unlikes.count, 1);
    event.payload = like_2;
    assert_int_equal(on_like_deleted(db, &event, NULL), 0);
    assert_int_equal(s_batch.count, 0); // the like went in, then this unlike was buffered
    assert_int_equal(s_unlikes.count, 1);
    assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"
                                  " WHERE source_key = 'like:2:105'"),
                     1);
    db_rollback(db);
    assert_int_equal(on_batch_reset(db, NULL, NULL), 0);
    assert_int_equal(s_unlikes.count, 0);
    assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE post_id = 105"), 0);
    json_decref(like_2);
    json_decref(like_3);

    literal_t literal = {0};
    assert_string_equal(s_literal_text(&literal), "{}");
    s_literal_add(&literal, "1");
    s_literal_add(&literal, NULL);
    s_literal_add(&literal, "a\"b\\c,{}");
    assert_string_equal(s_literal_text(&literal), "{\"1\",NULL,\"a\\\"b\\\\c,{}\"}");
    s_literal_add(&literal, "");
    assert_string_equal(s_literal_text(&literal), "{\"1\",NULL,\"a\\\"b\\\\c,{}\",\"\"}");
    free(literal.data);
}

//  The triggers against statements written by hand: each reaches several
//  users at once, and some change nothing that counts.
static void test_counts_follow_statements(void **state)
{
    db_t *db = t_counts_clean();
    static const char *const statements[] = {
        //  40 notifications for users 1..4 in one statement, every fifth
        //  already read (counted out).
        "INSERT INTO notifications (id, user_id, type, actor_id, source_key, read)"
        " SELECT g, g % 4 + 1, 'like', 9, 'k' || g, g % 5 = 0 FROM generate_series(1, 40) g",
        //  Replayed keys insert nothing; one new row does.
        "INSERT INTO notifications (id, user_id, type, actor_id, source_key)"
        " SELECT g + 100, g % 4 + 1, 'like', 9, 'k' || g FROM generate_series(1, 41) g"
        " ON CONFLICT (user_id, source_key) DO NOTHING",
        //  Read across users, some already read.
        "UPDATE notifications SET read = true WHERE id <= 20",
        //  Unread again, across users.
        "UPDATE notifications SET read = false WHERE id % 3 = 0",
        //  Rows moved to another user, read and unread alike.
        "UPDATE notifications SET user_id = 9 WHERE id IN (1, 2, 3, 30, 141)",
        //  Deleted across users, read and unread alike.
        "DELETE FROM notifications WHERE id % 7 = 0",
        //  Messages: several users per statement, in and out, moved.
        "INSERT INTO unread_messages (user_id, conversation_id, message_id, sender_id)"
        " SELECT g % 3 + 1, 500 + g % 2, 600 + g, 9 FROM generate_series(1, 12) g",
        "DELETE FROM unread_messages WHERE message_id % 4 = 0",
        "UPDATE unread_messages SET user_id = 5 WHERE message_id IN (601, 602)",
        NULL,
    };
    for (int i = 0; statements[i]; i++) {
        assert_int_equal(db_exec(db, statements[i], 0, NULL) >= 0, true);
        t_counts_in_step(db);
    }
    //  Worked out by hand. User 1 had ids 4, 8, ... 40; of those, 12, 24,
    //  28, 32 and 36 are unread after the reads and unreads, and 28 was
    //  deleted. Messages 603, 606, 609 and 612, and 612 was deleted. The
    //  moved rows: 30 and 141 (unread) and 3 (unread again).
    t_counter_is(db, "1", "4/3");
    t_counter_is(db, "9", "3/0");
    t_counter_is(db, "5", "0/2");

    //  An UPDATE that leaves read as it was writes no counter at all (the
    //  counter rows keep their versions), nor does a DELETE of read rows.
    const char *versions_sql = "SELECT string_agg(user_id || ':' || xmin, ',' ORDER BY user_id)"
                               " FROM unread_counts";
    PGresult *res = db_query(db, versions_sql, 0, NULL);
    assert_non_null(res);
    char *before = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    assert_true(db_exec(db, "UPDATE notifications SET text = 'edited'", 0, NULL) > 0);
    assert_true(db_exec(db, "UPDATE notifications SET read = true WHERE read", 0, NULL) > 0);
    assert_true(db_exec(db, "DELETE FROM notifications WHERE read AND id > 30", 0, NULL) > 0);
    assert_true(db_exec(db, "UPDATE unread_messages SET sender_id = 8", 0, NULL) > 0);
    res = db_query(db, versions_sql, 0, NULL);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), before);
    PQclear(res);
    free(before);
    t_counts_in_step(db);

    //  A rolled-back statement takes its counts back with it.
    char *counter = t_counter(db, "2");
    assert_int_equal(db_begin(db), 0);
    assert_true(db_exec(db, "DELETE FROM notifications", 0, NULL) > 0);
    t_counter_is(db, "2", "0/2");
    db_rollback(db);
    t_counter_is(db, "2", counter);
    free(counter);
    t_counts_in_step(db);

    //  TRUNCATE (nothing in the service does it; by hand it still counts).
    assert_int_equal(db_exec_script(db, "TRUNCATE notifications"), 0);
    t_counts_in_step(db);
    assert_int_equal(db_exec_script(db, "TRUNCATE unread_messages"), 0);
    t_counts_in_step(db);
    assert_int_equal(t_number(db, "SELECT count(*) FROM unread_counts"
                                  " WHERE notifications <> 0 OR messages <> 0"),
                     0);
    assert_true(db_exec(db,
                        "INSERT INTO notifications (id, user_id, type, actor_id, source_key)"
                        " VALUES (1, 1, 'follow', 2, 'follow:2'), (2, 7, 'follow', 2, 'follow:2')",
                        0, NULL) == 2);
    t_counts_in_step(db);
    t_counter_is(db, "7", "1/0");
}

//  The file's text (new), or NULL.
static char *t_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    char *text = NULL;
    if (fseek(file, 0, SEEK_END) == 0) {
        long size = ftell(file);
        rewind(file);
        text = size >= 0 ? (char *)malloc((size_t)size + 1) : NULL;
        if (text && fread(text, 1, (size_t)size, file) != (size_t)size) {
            free(text);
            text = NULL;
        } else if (text)
            text[size] = '\0';
    }
    fclose(file);
    return text;
}

//  The migration onto a schema that already has rows: the back-fill.
static void test_counts_back_filled(void **state)
{
    db_t *db = t_counts_clean();
    //  Back to 001: without the counters and their triggers.
    assert_int_equal(db_exec_script(db, "DROP FUNCTION unread_notifications_changed() CASCADE;"
                                        "DROP FUNCTION unread_messages_changed() CASCADE;"
                                        "DROP TABLE unread_counts;"
                                        "DELETE FROM schema_migrations"
                                        " WHERE version = '002_unread_counts'"),
                     0);
    assert_int_equal(
        db_exec_script(db,
                       "INSERT INTO notifications (id, user_id, type, actor_id, source_key, read)"
                       " SELECT g, g % 3 + 1, 'like', 9, 'k' || g, g % 4 = 0"
                       " FROM generate_series(1, 30) g;"
                       "INSERT INTO notifications (id, user_id, type, actor_id, source_key, read)"
                       " VALUES (99, 4, 'follow', 9, 'follow:9', true);"
                       "INSERT INTO unread_messages SELECT g % 2 + 2, 500, 600 + g, 9"
                       " FROM generate_series(1, 5) g"),
        0);
    char *path = zsys_sprintf("%s/schemas/notification/002_unread_counts.sql", unit_pg_root(t_pg));
    char *script = t_file(path);
    zstr_free(&path);
    assert_non_null(script);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_exec_script(db, script), 0);
    assert_int_equal(db_commit(db), 0);
    free(script);
    t_check_all(db);
    //  Users 1..3: 10 each, those of ids that are multiples of 4 read (2,
    //  3 and 2 of them); 4 only a read one and 5 nothing: no row, for 0.
    //  Messages: 3 for user 3, 2 for user 2.
    t_counter_is(db, "1", "8/0");
    t_counter_is(db, "2", "7/2");
    t_counter_is(db, "3", "8/3");
    t_counter_is(db, "4", "-");
    t_counter_is(db, "5", "-");
    //  And the triggers run from there.
    assert_true(db_exec(db, "UPDATE notifications SET read = NOT read", 0, NULL) > 0);
    t_check_all(db);
    t_counter_is(db, "4", "1/0");
}

//  Through the handlers and the API: notifications made, read (up to an
//  id, a conversation, by another user), removed; after every step each
//  user's counter is count(*) and the API answers it.
static void test_counts_through_handlers(void **state)
{
    db_t *db = t_counts_clean();
    //  Users 1..5; post 101 is 1's, 102 is 2's; comment 201 on 101.
    //  One batch: its like, comment and follow runs are one statement
    //  each, for several users.
    T_BATCH(
        db,
        {on_like_created, "media", "like.created",
         "{'post_id':'101','post_author_id':'1','user_id':'3'}", 0},
        {on_like_created, "media", "like.created",
         "{'post_id':'101','post_author_id':'1','user_id':'4'}", 0},
        {on_like_created, "media", "like.created",
         "{'post_id':'102','post_author_id':'2','user_id':'3'}", 0},
        {on_like_created, "media", "like.created",
         "{'post_id':'102','post_author_id':'2','user_id':'1'}", 0},
        {on_comment_created, "media", "comment.created",
         "{'id':'201','post_id':'101','post_author_id':'1','author_id':'3','text':'hi',"
         "'mentions':['2','4']}",
         0},
        {on_follow_created, "graph", "follow.created", "{'follower_id':'3','followee_id':'1'}", 0},
        {on_follow_created, "graph", "follow.created", "{'follower_id':'4','followee_id':'1'}", 0},
        {on_follow_created, "graph", "follow.created", "{'follower_id':'1','followee_id':'2'}", 0},
        {on_follow_requested, "graph", "follow.requested", "{'follower_id':'4','followee_id':'2'}",
         0},
        {on_follow_requested, "graph", "follow.requested", "{'follower_id':'5','followee_id':'2'}",
         0}, );
    t_check_all(db);
    //  Messages: 3 writes to 1 and 2 twice in conversation 501, 1 to 3.
    T_BATCH(db,
            {on_message_created, "messaging", "message.created",
             "{'id':'601','conversation_id':'501','sender_id':'3','recipient_ids':['1','2'],"
             "'text':'one','created_at':'2026-01-01T00:00:00.000Z'}",
             0},
            {on_message_created, "messaging", "message.created",
             "{'id':'602','conversation_id':'501','sender_id':'3','recipient_ids':['1','2'],"
             "'text':'two','created_at':'2026-01-01T00:00:01.000Z'}",
             0},
            {on_message_created, "messaging", "message.created",
             "{'id':'603','conversation_id':'502','sender_id':'1','recipient_ids':['3'],"
             "'text':'back','created_at':'2026-01-01T00:00:02.000Z'}",
             0}, );
    t_check_all(db);
    t_counter_is(db, "1", "7/2");
    t_counter_is(db, "2", "8/2");
    t_counter_is(db, "3", "1/1");
    t_counter_is(db, "4", "1/0");
    t_counter_is(db, "5", "-");

    //  An unlike and a cancelled follow request remove unread ones.
    T_BATCH(db, {on_like_deleted, "media", "like.deleted",
                 "{'post_id':'101','post_author_id':'1','user_id':'4'}", 0});
    T_BATCH(db, {on_follow_request_deleted, "graph", "follow.request_deleted",
                 "{'follower_id':'4','followee_id':'2'}", 0});
    t_check_all(db);
    t_counter_is(db, "1", "6/2");
    t_counter_is(db, "2", "7/2");

    //  1 reads conversation 501 up to 601: one message read, its
    //  notification stays unread while 602 is not; then up to 602.
    T_BATCH(db, {on_conversation_read, "messaging", "conversation.read",
                 "{'conversation_id':'501','user_id':'1','message_id':'601'}", 0});
    t_check_all(db);
    t_counter_is(db, "1", "6/1");
    T_BATCH(db, {on_conversation_read, "messaging", "conversation.read",
                 "{'conversation_id':'501','user_id':'1','message_id':'602'}", 0});
    t_check_all(db);
    t_counter_is(db, "1", "4/0");

    //  2 marks read up to their third notification, inclusive.
    char *third = t_note_id(db, "2", 2);
    assert_int_equal(t_read(db, "2", third), 204);
    free(third);
    t_check_all(db);
    t_counter_is(db, "2", "4/2");

    //  4 marks read up to 1's newest notification: only 4's own are
    //  marked; 1's counts do not move.
    char *newest = t_note_id(db, "1", -1);
    char *before = t_counter(db, "1");
    long rows_before = t_rows_unread(db, "1", false);
    assert_int_equal(t_read(db, "4", newest), 204);
    t_counter_is(db, "1", before);
    assert_int_equal(t_rows_unread(db, "1", false), rows_before);
    t_counter_is(db, "4", "0/0");
    //  5 has never had anything: marking read is fine and makes no row.
    assert_int_equal(t_read(db, "5", NULL), 204);
    assert_int_equal(t_read(db, "5", newest), 204);
    t_counter_is(db, "5", "-");
    t_counter_is(db, "1", before);
    free(before);
    free(newest);
    t_check_all(db);

    //  The comment goes: one DELETE for 1's comment and the mentions of 2
    //  (unread) and 4 (read).
    T_BATCH(db, {on_comment_deleted, "media", "comment.deleted", "{'id':'201'}", 0});
    t_check_all(db);
    //  3 goes: their own rows, what they did to 1 and 2 (notifications and
    //  unread messages, several users per statement).
    T_BATCH(db, {on_user_deleted, "identity", "user.deleted", "{'id':'3'}", 0});
    t_check_all(db);
    t_counter_is(db, "3", "0/0");
    t_counter_is(db, "2", "2/0");
    //  A post deleted, a block: more removals, then everyone reads all.
    T_BATCH(db, {on_post_deleted, "media", "post.deleted", "{'id':'102','author_id':'2'}", 0});
    T_BATCH(db,
            {on_block_created, "graph", "block.created", "{'blocker_id':'1','blocked_id':'2'}", 0});
    t_check_all(db);
    for (int user = 1; user <= 5; user++) {
        char id[8];
        snprintf(id, sizeof id, "%d", user);
        assert_int_equal(t_read(db, id, NULL), 204);
    }
    t_check_all(db);
    assert_int_equal(t_number(db, "SELECT count(*) FROM unread_counts WHERE notifications <> 0"),
                     0);
}

//  ---- a request marking read while a batch holds the counter ---------------------

typedef struct {
    db_t *db;
    int status;
} t_reader_t;

static void *t_reader(void *arg)
{
    t_reader_t *reader = (t_reader_t *)arg;
    reader->status = t_read(reader->db, "1", NULL);
    return NULL;
}

//  on_conversation_read's two statements (its unread messages, then its
//  message notifications) with notifications.read for the same user
//  arriving between them, on another connection. The batch holds the
//  user's counter from the first statement and wants the user's rows in
//  the second; a request that locked those rows before waiting for the
//  counter would deadlock with it (Postgres aborts one after a second).
//  notifications.read takes the counter first: it waits, then runs.
static void test_read_while_batch_holds_counter(void **state)
{
    db_t *batch = t_counts_clean();
    assert_true(t_db_count < sizeof t_dbs / sizeof t_dbs[0]);
    db_t *request = db_new(unit_pg_url(t_pg), t_counts_schema);
    assert_non_null(request);
    t_dbs[t_db_count++] = request;
    assert_int_equal(
        db_exec_script(batch,
                       "INSERT INTO notifications (id, user_id, type, actor_id, conversation_id,"
                       " source_key) VALUES (1, 1, 'message', 2, 501, 'message:601'),"
                       " (2, 1, 'follow', 3, NULL, 'follow:3');"
                       "INSERT INTO unread_messages VALUES (1, 501, 601, 2)"),
        0);
    t_counter_is(batch, "1", "2/1");

    assert_int_equal(db_begin(batch), 0);
    assert_int_equal(db_exec(batch,
                             "DELETE FROM unread_messages WHERE user_id = 1"
                             " AND conversation_id = 501 AND message_id <= 601",
                             0, NULL),
                     1);
    t_reader_t reader = {.db = request, .status = 0};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, t_reader, &reader), 0);
    //  Until the request waits on this transaction. No assert until the
    //  thread is joined: a failing test must not leave it running.
    int64_t deadline = envelope_now_ms() + 10000;
    long waiting = 0;
    while (waiting == 0 && envelope_now_ms() < deadline) {
        PGresult *res = db_query(batch,
                                 "SELECT count(*) FROM pg_stat_activity"
                                 " WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))",
                                 0, NULL);
        waiting = res ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
        PQclear(res);
        if (waiting == 0) zclock_sleep(10);
    }
    long marked = db_exec(batch,
                          "UPDATE notifications SET read = true WHERE user_id = 1"
                          " AND conversation_id = 501 AND NOT read AND type = 'message'",
                          0, NULL);
    int committed = marked >= 0 ? db_commit(batch) : -1;
    if (committed != 0) db_rollback(batch);
    pthread_join(thread, NULL);
    assert_int_equal(waiting, 1);
    assert_int_equal(marked, 1);
    assert_int_equal(committed, 0);
    assert_int_equal(reader.status, 204);
    t_counts_in_step(batch);
    t_counter_is(batch, "1", "0/0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_one_by_one),
        cmocka_unit_test(test_reset_and_literals),
        cmocka_unit_test(test_counts_follow_statements),
        cmocka_unit_test(test_counts_back_filled),
        cmocka_unit_test(test_counts_through_handlers),
        cmocka_unit_test(test_read_while_batch_holds_counter),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown) ? 1 : 0;
}
