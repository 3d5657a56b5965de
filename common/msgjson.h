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

//  Unpacks exactly one msgpack value that fills data[0..size) into unpacked
//  (the caller inits and destroys it), with msgjson_decode's checks of the
//  declared lengths. Its strings point into data, which must outlive it.
//  0, or -1 on malformed input or trailing bytes.
int msgjson_unpack(const void *data, size_t size, msgpack_unpacked *unpacked);

//  A growing buffer of JSON text; {0} is empty. Not NUL-terminated.
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
} msgjson_text_t;

//  Appends the compact JSON text of object: what json_dumps(tree,
//  JSON_COMPACT | JSON_ENCODE_ANY) writes for msgjson_from_object(object),
//  without building the tree (a repeated map key is written as it is).
//  0, or -1 when msgjson_from_object would refuse object (text is then as
//  it was before the call).
int msgjson_write_text(msgjson_text_t *text, const msgpack_object *object);

void msgjson_text_free(msgjson_text_t *text);

#endif
