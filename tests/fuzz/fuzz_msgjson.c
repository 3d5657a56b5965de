/*  fuzz_msgjson: arbitrary bytes as msgpack -> jansson -> msgpack -> jansson.

    Whatever msgjson_decode() accepts must encode again, decode to an equal
    tree, and encode to the same bytes the second time (the encoder is
    canonical). Anything else (a crash, a leak, a sanitizer report, an
    accepted value that does not round-trip) is a bug.
*/
#include "msgjson.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *first = msgjson_decode(data, size);
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
