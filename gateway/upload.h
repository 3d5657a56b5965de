/*  upload: multipart/form-data uploads (POST /posts, PUT /me/avatar).

    The body is parsed with civetweb's mg_handle_form_request, which hands
    each part over in chunks. An `image` part is streamed to an anonymous
    temporary file (made with mkstemp in UPLOAD_TMPDIR and unlinked at
    once, so nothing is left behind even by a crash); text parts are
    collected in memory up to UPLOAD_TEXT_MAX. So a request never holds
    more than one image whole in memory: an image is read back from its
    file only to be sent, one at a time.

    Limits, checked while the body streams in (API.md "limits"):
      - not multipart/form-data with a boundary          415 unsupported_media_type
      - an image part over 10 MiB                        413 too_large
      - a text part over UPLOAD_TEXT_MAX                 413 too_large
      - more than UPLOAD_IMAGES_MAX image parts          400 invalid (images)
      - more alt_text parts than images                  400 invalid (alt_text)
      - no image part                                    400 invalid (image)
      - a body that is not well-formed multipart         400 invalid
    The image's content is judged by the media service (415 when it is not
    a decodable JPEG, PNG or WebP, whatever its name or part Content-Type;
    413 over 40 megapixels).

    Then (routes.h):
      ROUTE_MULTIPART         exactly one image: route service.method with
                              the text parts as args and the image as blob.
      ROUTE_MULTIPART_IMAGES  one image: route service.method with the image
                              as blob and args {caption?, images:[{alt_text}],
                              ...the path, query and Idempotency-Key args};
                              2-10 images: media images.upload for each (the
                              image as blob), then route service.method with
                              args {caption?, images:[{upload_id, alt_text}],
                              ...}.
    The first error from a service is the answer.
*/
#ifndef GATEWAY_UPLOAD_H_INCLUDED
#define GATEWAY_UPLOAD_H_INCLUDED

#include "http.h"
#include "routes.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UPLOAD_IMAGE_MAX (10 * 1024 * 1024)
#define UPLOAD_IMAGES_MAX 10
#define UPLOAD_TEXT_MAX (64 * 1024)
#define UPLOAD_PARTS_MAX 64

//  Serves an upload route after the gateway checked the path and the
//  token: reads the form, calls the services, answers. args (borrowed)
//  holds the path and query parameters and the idempotency key.
void upload_handle(http_request_t *request, const route_t *route, int64_t viewer_id,
                   const json_t *args);

//  Gives the memory uploads freed back to the system when none is in
//  flight and one ended since the last call (the gateway's main loop
//  calls it every 100 ms).
void upload_trim_when_idle(void);

//  ---- the form state, apart from the connection (for the fuzz target) ----

typedef struct upload_form_t upload_form_t;

//  A form collecting at most max_images images into files in tmpdir.
upload_form_t *upload_form_new(const char *tmpdir, int max_images);
void upload_form_destroy(upload_form_t **self_p);

//  The three civetweb callbacks, usable directly (user_data is the form).
int upload_form_field_found(const char *key, const char *filename, char *path, size_t pathlen,
                            void *user_data);
int upload_form_field_get(const char *key, const char *value, size_t valuelen, void *user_data);
int upload_form_field_store(const char *path, long long file_size, void *user_data);

//  After parsing: 0 when the form is acceptable, else the HTTP status of
//  the first problem (400, 413) with a reason and the field it concerns.
int upload_form_status(const upload_form_t *self, const char **reason, const char **field);
//  Parts seen so far, images kept.
int upload_form_image_count(const upload_form_t *self);
//  The text fields: caption (NULL when absent) and the alt texts in order
//  (NULL when the image at index has none). Each is the raw bytes.
const char *upload_form_text(const upload_form_t *self, const char *name, size_t *size);
const char *upload_form_alt_text(const upload_form_t *self, int index, size_t *size);
//  Reads image index into a new malloc'd buffer (caller frees). 0 or -1.
int upload_form_read_image(const upload_form_t *self, int index, void **data, size_t *size);

#endif
