/*  mediafile: serving /media/{key} from the media service (mediafile.h).

    One RPC per request: media.get {key} answers the bytes as the reply's
    blob with {content_type, size}; for a conditional request media.get
    {key, check: true} answers without the bytes. The RPC's deadline is the
    gateway's usual one.
*/
#include "mediafile.h"
#include "envelope.h"
#include "errors.h"
#include "log.h"
#include "metrics.h"

#include <civetweb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEDIA_HASH_CHARS 43
#define MEDIA_CACHE_CONTROL "public, max-age=31536000, immutable"

static const char *const s_allow_get[] = {"Allow", "GET, HEAD", NULL};

bool mediafile_key_valid(const char *key)
{
    if (!key) return false;
    for (int i = 0; i < MEDIA_HASH_CHARS; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return strcmp(key + MEDIA_HASH_CHARS, ".jpg") == 0 ||
           strcmp(key + MEDIA_HASH_CHARS, ".webp") == 0;
}

//  True when the If-None-Match header names etag (or is "*").
static bool s_matches(const char *header, const char *etag)
{
    if (!header) return false;
    if (strcmp(header, "*") == 0) return true;
    //  A list of entity tags, possibly weak (W/"..."): look for ours.
    return strstr(header, etag) != NULL;
}

static double s_seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

void mediafile_serve(http_request_t *request, const char *path)
{
    request->route = "/media/{key}";
    const char *method = request->info->request_method;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        http_send_error(request, 405, ERR_METHOD_NOT_ALLOWED, "use GET", NULL, s_allow_get);
        return;
    }
    const char *key = strncmp(path, "/media/", 7) == 0 ? path + 7 : NULL;
    if (!mediafile_key_valid(key)) {
        http_send_error(request, 404, ERR_NOT_FOUND, "no such image", NULL, NULL);
        return;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%s\"", key);
    bool conditional = s_matches(mg_get_header(request->conn, "If-None-Match"), etag);

    gateway_t *gateway = request->gateway;
    rpc_client_t *client = gateway_thread_rpc(gateway);
    if (!client) {
        http_send_error(request, 503, ERR_UNAVAILABLE, "cannot reach the broker", NULL, NULL);
        return;
    }
    json_t *args = json_pack("{s:s, s:b}", "key", key, "check", conditional);
    void *blob = NULL;
    size_t blob_size = 0;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    json_t *reply =
        rpc_call_blob(client, "media", "media.get", 0, args, NULL, 0, request->request_id,
                      envelope_now_ms() + gateway_request_timeout_ms(gateway), &blob, &blob_size);
    int status = reply_status(reply);
    metrics_rpc_observe(gateway_metrics(gateway), "media", status, s_seconds_since(&started));
    const char *type = json_string_value(json_object_get(reply_body(reply), "content_type"));
    if (status != 200 || !type || (!conditional && !blob)) {
        if (status == 200) status = 500; // a reply without its bytes is our bug
        const char *code = reply_error_code(reply);
        const char *message =
            json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
        http_send_error(request, status, code ? code : ERR_INTERNAL,
                        message ? message : "cannot read the image", NULL, NULL);
    } else {
        const char *headers[] = {"ETag", etag, "Cache-Control", MEDIA_CACHE_CONTROL, NULL};
        if (conditional)
            http_send(request, 304, NULL, NULL, 0, headers);
        else
            http_send(request, 200, type, (const char *)blob, blob_size, headers);
    }
    free(blob);
    json_decref(reply);
    json_decref(args);
}
