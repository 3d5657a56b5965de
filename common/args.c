/*  args: strict argument getters (see args.h for the contract).

    Messages in `fields` are short human sentences; the first problem found
    for a field wins, so a field is never named twice.
*/
#include "args.h"
#include "ids.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void s_flag(json_t *fields, const char *name, const char *message)
{
    if (fields && !json_object_get(fields, name))
        json_object_set_new(fields, name, json_string(message));
}

long utf8_codepoints(const char *text, size_t length)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *end = p + length;
    long count = 0;
    while (p < end) {
        unsigned char c = *p;
        int extra;
        uint32_t codepoint;
        if (c == 0) return -1;
        if (c < 0x80) {
            extra = 0;
            codepoint = c;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1;
            codepoint = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            codepoint = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            codepoint = c & 0x07;
        } else {
            return -1;
        }
        if (end - p <= extra) return -1;
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80) return -1;
            codepoint = (codepoint << 6) | (p[i] & 0x3f);
        }
        //  Overlong forms, surrogates and values past U+10FFFF are invalid.
        if ((extra == 1 && codepoint < 0x80) || (extra == 2 && codepoint < 0x800) ||
            (extra == 3 && codepoint < 0x10000) || codepoint > 0x10ffff ||
            (codepoint >= 0xd800 && codepoint <= 0xdfff))
            return -1;
        p += extra + 1;
        count++;
    }
    return count;
}

static json_t *s_present(const json_t *args, const char *name, bool required, json_t *fields,
                         int *result)
{
    json_t *value = json_object_get(args, name);
    if (!value) {
        *result = required ? -1 : 0;
        if (required) s_flag(fields, name, "is required");
        return NULL;
    }
    *result = 1;
    return value;
}

int args_string(const json_t *args, const char *name, bool required, size_t min_codepoints,
                size_t max_codepoints, const char **out, json_t *fields)
{
    int result;
    json_t *value = s_present(args, name, required, fields, &result);
    if (!value) return result;
    if (!json_is_string(value)) {
        s_flag(fields, name, "must be a string");
        return -1;
    }
    long count = utf8_codepoints(json_string_value(value), json_string_length(value));
    if (count < 0) {
        s_flag(fields, name, "must be valid UTF-8 text without NUL characters");
        return -1;
    }
    if ((size_t)count < min_codepoints || (size_t)count > max_codepoints) {
        char message[96];
        if (min_codepoints > 0 && (size_t)count < min_codepoints && min_codepoints == 1)
            snprintf(message, sizeof message, "must not be empty");
        else
            snprintf(message, sizeof message, "must be %zu to %zu characters long", min_codepoints,
                     max_codepoints);
        s_flag(fields, name, message);
        return -1;
    }
    *out = json_string_value(value);
    return 1;
}

int args_bool(const json_t *args, const char *name, bool required, bool *out, json_t *fields)
{
    int result;
    json_t *value = s_present(args, name, required, fields, &result);
    if (!value) return result;
    if (!json_is_boolean(value)) {
        s_flag(fields, name, "must be true or false");
        return -1;
    }
    *out = json_is_true(value);
    return 1;
}

int args_int(const json_t *args, const char *name, bool required, int64_t min, int64_t max,
             int64_t *out, json_t *fields)
{
    int result;
    json_t *value = s_present(args, name, required, fields, &result);
    if (!value) return result;
    if (!json_is_integer(value) || json_integer_value(value) < min ||
        json_integer_value(value) > max) {
        char message[96];
        snprintf(message, sizeof message, "must be an integer from %" PRId64 " to %" PRId64, min,
                 max);
        s_flag(fields, name, message);
        return -1;
    }
    *out = json_integer_value(value);
    return 1;
}

int args_id(const json_t *args, const char *name, bool required, int64_t *out, json_t *fields)
{
    int result;
    json_t *value = s_present(args, name, required, fields, &result);
    if (!value) return result;
    if (!json_is_string(value)) {
        s_flag(fields, name, "must be an id (a string of digits)");
        return -1;
    }
    if (json_string_length(value) > 20 || !ids_parse(json_string_value(value), out)) {
        s_flag(fields, name, "is not a valid id");
        return -1;
    }
    return 1;
}

int args_limit(const json_t *args, int *out, json_t *fields)
{
    json_t *value = json_object_get(args, "limit");
    long long limit;
    if (!value) {
        *out = 20;
        return 0;
    }
    if (json_is_integer(value)) {
        limit = json_integer_value(value);
    } else if (json_is_string(value)) {
        const char *text = json_string_value(value);
        size_t length = json_string_length(value);
        if (length == 0 || strspn(text, "0123456789") != length) {
            s_flag(fields, "limit", "must be a positive integer");
            return -1;
        }
        //  Any positive integer above 100 is clamped (API.md), however
        //  many digits it has: past 18 significant ones it cannot be small.
        size_t zeros = strspn(text, "0");
        limit = length - zeros > 18 ? 101 : strtoll(text, NULL, 10);
    } else {
        s_flag(fields, "limit", "must be a positive integer");
        return -1;
    }
    if (limit <= 0) {
        s_flag(fields, "limit", "must be a positive integer");
        return -1;
    }
    *out = limit > 100 ? 100 : (int)limit;
    return 1;
}
