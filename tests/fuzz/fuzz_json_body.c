/*  fuzz_json_body: arbitrary bytes as an HTTP request body and headers.

    The body goes through the gateway's own conversion (jsonbody_parse):
    whatever it accepts must be an object no deeper than the limit that
    msgpack-encodes and decodes back to an equal tree, i.e. it can cross
    the bus. The same bytes, as text, also exercise the Content-Type check
    and the query-string parser.
*/
#include "jsonbody.h"
#include "msgjson.h"
#include "routes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *object = NULL;
    const char *reason = NULL;
    if (jsonbody_parse((const char *)data, size, &object, &reason) == 0) {
        if (!json_is_object(object) || jsonbody_depth(object, 100) > JSONBODY_MAX_DEPTH) abort();
        size_t packed_size = 0;
        char *packed = msgjson_encode(object, &packed_size);
        if (!packed) abort();
        json_t *back = msgjson_decode(packed, packed_size);
        if (!back || !json_equal(back, object)) abort();
        json_decref(back);
        free(packed);
        json_decref(object);
    } else if (object || !reason) {
        abort();
    }

    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    (void)jsonbody_content_type_ok(text);
    json_t *args = json_object();
    char bad[64];
    if (query_to_args(text, args, 64, bad, sizeof bad) == 0) {
        //  Every value is a string of valid UTF-8 (jansson checked it).
        const char *key;
        json_t *value;
        json_object_foreach(args, key, value)
        {
            if (!json_is_string(value)) abort();
        }
    }
    json_decref(args);
    free(text);
    return 0;
}
