/*  jsonbody: strict JSON parsing for request bodies.

    jansson already refuses invalid UTF-8, "\u0000" (unless asked not to),
    trailing garbage and integers beyond int64; we add duplicate-key
    rejection (which value would a service see?), the top-level object
    rule and a depth limit well under msgjson's, so that anything that
    parses here also encodes onto the bus.
*/
#include "jsonbody.h"

#include <czmq.h>
#include <string.h>
#include <strings.h>

static bool s_is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool jsonbody_content_type_ok(const char *content_type)
{
    if (!content_type) return true;
    const char *p = content_type;
    while (s_is_space(*p))
        p++;
    static const char expected[] = "application/json";
    if (strncasecmp(p, expected, sizeof expected - 1) != 0) return false;
    p += sizeof expected - 1;
    while (s_is_space(*p))
        p++;
    if (*p == '\0') return true;
    //  Parameters: only charset, and only UTF-8 (quoted or not).
    while (*p == ';') {
        p++;
        while (s_is_space(*p))
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t name_length = (size_t)(p - name);
        while (name_length > 0 && s_is_space(name[name_length - 1]))
            name_length--;
        if (*p != '=') return false;
        p++;
        while (s_is_space(*p))
            p++;
        const char *value = p;
        while (*p && *p != ';')
            p++;
        size_t value_length = (size_t)(p - value);
        while (value_length > 0 && s_is_space(value[value_length - 1]))
            value_length--;
        if (value_length >= 2 && value[0] == '"' && value[value_length - 1] == '"') {
            value++;
            value_length -= 2;
        }
        if (name_length != 7 || strncasecmp(name, "charset", 7) != 0) return false;
        if (!((value_length == 5 && strncasecmp(value, "utf-8", 5) == 0) ||
              (value_length == 4 && strncasecmp(value, "utf8", 4) == 0)))
            return false;
    }
    return *p == '\0';
}

int jsonbody_depth(const json_t *value, int limit)
{
    if (!json_is_object(value) && !json_is_array(value)) return 0;
    if (limit < 0) return 1;
    int deepest = 0;
    if (json_is_object(value)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)value, key, child)
        {
            int depth = jsonbody_depth(child, limit - 1);
            if (depth > deepest) deepest = depth;
            if (deepest > limit) break;
        }
    } else {
        size_t index;
        json_t *child;
        json_array_foreach(value, index, child)
        {
            int depth = jsonbody_depth(child, limit - 1);
            if (depth > deepest) deepest = depth;
            if (deepest > limit) break;
        }
    }
    return deepest + 1;
}

//  Nesting depth of raw JSON text, counting brackets outside strings,
//  stopping as soon as it passes limit. jansson's parser recurses once per
//  level up to 2,048 levels, which overflows a civetweb thread's stack (and
//  ASan's larger frames sooner), so the limit is enforced on the bytes
//  before jansson sees them. Malformed text may pass here; jansson then
//  refuses it.
static bool s_raw_depth_ok(const char *data, size_t size, int limit)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < size; i++) {
        char c = data[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

int jsonbody_parse(const char *data, size_t size, json_t **object_out, const char **reason_out)
{
    *object_out = NULL;
    if (size == 0) {
        *object_out = json_object();
        return *object_out ? 0 : -1;
    }
    if (!s_raw_depth_ok(data, size, JSONBODY_MAX_DEPTH)) {
        *reason_out = "the body is nested too deeply";
        return -1;
    }
    json_error_t error;
    json_t *value = json_loadb(data, size, JSON_REJECT_DUPLICATES, &error);
    if (!value) {
        *reason_out = "the body is not valid JSON (UTF-8, no NUL characters, no duplicate keys)";
        return -1;
    }
    if (!json_is_object(value)) {
        json_decref(value);
        *reason_out = "the body must be a JSON object";
        return -1;
    }
    if (jsonbody_depth(value, JSONBODY_MAX_DEPTH) > JSONBODY_MAX_DEPTH) {
        json_decref(value);
        *reason_out = "the body is nested too deeply";
        return -1;
    }
    *object_out = value;
    return 0;
}
