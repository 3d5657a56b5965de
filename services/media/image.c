/*  image: libvips pipeline for uploads (see image.h).

    Why vips_thumbnail_buffer and not decode-then-resize: it picks JPEG's
    and WebP's shrink-on-load, so a 6000 px photo is decoded at a fraction
    of its size, and it applies the EXIF orientation itself. "size: down"
    is what keeps small images from being upscaled. Saving with "strip"
    drops every metadata block, GPS included; the orientation is already
    baked into the pixels, so nothing is lost by dropping it.

    The source is decoded once: the full rendition is rendered into memory
    (which also makes a truncated or corrupt file fail here, with
    fail_on=error, rather than half-way through an encoder), and the
    thumbnail is made from that in-memory image.

    JPEGs are baseline with optimized Huffman tables, not progressive:
    on the bench's 1080 px photo (vips thumbnail, one thread, startup
    subtracted) progressive took about 63 ms to decode and encode, baseline
    37 ms, for a file 3% larger (605 KB against 587 KB); plain baseline
    without optimize_coding took 25 ms for a file 6.5% larger. Encoding is
    most of what an upload costs (docs/benchmarks.md), and the grid shows
    the thumbnail first anyway, which is what progressive rendering was
    for.

    The header check uses vips_image_new_from_buffer with sequential
    access: libvips reads the header lazily and decodes no pixel until an
    operation asks for them, so the pixel-count limit is enforced before
    any decoding work.

    Lossless path: a post's JPEG that is already within IMAGE_FULL_SIDE,
    with no EXIF rotation (orientation 1, libvips' reading of the EXIF
    block, the same one vips_thumbnail acts on) is not decoded and
    re-encoded for its full rendition: jpeg_lossless.c rewrites its DCT
    coefficients into a new baseline file with fitted Huffman tables and
    no metadata, and renders from the same coefficients a reduced picture
    from which libvips makes the thumbnail, so the entropy-coded data is
    decoded once. That is how phone apps upload (they resize before
    sending), it keeps the exact pixels (no second generation of JPEG
    loss), and on the bench's 1080 px photo it took the media process from
    about 46 ms to about 26 ms of CPU per post (docs/benchmarks.md).
    Whatever the lossless path declines or fails on (libjpeg error or
    warning, thumbnail failure) goes down the libvips path, which alone
    decides the 4xx answers, so bad input is answered as it always was.
    ICC profiles are dropped on both paths: the libvips one strips them
    without converting the pixels (checked with a P3-tagged JPEG: same
    pixel values out, no profile), and this one does the same.
*/
#include "image.h"
#include "jpeg_lossless.h"

#include <pthread.h>
#include <string.h>
#include <vips/vips.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_init_result = -1;

static void s_init(void)
{
    if (VIPS_INIT("media") == 0) {
        //  Every upload is different: an operation cache would only hold
        //  memory (and untrusted pixels) for nothing.
        vips_cache_set_max(0);
        s_init_result = 0;
    }
}

int image_init(void)
{
    pthread_once(&s_once, s_init);
    return s_init_result;
}

void image_shutdown(void)
{
    if (s_init_result == 0) vips_shutdown();
}

//  True for the loaders of the three formats we accept.
static int s_loader_accepted(const char *loader)
{
    return loader && (strcmp(loader, "VipsForeignLoadJpegBuffer") == 0 ||
                      strcmp(loader, "VipsForeignLoadPngBuffer") == 0 ||
                      strcmp(loader, "VipsForeignLoadWebpBuffer") == 0);
}

//  Encodes image (JPEG, or WebP when it has alpha) into out.
static image_status_t s_save(VipsImage *image, image_rendition_t *out)
{
    void *bytes = NULL;
    size_t length = 0;
    int rc;
    if (vips_image_hasalpha(image)) {
        rc = vips_webpsave_buffer(image, &bytes, &length, "Q", 85, "strip", TRUE, NULL);
        out->ext = "webp";
    } else {
        rc = vips_jpegsave_buffer(image, &bytes, &length, "Q", 85, "strip", TRUE, "optimize_coding",
                                  TRUE, NULL);
        out->ext = "jpg";
    }
    if (rc != 0) {
        vips_error_clear();
        return IMAGE_FAILED;
    }
    out->data = bytes;
    out->size = length;
    out->width = vips_image_get_width(image);
    out->height = vips_image_get_height(image);
    return IMAGE_OK;
}

//  A centred square of image (new reference in *out); a copy when it is
//  square already. 0 or -1.
static int s_square(VipsImage *image, VipsImage **out)
{
    int width = vips_image_get_width(image), height = vips_image_get_height(image);
    int side = width < height ? width : height;
    if (width == height) {
        g_object_ref(image);
        *out = image;
        return 0;
    }
    return vips_extract_area(image, out, (width - side) / 2, (height - side) / 2, side, side, NULL);
}

//  The lossless path (see the top comment): the full rendition rewritten
//  from the upload's coefficients, the thumbnail made by libvips from the
//  reduced picture libjpeg rendered from them. IMAGE_OK, or IMAGE_FAILED
//  with both renditions empty.
static image_status_t s_render_lossless(const void *data, size_t size, image_rendition_t *full,
                                        image_rendition_t *thumb)
{
    jpeg_lossless_t rewritten;
    if (jpeg_lossless_rewrite(data, size, IMAGE_FULL_SIDE, IMAGE_THUMB_SIDE, &rewritten) != 0)
        return IMAGE_FAILED;
    image_status_t status = IMAGE_FAILED;
    VipsImage *reduced = NULL, *tagged = NULL, *small = NULL;
    //  Renditions are released with g_free: hand over a g_malloc'd copy.
    full->data = g_memdup2(rewritten.data, rewritten.size);
    full->size = rewritten.size;
    full->width = rewritten.width;
    full->height = rewritten.height;
    full->ext = "jpg";
    reduced = vips_image_new_from_memory(
        rewritten.pixels,
        (size_t)rewritten.pixels_width * rewritten.pixels_height * rewritten.bands,
        rewritten.pixels_width, rewritten.pixels_height, rewritten.bands, VIPS_FORMAT_UCHAR);
    if (!reduced) goto cleanup;
    //  What the JPEG loader would have said, so the thumbnail and the
    //  encoder treat the bands as colour (or grey) and not as data.
    if (vips_copy(reduced, &tagged, "interpretation",
                  rewritten.bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB,
                  NULL) != 0)
        goto cleanup;
    if (vips_thumbnail_image(tagged, &small, IMAGE_THUMB_SIDE, "height", IMAGE_THUMB_SIDE, "size",
                             VIPS_SIZE_DOWN, NULL) != 0)
        goto cleanup;
    status = s_save(small, thumb);
cleanup:
    //  The vips images only borrow the pixels: unref them before freeing.
    if (small) g_object_unref(small);
    if (tagged) g_object_unref(tagged);
    if (reduced) g_object_unref(reduced);
    jpeg_lossless_clear(&rewritten);
    if (status != IMAGE_OK) {
        vips_error_clear();
        image_rendition_clear(full);
        image_rendition_clear(thumb);
    }
    return status;
}

static image_status_t s_render(const void *data, size_t size, image_kind_t kind,
                               image_rendition_t *full, image_rendition_t *thumb)
{
    image_status_t status = IMAGE_FAILED;
    VipsImage *decoded = NULL, *memory = NULL, *small = NULL, *square = NULL;
    int side = kind == IMAGE_KIND_AVATAR ? IMAGE_AVATAR_SIDE : IMAGE_FULL_SIDE;
    //  An avatar is cropped to fill the square ("crop": centre); a post
    //  keeps its whole frame inside the box.
    int rc = kind == IMAGE_KIND_AVATAR
                 ? vips_thumbnail_buffer((void *)data, size, &decoded, side, "height", side, "size",
                                         VIPS_SIZE_DOWN, "crop", VIPS_INTERESTING_CENTRE,
                                         "option_string", "fail_on=error", NULL)
                 : vips_thumbnail_buffer((void *)data, size, &decoded, side, "height", side, "size",
                                         VIPS_SIZE_DOWN, "option_string", "fail_on=error", NULL);
    if (rc != 0) goto cleanup;
    //  Decode now, once: errors in the file show up here.
    memory = vips_image_copy_memory(decoded);
    if (!memory) goto cleanup;
    if (kind == IMAGE_KIND_AVATAR) {
        //  A source smaller than the box is not upscaled, so the crop may
        //  not be square yet.
        if (s_square(memory, &square) != 0) goto cleanup;
        status = s_save(square, full);
        goto cleanup;
    }
    status = s_save(memory, full);
    if (status != IMAGE_OK) goto cleanup;
    status = IMAGE_FAILED;
    if (vips_thumbnail_image(memory, &small, IMAGE_THUMB_SIDE, "height", IMAGE_THUMB_SIDE, "size",
                             VIPS_SIZE_DOWN, NULL) != 0)
        goto cleanup;
    status = s_save(small, thumb);
cleanup:
    if (status != IMAGE_OK) vips_error_clear();
    if (decoded) g_object_unref(decoded);
    if (memory) g_object_unref(memory);
    if (small) g_object_unref(small);
    if (square) g_object_unref(square);
    return status;
}

image_status_t image_process(const void *data, size_t size, image_kind_t kind,
                             image_rendition_t *full, image_rendition_t *thumb)
{
    memset(full, 0, sizeof *full);
    memset(thumb, 0, sizeof *thumb);
    if (size > IMAGE_MAX_BYTES) return IMAGE_TOO_LARGE;
    if (image_init() != 0 || size == 0) return IMAGE_UNSUPPORTED;
    const char *loader = vips_foreign_find_load_buffer(data, size);
    if (!s_loader_accepted(loader)) {
        vips_error_clear();
        return IMAGE_UNSUPPORTED;
    }
    VipsImage *header =
        vips_image_new_from_buffer(data, size, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!header) {
        vips_error_clear();
        return IMAGE_UNSUPPORTED;
    }
    int width = vips_image_get_width(header), height = vips_image_get_height(header);
    double pixels = (double)width * height;
    //  A post's JPEG already within the full rendition's box, upright:
    //  the lossless path may take it.
    int lossless = kind == IMAGE_KIND_POST && strcmp(loader, "VipsForeignLoadJpegBuffer") == 0 &&
                   width <= IMAGE_FULL_SIDE && height <= IMAGE_FULL_SIDE &&
                   vips_image_get_orientation(header) == 1;
    g_object_unref(header);
    if (pixels > IMAGE_MAX_PIXELS) return IMAGE_TOO_LARGE;

    if (lossless && s_render_lossless(data, size, full, thumb) == IMAGE_OK) return IMAGE_OK;
    image_status_t status = s_render(data, size, kind, full, thumb);
    if (status != IMAGE_OK) {
        image_rendition_clear(full);
        image_rendition_clear(thumb);
    }
    return status;
}

void image_rendition_clear(image_rendition_t *rendition)
{
    if (rendition->data) g_free(rendition->data);
    memset(rendition, 0, sizeof *rendition);
}
