/*  routes: the gateway's route table (HTTP method + path pattern ->
    service.method) and the matcher.

    The table is data, in routes.c; a later issue adds a service's routes by
    adding rows there. A row:

        {"GET /api/v1/users/{username}", "identity", "users.get", ROUTE_AUTH_OPTIONAL, 0},
         ^ method, one space, pattern   ^ service    ^ method      ^ auth             ^ flags

    Pattern: an absolute path of segments separated by '/'. A segment is a
    literal, or a parameter "{name}" (the whole segment) that matches one
    non-empty segment; the percent-decoded value goes into args[name] as a
    string (it must be valid UTF-8 without NUL, else 400). There is no
    trailing-slash matching: "/api/v1/me/" does not match "/api/v1/me"
    (404), so every resource has exactly one URL. Literal segments compare
    byte for byte with the raw (not decoded) request path.

    When several rows match a path, the one with the most literal segments
    wins ("/me/saved" beats "/{x}/saved"); on a tie the first row wins.
    A path some rows match but none for this method is 405, with the union
    of their methods for the Allow header. HEAD runs a path's GET row (the
    response goes out without its body), and Allow lists HEAD beside GET.

    Auth: NONE ignores any Authorization header (viewer_id 0); OPTIONAL
    gives viewer_id 0 without a token but 401 for a bad one; REQUIRED is 401
    without a valid token.

    Flags: ROUTE_JSON_BODY the route takes a JSON object body (an empty body
    is {}); ROUTE_AUTH_RATE_LIMIT the route counts against the per-address
    AUTH_RATE_LIMIT_PER_MIN limit (login and register). Uploads
    (multipart/form-data, gateway/upload.c): ROUTE_MULTIPART takes exactly
    one `image` part, sent as the call's blob, its text parts as args
    (PUT /me/avatar); ROUTE_MULTIPART_IMAGES takes 1-10 `image` parts, each
    sent first to media images.upload, then calls the route's method with
    args.images = [{upload_id, alt_text}] (POST /posts).
*/
#ifndef GATEWAY_ROUTES_H_INCLUDED
#define GATEWAY_ROUTES_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { ROUTE_AUTH_NONE = 0, ROUTE_AUTH_OPTIONAL, ROUTE_AUTH_REQUIRED } route_auth_t;

#define ROUTE_JSON_BODY 0x1u
#define ROUTE_AUTH_RATE_LIMIT 0x2u
#define ROUTE_MULTIPART 0x4u
#define ROUTE_MULTIPART_IMAGES 0x8u

typedef struct {
    const char *spec;    // "GET /api/v1/users/{username}" (also the metrics label)
    const char *service; // broker service name
    const char *method;  // the service's method name
    route_auth_t auth;
    unsigned flags;
} route_t;

#define ROUTE_PARAM_NAME_MAX 32
#define ROUTE_ALLOW_MAX 128
#define ROUTE_PATH_MAX 2048 // longer request paths never match (404)

typedef enum {
    ROUTE_MATCH_OK = 0,
    ROUTE_MATCH_NOT_FOUND,          // 404
    ROUTE_MATCH_METHOD_NOT_ALLOWED, // 405, allow filled
    ROUTE_MATCH_BAD_PARAM,          // 400, bad_param names the parameter
} route_match_result_t;

typedef struct {
    const route_t *route;                 // OK (and BAD_PARAM): the matched row
    json_t *params;                       // OK: new object of decoded path params
    char allow[ROUTE_ALLOW_MAX];          // METHOD_NOT_ALLOWED: "GET, PATCH"
    char bad_param[ROUTE_PARAM_NAME_MAX]; // BAD_PARAM
} route_match_t;

//  The built-in table (routes.c); *count_out gets its length.
const route_t *routes_table(size_t *count_out);

//  Checks a table: every spec well formed (known method, one space, path
//  starting with '/', parameters of [a-z_] whole segments, no duplicate
//  parameter names), no duplicate method+pattern, a service and a method.
//  Returns 0, or -1 with the first problem in error (may be NULL).
int routes_validate(const route_t *table, size_t count, char *error, size_t error_size);

//  Matches method and the raw request path (no query string) against
//  table. Fills *match (params owned by the caller on OK; call
//  route_match_clear). Never fails on any input.
route_match_result_t routes_match(const route_t *table, size_t count, const char *method,
                                  const char *path, route_match_t *match);
void route_match_clear(route_match_t *match);

//  The pattern part of a spec ("/api/v1/users/{username}"). Borrowed.
const char *route_pattern(const route_t *route);

//  Percent-decodes src[0..length) into dst (room for length + 1 bytes is
//  always enough), '+' as a space when plus_is_space (query strings).
//  Returns the decoded length, or -1 on a malformed escape.
long url_decode(const char *src, size_t length, bool plus_is_space, char *dst);

//  Sets the query string's parameters in args as strings (decoded, '+' a
//  space; a key without '=' gets ""; a repeated key keeps the last value;
//  empty keys are skipped). Returns 0, or -1 when a key or value is
//  malformed (bad escape, invalid UTF-8, NUL) or there are more than
//  max_params, with the offending key (or "query") in bad_name.
int query_to_args(const char *query, json_t *args, size_t max_params, char *bad_name,
                  size_t bad_name_size);

#endif
