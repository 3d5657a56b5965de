/*  mediafile: GET /media/{key}, the image bytes (API.md "media").

    The key is checked here before anything else, on the raw path (civetweb
    runs with decode_url=no): exactly 43 characters of [A-Za-z0-9_-] then
    ".jpg" or ".webp". Anything else under /media (a "..", an encoded
    slash, a NUL, a longer path, a key the store never issued) is 404, so
    no request can name a file outside the store. The bytes come from the
    media service (media.get, a blob reply): the gateway never touches the
    file system for them, so media may keep them on local disk or in an
    object store.

    Keys are content hashes, so a key's bytes never change: the answer
    carries ETag "<key>" and Cache-Control: public, max-age=31536000,
    immutable, and a request whose If-None-Match names the key gets 304
    (after media confirms the key still exists, without its bytes).
*/
#ifndef GATEWAY_MEDIAFILE_H_INCLUDED
#define GATEWAY_MEDIAFILE_H_INCLUDED

#include "http.h"

#include <stdbool.h>

//  Answers a request whose path is /media or lies under it.
void mediafile_serve(http_request_t *request, const char *path);

//  True when key has the shape of a stored key.
bool mediafile_key_valid(const char *key);

#endif
