/*  search.c: the service definition and what every handler file uses.

    Method table: the public endpoints of the search table of API.md, one
    method each (the gateway's route rows name them). Events consumed are
    in projections.c.

    Lists: every list answers {items, next_cursor}. A cursor holds two
    integers (common/cursor.h): (id, 0) for lists newest first, (score, id)
    for ranked lists. A page asks the database for limit + 1 rows: the
    extra row only says whether there is a next page, and the cursor is the
    key of the last row shown, so the next page starts right after it.

    Hydration: a page's ids become objects with one batch call: media
    posts.batch for posts (it applies visibility again, so a post made
    invisible since the projection last heard drops out; a page can then
    hold fewer than limit items, and the cursor still moves past them),
    identity users.batch plus users_decorate() for users.
*/
#include "search.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "ids.h"
#include "log.h"
#include "users.h"

#include <czmq.h>
#include <string.h>

static const service_method_t s_methods[] = {
    {"search.users", search_users},
    {"search.posts", search_posts},
    {"search.hashtags", search_hashtags},
    {"hashtags.get", hashtags_get},
    {"hashtags.posts", hashtags_posts},
    {"trends.hashtags", trends_hashtags},
    {"explore.posts", explore_posts},
    {"explore.users", explore_users},
    {"search.seed", search_seed}, // internal: no route; refused unless SEARCH_SEED_ENABLED=1
    {NULL, NULL},
};

static const char s_usage[] =
    "Search, hashtags, trends and explore (services/search/README.md).\n"
    "\n"
    "Search settings:\n"
    "  SEARCH_TRENDS_TTL_MS   how long a computed trends list is served, in ms\n"
    "                         (default 10000; 0 recomputes on every request)\n"
    "  SEARCH_SEED_ENABLED    1 lets the internal search.seed write a synthetic\n"
    "                         dataset for benchmarks (default 0: refused)";

static const char *const s_config_names[] = {"SEARCH_TRENDS_TTL_MS", "SEARCH_SEED_ENABLED", NULL};

int search_init(search_t *self, int64_t trends_ttl_ms, search_rpc_fn rpc)
{
    memset(self, 0, sizeof *self);
    self->trends_ttl_ms = trends_ttl_ms < 0 ? 0 : trends_ttl_ms;
    self->rpc = rpc;
    return pthread_mutex_init(&self->trends_lock, NULL) == 0 ? 0 : -1;
}

void search_destroy(search_t *self)
{
    for (int index = 0; index < SEARCH_TREND_WINDOWS; index++) {
        json_decref(self->trends[index].items);
        self->trends[index].items = NULL;
    }
    pthread_mutex_destroy(&self->trends_lock);
}

const service_def_t *search_service_def(search_t *state)
{
    static service_def_t def;
    def = (service_def_t){
        .name = "search",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = search_consumes,
        .produces_events = false,
        .uses_database = true,
        .state = state,
        .config_names = s_config_names,
    };
    return &def;
}

json_t *search_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

const char *search_id_text(int64_t id, char *buf)
{
    ids_format(id, buf, 21);
    return buf;
}

int64_t search_column_int(const PGresult *res, int row, int column)
{
    return strtoll(PQgetvalue(res, row, column), NULL, 10);
}

//  ---------------------------------------------------------------------
//  Arguments

int search_page_args(const json_t *args, search_page_t *page, json_t *fields)
{
    page->limit = 20;
    page->has_cursor = false;
    page->key1 = page->key2 = 0;
    int rc = 0;
    if (args_limit(args, &page->limit, fields) < 0) rc = -1;
    const char *cursor = NULL;
    int present = args_string(args, "cursor", false, 0, CURSOR_TEXT_MAX, &cursor, fields);
    if (present < 0) {
        rc = -1;
    } else if (present == 1) {
        if (cursor_decode(cursor, &page->key1, &page->key2) != 0) {
            json_object_set_new(fields, "cursor",
                                json_string("is not a cursor this server issued"));
            rc = -1;
        } else
            page->has_cursor = true;
    }
    return rc;
}

static bool s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int search_text_arg(const json_t *args, const char *name, size_t max_codepoints, char strip,
                    char *out, size_t size, json_t *fields)
{
    const char *text = NULL;
    //  The raw limit is generous (spaces are trimmed); the trimmed text is
    //  checked against max_codepoints below.
    if (args_string(args, name, true, 0, max_codepoints * 4, &text, fields) != 1) return -1;
    size_t length = strlen(text);
    while (length > 0 && s_is_space(*text)) {
        text++;
        length--;
    }
    while (length > 0 && s_is_space(text[length - 1]))
        length--;
    if (strip && length > 0 && *text == strip) {
        text++;
        length--;
    }
    if (length == 0) {
        json_object_set_new(fields, name, json_string("must not be empty"));
        return -1;
    }
    long codepoints = utf8_codepoints(text, length);
    if (codepoints < 0 || (size_t)codepoints > max_codepoints || length + 1 > size) {
        char *message = zsys_sprintf("must be at most %zu characters", max_codepoints);
        json_object_set_new(fields, name, json_string(message ? message : "is too long"));
        zstr_free(&message);
        return -1;
    }
    memcpy(out, text, length);
    out[length] = '\0';
    return 1;
}

json_t *search_list_body(json_t *items_stolen, bool more, int64_t key1, int64_t key2)
{
    json_t *next = json_null();
    if (more) {
        char cursor[CURSOR_TEXT_MAX];
        cursor_encode(key1, key2, cursor);
        json_decref(next);
        next = json_string(cursor);
    }
    return json_pack("{s:o, s:o}", "items", items_stolen, "next_cursor", next);
}

//  ---------------------------------------------------------------------
//  Calls to other services and hydration

json_t *search_rpc(call_t *call, const char *service, const char *method, const json_t *args)
{
    search_t *self = call->state;
    if (self && self->rpc) return self->rpc(call, service, method, args);
    if (!call->rpc) return reply_error(503, ERR_UNAVAILABLE, "no rpc client");
    int64_t deadline = call->request ? call->request->deadline_ms : 0;
    return rpc_call(call->rpc, service, method, call->viewer_id, args, NULL, deadline);
}

//  The error reply to give when a peer's reply is not a 200: its own 503
//  or 504 (the caller should retry), else 500 (a peer misbehaved).
static json_t *s_peer_error(json_t *reply, const char *what)
{
    int status = reply_status(reply);
    if (status == 503 || status == 504) return reply;
    log_error("%s answered %d (%s)", what, status,
              reply_error_code(reply) ? reply_error_code(reply) : "no code");
    json_decref(reply);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

static json_t *s_id_array(const int64_t *ids, size_t count)
{
    json_t *array = json_array();
    char text[21];
    for (size_t index = 0; index < count; index++)
        json_array_append_new(array, json_string(search_id_text(ids[index], text)));
    return array;
}

//  Calls service.method {ids:[…]} and hands back reply.body[member] (an
//  array) in *items. NULL on success, else the reply to answer with.
static json_t *s_batch(call_t *call, const char *service, const char *method, const char *member,
                       const int64_t *ids, size_t count, json_t **items)
{
    *items = NULL;
    if (count == 0) {
        *items = json_array();
        return NULL;
    }
    json_t *args = json_pack("{s:o}", "ids", s_id_array(ids, count));
    json_t *reply = search_rpc(call, service, method, args);
    json_decref(args);
    if (reply_status(reply) != 200) return s_peer_error(reply, method);
    json_t *array = json_object_get(reply_body(reply), member);
    if (!json_is_array(array)) {
        json_decref(reply);
        return search_internal(method);
    }
    *items = json_incref(array);
    json_decref(reply);
    return NULL;
}

json_t *search_hydrate_posts(call_t *call, const int64_t *ids, size_t count, json_t **items)
{
    return s_batch(call, "media", "posts.batch", "posts", ids, count, items);
}

json_t *search_hydrate_users(call_t *call, const int64_t *ids, size_t count, json_t **items)
{
    json_t *error = s_batch(call, "identity", "users.batch", "users", ids, count, items);
    if (error) return error;
    int64_t deadline = call->request ? call->request->deadline_ms : 0;
    if (call->rpc && !((search_t *)call->state)->rpc)
        users_decorate(call->rpc, call->viewer_id, *items, 0, deadline);
    else {
        //  Tests without a broker: the shape of an undecorated answer.
        users_apply_relations(*items, NULL, call->viewer_id, 0);
        users_apply_post_counts(*items, NULL);
    }
    return NULL;
}
