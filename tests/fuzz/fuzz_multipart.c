/*  fuzz_multipart: the gateway's multipart form state (gateway/upload.c).

    civetweb's mg_handle_form_request splits the body into parts and hands
    them to upload.c's three callbacks; this target drives those callbacks
    directly with an arbitrary sequence of parts and chunks, as civetweb
    would for an arbitrary body, so the state machine (image files, text
    buffers, limits, the final verdict) is exercised without a socket.

    Input: a sequence of commands. 'F' + n + name[n]: a new part named name
    (names "image", "alt_text", "caption" are likely from the seeds); 'G' +
    n + bytes[n]: a chunk of the current part. Anything else stops. Then the
    verdict is read and every kept image and text is read back; the sizes
    must add up.
*/
#include "upload.h"

#include <civetweb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    upload_form_t *form = upload_form_new("/tmp", data && size && (data[0] & 1) ? 1 : 10);
    size_t at = size ? 1 : 0;
    size_t fed[UPLOAD_IMAGES_MAX] = {0};
    int current_image = -1;
    bool stopped = false;
    while (at + 2 <= size && !stopped) {
        uint8_t command = data[at];
        size_t length = data[at + 1];
        at += 2;
        if (length > size - at) length = size - at;
        if (command == 'F') {
            char name[256];
            memcpy(name, data + at, length);
            name[length] = '\0';
            char path[64];
            int rc = upload_form_field_found(name, NULL, path, sizeof path, form);
            if (rc == MG_FORM_FIELD_STORAGE_ABORT) stopped = true;
            current_image = rc == MG_FORM_FIELD_STORAGE_GET && strcmp(name, "image") == 0
                                ? upload_form_image_count(form) - 1
                                : -1;
        } else if (command == 'G') {
            int rc = upload_form_field_get("", (const char *)data + at, length, form);
            if (rc == MG_FORM_FIELD_HANDLE_ABORT) stopped = true;
            if (rc == MG_FORM_FIELD_HANDLE_GET && current_image >= 0) fed[current_image] += length;
        } else {
            break;
        }
        at += length;
    }
    const char *reason = NULL, *field = NULL;
    int status = upload_form_status(form, &reason, &field);
    if (status != 0 && status != 400 && status != 413 && status != 503) abort();
    if (status != 0 && !reason) abort();
    int images = upload_form_image_count(form);
    if (images < 0 || images > UPLOAD_IMAGES_MAX) abort();
    for (int i = 0; i < images && status == 0; i++) {
        void *bytes = NULL;
        size_t got = 0;
        if (upload_form_read_image(form, i, &bytes, &got) != 0) abort();
        if (got != fed[i] || got > UPLOAD_IMAGE_MAX) abort();
        free(bytes);
        size_t alt_size = 0;
        const char *alt = upload_form_alt_text(form, i, &alt_size);
        if (alt && (alt_size > UPLOAD_TEXT_MAX || alt[alt_size] != '\0')) abort();
    }
    size_t caption_size = 0;
    const char *caption = upload_form_text(form, "caption", &caption_size);
    if (caption && caption[caption_size] != '\0') abort();
    upload_form_destroy(&form);
    return 0;
}
