/*  msgjson: msgpack <-> jansson values.

    Inside a process every structured value (request args, reply bodies,
    event payloads) is a jansson tree; on the wire it is msgpack. The mapping
    is exact for what JSON can say: nil<->null, bool, int64<->integer,
    float<->real, str<->string, array, map with string keys<->object.
    Unsigned integers above INT64_MAX, binary, extension types, non-string
    map keys, invalid UTF-8 in strings and nesting deeper than
    MSGJSON_MAX_DEPTH are refused as malformed: the bus is an input like any
    other and never crashes a reader. Strings may hold NUL characters
    (jansson keeps lengths); callers that forbid NUL check for it.
*/
#ifndef MSGJSON_H_INCLUDED
#define MSGJSON_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>

#define MSGJSON_MAX_DEPTH 64

//  Appends the msgpack encoding of value to the packer. Returns 0, or -1 if
//  value holds something that cannot be encoded (never for a valid tree).
int msgjson_pack(msgpack_packer *packer, const json_t *value);

//  Encodes value into a new malloc'd buffer; *size_out gets its size.
//  Caller frees. Returns NULL on failure.
char *msgjson_encode(const json_t *value, size_t *size_out);

//  Decodes exactly one msgpack value that fills data[0..size). Returns a new
//  reference, or NULL on malformed input, trailing bytes or too much depth.
json_t *msgjson_decode(const void *data, size_t size);

//  Converts an already unpacked msgpack object. NULL on refused input.
json_t *msgjson_from_object(const msgpack_object *object);

#endif
