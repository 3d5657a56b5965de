/*  image: libvips pipeline for uploads (see image.h).

    Why vips_thumbnail_buffer and not decode-then-resize: it picks JPEG's
    and WebP's shrink-on-load, so a 6000 px photo is decoded at a fraction
    of its size, and it applies the EXIF orientation itself. "size: down"
    is what keeps small images from being upscaled. Saving with "strip"
    drops every metadata block, GPS included; the orientation is already
    baked into the pixels, so nothing is lost by dropping it.

    The header check uses vips_image_new_from_buffer with sequential
    access: libvips reads the header lazily and decodes no pixel until an
    operation asks for them, so the pixel-count limit is enforced before
    any decoding work.
*/
#include "image.h"

#include <pthread.h>
#include <string.h>
#include <vips/vips.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_init_result = -1;

static void s_init(void)
{
    if (VIPS_INIT("media") == 0) {
        //  Uploads are untrusted: keep libvips to its fuzzed, safe loaders.
        vips_cache_set_max(0);
        s_init_result = 0;
    }
}

int image_init(void)
{
    pthread_once(&s_once, s_init);
    return s_init_result;
}

//  True for the loaders of the three formats we accept.
static int s_loader_accepted(const char *loader)
{
    return loader && (strcmp(loader, "VipsForeignLoadJpegBuffer") == 0 ||
                      strcmp(loader, "VipsForeignLoadPngBuffer") == 0 ||
                      strcmp(loader, "VipsForeignLoadWebpBuffer") == 0);
}

static image_status_t s_render(const void *data, size_t size, int side, image_rendition_t *out)
{
    VipsImage *image = NULL;
    if (vips_thumbnail_buffer((void *)data, size, &image, side, "height", side, "size",
                              VIPS_SIZE_DOWN, "fail_on", VIPS_FAIL_ON_ERROR, NULL) != 0) {
        vips_error_clear();
        return IMAGE_FAILED;
    }
    void *bytes = NULL;
    size_t length = 0;
    int rc = vips_jpegsave_buffer(image, &bytes, &length, "Q", 85, "strip", TRUE, "optimize_coding",
                                  TRUE, "interlace", TRUE, NULL);
    if (rc != 0) {
        vips_error_clear();
        g_object_unref(image);
        return IMAGE_FAILED;
    }
    out->data = bytes;
    out->size = length;
    out->width = vips_image_get_width(image);
    out->height = vips_image_get_height(image);
    g_object_unref(image);
    return IMAGE_OK;
}

image_status_t image_process(const void *data, size_t size, image_rendition_t *full,
                             image_rendition_t *thumb)
{
    memset(full, 0, sizeof *full);
    memset(thumb, 0, sizeof *thumb);
    if (size > IMAGE_MAX_BYTES) return IMAGE_TOO_LARGE;
    if (image_init() != 0 || size == 0) return IMAGE_UNSUPPORTED;
    if (!s_loader_accepted(vips_foreign_find_load_buffer(data, size))) {
        vips_error_clear();
        return IMAGE_UNSUPPORTED;
    }
    VipsImage *header =
        vips_image_new_from_buffer(data, size, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!header) {
        vips_error_clear();
        return IMAGE_UNSUPPORTED;
    }
    double pixels = (double)vips_image_get_width(header) * vips_image_get_height(header);
    g_object_unref(header);
    if (pixels > IMAGE_MAX_PIXELS) return IMAGE_TOO_LARGE;

    image_status_t status = s_render(data, size, IMAGE_FULL_SIDE, full);
    if (status == IMAGE_OK) status = s_render(data, size, IMAGE_THUMB_SIDE, thumb);
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
