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

    The server is TEST_DATABASE_URL when set, else one this binary starts
    with scripts/pg.sh on the first free port of 17800..17809. Each mode
    works in a schema of its own (unit_pg_schema). User ids are small
    integers; posts are 101, 102; comments 201, 202.
*/
#include "../../services/notification/consumers.c"
#include "../../services/notification/notifications.c"
#include "../../services/notification/push.c"

#include "unit_pg.h"

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
static db_t *t_dbs[4];
static size_t t_db_count;

//  A connection in a fresh migrated schema.
static db_t *t_schema(void)
{
    assert_true(t_db_count < sizeof t_dbs / sizeof t_dbs[0]);
    db_t *db = unit_pg_schema(t_pg, "notification", NULL);
    assert_non_null(db);
    t_dbs[t_db_count++] = db;
    return db;
}

static int t_setup(void **state)
{
    log_init("test_notification");
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
    //  and 5, and comment 202 (201 went with user 3); user 2 the mentions
    //  in 202 and post 102; user 7 follow_accepted; the request is gone.
    db_t *dbs[] = {one, batch};
    for (int i = 0; i < 2; i++) {
        db_t *db = dbs[i];
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications"), 10);
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE user_id = 1"
                                      " AND NOT read"),
                         7);
        assert_int_equal(t_number(db, "SELECT count(*) FROM notifications WHERE user_id = 1"
                                      " AND source_key IN ('follow:2', 'like:2:101', 'like:6:101',"
                                      " 'like:5:101', 'like:3:102', 'like:5:102', 'comment:202')"),
                         7);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_one_by_one),
        cmocka_unit_test(test_reset_and_literals),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown) ? 1 : 0;
}
