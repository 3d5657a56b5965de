/*  image: turning an uploaded file into the renditions the service stores.

    image_process() refuses, before decoding any pixel, what would cost too
    much or is not an image we take: more than IMAGE_MAX_BYTES (413), a
    header declaring more than IMAGE_MAX_PIXELS (413: a small file can
    declare a huge canvas), or anything libvips does not recognise as JPEG,
    PNG or WebP from its bytes, whatever the name or declared type (415).
    Then it decodes once with shrink-on-load, applies the EXIF orientation,
    never upscales, and re-encodes with every piece of metadata stripped
    (EXIF, GPS, XMP, ICC, comments). A post's JPEG already within
    IMAGE_FULL_SIDE and upright is not re-encoded but rewritten from its
    own DCT coefficients (same pixels, same metadata stripped; image.c).

    A post gets two renditions: the largest side at most IMAGE_FULL_SIDE
    and a thumbnail whose largest side is at most IMAGE_THUMB_SIDE. An
    avatar gets one: a centred square crop, at most IMAGE_AVATAR_SIDE.
    Images without transparency are saved as JPEG; images with an alpha
    channel as WebP, which keeps it (JPEG would flatten it to a colour).
*/
#ifndef IMAGE_H_INCLUDED
#define IMAGE_H_INCLUDED

#include <stddef.h>

#define IMAGE_MAX_BYTES (10 * 1024 * 1024)
#define IMAGE_MAX_PIXELS (40 * 1000 * 1000)
#define IMAGE_FULL_SIDE 1080
#define IMAGE_THUMB_SIDE 320
#define IMAGE_AVATAR_SIDE 320

typedef enum {
    IMAGE_OK = 0,
    IMAGE_TOO_LARGE,   // 413
    IMAGE_UNSUPPORTED, // 415
    IMAGE_FAILED,      // decoding failed midway: a corrupt file (415 as well)
} image_status_t;

typedef enum { IMAGE_KIND_POST = 0, IMAGE_KIND_AVATAR } image_kind_t;

typedef struct {
    void *data; // encoded bytes, owned: free with image_rendition_clear
    size_t size;
    int width;
    int height;
    const char *ext; // "jpg" or "webp" (static)
} image_rendition_t;

//  Starts libvips once per process (thread-safe). 0 or -1.
int image_init(void);
//  Releases libvips at exit, if image_init started it.
void image_shutdown(void);

//  Processes one uploaded file held in memory. On IMAGE_OK, full (and, for
//  a post, thumb) are filled and owned by the caller; thumb stays empty for
//  an avatar.
image_status_t image_process(const void *data, size_t size, image_kind_t kind,
                             image_rendition_t *full, image_rendition_t *thumb);

void image_rendition_clear(image_rendition_t *rendition);

#endif
