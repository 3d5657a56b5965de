/*  fixtures: users, photo posts, follows and feed reads through the gateway
    (see fixtures.h).

    Posts need a real image (the media service decodes it), so fx_png builds
    a tiny PNG by hand: stored (uncompressed) deflate blocks need no zlib,
    and a seed varies the colour so no two uploads are the same bytes.
*/
#include "fixtures.h"
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FX_BOUNDARY "fixturesboundary5Zq3Lw8RkTn1cVa"

fx_user_t fx_user(const char *name)
{
    fx_user_t user = {.session = harness_register(name, FX_PASSWORD)};
    if (!user.session) fprintf(stderr, "cannot register %s\n", name);
    assert_non_null(user.session);
    json_t *profile = json_object_get(user.session, "user");
    user.token = harness_str(user.session, "access_token");
    user.id = harness_str(profile, "id");
    user.name = harness_str(profile, "username");
    assert_non_null(user.token);
    assert_non_null(user.id);
    assert_non_null(user.name);
    return user;
}

void fx_user_free(fx_user_t *user)
{
    json_decref(user->session);
    memset(user, 0, sizeof *user);
}

long fx_call(const char *method, const char *path, const char *token, json_t *body,
             http_response_t *r)
{
    long status = http_json(method, path, token, body, r);
    json_decref(body);
    return status;
}

long fx_status(const char *method, const char *path, const char *token, json_t *body)
{
    http_response_t r;
    long status = fx_call(method, path, token, body, &r);
    if (status >= 400)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, status, r.body ? r.body : "");
    http_response_clear(&r);
    return status;
}

const char *fx_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}

const char *fx_page_path(char *buf, size_t size, const char *base, int limit, const char *cursor)
{
    if (*cursor) return fx_path(buf, size, "%s?limit=%d&cursor=%s", base, limit, cursor);
    return fx_path(buf, size, "%s?limit=%d", base, limit);
}

json_t *fx_get_page(const char *path, const char *token)
{
    http_response_t r;
    http_request("GET", path, token, NULL, NULL, &r);
    if (r.status != 200) fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(json_object_get(r.json, "items")));
    json_t *next = json_object_get(r.json, "next_cursor");
    assert_true(json_is_null(next) || json_is_string(next));
    json_t *body = json_incref(r.json);
    http_response_clear(&r);
    return body;
}

void fx_test_still_healthy(void **state)
{
    (void)state;
    http_response_t r;
    http_request("GET", "/readyz", NULL, NULL, NULL, &r);
    if (r.status != 200) fprintf(stderr, "readyz: %s\n", r.body);
    assert_int_equal(r.status, 200);
    http_response_clear(&r);
}

//  ---- a small valid PNG ------------------------------------------------------------

static uint32_t s_crc32(const unsigned char *data, size_t size, uint32_t crc)
{
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void s_put32(unsigned char *p, uint32_t value)
{
    p[0] = (unsigned char)(value >> 24);
    p[1] = (unsigned char)(value >> 16);
    p[2] = (unsigned char)(value >> 8);
    p[3] = (unsigned char)value;
}

//  Appends a chunk of type with data to png at *used.
static void s_chunk(unsigned char *png, size_t *used, const char *type, const unsigned char *data,
                    size_t size)
{
    s_put32(png + *used, (uint32_t)size);
    memcpy(png + *used + 4, type, 4);
    if (size) memcpy(png + *used + 8, data, size);
    s_put32(png + *used + 8 + size, s_crc32(png + *used + 4, size + 4, 0));
    *used += size + 12;
}

unsigned char *fx_png(int seed, size_t *size)
{
    enum { W = 16, H = 16, ROW = 1 + W * 3 };
    unsigned char raw[H * ROW];
    for (int y = 0; y < H; y++) {
        raw[y * ROW] = 0; // filter: none
        for (int x = 0; x < W; x++) {
            raw[y * ROW + 1 + x * 3] = (unsigned char)(seed * 37 + x * 8);
            raw[y * ROW + 2 + x * 3] = (unsigned char)(seed * 11 + y * 8);
            raw[y * ROW + 3 + x * 3] = (unsigned char)(seed * 5 + (seed >> 8));
        }
    }
    //  zlib stream: header, one stored block, adler32.
    unsigned char z[2 + 5 + sizeof raw + 4];
    size_t n = 0;
    z[n++] = 0x78;
    z[n++] = 0x01;
    z[n++] = 1; // final, stored
    z[n++] = (unsigned char)(sizeof raw & 0xff);
    z[n++] = (unsigned char)(sizeof raw >> 8);
    z[n++] = (unsigned char)(~sizeof raw & 0xff);
    z[n++] = (unsigned char)((~sizeof raw >> 8) & 0xff);
    memcpy(z + n, raw, sizeof raw);
    n += sizeof raw;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < sizeof raw; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    s_put32(z + n, (b << 16) | a);
    n += 4;

    unsigned char *png = malloc(8 + 25 + 12 + n + 12);
    assert_non_null(png);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    size_t used = 8;
    unsigned char header[13] = {0};
    s_put32(header, W);
    s_put32(header + 4, H);
    header[8] = 8; // bit depth
    header[9] = 2; // RGB
    s_chunk(png, &used, "IHDR", header, sizeof header);
    s_chunk(png, &used, "IDAT", z, n);
    s_chunk(png, &used, "IEND", NULL, 0);
    *size = used;
    return png;
}

//  ---- posts, likes, comments and follows ------------------------------------------

//  The id of what request (by user) created: asserts 201 and an id, and
//  clears *r. Caller frees.
static char *s_created_id(http_response_t *r, const char *request, const fx_user_t *user)
{
    if (r->status != 201)
        fprintf(stderr, "%s as %s: %ld %s\n", request, user->name, r->status, r->body);
    assert_int_equal(r->status, 201);
    const char *id = harness_str(r->json, "id");
    assert_non_null(id);
    char *copy = strdup(id);
    http_response_clear(r);
    return copy;
}

char *fx_post(const fx_user_t *user, const char *caption)
{
    static int seed;
    size_t png_size;
    unsigned char *png = fx_png(++seed, &png_size);
    char head[512];
    int head_length = snprintf(
        head, sizeof head,
        "--" FX_BOUNDARY "\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\n%s\r\n"
        "--" FX_BOUNDARY "\r\nContent-Disposition: form-data; name=\"image\";"
        " filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n",
        caption);
    assert_true(head_length > 0 && (size_t)head_length < sizeof head);
    const char tail[] = "\r\n--" FX_BOUNDARY "--\r\n";
    size_t size = (size_t)head_length + png_size + sizeof tail - 1;
    char *body = malloc(size);
    assert_non_null(body);
    memcpy(body, head, (size_t)head_length);
    memcpy(body + head_length, png, png_size);
    memcpy(body + head_length + png_size, tail, sizeof tail - 1);
    free(png);
    static const char *const headers[] = {
        "Content-Type: multipart/form-data; boundary=" FX_BOUNDARY, NULL};
    http_response_t r;
    http_request_raw("POST", "/api/v1/posts", user->token, body, size, headers, &r);
    free(body);
    return s_created_id(&r, "POST /posts", user);
}

void fx_delete_post(const fx_user_t *user, const char *post_id)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s", post_id);
    assert_int_equal(fx_status("DELETE", path, user->token, NULL), 204);
}

void fx_like(const fx_user_t *user, const char *post_id)
{
    char path[256];
    assert_int_equal(fx_status("POST", fx_path(path, sizeof path, "/api/v1/posts/%s/like", post_id),
                               user->token, NULL),
                     200);
}

char *fx_comment(const fx_user_t *user, const char *post_id, const char *text)
{
    char path[256];
    http_response_t r;
    fx_call("POST", fx_path(path, sizeof path, "/api/v1/posts/%s/comments", post_id), user->token,
            json_pack("{ss}", "text", text), &r);
    return s_created_id(&r, "POST /posts/{id}/comments", user);
}

void fx_follow(const fx_user_t *follower, const fx_user_t *followee)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/users/%s/follow", followee->name);
    assert_int_equal(fx_status("POST", path, follower->token, NULL), 200);
}

void fx_unfollow(const fx_user_t *follower, const fx_user_t *followee)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/users/%s/follow", followee->name);
    assert_int_equal(fx_status("DELETE", path, follower->token, NULL), 200);
}

//  ---- the home feed ---------------------------------------------------------------

int fx_feed_ids(const char *token, int page_limit, char (*ids)[FX_ID_SIZE], int max)
{
    int count = 0;
    char cursor[256] = "";
    //  Bounded: every page but the last is full of ids or moves the cursor,
    //  and max ids take at most max / page_limit + 1 pages of ids; a few
    //  more for pages that hydration left short.
    for (int pages = 0; pages < max / page_limit + 16; pages++) {
        char path[512];
        fx_page_path(path, sizeof path, "/api/v1/feed", page_limit, cursor);
        http_response_t r;
        http_request("GET", path, token, NULL, NULL, &r);
        json_t *items = json_object_get(r.json, "items");
        json_t *next = json_object_get(r.json, "next_cursor");
        if (r.status != 200 || !json_is_array(items) ||
            !(json_is_null(next) || json_is_string(next))) {
            fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
            http_response_clear(&r);
            return -1;
        }
        size_t index;
        json_t *post;
        json_array_foreach(items, index, post)
        {
            const char *id = harness_str(post, "id");
            if (!id || count >= max) {
                fprintf(stderr, "GET %s: an item without id, or more than %d ids\n", path, max);
                http_response_clear(&r);
                return -1;
            }
            snprintf(ids[count++], FX_ID_SIZE, "%s", id);
        }
        bool more = json_is_string(next);
        if (more) snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        http_response_clear(&r);
        if (!more) return count;
    }
    fprintf(stderr, "the feed did not end within the page bound\n");
    return -1;
}

int fx_id_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return la > lb ? 1 : -1;
    return strcmp(a, b);
}
