/*  errors: the error codes of API.md and the reply objects services return.

    A service handler answers with a reply object (jansson), which the worker
    packs as the msgpack reply envelope of DESIGN.md decision 2:

        {"status": 200, "body": <any>}                       success
        {"status": 400, "error": {"code": "invalid",
                                  "message": "…",
                                  "fields": {"name": "…"}}}  failure

    The gateway turns "body" into the HTTP body and "error" into the error
    envelope {"error": {...}} with the same status. Functions that take a
    json_t * named *_stolen take ownership of it (jansson's "new" reference
    convention); everything returned is owned by the caller.
*/
#ifndef ERRORS_H_INCLUDED
#define ERRORS_H_INCLUDED

#include <jansson.h>

#define ERR_INVALID "invalid"                               // 400
#define ERR_UNAUTHENTICATED "unauthenticated"               // 401
#define ERR_INVALID_CREDENTIALS "invalid_credentials"       // 401 login, 403 password checks
#define ERR_FORBIDDEN "forbidden"                           // 403
#define ERR_NOT_FOUND "not_found"                           // 404
#define ERR_METHOD_NOT_ALLOWED "method_not_allowed"         // 405
#define ERR_CONFLICT "conflict"                             // 409
#define ERR_TOO_LARGE "too_large"                           // 413
#define ERR_UNSUPPORTED_MEDIA_TYPE "unsupported_media_type" // 415
#define ERR_RATE_LIMITED "rate_limited"                     // 429
#define ERR_INTERNAL "internal"                             // 500 (a bug or a broken dependency)
#define ERR_UNAVAILABLE "unavailable"                       // 503
#define ERR_TIMEOUT "timeout"                               // 504

//  {"status": status, "body": body}. body may be NULL (no body, e.g. 204).
json_t *reply_ok(int status, json_t *body_stolen);

//  {"status": status, "error": {"code", "message"}}.
json_t *reply_error(int status, const char *code, const char *message);

//  400 invalid with the fields object (NULL or empty means no "fields").
json_t *reply_invalid(json_t *fields_stolen, const char *message);

//  The default status of a code above (500 for one it does not know).
int errors_status_for_code(const char *code);

//  Accessors; safe on malformed replies (status 500, NULL body).
int reply_status(const json_t *reply);
json_t *reply_body(const json_t *reply);           // borrowed
const char *reply_error_code(const json_t *reply); // borrowed, NULL on success

#endif
