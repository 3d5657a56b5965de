/*  pages: the user lists (followers, following, requests, blocked) and the
    small helpers every file of the service shares.

    A list page is one query over the list's own index (owner id, row id
    DESC), asking for limit + 1 rows: the extra row only says whether there
    is a next page. The cursor is the last row id of the page (MAC'd by
    common/cursor), so a page is "rows older than the cursor": inserts at
    the head never shift later pages (no duplicates, no skips), and a
    cursor stays valid when its row is deleted.

    The ids of a page become user objects with one identity users.batch
    (base users, never decorated: identity decorating would call graph
    back), graph's own relations for the viewer (one query, the code that
    answers relations.batch) and media's post counts via users_decorate
    with USERS_SKIP_GRAPH. Users blocked with the viewer drop out of the
    page (except in the block list), so a page can be shorter than limit
    while next_cursor is not null.
*/
#include "graph.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

//  ---- helpers ------------------------------------------------------------------

json_t *graph_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

json_t *graph_not_found(void)
{
    return reply_error(404, ERR_NOT_FOUND, "no such user");
}

json_t *graph_signed_out(void)
{
    return reply_error(401, ERR_UNAUTHENTICATED, "sign in first");
}

char *graph_id_array(size_t n, const int64_t *ids)
{
    char *text = zmalloc(n * GRAPH_ID_TEXT + 3);
    size_t used = 0;
    text[used++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) text[used++] = ',';
        ids_format(ids[i], text + used, GRAPH_ID_TEXT);
        used += strlen(text + used);
    }
    text[used++] = '}';
    text[used] = '\0';
    return text;
}

//  The decimal texts of ids[0..n) into text (one GRAPH_ID_TEXT slot each)
//  and pointers to them into params, for a statement's $1..$n.
static void s_id_params(int n, const int64_t *ids, char (*text)[GRAPH_ID_TEXT], const char **params)
{
    for (int i = 0; i < n; i++) {
        ids_format(ids[i], text[i], GRAPH_ID_TEXT);
        params[i] = text[i];
    }
}

long graph_exec_ids(db_t *db, const char *sql, int n, const int64_t *ids)
{
    assert(n > 0 && n <= GRAPH_SQL_IDS_MAX);
    char text[GRAPH_SQL_IDS_MAX][GRAPH_ID_TEXT];
    const char *params[GRAPH_SQL_IDS_MAX];
    s_id_params(n, ids, text, params);
    return db_exec(db, sql, n, params);
}

PGresult *graph_query_ids(db_t *db, const char *sql, int n, const int64_t *ids)
{
    assert(n > 0 && n <= GRAPH_SQL_IDS_MAX);
    char text[GRAPH_SQL_IDS_MAX][GRAPH_ID_TEXT];
    const char *params[GRAPH_SQL_IDS_MAX];
    s_id_params(n, ids, text, params);
    return db_query(db, sql, n, params);
}

json_t *graph_other_user_arg(call_t *call, graph_user_t *target, json_t *(*on_self)(void))
{
    if (call->viewer_id <= 0) return graph_signed_out();
    json_t *reply = graph_user_by_username_arg(call, target);
    if (reply) return reply;
    return target->id == call->viewer_id ? on_self() : NULL;
}

json_t *graph_begin_pair_lock(db_t *db, int64_t a, int64_t b)
{
    if (db_begin(db) != 0) return graph_internal("begin");
    if (graph_lock_pair(db, a, b) != 0) {
        db_rollback(db);
        return graph_internal("lock pair");
    }
    return NULL;
}

json_t *graph_finish(db_t *db, json_t *error, const char *what)
{
    if (!error && db_commit(db) != 0) error = graph_internal(what);
    if (db_in_transaction(db)) db_rollback(db);
    return error;
}

int graph_emit_pair(db_t *db, const char *topic, const char *a_name, int64_t a, const char *b_name,
                    int64_t b, int64_t time_id)
{
    char a_text[GRAPH_ID_TEXT], b_text[GRAPH_ID_TEXT];
    ids_format(a, a_text, sizeof a_text);
    ids_format(b, b_text, sizeof b_text);
    json_t *payload = json_pack("{s:s, s:s}", a_name, a_text, b_name, b_text);
    if (time_id > 0) {
        char when[32];
        ids_format_time(ids_time_ms(time_id), when, sizeof when);
        json_object_set_new(payload, "created_at", json_string(when));
    }
    int rc = events_emit(db, topic, payload);
    json_decref(payload);
    return rc;
}

//  ---- decorated users ------------------------------------------------------------

//  An error reply standing for a peer's failed reply.
static json_t *s_peer_failure(const json_t *reply, const char *what)
{
    int status = reply_status(reply);
    if (status == 503 || status == 504) {
        log_warn("%s answered %d", what, status);
        return reply_error(status, status == 503 ? ERR_UNAVAILABLE : ERR_TIMEOUT,
                           "a service is unavailable");
    }
    log_error("%s answered %d", what, status);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

json_t *graph_decorated_users(call_t *call, size_t n, const int64_t *ids, unsigned flags,
                              json_t **reply_out)
{
    *reply_out = NULL;
    if (n == 0) return json_array();
    json_t *id_list = json_array();
    for (size_t i = 0; i < n; i++) {
        char text[GRAPH_ID_TEXT];
        ids_format(ids[i], text, sizeof text);
        json_array_append_new(id_list, json_string(text));
    }
    json_t *args = json_pack("{s:o}", "ids", id_list);
    json_t *reply = rpc_call(call->rpc, "identity", "users.batch", call->viewer_id, args, NULL,
                             call->request->deadline_ms);
    json_decref(args);
    json_t *users = json_object_get(reply_body(reply), "users");
    if (reply_status(reply) != 200 || !json_is_array(users)) {
        *reply_out = s_peer_failure(reply, "identity users.batch");
        json_decref(reply);
        return NULL;
    }
    users = json_incref(users);
    json_decref(reply);

    //  Relations for the users identity knows, in its order.
    size_t count = json_array_size(users);
    int64_t *found = zmalloc((count + 1) * sizeof *found);
    graph_relation_t *relations = zmalloc((count + 1) * sizeof *relations);
    size_t index;
    json_t *user;
    json_array_foreach(users, index, user)
    {
        const char *id = json_string_value(json_object_get(user, "id"));
        if (!id || !ids_parse(id, &found[index])) found[index] = 0;
    }
    json_t *relation_map = NULL;
    if (graph_relations(call->db, call->viewer_id, count, found, relations) != 0) {
        *reply_out = graph_internal("relations of a page");
        json_decref(users);
        users = NULL;
        goto cleanup;
    }
    relation_map = json_object();
    for (size_t i = 0; i < count; i++) {
        char text[GRAPH_ID_TEXT];
        ids_format(found[i], text, sizeof text);
        json_object_set_new(relation_map, text, graph_relation_json(&relations[i]));
    }
    users_apply_relations(users, relation_map, call->viewer_id, flags);
    users_decorate(call->rpc, call->viewer_id, users, flags | USERS_SKIP_GRAPH,
                   call->request->deadline_ms);
cleanup:
    json_decref(relation_map);
    free(found);
    free(relations);
    return users;
}

//  ---- pages ------------------------------------------------------------------

json_t *graph_page_args(call_t *call, int *limit, int64_t *before)
{
    json_t *fields = json_object();
    const char *cursor = NULL;
    args_limit(call->args, limit, fields);
    int rc = args_string(call->args, "cursor", false, 0, CURSOR_TEXT_MAX, &cursor, fields);
    *before = INT64_MAX;
    //  "?cursor=" (empty) is the first page, as if absent.
    if (rc == 1 && cursor[0]) {
        int64_t key1 = 0, key2 = 0;
        if (cursor_decode(cursor, &key1, &key2) != 0 || key1 <= 0)
            json_object_set_new(fields, "cursor",
                                json_string("is not a cursor this server issued"));
        else
            *before = key1;
    } else if (rc < 0 && !json_object_get(fields, "cursor")) {
        json_object_set_new(fields, "cursor", json_string("is not a cursor this server issued"));
    }
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    return NULL;
}

json_t *graph_viewer_list(call_t *call, const char *sql, unsigned flags)
{
    if (call->viewer_id <= 0) return graph_signed_out();
    int limit = 0;
    int64_t before = 0;
    json_t *reply = graph_page_args(call, &limit, &before);
    if (reply) return reply;
    return graph_user_page(call, sql, call->viewer_id, limit, before, flags);
}

PGresult *graph_page_query(db_t *db, const char *sql, int64_t owner, int limit, int64_t before)
{
    char owner_text[GRAPH_ID_TEXT], before_text[GRAPH_ID_TEXT], limit_text[16];
    ids_format(owner, owner_text, sizeof owner_text);
    ids_format(before, before_text, sizeof before_text);
    snprintf(limit_text, sizeof limit_text, "%d", limit + 1);
    const char *params[] = {owner_text, before_text, limit_text};
    return db_query(db, sql, 3, params);
}

json_t *graph_next_cursor(int rows, int limit, int64_t last)
{
    if (rows <= limit) return json_null();
    char text[CURSOR_TEXT_MAX];
    cursor_encode(last, 0, text);
    return json_string(text);
}

json_t *graph_user_page(call_t *call, const char *sql, int64_t owner, int limit, int64_t before,
                        unsigned flags)
{
    PGresult *res = graph_page_query(call->db, sql, owner, limit, before);
    if (!res) return graph_internal("list page");
    int rows = PQntuples(res);
    int taken = rows > limit ? limit : rows;
    int64_t *ids = zmalloc(((size_t)taken + 1) * sizeof *ids);
    int64_t last = 0;
    for (int row = 0; row < taken; row++) {
        ids_parse(PQgetvalue(res, row, 0), &last);
        ids_parse(PQgetvalue(res, row, 1), &ids[row]);
    }
    PQclear(res);
    json_t *reply = NULL;
    json_t *items = graph_decorated_users(call, (size_t)taken, ids, flags, &reply);
    free(ids);
    if (!items) return reply;
    return reply_ok(200, json_pack("{s:o, s:o}", "items", items, "next_cursor",
                                   graph_next_cursor(rows, limit, last)));
}
