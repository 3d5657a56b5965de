/*  routes: the route table and a matcher that never allocates until it
    has a match.

    The table is small (tens of rows), so matching is a linear scan that
    walks the pattern and the path side by side, segment by segment, with
    no copies; only the winning row's parameters are decoded into a JSON
    object. That keeps the matcher obviously correct on hostile paths (the
    fuzz target fuzz_route feeds it arbitrary bytes) and fast enough: a
    scan of 50 rows is a few hundred byte compares.

    Paths arrive raw (civetweb runs with decode_url=no): decoding before
    splitting would let "%2F" inside a username become a separator.
*/
#include "routes.h"
#include "args.h"
#include "protocol.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  The table. Keep each service's rows together; literal paths may sit
//  anywhere (specificity, not order, decides between overlapping rows).

static const route_t s_routes[] = {
    //  identity
    {"POST /api/v1/auth/register", "identity", "auth.register", ROUTE_AUTH_NONE,
     ROUTE_JSON_BODY | ROUTE_AUTH_RATE_LIMIT},
    {"POST /api/v1/auth/login", "identity", "auth.login", ROUTE_AUTH_NONE,
     ROUTE_JSON_BODY | ROUTE_AUTH_RATE_LIMIT},
    {"POST /api/v1/auth/refresh", "identity", "auth.refresh", ROUTE_AUTH_NONE, ROUTE_JSON_BODY},
    {"POST /api/v1/auth/logout", "identity", "auth.logout", ROUTE_AUTH_NONE, ROUTE_JSON_BODY},
    {"GET /api/v1/me", "identity", "me.get", ROUTE_AUTH_REQUIRED, 0},
    {"PATCH /api/v1/me", "identity", "me.update", ROUTE_AUTH_REQUIRED, ROUTE_JSON_BODY},
    {"PUT /api/v1/me/password", "identity", "me.password", ROUTE_AUTH_REQUIRED, ROUTE_JSON_BODY},
    {"DELETE /api/v1/me", "identity", "me.delete", ROUTE_AUTH_REQUIRED, ROUTE_JSON_BODY},
    {"GET /api/v1/users/{username}", "identity", "users.get", ROUTE_AUTH_OPTIONAL, 0},
    {"PUT /api/v1/me/avatar", "identity", "me.avatar_put", ROUTE_AUTH_REQUIRED, ROUTE_MULTIPART},
    {"DELETE /api/v1/me/avatar", "identity", "me.avatar_delete", ROUTE_AUTH_REQUIRED, 0},
    //  media (POST /posts: one image goes with posts.create, more go to images.upload first,
    //  upload.c)
    {"POST /api/v1/posts", "media", "posts.create", ROUTE_AUTH_REQUIRED, ROUTE_MULTIPART_IMAGES},
    {"GET /api/v1/posts/{id}", "media", "posts.get", ROUTE_AUTH_OPTIONAL, 0},
    {"PATCH /api/v1/posts/{id}", "media", "posts.update", ROUTE_AUTH_REQUIRED, ROUTE_JSON_BODY},
    {"DELETE /api/v1/posts/{id}", "media", "posts.delete", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/users/{username}/posts", "media", "posts.by_user", ROUTE_AUTH_OPTIONAL, 0},
    {"POST /api/v1/posts/{id}/like", "media", "likes.create", ROUTE_AUTH_REQUIRED, 0},
    {"DELETE /api/v1/posts/{id}/like", "media", "likes.delete", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/posts/{id}/likes", "media", "likes.list", ROUTE_AUTH_OPTIONAL, 0},
    {"POST /api/v1/posts/{id}/comments", "media", "comments.create", ROUTE_AUTH_REQUIRED,
     ROUTE_JSON_BODY},
    {"GET /api/v1/posts/{id}/comments", "media", "comments.list", ROUTE_AUTH_OPTIONAL, 0},
    {"DELETE /api/v1/comments/{id}", "media", "comments.delete", ROUTE_AUTH_REQUIRED, 0},
    {"POST /api/v1/posts/{id}/save", "media", "saves.create", ROUTE_AUTH_REQUIRED, 0},
    {"DELETE /api/v1/posts/{id}/save", "media", "saves.delete", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/me/saved", "media", "saves.list", ROUTE_AUTH_REQUIRED, 0},
    //  graph
    {"POST /api/v1/users/{username}/follow", "graph", "follows.create", ROUTE_AUTH_REQUIRED, 0},
    {"DELETE /api/v1/users/{username}/follow", "graph", "follows.delete", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/users/{username}/followers", "graph", "follows.followers", ROUTE_AUTH_REQUIRED,
     0},
    {"GET /api/v1/users/{username}/following", "graph", "follows.following", ROUTE_AUTH_REQUIRED,
     0},
    {"GET /api/v1/me/follow-requests", "graph", "requests.list", ROUTE_AUTH_REQUIRED, 0},
    {"POST /api/v1/me/follow-requests/{username}/approve", "graph", "requests.approve",
     ROUTE_AUTH_REQUIRED, 0},
    {"POST /api/v1/me/follow-requests/{username}/deny", "graph", "requests.deny",
     ROUTE_AUTH_REQUIRED, 0},
    {"POST /api/v1/users/{username}/block", "graph", "blocks.create", ROUTE_AUTH_REQUIRED, 0},
    {"DELETE /api/v1/users/{username}/block", "graph", "blocks.delete", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/me/blocked", "graph", "blocks.list", ROUTE_AUTH_REQUIRED, 0},
    //  feed
    {"GET /api/v1/feed", "feed", "timeline.get", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/activity", "feed", "activity.list", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/me/interactions", "feed", "interactions.list", ROUTE_AUTH_REQUIRED, 0},
    //  search
    {"GET /api/v1/search/users", "search", "search.users", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/search/posts", "search", "search.posts", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/search/hashtags", "search", "search.hashtags", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/hashtags/{tag}", "search", "hashtags.get", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/hashtags/{tag}/posts", "search", "hashtags.posts", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/trends/hashtags", "search", "trends.hashtags", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/explore", "search", "explore.posts", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/explore/users", "search", "explore.users", ROUTE_AUTH_OPTIONAL, 0},
    //  messaging
    {"POST /api/v1/conversations", "messaging", "conversations.create", ROUTE_AUTH_REQUIRED,
     ROUTE_JSON_BODY},
    {"GET /api/v1/conversations", "messaging", "conversations.list", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/conversations/{id}", "messaging", "conversations.get", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/conversations/{id}/messages", "messaging", "messages.list", ROUTE_AUTH_REQUIRED,
     0},
    {"POST /api/v1/conversations/{id}/messages", "messaging", "messages.send", ROUTE_AUTH_REQUIRED,
     ROUTE_JSON_BODY},
    {"POST /api/v1/conversations/{id}/read", "messaging", "messages.read", ROUTE_AUTH_REQUIRED,
     ROUTE_JSON_BODY},
    {"POST /api/v1/posts/{id}/share", "messaging", "posts.share", ROUTE_AUTH_REQUIRED,
     ROUTE_JSON_BODY},
    //  notification
    {"GET /api/v1/notifications", "notification", "notifications.list", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/notifications/unread_count", "notification", "notifications.unread_count",
     ROUTE_AUTH_REQUIRED, 0},
    {"POST /api/v1/notifications/read", "notification", "notifications.read", ROUTE_AUTH_REQUIRED,
     ROUTE_JSON_BODY},
};

const route_t *routes_table(size_t *count_out)
{
    *count_out = sizeof s_routes / sizeof s_routes[0];
    return s_routes;
}

//  ---------------------------------------------------------------------
//  Spec parsing

static const char *s_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

const char *route_pattern(const route_t *route)
{
    const char *space = strchr(route->spec, ' ');
    return space ? space + 1 : route->spec;
}

//  Length of the spec's method (the part before the space).
static size_t s_method_length(const route_t *route)
{
    const char *space = strchr(route->spec, ' ');
    return space ? (size_t)(space - route->spec) : 0;
}

static bool s_method_is(const route_t *route, const char *method)
{
    size_t length = s_method_length(route);
    return strlen(method) == length && memcmp(route->spec, method, length) == 0;
}

static bool s_is_param(const char *segment, size_t length)
{
    return length >= 2 && segment[0] == '{' && segment[length - 1] == '}';
}

//  Next segment of a path that starts at *cursor (pointing at a '/').
//  Returns false at the end of the path.
static bool s_next_segment(const char **cursor, const char **segment, size_t *length)
{
    const char *p = *cursor;
    if (*p != '/') return false;
    p++;
    const char *end = strchr(p, '/');
    if (!end) end = p + strlen(p);
    *segment = p;
    *length = (size_t)(end - p);
    *cursor = end;
    return true;
}

//  Whether path matches pattern; *literals gets the number of literal
//  segments (the row's specificity).
static bool s_path_matches(const char *pattern, const char *path, int *literals)
{
    const char *pc = pattern, *qc = path;
    const char *pseg, *qseg;
    size_t plen, qlen;
    *literals = 0;
    while (true) {
        bool more_pattern = s_next_segment(&pc, &pseg, &plen);
        bool more_path = s_next_segment(&qc, &qseg, &qlen);
        if (!more_pattern || !more_path) return !more_pattern && !more_path && *qc == '\0';
        if (s_is_param(pseg, plen)) {
            if (qlen == 0) return false;
        } else {
            if (plen != qlen || memcmp(pseg, qseg, plen) != 0) return false;
            (*literals)++;
        }
    }
}

//  ---------------------------------------------------------------------
//  Validation

static bool s_valid_param_name(const char *name, size_t length)
{
    if (length == 0 || length >= ROUTE_PARAM_NAME_MAX) return false;
    for (size_t i = 0; i < length; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_' ||
              (name[i] >= '0' && name[i] <= '9')))
            return false;
    return true;
}

static int s_check_spec(const route_t *route, char *error, size_t error_size)
{
    size_t method_length = s_method_length(route);
    bool known = false;
    for (size_t i = 0; i < sizeof s_methods / sizeof s_methods[0]; i++)
        known |= s_method_is(route, s_methods[i]);
    if (!known || method_length == 0) {
        snprintf(error, error_size, "%s: unknown method", route->spec);
        return -1;
    }
    const char *pattern = route_pattern(route);
    if (pattern[0] != '/' || strchr(pattern, ' ') || strchr(pattern, '?')) {
        snprintf(error, error_size, "%s: pattern must be an absolute path", route->spec);
        return -1;
    }
    if (!route->service || !protocol_valid_service(route->service, strlen(route->service)) ||
        !route->method || !*route->method) {
        snprintf(error, error_size, "%s: needs a service and a method", route->spec);
        return -1;
    }
    //  Segments: non-empty; parameters whole and uniquely named.
    const char *names[16];
    size_t name_lengths[16];
    size_t param_count = 0;
    const char *cursor = pattern, *segment;
    size_t length;
    while (s_next_segment(&cursor, &segment, &length)) {
        if (length == 0 && !(cursor == pattern + 1 && *cursor == '\0')) {
            snprintf(error, error_size, "%s: empty segment or trailing slash", route->spec);
            return -1;
        }
        bool has_brace = memchr(segment, '{', length) || memchr(segment, '}', length);
        if (s_is_param(segment, length)) {
            if (!s_valid_param_name(segment + 1, length - 2) || param_count == 16) {
                snprintf(error, error_size, "%s: bad parameter name", route->spec);
                return -1;
            }
            for (size_t i = 0; i < param_count; i++)
                if (name_lengths[i] == length - 2 &&
                    memcmp(names[i], segment + 1, length - 2) == 0) {
                    snprintf(error, error_size, "%s: duplicate parameter", route->spec);
                    return -1;
                }
            names[param_count] = segment + 1;
            name_lengths[param_count++] = length - 2;
        } else if (has_brace || memchr(segment, '%', length)) {
            snprintf(error, error_size, "%s: braces or escapes inside a literal", route->spec);
            return -1;
        }
    }
    return 0;
}

//  Two patterns of the same shape (same literals, parameters in the same
//  places) would match exactly the same paths.
static bool s_same_shape(const char *a, const char *b)
{
    const char *ac = a, *bc = b, *as, *bs;
    size_t al, bl;
    while (true) {
        bool more_a = s_next_segment(&ac, &as, &al);
        bool more_b = s_next_segment(&bc, &bs, &bl);
        if (!more_a || !more_b) return !more_a && !more_b;
        bool pa = s_is_param(as, al), pb = s_is_param(bs, bl);
        if (pa != pb || (!pa && (al != bl || memcmp(as, bs, al) != 0))) return false;
    }
}

int routes_validate(const route_t *table, size_t count, char *error, size_t error_size)
{
    char scratch[256];
    if (!error) {
        error = scratch;
        error_size = sizeof scratch;
    }
    for (size_t i = 0; i < count; i++) {
        if (!table[i].spec) {
            snprintf(error, error_size, "row %zu: no spec", i);
            return -1;
        }
        if (s_check_spec(&table[i], error, error_size) != 0) return -1;
        for (size_t j = 0; j < i; j++) {
            if (s_method_length(&table[i]) == s_method_length(&table[j]) &&
                memcmp(table[i].spec, table[j].spec, s_method_length(&table[i])) == 0 &&
                s_same_shape(route_pattern(&table[i]), route_pattern(&table[j]))) {
                snprintf(error, error_size, "%s: same method and path as %s", table[i].spec,
                         table[j].spec);
                return -1;
            }
        }
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Decoding

static int s_hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long url_decode(const char *src, size_t length, bool plus_is_space, char *dst)
{
    size_t out = 0;
    for (size_t i = 0; i < length; i++) {
        if (src[i] == '%') {
            if (i + 2 >= length) return -1;
            int high = s_hex(src[i + 1]), low = s_hex(src[i + 2]);
            if (high < 0 || low < 0) return -1;
            dst[out++] = (char)(high * 16 + low);
            i += 2;
        } else if (src[i] == '+' && plus_is_space) {
            dst[out++] = ' ';
        } else {
            dst[out++] = src[i];
        }
    }
    dst[out] = '\0';
    return (long)out;
}

//  Decodes src[0..length) into a new jansson string; NULL when malformed
//  (bad escape, invalid UTF-8, NUL).
static json_t *s_decoded_string(const char *src, size_t length, bool plus_is_space)
{
    char *buffer = malloc(length + 1);
    if (!buffer) return NULL;
    json_t *value = NULL;
    long decoded = url_decode(src, length, plus_is_space, buffer);
    if (decoded >= 0 && utf8_codepoints(buffer, (size_t)decoded) >= 0)
        value = json_stringn(buffer, (size_t)decoded);
    free(buffer);
    return value;
}

//  ---------------------------------------------------------------------
//  Matching

static void s_allow_add_method(char *allow, const char *method, size_t length)
{
    //  Already listed? Entries are separated by ", ".
    const char *p = allow;
    while (*p) {
        const char *end = strstr(p, ", ");
        size_t entry = end ? (size_t)(end - p) : strlen(p);
        if (entry == length && memcmp(p, method, length) == 0) return;
        p += entry;
        if (*p) p += 2;
    }
    size_t used = strlen(allow);
    snprintf(allow + used, ROUTE_ALLOW_MAX - used, "%s%.*s", used ? ", " : "", (int)length, method);
}

//  A GET row also serves HEAD (RFC 9110 9.3.2), so Allow lists both.
static void s_allow_add(char *allow, const route_t *route)
{
    s_allow_add_method(allow, route->spec, s_method_length(route));
    if (s_method_is(route, "GET")) s_allow_add_method(allow, "HEAD", 4);
}

static int s_extract_params(const route_t *route, const char *path, json_t *params, char *bad_param)
{
    const char *pc = route_pattern(route), *qc = path;
    const char *pseg, *qseg;
    size_t plen, qlen;
    while (s_next_segment(&pc, &pseg, &plen) && s_next_segment(&qc, &qseg, &qlen)) {
        if (!s_is_param(pseg, plen)) continue;
        char name[ROUTE_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)(plen - 2), pseg + 1);
        json_t *value = s_decoded_string(qseg, qlen, false);
        if (!value) {
            snprintf(bad_param, ROUTE_PARAM_NAME_MAX, "%s", name);
            return -1;
        }
        json_object_set_new(params, name, value);
    }
    return 0;
}

route_match_result_t routes_match(const route_t *table, size_t count, const char *method,
                                  const char *path, route_match_t *match)
{
    memset(match, 0, sizeof *match);
    if (!method || !path || path[0] != '/' || strnlen(path, ROUTE_PATH_MAX + 1) > ROUTE_PATH_MAX)
        return ROUTE_MATCH_NOT_FOUND;

    const route_t *best = NULL;
    int best_literals = -1;
    bool path_known = false;
    //  HEAD is GET without the body (http_send drops it): it runs the GET row.
    bool head = strcmp(method, "HEAD") == 0;
    for (size_t i = 0; i < count; i++) {
        int literals;
        if (!s_path_matches(route_pattern(&table[i]), path, &literals)) continue;
        path_known = true;
        s_allow_add(match->allow, &table[i]);
        bool runs = s_method_is(&table[i], method) || (head && s_method_is(&table[i], "GET"));
        if (runs && literals > best_literals) {
            best = &table[i];
            best_literals = literals;
        }
    }
    if (!best) return path_known ? ROUTE_MATCH_METHOD_NOT_ALLOWED : ROUTE_MATCH_NOT_FOUND;

    match->route = best;
    match->params = json_object();
    if (!match->params || s_extract_params(best, path, match->params, match->bad_param) != 0) {
        json_decref(match->params);
        match->params = NULL;
        return ROUTE_MATCH_BAD_PARAM;
    }
    return ROUTE_MATCH_OK;
}

void route_match_clear(route_match_t *match)
{
    json_decref(match->params);
    match->params = NULL;
}

//  ---------------------------------------------------------------------
//  Query strings

int query_to_args(const char *query, json_t *args, size_t max_params, char *bad_name,
                  size_t bad_name_size)
{
    size_t seen = 0;
    const char *p = query;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        if (length > 0) {
            if (++seen > max_params) {
                snprintf(bad_name, bad_name_size, "query");
                return -1;
            }
            const char *equals = memchr(p, '=', length);
            size_t key_length = equals ? (size_t)(equals - p) : length;
            json_t *key = s_decoded_string(p, key_length, true);
            if (!key) {
                snprintf(bad_name, bad_name_size, "query");
                return -1;
            }
            const char *name = json_string_value(key);
            if (*name) {
                json_t *value = equals ? s_decoded_string(equals + 1, length - key_length - 1, true)
                                       : json_string("");
                if (!value) {
                    snprintf(bad_name, bad_name_size, "%s", name);
                    json_decref(key);
                    return -1;
                }
                json_object_set_new(args, name, value);
            }
            json_decref(key);
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}
