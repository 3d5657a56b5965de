/*  args: strict validation of request arguments (API.md "Strict JSON").

    A field of the wrong JSON type is an error naming that field; nothing is
    coerced. Text limits count Unicode code points; a NUL anywhere in text is
    invalid. Each getter records what is wrong in `fields` (a JSON object the
    caller owns) under the field's name and keeps going, so one reply can
    name every bad field: call them all, then reply_invalid() if
    json_object_size(fields) > 0.

    Return values: 1 the field is present and valid (out set), 0 absent and
    not required (out untouched), -1 invalid or required-but-absent (recorded
    in fields). Strings returned are borrowed from args.
*/
#ifndef ARGS_H_INCLUDED
#define ARGS_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int args_string(const json_t *args, const char *name, bool required, size_t min_codepoints,
                size_t max_codepoints, const char **out, json_t *fields);
int args_bool(const json_t *args, const char *name, bool required, bool *out, json_t *fields);
//  A JSON integer in [min, max] (internal methods; never a string of digits).
int args_int(const json_t *args, const char *name, bool required, int64_t min, int64_t max,
             int64_t *out, json_t *fields);
//  An id sent as a decimal string (ids are JSON strings at the API).
int args_id(const json_t *args, const char *name, bool required, int64_t *out, json_t *fields);

//  The list "limit": absent -> 20; a positive integer (or a string of
//  digits, as query parameters arrive) -> min(value, 100); else -1.
int args_limit(const json_t *args, int *out, json_t *fields);

//  Counts code points of valid UTF-8; returns -1 on invalid UTF-8 or NUL.
long utf8_codepoints(const char *text, size_t length);

#endif
