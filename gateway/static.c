/*  static: a small file server on top of civetweb's connection API.

    civetweb can serve files itself, but it applies one Cache-Control to
    every file and resolves paths its own way; the UI wants per-file cache
    rules and the gateway wants one place that decides what is reachable.
    Files are streamed in 64 KiB reads; nothing is cached in memory (the
    page cache does that better).

    Compression. The UI build writes a gzip copy beside each text file
    ("app-1a2b.js.gz", Makefile). A client whose Accept-Encoding takes gzip
    gets that copy with Content-Encoding: gzip, when it exists and is not
    older than the file itself (a stale copy of an edited file is never
    served). Both answers carry Vary: Accept-Encoding, and the ETags differ,
    so a cache never hands one to a client that asked for the other.
    Compressing ahead of time costs nothing per request, unlike on the fly.
*/
#include "static.h"
#include "errors.h"
#include "routes.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_CHUNK (64 * 1024)

static const char *const s_allow_get[] = {"Allow", "GET, HEAD", NULL};

const char *static_cache_control(const char *relative_path)
{
    const char *base = strrchr(relative_path, '/');
    base = base ? base + 1 : relative_path;
    if (strcmp(base, "index.html") == 0 || *base == '\0') return "no-cache";
    if (strncmp(relative_path, "/assets/", 8) == 0) return "public, max-age=31536000, immutable";
    return "public, max-age=3600";
}

static const char *s_content_type(const char *path, char *buffer, size_t size)
{
    const char *type = mg_get_builtin_mime_type(path);
    if (!type) type = "application/octet-stream";
    if (strncmp(type, "text/", 5) == 0 || strcmp(type, "application/javascript") == 0 ||
        strcmp(type, "application/json") == 0) {
        snprintf(buffer, size, "%s; charset=utf-8", type);
        return buffer;
    }
    return type;
}

//  Whether the decoded path is acceptable: no NUL, no backslash, no "."
//  or ".." segment.
static bool s_safe_path(const char *path, size_t length)
{
    if (strlen(path) != length || strchr(path, '\\')) return false;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        size_t segment = strcspn(p, "/");
        if ((segment == 1 && p[0] == '.') || (segment == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += segment;
    }
    return true;
}

//  Opens root + relative (a directory means its index.html) if the real
//  path lies inside root. Returns the fd (and fills *st and resolved), or -1.
static int s_open_inside(const char *root, const char *relative, struct stat *st, char *resolved)
{
    char joined[PATH_MAX];
    int n = snprintf(joined, sizeof joined, "%s%s", root, relative);
    if (n < 0 || (size_t)n >= sizeof joined) return -1;
    if (!realpath(joined, resolved)) return -1;
    struct stat probe;
    if (stat(resolved, &probe) == 0 && S_ISDIR(probe.st_mode)) {
        n = snprintf(joined, sizeof joined, "%s/index.html", resolved);
        if (n < 0 || (size_t)n >= sizeof joined || !realpath(joined, resolved)) return -1;
    }
    size_t root_length = strlen(root);
    if (strncmp(resolved, root, root_length) != 0 || resolved[root_length] != '/') return -1;
    int fd = open(resolved, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

bool static_accepts_gzip(const char *accept_encoding)
{
    const char *p = accept_encoding;
    while (p && *p) {
        p += strspn(p, " \t,");
        size_t name = strcspn(p, " \t,;");
        bool gzip = (name == 4 && strncasecmp(p, "gzip", 4) == 0) || (name == 1 && *p == '*');
        const char *end = p + strcspn(p, ",");
        //  "gzip;q=0" (any spelling of a zero weight) refuses it.
        const char *q = p + name;
        while (q < end && (*q == ' ' || *q == '\t' || *q == ';'))
            q++;
        bool refused = false;
        if (q + 1 < end && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
            char *rest = NULL;
            double weight = strtod(q + 2, &rest);
            refused = rest != q + 2 && weight <= 0.0;
        }
        if (gzip) return !refused;
        p = end;
    }
    return false;
}

//  The gzip copy of resolved (resolved + ".gz") when the client takes gzip
//  and the copy is a regular file not older than the original: its fd
//  (and *gz_st), else -1.
static int s_open_gzip(http_request_t *request, const char *resolved, const struct stat *st,
                       struct stat *gz_st)
{
    if (!static_accepts_gzip(mg_get_header(request->conn, "Accept-Encoding"))) return -1;
    char path[PATH_MAX + 4];
    if (snprintf(path, sizeof path, "%s.gz", resolved) >= (int)sizeof path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, gz_st) != 0 || !S_ISREG(gz_st->st_mode) || gz_st->st_mtime < st->st_mtime) {
        close(fd);
        return -1;
    }
    return fd;
}

static void s_send_file(http_request_t *request, int fd, const struct stat *st,
                        const char *resolved, const char *cache_control)
{
    struct stat gz_st;
    int gz_fd = s_open_gzip(request, resolved, st, &gz_st);
    if (gz_fd >= 0) {
        fd = gz_fd;
        st = &gz_st;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%lx-%lx%s\"", (unsigned long)st->st_mtime,
             (unsigned long)st->st_size, gz_fd >= 0 ? "-gz" : "");
    char type_buffer[128];
    const char *type = s_content_type(resolved, type_buffer, sizeof type_buffer);
    const char *match = mg_get_header(request->conn, "If-None-Match");
    if (match && (strstr(match, etag) || strcmp(match, "*") == 0)) {
        const char *headers[] = {
            "ETag", etag, "Cache-Control", cache_control, "Vary", "Accept-Encoding", NULL};
        http_send(request, 304, NULL, NULL, 0, headers);
        if (gz_fd >= 0) close(gz_fd);
        return;
    }

    char length[32];
    snprintf(length, sizeof length, "%lld", (long long)st->st_size);
    mg_response_header_start(request->conn, 200);
    mg_response_header_add(request->conn, "Content-Type", type, -1);
    mg_response_header_add(request->conn, "Content-Length", length, -1);
    if (gz_fd >= 0) mg_response_header_add(request->conn, "Content-Encoding", "gzip", -1);
    mg_response_header_add(request->conn, "Vary", "Accept-Encoding", -1);
    mg_response_header_add(request->conn, "ETag", etag, -1);
    mg_response_header_add(request->conn, "Cache-Control", cache_control, -1);
    mg_response_header_add(request->conn, "X-Content-Type-Options", "nosniff", -1);
    mg_response_header_add(request->conn, "X-Request-Id", request->request_id, -1);
    const char *keepalive = request->close ? NULL : gateway_keepalive(request->gateway);
    if (keepalive) mg_response_header_add(request->conn, "Keep-Alive", keepalive, -1);
    mg_response_header_send(request->conn);
    request->status = 200;
    if (strcmp(request->info->request_method, "HEAD") == 0) {
        if (gz_fd >= 0) close(gz_fd);
        return;
    }

    char *buffer = malloc(STATIC_CHUNK);
    off_t left = st->st_size;
    while (buffer && left > 0) {
        ssize_t got = read(fd, buffer, STATIC_CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0 || mg_write(request->conn, buffer, (size_t)got) != (int)got) break;
        left -= got;
    }
    if (left > 0) request->close = true; // the length we announced is now a lie
    free(buffer);
    if (gz_fd >= 0) close(gz_fd);
}

void static_serve(http_request_t *request, const char *root, const char *path)
{
    request->route = "static";
    const char *method = request->info->request_method;
    if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) {
        http_send_error(request, 405, ERR_METHOD_NOT_ALLOWED, "use GET", NULL, s_allow_get);
        return;
    }
    size_t raw_length = strlen(path);
    char *decoded = malloc(raw_length + 1);
    long length = decoded ? url_decode(path, raw_length, false, decoded) : -1;
    int fd = -1;
    struct stat st;
    char resolved[PATH_MAX];
    const char *cache_control = "no-cache";
    if (root && length >= 0 && decoded[0] == '/' && s_safe_path(decoded, (size_t)length)) {
        fd = s_open_inside(root, decoded, &st, resolved);
        if (fd >= 0) {
            cache_control = static_cache_control(resolved + strlen(root));
        } else if (strncmp(decoded, "/assets/", 8) != 0) {
            //  A client-side route gets the app, whatever its last segment
            //  ("/u/ann.b": usernames may hold dots); only a missing build
            //  asset ("/assets/app-1234.js") is a 404, so a stale page
            //  fails loudly instead of running HTML as a script.
            fd = s_open_inside(root, "/index.html", &st, resolved);
        }
    }
    free(decoded);
    if (fd < 0) {
        http_send_error(request, 404, ERR_NOT_FOUND, "no such file", NULL, NULL);
        return;
    }
    s_send_file(request, fd, &st, resolved, cache_control);
    close(fd);
}
