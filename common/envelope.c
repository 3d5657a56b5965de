/*  envelope: packing and checking the request and reply envelopes.

    Both are plain msgpack maps converted through msgjson, so what the
    gateway, the broker tools and the services read is checked in one place.
    Decoding is strict about what every hop relies on (types, lengths,
    version) and ignores unknown keys, so a newer sender can add fields.
*/
#include "envelope.h"
#include "msgjson.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t envelope_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *envelope_request_encode(const envelope_request_t *request, size_t *size_out)
{
    json_t *map = json_object();
    json_object_set_new(map, "v", json_integer(request->v ? request->v : ENVELOPE_VERSION));
    json_object_set_new(map, "method", json_string(request->method));
    json_object_set_new(map, "request_id", json_string(request->request_id));
    json_object_set_new(map, "viewer_id",
                        request->viewer_id ? json_integer(request->viewer_id) : json_null());
    json_object_set_new(map, "deadline_ms", json_integer(request->deadline_ms));
    json_object_set_new(map, "args", request->args ? json_incref(request->args) : json_object());
    char *bytes = msgjson_encode(map, size_out);
    json_decref(map);
    return bytes;
}

static int s_copy_string(const json_t *value, char *out, size_t size)
{
    if (!json_is_string(value)) return -1;
    size_t length = json_string_length(value);
    if (length == 0 || length >= size || memchr(json_string_value(value), '\0', length)) return -1;
    memcpy(out, json_string_value(value), length + 1);
    return 0;
}

int envelope_request_decode(const void *data, size_t size, envelope_request_t *request)
{
    memset(request, 0, sizeof *request);
    json_t *map = msgjson_decode(data, size);
    if (!json_is_object(map)) goto fail;
    json_t *version = json_object_get(map, "v");
    if (!json_is_integer(version) || json_integer_value(version) != ENVELOPE_VERSION) goto fail;
    request->v = ENVELOPE_VERSION;
    if (s_copy_string(json_object_get(map, "method"), request->method, sizeof request->method))
        goto fail;
    //  request_id may be empty from a tool; the worker makes one then.
    json_t *request_id = json_object_get(map, "request_id");
    if (json_is_string(request_id) && json_string_length(request_id) > 0) {
        if (s_copy_string(request_id, request->request_id, sizeof request->request_id)) goto fail;
    } else if (request_id && !json_is_string(request_id)) {
        goto fail;
    }
    json_t *viewer = json_object_get(map, "viewer_id");
    if (json_is_integer(viewer) && json_integer_value(viewer) > 0)
        request->viewer_id = json_integer_value(viewer);
    else if (viewer && !json_is_null(viewer))
        goto fail;
    json_t *deadline = json_object_get(map, "deadline_ms");
    if (!json_is_integer(deadline) || json_integer_value(deadline) <= 0) goto fail;
    request->deadline_ms = json_integer_value(deadline);
    json_t *args = json_object_get(map, "args");
    if (args && !json_is_object(args)) goto fail;
    request->args = args ? json_incref(args) : json_object();
    json_decref(map);
    return 0;
fail:
    json_decref(map);
    memset(request, 0, sizeof *request);
    return -1;
}

void envelope_request_clear(envelope_request_t *request)
{
    if (request->args) {
        json_decref(request->args);
        request->args = NULL;
    }
}

char *envelope_reply_encode(const json_t *reply, size_t *size_out)
{
    return msgjson_encode(reply, size_out);
}

json_t *envelope_reply_decode(const void *data, size_t size)
{
    json_t *reply = msgjson_decode(data, size);
    if (!json_is_object(reply)) goto fail;
    json_t *status = json_object_get(reply, "status");
    if (!json_is_integer(status) || json_integer_value(status) < 100 ||
        json_integer_value(status) > 599)
        goto fail;
    json_t *error = json_object_get(reply, "error");
    if (error) {
        if (!json_is_object(error) || !json_is_string(json_object_get(error, "code"))) goto fail;
        json_t *fields = json_object_get(error, "fields");
        if (fields && !json_is_object(fields)) goto fail;
    } else if (!json_object_get(reply, "body")) {
        goto fail;
    }
    return reply;
fail:
    json_decref(reply);
    return NULL;
}

//  The value of key in map, or NULL.
static const msgpack_object *s_map_get(const msgpack_object *map, const char *key)
{
    size_t length = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *name = &map->via.map.ptr[i].key;
        if (name->type == MSGPACK_OBJECT_STR && name->via.str.size == length &&
            memcmp(name->via.str.ptr, key, length) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

json_t *envelope_reply_decode_lazy(const void *data, size_t size, msgpack_unpacked *unpacked,
                                   const msgpack_object **body_out)
{
    *body_out = NULL;
    if (msgjson_unpack(data, size, unpacked) != 0) return NULL;
    const msgpack_object *map = &unpacked->data;
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    const msgpack_object *status = s_map_get(map, "status");
    const msgpack_object *body = s_map_get(map, "body");
    if (!status || status->type != MSGPACK_OBJECT_POSITIVE_INTEGER || status->via.u64 < 100 ||
        status->via.u64 > 599 || !body || s_map_get(map, "error"))
        return envelope_reply_decode(data, size);
    *body_out = body;
    return json_pack("{s:I}", "status", (json_int_t)status->via.u64);
}
