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
*/
#include "msgjson.h"

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

json_t *msgjson_decode(const void *data, size_t size)
{
    if (!data || size == 0 || s_check_shape(data, size) != 0) return NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    json_t *value = NULL;
    if (msgpack_unpack_next(&unpacked, data, size, &offset) == MSGPACK_UNPACK_SUCCESS &&
        offset == size)
        value = s_to_json(&unpacked.data, 0);
    msgpack_unpacked_destroy(&unpacked);
    return value;
}
