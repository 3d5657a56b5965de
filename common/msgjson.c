/*  msgjson: msgpack <-> jansson.

    Packing walks the jansson tree with msgpack-c's packer. Unpacking is
    two passes over untrusted bytes:

    1. s_check_shape() walks the encoding without allocating and verifies
       that every length and element count fits in the bytes that remain
       (each element takes at least one byte). msgpack-c allocates a
       container's element array from the declared count before reading
       the elements, so without this check 5 bytes claiming 2^32 elements
       would ask for ~100 GB. It also refuses the never-used byte 0xc1 and
       trailing bytes.
    2. msgpack-c unpacks into a zone, and s_to_json() converts, refusing
       what JSON cannot say (binary, extensions, integers above INT64_MAX,
       non-string keys, invalid UTF-8) and nesting beyond MSGJSON_MAX_DEPTH.

    msgjson_write_text() is a third way out of the unpacked value: straight
    to JSON text, for the gateway's replies, without a jansson tree. A page
    of 20 posts is some 600 values, and building, dumping and freeing their
    tree was a quarter of the gateway's CPU per GET /feed (perf, session 7).
    It refuses exactly what s_to_json() refuses and writes exactly what
    json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) writes for the tree
    s_to_json() would build, with one exception: a map that repeats a key
    is written as it is (JSON readers keep the last, as the tree would;
    services never send one, as they encode jansson objects).
    tests/fuzz/fuzz_msgjson.c checks both claims on every input.
*/
#include "msgjson.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  ---- packing -----------------------------------------------------------

int msgjson_pack(msgpack_packer *packer, const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_NULL:
        return msgpack_pack_nil(packer);
    case JSON_TRUE:
        return msgpack_pack_true(packer);
    case JSON_FALSE:
        return msgpack_pack_false(packer);
    case JSON_INTEGER:
        return msgpack_pack_int64(packer, json_integer_value(value));
    case JSON_REAL:
        return msgpack_pack_double(packer, json_real_value(value));
    case JSON_STRING: {
        size_t length = json_string_length(value);
        if (msgpack_pack_str(packer, length)) return -1;
        return msgpack_pack_str_body(packer, json_string_value(value), length);
    }
    case JSON_ARRAY: {
        size_t count = json_array_size(value);
        if (msgpack_pack_array(packer, count)) return -1;
        for (size_t i = 0; i < count; i++)
            if (msgjson_pack(packer, json_array_get(value, i))) return -1;
        return 0;
    }
    case JSON_OBJECT: {
        if (msgpack_pack_map(packer, json_object_size(value))) return -1;
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            size_t length = strlen(key);
            if (msgpack_pack_str(packer, length) || msgpack_pack_str_body(packer, key, length) ||
                msgjson_pack(packer, member))
                return -1;
        }
        return 0;
    }
    }
    return -1;
}

char *msgjson_encode(const json_t *value, size_t *size_out)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    if (!value || msgjson_pack(&packer, value) != 0) {
        msgpack_sbuffer_destroy(&buffer);
        return NULL;
    }
    //  An empty sbuffer has no allocation; callers always get a buffer.
    if (!buffer.data) {
        msgpack_sbuffer_destroy(&buffer);
        return NULL;
    }
    *size_out = buffer.size;
    return msgpack_sbuffer_release(&buffer);
}

//  ---- unpacking ---------------------------------------------------------

static uint64_t s_read_be(const uint8_t *p, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = (value << 8) | p[i];
    return value;
}

//  Returns 0 when data holds exactly one well-formed value whose declared
//  lengths and counts all fit in the input, else -1.
static int s_check_shape(const uint8_t *data, size_t size)
{
    size_t at = 0;
    uint64_t pending = 1; // values still to read
    while (pending > 0) {
        if (at >= size) return -1;
        uint8_t tag = data[at++];
        pending--;
        uint64_t skip = 0;     // payload bytes after the header
        uint64_t children = 0; // values the header announces
        int length_bytes = 0;  // bytes of big-endian length after the tag
        if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3) {
            // fixints, nil, bool: the tag is the whole value
        } else if (tag >= 0x80 && tag <= 0x8f) {
            children = 2 * (uint64_t)(tag & 0x0f);
        } else if (tag >= 0x90 && tag <= 0x9f) {
            children = tag & 0x0f;
        } else if (tag >= 0xa0 && tag <= 0xbf) {
            skip = tag & 0x1f;
        } else {
            switch (tag) {
            case 0xc4:
            case 0xd9:
                length_bytes = 1;
                break; // bin8, str8
            case 0xc5:
            case 0xda:
                length_bytes = 2;
                break; // bin16, str16
            case 0xc6:
            case 0xdb:
                length_bytes = 4;
                break; // bin32, str32
            case 0xc7:
                length_bytes = 1;
                skip = 1;
                break; // ext8 (+type)
            case 0xc8:
                length_bytes = 2;
                skip = 1;
                break; // ext16
            case 0xc9:
                length_bytes = 4;
                skip = 1;
                break; // ext32
            case 0xca:
                skip = 4;
                break; // float32
            case 0xcb:
                skip = 8;
                break; // float64
            case 0xcc:
            case 0xd0:
                skip = 1;
                break; // (u)int8
            case 0xcd:
            case 0xd1:
                skip = 2;
                break; // (u)int16
            case 0xce:
            case 0xd2:
                skip = 4;
                break; // (u)int32
            case 0xcf:
            case 0xd3:
                skip = 8;
                break; // (u)int64
            case 0xd4:
                skip = 2;
                break; // fixext1
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break; // fixext16
            case 0xdc:
            case 0xdd:
            case 0xde:
            case 0xdf: { // array/map 16/32
                int bytes = (tag == 0xdc || tag == 0xde) ? 2 : 4;
                if (size - at < (size_t)bytes) return -1;
                uint64_t count = s_read_be(data + at, bytes);
                at += (size_t)bytes;
                children = (tag >= 0xde) ? 2 * count : count;
                break;
            }
            default: // 0xc1: never used
                return -1;
            }
        }
        if (length_bytes) {
            if (size - at < (size_t)length_bytes) return -1;
            skip += s_read_be(data + at, length_bytes);
            at += (size_t)length_bytes;
        }
        if (skip > size - at) return -1;
        at += (size_t)skip;
        pending += children;
        if (pending > size - at) // every pending value needs at least one byte
            return -1;
    }
    return at == size ? 0 : -1;
}

static json_t *s_to_json(const msgpack_object *object, int depth)
{
    if (depth > MSGJSON_MAX_DEPTH) return NULL;
    switch (object->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(object->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (object->via.u64 > (uint64_t)INT64_MAX) return NULL;
        return json_integer((json_int_t)object->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)object->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        //  jansson refuses NaN and infinities (JSON cannot say them).
        return json_real(object->via.f64);
    case MSGPACK_OBJECT_STR:
        //  msgpack-c leaves ptr NULL for an empty string.
        return json_stringn(object->via.str.size ? object->via.str.ptr : "", object->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *array = json_array();
        for (uint32_t i = 0; i < object->via.array.size; i++) {
            json_t *item = s_to_json(&object->via.array.ptr[i], depth + 1);
            if (!item || json_array_append_new(array, item)) {
                json_decref(array);
                return NULL;
            }
        }
        return array;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *map = json_object();
        for (uint32_t i = 0; i < object->via.map.size; i++) {
            const msgpack_object_kv *pair = &object->via.map.ptr[i];
            if (pair->key.type != MSGPACK_OBJECT_STR) goto refuse;
            //  jansson keys are NUL-terminated: a key with a NUL is refused.
            size_t key_size = pair->key.via.str.size;
            const char *key = key_size ? pair->key.via.str.ptr : "";
            if (memchr(key, '\0', key_size)) goto refuse;
            json_t *member = s_to_json(&pair->val, depth + 1);
            if (!member) goto refuse;
            if (json_object_setn_new(map, key, key_size, member)) goto refuse;
            continue;
        refuse:
            json_decref(map);
            return NULL;
        }
        return map;
    }
    default: // BIN, EXT
        return NULL;
    }
}

json_t *msgjson_from_object(const msgpack_object *object)
{
    return s_to_json(object, 0);
}

int msgjson_unpack(const void *data, size_t size, msgpack_unpacked *unpacked)
{
    if (!data || size == 0 || s_check_shape(data, size) != 0) return -1;
    size_t offset = 0;
    if (msgpack_unpack_next(unpacked, data, size, &offset) != MSGPACK_UNPACK_SUCCESS ||
        offset != size)
        return -1;
    return 0;
}

json_t *msgjson_decode(const void *data, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    json_t *value = NULL;
    if (msgjson_unpack(data, size, &unpacked) == 0) value = s_to_json(&unpacked.data, 0);
    msgpack_unpacked_destroy(&unpacked);
    return value;
}

//  ---- writing JSON text -------------------------------------------------

//  Makes room for more bytes after what text holds. 0 or -1.
static int s_text_reserve(msgjson_text_t *text, size_t more)
{
    if (text->capacity - text->size >= more) return 0;
    size_t capacity = text->capacity ? text->capacity : 1024;
    while (capacity - text->size < more) {
        if (capacity > SIZE_MAX / 2) return -1;
        capacity *= 2;
    }
    char *grown = (char *)realloc(text->data, capacity);
    if (!grown) return -1;
    text->data = grown;
    text->capacity = capacity;
    return 0;
}

static int s_text_put(msgjson_text_t *text, const char *bytes, size_t size)
{
    if (s_text_reserve(text, size) != 0) return -1;
    memcpy(text->data + text->size, bytes, size);
    text->size += size;
    return 0;
}

//  The length of the UTF-8 sequence at bytes[0..left), or 0 when it is not
//  one jansson accepts (utf.c: no overlong forms, no surrogates, nothing
//  above U+10FFFF).
static size_t s_utf8_length(const uint8_t *bytes, size_t left)
{
    uint8_t first = bytes[0];
    size_t length;
    uint32_t value;
    if (first < 0x80) return 1;
    if (first < 0xc2) return 0; // a continuation byte, or an overlong 2-byte form
    if (first < 0xe0) {
        length = 2;
        value = first & 0x1f;
    } else if (first < 0xf0) {
        length = 3;
        value = first & 0x0f;
    } else if (first < 0xf5) {
        length = 4;
        value = first & 0x07;
    } else {
        return 0;
    }
    if (left < length) return 0;
    for (size_t i = 1; i < length; i++) {
        if ((bytes[i] & 0xc0) != 0x80) return 0;
        value = (value << 6) | (bytes[i] & 0x3f);
    }
    if ((length == 3 && value < 0x800) || (length == 4 && value < 0x10000)) return 0;
    if (value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return 0;
    return length;
}

//  A JSON string, escaped as jansson's dump_string() escapes it (compact,
//  no JSON_ENSURE_ASCII, no JSON_ESCAPE_SLASH). -1 on invalid UTF-8.
static int s_text_string(msgjson_text_t *text, const char *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *)data;
    //  Worst case: every byte a six-character \u00XX escape, plus quotes.
    if (size > (SIZE_MAX - 2) / 6 || s_text_reserve(text, size * 6 + 2) != 0) return -1;
    char *out = text->data + text->size;
    *out++ = '"';
    size_t at = 0;
    while (at < size) {
        uint8_t byte = bytes[at];
        if (byte >= 0x80) {
            size_t length = s_utf8_length(bytes + at, size - at);
            if (length == 0) return -1;
            memcpy(out, bytes + at, length);
            out += length;
            at += length;
            continue;
        }
        at++;
        if (byte >= 0x20 && byte != '"' && byte != '\\') {
            *out++ = (char)byte;
            continue;
        }
        *out++ = '\\';
        switch (byte) {
        case '"':
            *out++ = '"';
            break;
        case '\\':
            *out++ = '\\';
            break;
        case '\b':
            *out++ = 'b';
            break;
        case '\f':
            *out++ = 'f';
            break;
        case '\n':
            *out++ = 'n';
            break;
        case '\r':
            *out++ = 'r';
            break;
        case '\t':
            *out++ = 't';
            break;
        default: {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(out, "u00", 3);
            out[3] = hex[byte >> 4];
            out[4] = hex[byte & 0x0f];
            out += 5;
        }
        }
    }
    *out++ = '"';
    text->size = (size_t)(out - text->data);
    return 0;
}

//  A real as jansson writes it (%.17g, ".0" added to a whole number, the
//  exponent without '+' or leading zeros): jansson itself formats it, as
//  reals are rare on the bus and its rules are subtle. NaN and infinities
//  are refused (json_real refuses them).
static int s_text_real(msgjson_text_t *text, double value)
{
    json_t *real = json_real(value);
    char *formatted = real ? json_dumps(real, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(real);
    int rc = formatted ? s_text_put(text, formatted, strlen(formatted)) : -1;
    free(formatted);
    return rc;
}

static int s_text_value(msgjson_text_t *text, const msgpack_object *object, int depth)
{
    if (depth > MSGJSON_MAX_DEPTH) return -1;
    char number[24];
    switch (object->type) {
    case MSGPACK_OBJECT_NIL:
        return s_text_put(text, "null", 4);
    case MSGPACK_OBJECT_BOOLEAN:
        return object->via.boolean ? s_text_put(text, "true", 4) : s_text_put(text, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (object->via.u64 > (uint64_t)INT64_MAX) return -1;
        return s_text_put(text, number,
                          (size_t)snprintf(number, sizeof number, "%" PRIu64, object->via.u64));
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return s_text_put(text, number,
                          (size_t)snprintf(number, sizeof number, "%" PRId64, object->via.i64));
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return s_text_real(text, object->via.f64);
    case MSGPACK_OBJECT_STR:
        return s_text_string(text, object->via.str.ptr, object->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        if (s_text_put(text, "[", 1) != 0) return -1;
        for (uint32_t i = 0; i < object->via.array.size; i++) {
            if (i > 0 && s_text_put(text, ",", 1) != 0) return -1;
            if (s_text_value(text, &object->via.array.ptr[i], depth + 1) != 0) return -1;
        }
        return s_text_put(text, "]", 1);
    case MSGPACK_OBJECT_MAP:
        if (s_text_put(text, "{", 1) != 0) return -1;
        for (uint32_t i = 0; i < object->via.map.size; i++) {
            const msgpack_object_kv *pair = &object->via.map.ptr[i];
            //  As s_to_json: string keys only, and none with a NUL.
            if (pair->key.type != MSGPACK_OBJECT_STR) return -1;
            const char *key = pair->key.via.str.ptr;
            size_t key_size = pair->key.via.str.size;
            if (key_size && memchr(key, '\0', key_size)) return -1;
            if (i > 0 && s_text_put(text, ",", 1) != 0) return -1;
            if (s_text_string(text, key, key_size) != 0 || s_text_put(text, ":", 1) != 0 ||
                s_text_value(text, &pair->val, depth + 1) != 0)
                return -1;
        }
        return s_text_put(text, "}", 1);
    default: // BIN, EXT
        return -1;
    }
}

int msgjson_write_text(msgjson_text_t *text, const msgpack_object *object)
{
    size_t start = text->size;
    if (s_text_value(text, object, 0) == 0) return 0;
    text->size = start;
    return -1;
}

void msgjson_text_free(msgjson_text_t *text)
{
    free(text->data);
    *text = (msgjson_text_t){0};
}
