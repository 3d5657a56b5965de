/*  errors: building and reading reply objects (see errors.h). */
#include "errors.h"

#include <czmq.h>

json_t *reply_ok(int status, json_t *body_stolen)
{
    json_t *reply = json_object();
    json_object_set_new(reply, "status", json_integer(status));
    json_object_set_new(reply, "body", body_stolen ? body_stolen : json_null());
    return reply;
}

json_t *reply_error(int status, const char *code, const char *message)
{
    json_t *reply = json_object();
    json_object_set_new(reply, "status", json_integer(status));
    json_object_set_new(reply, "error",
                        json_pack("{s:s, s:s}", "code", code, "message", message ? message : code));
    return reply;
}

json_t *reply_invalid(json_t *fields_stolen, const char *message)
{
    json_t *reply = reply_error(400, ERR_INVALID, message ? message : "the request is not valid");
    if (fields_stolen && json_object_size(fields_stolen) > 0)
        json_object_set_new(json_object_get(reply, "error"), "fields", fields_stolen);
    else
        json_decref(fields_stolen);
    return reply;
}

static const struct {
    const char *code;
    int status;
} s_codes[] = {
    {ERR_INVALID, 400},      {ERR_UNAUTHENTICATED, 401}, {ERR_INVALID_CREDENTIALS, 401},
    {ERR_FORBIDDEN, 403},    {ERR_NOT_FOUND, 404},       {ERR_METHOD_NOT_ALLOWED, 405},
    {ERR_CONFLICT, 409},     {ERR_TOO_LARGE, 413},       {ERR_UNSUPPORTED_MEDIA_TYPE, 415},
    {ERR_RATE_LIMITED, 429}, {ERR_INTERNAL, 500},        {ERR_UNAVAILABLE, 503},
    {ERR_TIMEOUT, 504},
};

int errors_status_for_code(const char *code)
{
    for (size_t i = 0; code && i < sizeof s_codes / sizeof s_codes[0]; i++)
        if (streq(code, s_codes[i].code)) return s_codes[i].status;
    return 500;
}

int reply_status(const json_t *reply)
{
    json_t *status = json_object_get(reply, "status");
    if (!json_is_integer(status)) return 500;
    json_int_t value = json_integer_value(status);
    return (value >= 100 && value <= 599) ? (int)value : 500;
}

json_t *reply_body(const json_t *reply)
{
    return json_object_get(reply, "body");
}

const char *reply_error_code(const json_t *reply)
{
    return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}
