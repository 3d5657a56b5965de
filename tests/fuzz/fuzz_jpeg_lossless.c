/*  fuzz_jpeg_lossless: arbitrary bytes as an uploaded post's JPEG.

    jpeg_lossless_rewrite() runs on every upload before libvips sees it:
    libjpeg's parsing and decoding, our marker walk over a baseline file
    (s_copy_scans) and the transcoding of any other. It must never crash,
    leak or hang, and what it accepts must be a file it accepts again
    unchanged: the second pass over its own output walks our JFIF header
    and the kept segments, so it gives the same bytes, whichever way the
    first pass went. The seed corpus holds small baseline (with and
    without restart markers), progressive and grayscale files.
*/
#include "jpeg_lossless.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_SIDE 1080
#define FUZZ_MIN_SIDE 320

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jpeg_lossless_t first;
    if (jpeg_lossless_rewrite(data, size, FUZZ_MAX_SIDE, FUZZ_MIN_SIDE, &first) != 0) {
        if (first.data || first.pixels) abort(); // a refusal leaves nothing behind
        return 0;
    }
    if (first.size < 4 || first.data[0] != 0xff || first.data[1] != 0xd8 ||
        first.data[first.size - 2] != 0xff || first.data[first.size - 1] != 0xd9)
        abort();
    if (first.width < 1 || first.width > FUZZ_MAX_SIDE || first.height < 1 ||
        first.height > FUZZ_MAX_SIDE || !first.pixels || first.pixels_width > first.width ||
        first.pixels_height > first.height || (first.bands != 1 && first.bands != 3))
        abort();
    jpeg_lossless_t second;
    if (jpeg_lossless_rewrite(first.data, first.size, FUZZ_MAX_SIDE, FUZZ_MIN_SIDE, &second) != 0)
        abort();
    if (second.size != first.size || memcmp(second.data, first.data, first.size) != 0) abort();
    jpeg_lossless_clear(&second);
    jpeg_lossless_clear(&first);
    return 0;
}
