/*  fuzz_msgjson: arbitrary bytes as msgpack -> jansson -> msgpack -> jansson,
    and as msgpack -> JSON text (msgjson_write_text).

    Whatever msgjson_decode() accepts must encode again, decode to an equal
    tree, and encode to the same bytes the second time (the encoder is
    canonical). The text writer must accept exactly what msgjson_decode()
    accepts, its text must parse back to an equal tree, and it must be
    byte for byte json_dumps() of that tree unless a map repeats a key (the
    one difference msgjson.h allows). Anything else (a crash, a leak, a
    sanitizer report, an accepted value that does not round-trip) is a bug.
*/
#include "msgjson.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  True when a map anywhere in object repeats a key.
static bool s_repeats_a_key(const msgpack_object *object)
{
    if (object->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < object->via.array.size; i++)
            if (s_repeats_a_key(&object->via.array.ptr[i])) return true;
    } else if (object->type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_kv *pairs = object->via.map.ptr;
        for (uint32_t i = 0; i < object->via.map.size; i++) {
            if (s_repeats_a_key(&pairs[i].val)) return true;
            for (uint32_t j = 0; j < i; j++)
                if (msgpack_object_equal(pairs[i].key, pairs[j].key)) return true;
        }
    }
    return false;
}

static void s_check_text(const uint8_t *data, size_t size, const json_t *tree)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    if (msgjson_unpack(data, size, &unpacked) != 0) {
        if (tree) abort(); // decode accepted what unpack refused
        msgpack_unpacked_destroy(&unpacked);
        return;
    }
    msgjson_text_t text = {0};
    int rc = msgjson_write_text(&text, &unpacked.data);
    if ((rc == 0) != (tree != NULL)) abort();
    if (tree) {
        json_t *parsed = json_loadb(text.data, text.size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!parsed || !json_equal(parsed, tree)) abort();
        json_decref(parsed);
        char *dumped = json_dumps(tree, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dumped) abort();
        bool same = strlen(dumped) == text.size && memcmp(dumped, text.data, text.size) == 0;
        if (!same && !s_repeats_a_key(&unpacked.data)) abort();
        free(dumped);
    } else if (text.size != 0) {
        abort(); // a refused value leaves the text as it was
    }
    msgjson_text_free(&text);
    msgpack_unpacked_destroy(&unpacked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *first = msgjson_decode(data, size);
    s_check_text(data, size, first);
    if (!first) return 0;
    size_t size1 = 0, size2 = 0;
    char *bytes1 = msgjson_encode(first, &size1);
    if (!bytes1) abort();
    json_t *second = msgjson_decode(bytes1, size1);
    if (!second || !json_equal(first, second)) abort();
    char *bytes2 = msgjson_encode(second, &size2);
    if (!bytes2 || size1 != size2 || memcmp(bytes1, bytes2, size1) != 0) abort();
    free(bytes1);
    free(bytes2);
    json_decref(first);
    json_decref(second);
    return 0;
}
