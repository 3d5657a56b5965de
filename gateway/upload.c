/*  upload: multipart/form-data uploads (see upload.h for the rules).

    The form state (upload_form_t) is kept apart from the connection: the
    three civetweb callbacks only append bytes to the part being read, so
    the fuzz target can drive them without a socket, and the request
    handler below only decides what to do with a finished form.

    Each image part gets an anonymous file: mkstemp, then unlink at once;
    the descriptor is the only handle, and closing it frees the space. A
    part over the limit stops the parse at once (MG_FORM_FIELD_HANDLE_ABORT)
    instead of reading the rest: what is left of the body is then drained
    up to UPLOAD_DRAIN_MAX so the client can read the 413, or the
    connection is closed after the answer.
*/
#include "upload.h"
#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "metrics.h"

#include <civetweb.h>
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

//  Whole body: every image at its limit, their part headers, the text.
#define UPLOAD_BODY_MAX                                                                            \
    ((unsigned long long)UPLOAD_IMAGES_MAX * (UPLOAD_IMAGE_MAX + 16384) + 4 * UPLOAD_TEXT_MAX)
#define UPLOAD_DRAIN_MAX (16 * 1024 * 1024)

typedef enum { PART_NONE = 0, PART_IMAGE, PART_ALT, PART_TEXT } part_kind_t;

typedef struct {
    char *name;
    char *data;
    size_t size;
} text_part_t;

struct upload_form_t {
    char *tmpdir;
    int max_images;
    int fds[UPLOAD_IMAGES_MAX]; // one anonymous file per image
    size_t sizes[UPLOAD_IMAGES_MAX];
    int images;
    text_part_t alts[UPLOAD_IMAGES_MAX];
    int alt_count;
    text_part_t texts[UPLOAD_PARTS_MAX];
    int text_count;
    int parts;
    part_kind_t current;
    text_part_t *current_text; // the alt or text part being read
    int status;                // 0, or the HTTP status of the first problem
    const char *reason;
    const char *field;
};

//  ---------------------------------------------------------------------
//  The form

upload_form_t *upload_form_new(const char *tmpdir, int max_images)
{
    upload_form_t *self = (upload_form_t *)zmalloc(sizeof *self);
    self->tmpdir = strdup(tmpdir && *tmpdir ? tmpdir : "/tmp");
    self->max_images = max_images < 1                   ? 1
                       : max_images > UPLOAD_IMAGES_MAX ? UPLOAD_IMAGES_MAX
                                                        : max_images;
    for (int i = 0; i < UPLOAD_IMAGES_MAX; i++)
        self->fds[i] = -1;
    return self;
}

static void s_text_clear(text_part_t *part)
{
    free(part->name);
    free(part->data);
    memset(part, 0, sizeof *part);
}

void upload_form_destroy(upload_form_t **self_p)
{
    upload_form_t *self = *self_p;
    if (!self) return;
    for (int i = 0; i < UPLOAD_IMAGES_MAX; i++)
        if (self->fds[i] >= 0) close(self->fds[i]);
    for (int i = 0; i < UPLOAD_IMAGES_MAX; i++)
        s_text_clear(&self->alts[i]);
    for (int i = 0; i < UPLOAD_PARTS_MAX; i++)
        s_text_clear(&self->texts[i]);
    free(self->tmpdir);
    free(self);
    *self_p = NULL;
}

//  Records the first problem and tells civetweb to stop.
static int s_fail(upload_form_t *self, int status, const char *reason, const char *field)
{
    if (!self->status) {
        self->status = status;
        self->reason = reason;
        self->field = field;
    }
    self->current = PART_NONE;
    return MG_FORM_FIELD_STORAGE_ABORT;
}

//  An anonymous temporary file: -1 on failure.
static int s_temp_file(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/gateway-upload-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd >= 0) unlink(path);
    return fd;
}

int upload_form_field_found(const char *key, const char *filename, char *path, size_t pathlen,
                            void *user_data)
{
    (void)filename; // the name says nothing about the content
    (void)path;
    (void)pathlen;
    upload_form_t *self = (upload_form_t *)user_data;
    self->current = PART_NONE;
    self->current_text = NULL;
    if (self->status) return MG_FORM_FIELD_STORAGE_ABORT;
    if (++self->parts > UPLOAD_PARTS_MAX)
        return s_fail(self, 400, "too many parts in the form", "form");
    if (!key) key = "";
    if (streq(key, "image")) {
        if (self->images >= self->max_images)
            return s_fail(self, 400,
                          self->max_images == 1 ? "send exactly one image"
                                                : "a post holds at most 10 images",
                          self->max_images == 1 ? "image" : "images");
        int fd = s_temp_file(self->tmpdir);
        if (fd < 0) {
            log_error("upload: cannot create a temporary file in %s: %s", self->tmpdir,
                      strerror(errno));
            return s_fail(self, 503, "cannot take uploads right now", NULL);
        }
        self->fds[self->images] = fd;
        self->sizes[self->images] = 0;
        self->images++;
        self->current = PART_IMAGE;
        return MG_FORM_FIELD_STORAGE_GET;
    }
    text_part_t *part = NULL;
    if (streq(key, "alt_text")) {
        if (self->alt_count >= UPLOAD_IMAGES_MAX)
            return s_fail(self, 400, "one alt_text per image, at most 10", "alt_text");
        part = &self->alts[self->alt_count++];
        self->current = PART_ALT;
    } else {
        //  Another text field: the last of a repeated name wins.
        for (int i = 0; i < self->text_count && !part; i++)
            if (streq(self->texts[i].name, key)) part = &self->texts[i];
        if (!part) part = &self->texts[self->text_count++];
        s_text_clear(part);
        part->name = strdup(key);
        self->current = PART_TEXT;
    }
    part->data = (char *)zmalloc(1);
    part->size = 0;
    self->current_text = part;
    return MG_FORM_FIELD_STORAGE_GET;
}

int upload_form_field_get(const char *key, const char *value, size_t valuelen, void *user_data)
{
    (void)key; // empty for every chunk but the first: the state knows the part
    upload_form_t *self = (upload_form_t *)user_data;
    if (self->status) return MG_FORM_FIELD_HANDLE_ABORT;
    if (self->current == PART_IMAGE) {
        int index = self->images - 1;
        if (self->sizes[index] + valuelen > UPLOAD_IMAGE_MAX) {
            s_fail(self, 413, "an image is over 10 MiB", "image");
            return MG_FORM_FIELD_HANDLE_ABORT;
        }
        size_t done = 0;
        while (done < valuelen) {
            ssize_t written = write(self->fds[index], value + done, valuelen - done);
            if (written < 0 && errno == EINTR) continue;
            if (written <= 0) {
                log_error("upload: cannot write a temporary file: %s", strerror(errno));
                s_fail(self, 503, "cannot take uploads right now", NULL);
                return MG_FORM_FIELD_HANDLE_ABORT;
            }
            done += (size_t)written;
        }
        self->sizes[index] += valuelen;
    } else if (self->current == PART_ALT || self->current == PART_TEXT) {
        text_part_t *part = self->current_text;
        if (part->size + valuelen > UPLOAD_TEXT_MAX) {
            s_fail(self, 413, "a text field is too large",
                   self->current == PART_ALT ? "alt_text" : "form");
            return MG_FORM_FIELD_HANDLE_ABORT;
        }
        char *grown = realloc(part->data, part->size + valuelen + 1);
        if (!grown) {
            s_fail(self, 503, "out of memory", NULL);
            return MG_FORM_FIELD_HANDLE_ABORT;
        }
        part->data = grown;
        if (valuelen) memcpy(part->data + part->size, value, valuelen);
        part->size += valuelen;
        part->data[part->size] = '\0';
    }
    return MG_FORM_FIELD_HANDLE_GET;
}

int upload_form_field_store(const char *path, long long file_size, void *user_data)
{
    //  Never asked for (no part is stored by civetweb itself).
    (void)path;
    (void)file_size;
    (void)user_data;
    return MG_FORM_FIELD_HANDLE_NEXT;
}

int upload_form_status(const upload_form_t *self, const char **reason, const char **field)
{
    *reason = self->reason;
    *field = self->field;
    if (self->status) return self->status;
    if (self->images == 0) {
        *reason = "send the image as a part named image";
        *field = "image";
        return 400;
    }
    if (self->alt_count > self->images) {
        *reason = "more alt_text parts than images";
        *field = "alt_text";
        return 400;
    }
    return 0;
}

int upload_form_image_count(const upload_form_t *self)
{
    return self->images;
}

const char *upload_form_text(const upload_form_t *self, const char *name, size_t *size)
{
    for (int i = 0; i < self->text_count; i++)
        if (self->texts[i].name && streq(self->texts[i].name, name)) {
            *size = self->texts[i].size;
            return self->texts[i].data;
        }
    return NULL;
}

const char *upload_form_alt_text(const upload_form_t *self, int index, size_t *size)
{
    if (index < 0 || index >= self->alt_count) return NULL;
    *size = self->alts[index].size;
    return self->alts[index].data;
}

int upload_form_read_image(const upload_form_t *self, int index, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    if (index < 0 || index >= self->images) return -1;
    size_t length = self->sizes[index];
    char *buffer = malloc(length ? length : 1);
    if (!buffer) return -1;
    size_t got = 0;
    while (got < length) {
        ssize_t n = pread(self->fds[index], buffer + got, length - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            free(buffer);
            return -1;
        }
        got += (size_t)n;
    }
    *data = buffer;
    *size = length;
    return 0;
}

//  ---------------------------------------------------------------------
//  The request

static double s_seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

//  One call to a service, timed into the metrics.
static json_t *s_call(http_request_t *request, const char *service, const char *method,
                      int64_t viewer_id, const json_t *args, const void *blob, size_t blob_size)
{
    gateway_t *gateway = request->gateway;
    rpc_client_t *client = gateway_thread_rpc(gateway);
    if (!client) return reply_error(503, ERR_UNAVAILABLE, "cannot reach the broker");
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    json_t *reply = rpc_call_blob(
        client, service, method, viewer_id, args, blob, blob_size, request->request_id,
        envelope_now_ms() + gateway_request_timeout_ms(gateway), NULL, NULL);
    metrics_rpc_observe(gateway_metrics(gateway), service, reply_status(reply),
                        s_seconds_since(&started));
    return reply;
}

//  Reads and drops the rest of the body; true when it all came in.
static bool s_drain(struct mg_connection *conn)
{
    char buffer[16384];
    size_t total = 0;
    while (total <= UPLOAD_DRAIN_MAX) {
        int got = mg_read(conn, buffer, sizeof buffer);
        if (got == 0) return true;
        if (got < 0) return false;
        total += (size_t)got;
    }
    return false;
}

static void s_error(http_request_t *request, int status, const char *reason, const char *field)
{
    const char *code = status == 413   ? ERR_TOO_LARGE
                       : status == 415 ? ERR_UNSUPPORTED_MEDIA_TYPE
                       : status == 503 ? ERR_UNAVAILABLE
                                       : ERR_INVALID;
    json_t *fields = status == 400 && field ? json_pack("{s:s}", field, reason) : NULL;
    http_send_error(request, status, code, reason, fields, NULL);
}

//  Adds the form's text parts to args as strings; false after answering
//  400 for one that is not UTF-8.
static bool s_text_args(http_request_t *request, const upload_form_t *form, json_t *args)
{
    for (int i = 0; i < form->text_count; i++) {
        const text_part_t *part = &form->texts[i];
        if (!part->name || !*part->name || streq(part->name, "idempotency_key")) continue;
        json_t *value = json_stringn(part->data, part->size);
        if (!value) {
            s_error(request, 400, "must be valid UTF-8 text", part->name);
            return false;
        }
        json_object_set_new(args, part->name, value);
    }
    return true;
}

//  POST /posts: one image with the route's call, more each through images.upload first.
static json_t *s_post_images(http_request_t *request, const route_t *route, int64_t viewer_id,
                             const upload_form_t *form, json_t *args)
{
    json_t *images = json_array();
    for (int i = 0; i < form->images; i++) {
        json_t *image = json_object();
        size_t alt_size = 0;
        const char *alt = upload_form_alt_text(form, i, &alt_size);
        if (alt) {
            json_t *text = json_stringn(alt, alt_size);
            if (!text) {
                json_decref(image);
                json_decref(images);
                return reply_invalid(json_pack("{s:s}", "alt_text", "must be valid UTF-8 text"),
                                     "some fields are not valid");
            }
            json_object_set_new(image, "alt_text", text);
        }
        json_array_append_new(images, image);
    }
    //  One image goes with the call itself: one RPC instead of two, and
    //  media records its files in the post's transaction, without an
    //  uploads row to insert and delete (the CPU saved was within noise:
    //  docs/benchmarks.md, session 5).
    if (form->images == 1) {
        void *data = NULL;
        size_t size = 0;
        if (upload_form_read_image(form, 0, &data, &size) != 0) {
            json_decref(images);
            return reply_error(503, ERR_UNAVAILABLE, "cannot read the upload back");
        }
        json_object_set_new(args, "images", images);
        json_t *reply = s_call(request, route->service, route->method, viewer_id, args, data, size);
        free(data);
        return reply;
    }
    //  One image in memory at a time: read, send, free.
    for (int i = 0; i < form->images; i++) {
        void *data = NULL;
        size_t size = 0;
        if (upload_form_read_image(form, i, &data, &size) != 0) {
            json_decref(images);
            return reply_error(503, ERR_UNAVAILABLE, "cannot read the upload back");
        }
        json_t *reply = s_call(request, "media", "images.upload", viewer_id, NULL, data, size);
        free(data);
        if (reply_status(reply) >= 300) {
            json_decref(images);
            return reply;
        }
        json_t *upload_id = json_object_get(reply_body(reply), "upload_id");
        if (!json_is_string(upload_id)) {
            json_decref(reply);
            json_decref(images);
            return reply_error(500, ERR_INTERNAL, "the media service sent a malformed reply");
        }
        json_object_set(json_array_get(images, (size_t)i), "upload_id", upload_id);
        json_decref(reply);
    }
    json_object_set_new(args, "images", images);
    return s_call(request, route->service, route->method, viewer_id, args, NULL, 0);
}

//  Uploads in flight, and whether one ended since the last trim (below).
static atomic_int s_in_flight;
static atomic_bool s_trim_pending;

static void s_handle(http_request_t *request, const route_t *route, int64_t viewer_id,
                     const json_t *args);

void upload_handle(http_request_t *request, const route_t *route, int64_t viewer_id,
                   const json_t *args)
{
    atomic_fetch_add(&s_in_flight, 1);
    s_handle(request, route, viewer_id, args);
    atomic_store(&s_trim_pending, true);
    atomic_fetch_sub(&s_in_flight, 1);
}

//  Each image is read back into memory (up to UPLOAD_BODY_MAX), and glibc
//  keeps the freed pages in the thread's malloc arena: the busiest
//  moment's peak would stay as RSS. They go back to the system once no
//  upload is in flight; a trim after every upload made the next one fault
//  the same pages back in (common/service.c trims the services the same
//  way).
void upload_trim_when_idle(void)
{
    if (atomic_load(&s_in_flight) == 0 && atomic_exchange(&s_trim_pending, false)) malloc_trim(0);
}

static void s_handle(http_request_t *request, const route_t *route, int64_t viewer_id,
                     const json_t *args)
{
    struct mg_connection *conn = request->conn;
    const struct mg_request_info *info = request->info;
    const char *type = mg_get_header(conn, "Content-Type");
    if (!type || strncasecmp(type, "multipart/form-data", 19) != 0 ||
        !strcasestr(type, "boundary=")) {
        http_send_error(request, 415, ERR_UNSUPPORTED_MEDIA_TYPE,
                        "send the upload as multipart/form-data", NULL, NULL);
        return;
    }
    if (info->content_length > 0 && (unsigned long long)info->content_length > UPLOAD_BODY_MAX) {
        request->close = true; // unread: do not wait for it
        http_send_error(request, 413, ERR_TOO_LARGE, "the upload is too large", NULL, NULL);
        return;
    }
    const char *expect = mg_get_header(conn, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        mg_printf(conn, "HTTP/1.1 100 Continue\r\n\r\n");
        request->continued = true;
    }

    bool single = route->flags & ROUTE_MULTIPART;
    upload_form_t *form =
        upload_form_new(config_str("UPLOAD_TMPDIR", "/tmp"), single ? 1 : UPLOAD_IMAGES_MAX);
    struct mg_form_data_handler handler = {upload_form_field_found, upload_form_field_get,
                                           upload_form_field_store, form};
    int parsed = mg_handle_form_request(conn, &handler);
    const char *reason = NULL, *field = NULL;
    int status = upload_form_status(form, &reason, &field);
    json_t *call_args = NULL, *reply = NULL;
    void *data = NULL;
    if (parsed < 0 && !form->status) {
        request->close = true;
        s_error(request, 400, "the body is not well-formed multipart/form-data", NULL);
        goto cleanup;
    }
    if (status) {
        if (form->status && !s_drain(conn)) request->close = true;
        s_error(request, status, reason, field);
        goto cleanup;
    }
    call_args = json_deep_copy(args);
    if (!s_text_args(request, form, call_args)) goto cleanup;
    if (single) {
        size_t size = 0;
        if (upload_form_read_image(form, 0, &data, &size) != 0) {
            s_error(request, 503, "cannot read the upload back", NULL);
            goto cleanup;
        }
        reply = s_call(request, route->service, route->method, viewer_id, call_args, data, size);
    } else {
        reply = s_post_images(request, route, viewer_id, form, call_args);
    }
    http_send_reply(request, route, reply);
cleanup:
    free(data);
    json_decref(reply);
    json_decref(call_args);
    upload_form_destroy(&form);
}
