/*  static: the web UI's files from WEB_ROOT.

    GET and HEAD only. A path names a file under the root (a directory
    means its index.html); a path that names nothing is a client-side route
    and gets the root's index.html (dots and all: "/u/ann.b"), except under
    /assets/, where a missing build asset is 404. Caching: index.html (and the fallback) "no-cache"
    so a deploy shows at once; files under /assets/ (content-hashed names
    from the UI build) a year, immutable; other files an hour. ETag and
    If-None-Match give 304s. A client that takes gzip gets the build's
    precompressed "<file>.gz" when there is one (static.c). Paths are decoded, ".." segments and NUL
   are refused, and the resolved file must lie inside the root (symlinks included).
*/
#ifndef GATEWAY_STATIC_H_INCLUDED
#define GATEWAY_STATIC_H_INCLUDED

#include "http.h"

//  Serves path (raw, as in the request) from root (a real path, no
//  trailing slash). Always answers.
void static_serve(http_request_t *request, const char *root, const char *path);

//  Whether an Accept-Encoding header value takes gzip ("gzip" or "*" with
//  a weight above zero). NULL: no.
bool static_accepts_gzip(const char *accept_encoding);

//  The Cache-Control value for a served path relative to the root.
const char *static_cache_control(const char *relative_path);

#endif
