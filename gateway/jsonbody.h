/*  jsonbody: request bodies in, the args object out (API.md "bodies",
    "limits", "Strict JSON").

    The rules, checked in this order by the HTTP layer:
      - Content-Type absent or application/json (charset, if given, utf-8),
        else 415 unsupported_media_type;
      - at most the body limit (GATEWAY_MAX_BODY), else 413 too_large;
      - an empty body is {};
      - otherwise exactly one JSON object: valid UTF-8, no "\u0000" in any
        string, no duplicate keys, nesting at most JSONBODY_MAX_DEPTH deep,
        integers within int64, else 400 invalid.
*/
#ifndef GATEWAY_JSONBODY_H_INCLUDED
#define GATEWAY_JSONBODY_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JSONBODY_MAX_DEPTH 32

//  True when content_type (NULL = absent) is acceptable for a JSON body.
bool jsonbody_content_type_ok(const char *content_type);

//  Parses data[0..size) into a new object in *object_out. Returns 0, or -1
//  with a short reason for the client in *reason_out (static text).
int jsonbody_parse(const char *data, size_t size, json_t **object_out, const char **reason_out);

//  Depth of a value: 0 for a scalar, 1 for an empty container, ...;
//  stops counting at limit + 1.
int jsonbody_depth(const json_t *value, int limit);

#endif
