/*  test_media: posts, images, likes, comments, saves and avatars through
    the gateway, against a fresh stack (Postgres database, broker, identity,
    media, gateway; see harness.h). Ports 17400-17409.

    Every image is made by the test itself with libvips (a JPEG with an
    EXIF rotation and GPS block spliced in by hand, a PNG with alpha, a
    WebP, a truncated JPEG, a real 42-megapixel JPEG) or by hand (a PNG
    whose header declares 100000 x 100000 pixels, a text file named .jpg,
    an 11 MiB file). What the service stores is checked by fetching it from
    /media and decoding it: dimensions, orientation, no metadata left.

    Graph is not part of this stack, so visibility takes its documented
    fallback (a private author's posts are visible only to the author).
    Each test makes its own users; the last one checks the stack still
    answers after all the bad input.
*/
#include "errors.h"
#include "db.h"
#include "harness.h"
#include "rpc.h"

#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <vips/vips.h>

#define PASSWORD "correct horse battery"
#define BOUNDARY "----mediatestboundary7MA4YWxkTrZu0gW"
#define LIKERS 50

//  ---- small helpers ---------------------------------------------------------

static int s_counter;

//  A username unique within the run: prefix + counter.
static void s_name(char *out, size_t size, const char *prefix)
{
    snprintf(out, size, "%s%d", prefix, ++s_counter);
}

static json_t *s_register(const char *prefix, char *name_out)
{
    char name[32];
    s_name(name, sizeof name, prefix);
    if (name_out) strcpy(name_out, name);
    json_t *session = harness_register(name, PASSWORD);
    assert_non_null(session);
    return session;
}

static const char *s_token(const json_t *session)
{
    return harness_str(session, "access_token");
}

static const char *s_user_id(const json_t *session)
{
    return harness_str(json_object_get(session, "user"), "id");
}

static long s_call(const char *method, const char *path, const char *token, json_t *body,
                   http_response_t *r)
{
    long status = http_json(method, path, token, body, r);
    json_decref(body);
    return status;
}

static long s_status(const char *method, const char *path, const char *token, json_t *body)
{
    http_response_t r;
    long status = s_call(method, path, token, body, &r);
    http_response_clear(&r);
    return status;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

//  ---- images ------------------------------------------------------------------

typedef struct {
    void *data;
    size_t size;
} bytes_t;

static void s_bytes_free(bytes_t *b)
{
    g_free(b->data);
    b->data = NULL;
    b->size = 0;
}

//  An RGB(A) image, left half red and right half blue (alpha 128 when
//  bands is 4).
static VipsImage *s_two_halves(int width, int height, int bands)
{
    size_t size = (size_t)width * height * bands;
    unsigned char *pixels = malloc(size);
    assert_non_null(pixels);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            unsigned char *p = pixels + ((size_t)y * width + x) * bands;
            bool left = x < width / 2;
            p[0] = left ? 220 : 20;
            p[1] = 20;
            p[2] = left ? 20 : 220;
            if (bands == 4) p[3] = 128;
        }
    VipsImage *image =
        vips_image_new_from_memory_copy(pixels, size, width, height, bands, VIPS_FORMAT_UCHAR);
    free(pixels);
    assert_non_null(image);
    return image;
}

static bytes_t s_jpeg(int width, int height)
{
    VipsImage *image = s_two_halves(width, height, 3);
    bytes_t out = {NULL, 0};
    assert_int_equal(
        vips_jpegsave_buffer(image, &out.data, &out.size, "Q", 90, "strip", TRUE, NULL), 0);
    g_object_unref(image);
    return out;
}

static bytes_t s_png_alpha(int width, int height)
{
    VipsImage *image = s_two_halves(width, height, 4);
    bytes_t out = {NULL, 0};
    assert_int_equal(vips_pngsave_buffer(image, &out.data, &out.size, NULL), 0);
    g_object_unref(image);
    return out;
}

static bytes_t s_webp(int width, int height)
{
    VipsImage *image = s_two_halves(width, height, 3);
    bytes_t out = {NULL, 0};
    assert_int_equal(vips_webpsave_buffer(image, &out.data, &out.size, "Q", 80, NULL), 0);
    g_object_unref(image);
    return out;
}

//  A real JPEG of width x height pixels (black, so it stays small).
static bytes_t s_black_jpeg(int width, int height)
{
    VipsImage *image = NULL;
    assert_int_equal(vips_black(&image, width, height, "bands", 3, NULL), 0);
    VipsImage *cast = NULL;
    assert_int_equal(vips_cast_uchar(image, &cast, NULL), 0);
    bytes_t out = {NULL, 0};
    assert_int_equal(vips_jpegsave_buffer(cast, &out.data, &out.size, "Q", 50, NULL), 0);
    g_object_unref(image);
    g_object_unref(cast);
    return out;
}

static void s_put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

//  One little-endian TIFF IFD entry.
static void s_entry(unsigned char *p, unsigned tag, unsigned type, uint32_t count, uint32_t value)
{
    s_put16(p, tag);
    s_put16(p + 2, type);
    s_put32(p + 4, count);
    s_put32(p + 8, value);
}

//  jpeg with an EXIF block spliced in after SOI: IFD0 holds Orientation =
//  orientation and a GPS IFD with a latitude (48 51' 29.94" N).
static bytes_t s_with_exif(bytes_t jpeg, int orientation)
{
    unsigned char tiff[92];
    memset(tiff, 0, sizeof tiff);
    memcpy(tiff, "II*\0", 4);
    s_put32(tiff + 4, 8);
    s_put16(tiff + 8, 2);                                    // IFD0: 2 entries
    s_entry(tiff + 10, 0x0112, 3, 1, (uint32_t)orientation); // Orientation, SHORT
    s_entry(tiff + 22, 0x8825, 4, 1, 38);                    // GPS IFD pointer, LONG
    s_put32(tiff + 34, 0);                                   // no next IFD
    s_put16(tiff + 38, 2);                                   // GPS IFD: 2 entries
    s_entry(tiff + 40, 0x0001, 2, 2, 'N');                   // GPSLatitudeRef "N"
    s_entry(tiff + 52, 0x0002, 5, 3, 68);                    // GPSLatitude, 3 RATIONALs at 68
    s_put32(tiff + 64, 0);
    uint32_t rationals[] = {48, 1, 51, 1, 2994, 100};
    for (int i = 0; i < 6; i++)
        s_put32(tiff + 68 + 4 * i, rationals[i]);
    size_t segment = 2 + 6 + sizeof tiff; // length field counts itself
    bytes_t out = {g_malloc(jpeg.size + 2 + segment), jpeg.size + 2 + segment};
    unsigned char *p = out.data;
    memcpy(p, jpeg.data, 2); // SOI
    p[2] = 0xff;
    p[3] = 0xe1;
    p[4] = (unsigned char)(segment >> 8);
    p[5] = (unsigned char)(segment & 0xff);
    memcpy(p + 6, "Exif\0\0", 6);
    memcpy(p + 12, tiff, sizeof tiff);
    memcpy(p + 12 + sizeof tiff, (unsigned char *)jpeg.data + 2, jpeg.size - 2);
    return out;
}

static uint32_t s_crc32(const unsigned char *data, size_t size)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < size; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void s_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

//  A PNG whose IHDR declares 100000 x 100000 pixels, with a tiny IDAT.
static bytes_t s_huge_png_header(void)
{
    bytes_t out = {g_malloc0(8 + 25 + 12 + 10 + 12), 8 + 25 + 12 + 10 + 12};
    unsigned char *p = out.data;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    unsigned char *ihdr = p + 8;
    s_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    s_be32(ihdr + 8, 100000);
    s_be32(ihdr + 12, 100000);
    ihdr[16] = 8; // bit depth
    ihdr[17] = 2; // RGB
    s_be32(ihdr + 21, s_crc32(ihdr + 4, 17));
    unsigned char *idat = ihdr + 25;
    s_be32(idat, 10);
    memcpy(idat + 4, "IDAT", 4);
    memcpy(idat + 8, "\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01", 10);
    s_be32(idat + 18, s_crc32(idat + 4, 14));
    unsigned char *iend = idat + 22;
    s_be32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    s_be32(iend + 8, s_crc32(iend + 4, 4));
    return out;
}

//  ---- multipart -----------------------------------------------------------------

typedef struct {
    const char *name;
    const char *filename; // NULL for a text part
    const char *type;     // Content-Type of the part, may be NULL
    const void *data;
    size_t size; // 0 with data: strlen
} part_t;

//  Builds a multipart body from count parts into a new buffer.
static char *s_multipart(const part_t *parts, int count, size_t *size_out)
{
    size_t capacity = 1024;
    for (int i = 0; i < count; i++)
        capacity += 512 + (parts[i].size ? parts[i].size : strlen(parts[i].data));
    char *body = malloc(capacity);
    assert_non_null(body);
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        size_t size = parts[i].size ? parts[i].size : strlen(parts[i].data);
        used += (size_t)snprintf(body + used, capacity - used,
                                 "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"%s\"",
                                 parts[i].name);
        if (parts[i].filename)
            used += (size_t)snprintf(body + used, capacity - used, "; filename=\"%s\"",
                                     parts[i].filename);
        used += (size_t)snprintf(body + used, capacity - used, "\r\n");
        if (parts[i].type)
            used += (size_t)snprintf(body + used, capacity - used, "Content-Type: %s\r\n",
                                     parts[i].type);
        used += (size_t)snprintf(body + used, capacity - used, "\r\n");
        memcpy(body + used, parts[i].data, size);
        used += size;
        used += (size_t)snprintf(body + used, capacity - used, "\r\n");
    }
    used += (size_t)snprintf(body + used, capacity - used, "--" BOUNDARY "--\r\n");
    *size_out = used;
    return body;
}

//  Sends a multipart request; idempotency_key may be NULL.
static long s_upload(const char *method, const char *path, const char *token, const part_t *parts,
                     int count, const char *idempotency_key, http_response_t *r)
{
    size_t size = 0;
    char *body = s_multipart(parts, count, &size);
    char key_header[300];
    snprintf(key_header, sizeof key_header, "Idempotency-Key: %s",
             idempotency_key ? idempotency_key : "");
    const char *headers[] = {"Content-Type: multipart/form-data; boundary=" BOUNDARY,
                             idempotency_key ? key_header : NULL, NULL};
    long status = http_request_raw(method, path, token, body, size, headers, r);
    free(body);
    return status;
}

//  A post of one generated width x height JPEG with caption. Returns the
//  201 post (caller decrefs). Equal sizes make equal bytes, which the
//  store keeps once (content addressing).
static json_t *s_post_sized(const char *token, const char *caption, int width, int height)
{
    bytes_t jpeg = s_jpeg(width, height);
    part_t parts[] = {{"image", "a.jpg", "image/jpeg", jpeg.data, jpeg.size},
                      {"caption", NULL, NULL, caption, 0}};
    http_response_t r;
    long status = s_upload("POST", "/api/v1/posts", token, parts, 2, NULL, &r);
    if (status != 201) fprintf(stderr, "post: %ld %s\n", status, r.body);
    assert_int_equal(status, 201);
    json_t *post = json_incref(r.json);
    http_response_clear(&r);
    s_bytes_free(&jpeg);
    return post;
}

static json_t *s_post(const char *token, const char *caption)
{
    return s_post_sized(token, caption, 64, 48);
}

static const char *s_id(const json_t *object)
{
    return harness_str(object, "id");
}

//  The key of a "/media/<key>" URL.
static const char *s_key(const char *url)
{
    assert_non_null(url);
    assert_memory_equal(url, "/media/", 7);
    return url + 7;
}

//  Fetches url and decodes it (caller unrefs); headers_out may be NULL.
static VipsImage *s_fetch_image(const char *url, http_response_t *r)
{
    assert_int_equal(http_request("GET", url, NULL, NULL, NULL, r), 200);
    VipsImage *image = vips_image_new_from_buffer(r->body, r->body_size, "", NULL);
    assert_non_null(image);
    return image;
}

static bool s_contains(const void *haystack, size_t size, const char *needle)
{
    return memmem(haystack, size, needle, strlen(needle)) != NULL;
}

//  ---- tests ------------------------------------------------------------------

static void test_create_and_read(void **state)
{
    char bob_name[32], caption[256];
    json_t *ann = s_register("ann", NULL);
    json_t *bob = s_register("bob", bob_name);
    snprintf(caption, sizeof caption,
             "Golden hour #Sunset #sunset #Café_2 #a#b page#2 @%s @nobody_here mail@%s.com!",
             bob_name, bob_name);
    bytes_t jpeg = s_jpeg(120, 80);
    part_t parts[] = {{"caption", NULL, NULL, caption, 0},
                      {"image", "beach.jpg", "image/jpeg", jpeg.data, jpeg.size},
                      {"alt_text", NULL, NULL, "A beach at dusk", 0}};
    http_response_t r;
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(ann), parts, 3, NULL, &r), 201);
    json_t *post = json_incref(r.json);
    http_response_clear(&r);

    assert_true(json_is_string(json_object_get(post, "id")));
    json_t *author = json_object_get(post, "author");
    assert_string_equal(harness_str(author, "id"), s_user_id(ann));
    assert_true(json_is_string(json_object_get(author, "username")));
    assert_true(json_is_null(json_object_get(author, "avatar_url")));
    assert_string_equal(harness_str(post, "caption"), caption);
    json_t *hashtags = json_object_get(post, "hashtags");
    assert_int_equal(json_array_size(hashtags), 4);
    assert_string_equal(json_string_value(json_array_get(hashtags, 0)), "sunset");
    assert_string_equal(json_string_value(json_array_get(hashtags, 1)), "café_2");
    assert_string_equal(json_string_value(json_array_get(hashtags, 2)), "a");
    assert_string_equal(json_string_value(json_array_get(hashtags, 3)), "b");
    json_t *mentions = json_object_get(post, "mentions");
    assert_int_equal(json_array_size(mentions), 1);
    assert_string_equal(json_string_value(json_array_get(mentions, 0)), bob_name);
    json_t *images = json_object_get(post, "images");
    assert_int_equal(json_array_size(images), 1);
    json_t *image = json_array_get(images, 0);
    assert_non_null(strstr(harness_str(image, "url"), ".jpg"));
    assert_true(json_is_string(json_object_get(image, "thumb_url")));
    assert_int_equal(json_integer_value(json_object_get(image, "width")), 120);
    assert_int_equal(json_integer_value(json_object_get(image, "height")), 80);
    assert_string_equal(harness_str(image, "alt_text"), "A beach at dusk");
    assert_int_equal(json_integer_value(json_object_get(post, "like_count")), 0);
    assert_int_equal(json_integer_value(json_object_get(post, "comment_count")), 0);
    assert_true(json_is_false(json_object_get(post, "liked_by_me")));
    assert_true(json_is_false(json_object_get(post, "saved_by_me")));
    const char *created = harness_str(post, "created_at");
    assert_non_null(created);
    assert_int_equal(strlen(created), 24); // 2026-11-27T20:11:53.123Z
    assert_int_equal(created[23], 'Z');
    assert_non_null(harness_str(post, "updated_at"));

    //  Anyone may read a public post, the same object.
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(post));
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_true(json_equal(r.json, post));
    http_response_clear(&r);
    assert_int_equal(s_call("GET", path, s_token(bob), NULL, &r), 200);
    assert_string_equal(harness_str(r.json, "id"), s_id(post));
    http_response_clear(&r);

    //  Unknown or malformed ids are 404.
    assert_int_equal(s_status("GET", "/api/v1/posts/123456789", NULL, NULL), 404);
    assert_int_equal(s_status("GET", "/api/v1/posts/abc", NULL, NULL), 404);
    s_bytes_free(&jpeg);
    json_decref(post);
    json_decref(ann);
    json_decref(bob);
}

static void test_image_processing(void **state)
{
    json_t *ann = s_register("img", NULL);
    //  600 x 400 stored, EXIF says "rotate 90 degrees clockwise" (6), and a GPS block.
    bytes_t plain = s_jpeg(600, 400);
    bytes_t exif = s_with_exif(plain, 6);
    assert_true(s_contains(exif.data, exif.size, "Exif"));
    bytes_t big = s_jpeg(2000, 1500);
    bytes_t small = s_jpeg(100, 80);
    part_t parts[] = {{"image", "rotated.jpg", "image/jpeg", exif.data, exif.size},
                      {"image", "big.jpg", "image/jpeg", big.data, big.size},
                      {"image", "small.jpg", "image/jpeg", small.data, small.size}};
    http_response_t r;
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(ann), parts, 3, NULL, &r), 201);
    json_t *images = json_incref(json_object_get(r.json, "images"));
    http_response_clear(&r);
    assert_int_equal(json_array_size(images), 3);

    //  Orientation applied: 400 wide, 600 high, the red half on top.
    json_t *rotated = json_array_get(images, 0);
    assert_int_equal(json_integer_value(json_object_get(rotated, "width")), 400);
    assert_int_equal(json_integer_value(json_object_get(rotated, "height")), 600);
    VipsImage *decoded = s_fetch_image(harness_str(rotated, "url"), &r);
    assert_int_equal(vips_image_get_width(decoded), 400);
    assert_int_equal(vips_image_get_height(decoded), 600);
    double *top = NULL, *bottom = NULL;
    int n = 0;
    assert_int_equal(vips_getpoint(decoded, &top, &n, 200, 100, NULL), 0);
    assert_true(n >= 3 && top[0] > 150 && top[2] < 100);
    assert_int_equal(vips_getpoint(decoded, &bottom, &n, 200, 500, NULL), 0);
    assert_true(n >= 3 && bottom[0] < 100 && bottom[2] > 150);
    g_free(top);
    g_free(bottom);
    //  No metadata left: no EXIF block (so no GPS), no XMP.
    assert_false(s_contains(r.body, r.body_size, "Exif"));
    assert_false(s_contains(r.body, r.body_size, "http://ns.adobe.com/xap"));
    assert_int_equal(vips_image_get_typeof(decoded, VIPS_META_EXIF_NAME), 0);
    g_object_unref(decoded);
    http_response_clear(&r);
    //  The thumbnail fits 320.
    decoded = s_fetch_image(harness_str(rotated, "thumb_url"), &r);
    assert_int_equal(vips_image_get_width(decoded), 213);
    assert_int_equal(vips_image_get_height(decoded), 320);
    g_object_unref(decoded);
    http_response_clear(&r);

    //  A large photo is brought to 1080 on its largest side.
    json_t *large = json_array_get(images, 1);
    assert_int_equal(json_integer_value(json_object_get(large, "width")), 1080);
    assert_int_equal(json_integer_value(json_object_get(large, "height")), 810);
    decoded = s_fetch_image(harness_str(large, "url"), &r);
    assert_int_equal(vips_image_get_width(decoded), 1080);
    g_object_unref(decoded);
    http_response_clear(&r);

    //  A small one is never upscaled, neither for the full size nor the thumbnail.
    json_t *tiny = json_array_get(images, 2);
    assert_int_equal(json_integer_value(json_object_get(tiny, "width")), 100);
    assert_int_equal(json_integer_value(json_object_get(tiny, "height")), 80);
    decoded = s_fetch_image(harness_str(tiny, "thumb_url"), &r);
    assert_int_equal(vips_image_get_width(decoded), 100);
    assert_int_equal(vips_image_get_height(decoded), 80);
    g_object_unref(decoded);
    http_response_clear(&r);

    json_decref(images);
    s_bytes_free(&plain);
    s_bytes_free(&exif);
    s_bytes_free(&big);
    s_bytes_free(&small);
    json_decref(ann);
}

static void test_formats_and_carousel(void **state)
{
    json_t *ann = s_register("fmt", NULL);
    bytes_t png = s_png_alpha(200, 100);
    bytes_t webp = s_webp(150, 150);
    bytes_t jpeg = s_jpeg(90, 60);
    part_t parts[] = {{"image", "alpha.png", "image/png", png.data, png.size},
                      {"alt_text", NULL, NULL, "first", 0},
                      {"image", "pic.webp", "image/webp", webp.data, webp.size},
                      {"alt_text", NULL, NULL, "second", 0},
                      {"image", NULL, NULL, jpeg.data, jpeg.size}};
    http_response_t r;
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(ann), parts, 5, NULL, &r), 201);
    json_t *images = json_incref(json_object_get(r.json, "images"));
    http_response_clear(&r);
    assert_int_equal(json_array_size(images), 3);
    assert_string_equal(harness_str(json_array_get(images, 0), "alt_text"), "first");
    assert_string_equal(harness_str(json_array_get(images, 1), "alt_text"), "second");
    assert_string_equal(harness_str(json_array_get(images, 2), "alt_text"), "");

    //  Transparency is kept: the PNG comes out as WebP with alpha.
    const char *url = harness_str(json_array_get(images, 0), "url");
    assert_non_null(strstr(url, ".webp"));
    char type[128];
    VipsImage *decoded = s_fetch_image(url, &r);
    assert_string_equal(http_header(&r, "Content-Type", type, sizeof type), "image/webp");
    assert_true(vips_image_hasalpha(decoded));
    assert_int_equal(vips_image_get_width(decoded), 200);
    g_object_unref(decoded);
    http_response_clear(&r);
    //  An opaque WebP comes out as JPEG.
    url = harness_str(json_array_get(images, 1), "url");
    assert_non_null(strstr(url, ".jpg"));
    decoded = s_fetch_image(url, &r);
    assert_string_equal(http_header(&r, "Content-Type", type, sizeof type), "image/jpeg");
    assert_int_equal(vips_image_get_width(decoded), 150);
    g_object_unref(decoded);
    http_response_clear(&r);

    json_decref(images);
    s_bytes_free(&png);
    s_bytes_free(&webp);
    s_bytes_free(&jpeg);
    json_decref(ann);
}

//  Uploads one image part (data, size, filename) and expects status and code.
static void s_expect_upload(const char *token, const void *data, size_t size, const char *filename,
                            long status, const char *code)
{
    part_t parts[] = {{"image", filename, "image/jpeg", data, size}};
    http_response_t r;
    long got = s_upload("POST", "/api/v1/posts", token, parts, 1, NULL, &r);
    if (got != status) fprintf(stderr, "%s: %ld %s\n", filename, got, r.body);
    assert_int_equal(got, status);
    assert_string_equal(http_error_code(&r), code);
    http_response_clear(&r);
}

static void test_upload_errors(void **state)
{
    json_t *ann = s_register("bad", NULL);
    const char *token = s_token(ann);

    //  11 MiB: refused while it streams in.
    size_t huge_size = 11 * 1024 * 1024;
    char *huge = malloc(huge_size);
    assert_non_null(huge);
    memset(huge, 0x5a, huge_size);
    memcpy(huge, "\xff\xd8\xff\xe0", 4);
    s_expect_upload(token, huge, huge_size, "huge.jpg", 413, ERR_TOO_LARGE);
    free(huge);

    //  A small file declaring 100000 x 100000 pixels, and a real 42 MP JPEG.
    bytes_t png = s_huge_png_header();
    s_expect_upload(token, png.data, png.size, "bomb.png", 413, ERR_TOO_LARGE);
    s_bytes_free(&png);
    bytes_t wide = s_black_jpeg(7000, 6000);
    assert_true(wide.size < 10 * 1024 * 1024);
    s_expect_upload(token, wide.data, wide.size, "wide.jpg", 413, ERR_TOO_LARGE);
    s_bytes_free(&wide);

    //  Not an image, whatever its name and declared type; a truncated JPEG.
    const char *text = "just some text, not a picture\n";
    s_expect_upload(token, text, strlen(text), "photo.jpg", 415, ERR_UNSUPPORTED_MEDIA_TYPE);
    bytes_t full = s_jpeg(400, 300);
    s_expect_upload(token, full.data, full.size / 2, "cut.jpg", 415, ERR_UNSUPPORTED_MEDIA_TYPE);

    //  11 images, 0 images, more alt texts than images, a long caption.
    part_t parts[12];
    for (int i = 0; i < 11; i++)
        parts[i] = (part_t){"image", "x.jpg", "image/jpeg", full.data, full.size};
    http_response_t r;
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, parts, 11, NULL, &r), 400);
    assert_string_equal(http_error_code(&r), ERR_INVALID);
    assert_true(http_error_names(&r, "images"));
    http_response_clear(&r);
    part_t caption_only[] = {{"caption", NULL, NULL, "no picture", 0}};
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, caption_only, 1, NULL, &r), 400);
    assert_true(http_error_names(&r, "image"));
    http_response_clear(&r);
    part_t alts[] = {{"image", "x.jpg", "image/jpeg", full.data, full.size},
                     {"alt_text", NULL, NULL, "one", 0},
                     {"alt_text", NULL, NULL, "two", 0}};
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, alts, 3, NULL, &r), 400);
    assert_true(http_error_names(&r, "alt_text"));
    http_response_clear(&r);
    char *long_caption = malloc(2202);
    memset(long_caption, 'x', 2201);
    long_caption[2201] = '\0';
    part_t captioned[] = {{"image", "x.jpg", "image/jpeg", full.data, full.size},
                          {"caption", NULL, NULL, long_caption, 0}};
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, captioned, 2, NULL, &r), 400);
    assert_true(http_error_names(&r, "caption"));
    http_response_clear(&r);
    //  2,200 code points of a 2-byte character are fine.
    char *wide_caption = malloc(4401);
    for (int i = 0; i < 2200; i++)
        memcpy(wide_caption + 2 * i, "\xc3\xa9", 2);
    wide_caption[4400] = '\0';
    captioned[1].data = wide_caption;
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, captioned, 2, NULL, &r), 201);
    http_response_clear(&r);
    free(wide_caption);
    //  Invalid UTF-8 and NUL in the caption.
    captioned[1].data = "bad \xff\xfe text";
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, captioned, 2, NULL, &r), 400);
    assert_true(http_error_names(&r, "caption"));
    http_response_clear(&r);
    captioned[1].data = "nul\0inside";
    captioned[1].size = 10;
    assert_int_equal(s_upload("POST", "/api/v1/posts", token, captioned, 2, NULL, &r), 400);
    assert_true(http_error_names(&r, "caption"));
    http_response_clear(&r);
    free(long_caption);

    //  Not multipart: 415; no token: 401; a broken multipart body: 400.
    assert_int_equal(s_call("POST", "/api/v1/posts", token, json_pack("{s:s}", "caption", "x"), &r),
                     415);
    assert_string_equal(http_error_code(&r), ERR_UNSUPPORTED_MEDIA_TYPE);
    http_response_clear(&r);
    part_t one[] = {{"image", "x.jpg", "image/jpeg", full.data, full.size}};
    assert_int_equal(s_upload("POST", "/api/v1/posts", NULL, one, 1, NULL, &r), 401);
    http_response_clear(&r);
    const char *headers[] = {"Content-Type: multipart/form-data; boundary=" BOUNDARY, NULL};
    const char *garbage = "this is not a multipart body at all";
    assert_int_equal(
        http_request_raw("POST", "/api/v1/posts", token, garbage, strlen(garbage), headers, &r),
        400);
    http_response_clear(&r);
    s_bytes_free(&full);

    //  Nothing of all that left a post behind (but the one with the
    //  2,200-character caption).
    char path[128];
    snprintf(path, sizeof path, "/api/v1/users/%s/posts",
             harness_str(json_object_get(ann, "user"), "username"));
    assert_int_equal(s_call("GET", path, token, NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    http_response_clear(&r);
    json_decref(ann);
}

static void test_media_endpoint(void **state)
{
    json_t *ann = s_register("med", NULL);
    json_t *post = s_post(s_token(ann), "media");
    const char *url = harness_str(json_array_get(json_object_get(post, "images"), 0), "url");
    const char *key = s_key(url);
    http_response_t r;
    char value[256], etag[128];
    assert_int_equal(http_request("GET", url, NULL, NULL, NULL, &r), 200);
    assert_string_equal(http_header(&r, "Content-Type", value, sizeof value), "image/jpeg");
    assert_string_equal(http_header(&r, "Cache-Control", value, sizeof value),
                        "public, max-age=31536000, immutable");
    snprintf(etag, sizeof etag, "\"%s\"", key);
    assert_string_equal(http_header(&r, "ETag", value, sizeof value), etag);
    assert_true(r.body_size > 100);
    assert_memory_equal(r.body, "\xff\xd8", 2);
    http_response_clear(&r);

    //  A client that has it gets 304.
    char if_none_match[160];
    snprintf(if_none_match, sizeof if_none_match, "If-None-Match: %s", etag);
    const char *conditional[] = {if_none_match, NULL};
    assert_int_equal(http_request("GET", url, NULL, NULL, conditional, &r), 304);
    assert_int_equal(r.body_size, 0);
    assert_string_equal(http_header(&r, "ETag", value, sizeof value), etag);
    http_response_clear(&r);
    assert_int_equal(http_request("HEAD", url, NULL, NULL, NULL, &r), 200);
    http_response_clear(&r);

    //  Everything that is not a key the store issued is 404.
    const char *bad[] = {
        "/media/",
        "/media/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.jpg", // well-formed, unknown
        "/media/..%2F..%2Fetc%2Fpasswd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media/a%00b.jpg",
        "/media/x.jpg",
        "/media/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.png",
        "/media/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%2FAAAAAAAA.jpg",
        NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(http_request("GET", bad[i], NULL, NULL, NULL, &r), 404);
        http_response_clear(&r);
    }
    char nested[256];
    snprintf(nested, sizeof nested, "%s/extra", url);
    assert_int_equal(http_request("GET", nested, NULL, NULL, NULL, &r), 404);
    http_response_clear(&r);
    assert_int_equal(http_request("POST", url, NULL, "", NULL, &r), 405);
    http_response_clear(&r);
    json_decref(post);
    json_decref(ann);
}

//  Polls url until it answers status (bounded): the janitor works async.
static bool s_wait_status(const char *url, long status)
{
    for (int i = 0; i < 100; i++) {
        http_response_t r;
        long got = http_request("GET", url, NULL, NULL, NULL, &r);
        http_response_clear(&r);
        if (got == status) return true;
        s_sleep_ms(100);
    }
    return false;
}

static void test_edit_and_delete(void **state)
{
    json_t *ann = s_register("edit", NULL);
    json_t *eve = s_register("eve", NULL);
    json_t *post = s_post_sized(s_token(ann), "first #one", 91, 67); // its own files
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(post));
    http_response_t r;

    //  Someone else may neither edit nor delete it.
    assert_int_equal(s_call("PATCH", path, s_token(eve), json_pack("{s:s}", "caption", "mine"), &r),
                     403);
    assert_string_equal(http_error_code(&r), ERR_FORBIDDEN);
    http_response_clear(&r);
    assert_int_equal(s_status("DELETE", path, s_token(eve), NULL), 403);
    assert_int_equal(s_status("PATCH", path, NULL, json_pack("{s:s}", "caption", "x")), 401);

    //  The author edits: tags re-parsed, updated_at moves.
    s_sleep_ms(5);
    assert_int_equal(s_call("PATCH", path, s_token(ann),
                            json_pack("{s:s, s:i}", "caption", "second #Two #three", "ignored", 1),
                            &r),
                     200);
    assert_string_equal(harness_str(r.json, "caption"), "second #Two #three");
    json_t *tags = json_object_get(r.json, "hashtags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "two");
    assert_true(strcmp(harness_str(r.json, "updated_at"), harness_str(post, "updated_at")) > 0);
    assert_string_equal(harness_str(r.json, "created_at"), harness_str(post, "created_at"));
    http_response_clear(&r);
    //  Wrong types and limits.
    assert_int_equal(s_call("PATCH", path, s_token(ann), json_pack("{s:i}", "caption", 42), &r),
                     400);
    assert_true(http_error_names(&r, "caption"));
    http_response_clear(&r);
    char *long_caption = malloc(2202);
    memset(long_caption, 'y', 2201);
    long_caption[2201] = '\0';
    assert_int_equal(
        s_call("PATCH", path, s_token(ann), json_pack("{s:s}", "caption", long_caption), &r), 400);
    assert_true(http_error_names(&r, "caption"));
    http_response_clear(&r);
    free(long_caption);
    //  An empty PATCH changes nothing.
    assert_int_equal(s_call("PATCH", path, s_token(ann), json_object(), &r), 200);
    assert_string_equal(harness_str(r.json, "caption"), "second #Two #three");
    http_response_clear(&r);

    //  The author deletes: the post and its files go.
    const char *url = harness_str(json_array_get(json_object_get(post, "images"), 0), "url");
    const char *thumb =
        harness_str(json_array_get(json_object_get(post, "images"), 0), "thumb_url");
    assert_int_equal(s_status("DELETE", path, s_token(ann), NULL), 204);
    assert_int_equal(s_status("GET", path, s_token(ann), NULL), 404);
    assert_int_equal(s_status("GET", path, s_token(eve), NULL), 404);
    assert_int_equal(s_status("DELETE", path, s_token(ann), NULL), 404);
    assert_int_equal(s_status("PATCH", path, s_token(ann), json_pack("{s:s}", "caption", "z")),
                     404);
    assert_true(s_wait_status(url, 404));
    assert_true(s_wait_status(thumb, 404));
    json_decref(post);
    json_decref(ann);
    json_decref(eve);
}

static void test_shared_file_survives(void **state)
{
    //  Two posts of the same bytes share the stored files (content
    //  addressing); deleting one keeps the file for the other.
    json_t *ann = s_register("dup", NULL);
    json_t *first = s_post(s_token(ann), "one");
    json_t *second = s_post(s_token(ann), "two");
    const char *url_first = harness_str(json_array_get(json_object_get(first, "images"), 0), "url");
    const char *url_second =
        harness_str(json_array_get(json_object_get(second, "images"), 0), "url");
    assert_string_equal(url_first, url_second);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(first));
    assert_int_equal(s_status("DELETE", path, s_token(ann), NULL), 204);
    s_sleep_ms(1500); // a janitor round
    http_response_t r;
    assert_int_equal(http_request("GET", url_second, NULL, NULL, NULL, &r), 200);
    http_response_clear(&r);
    json_decref(first);
    json_decref(second);
    json_decref(ann);
}

//  Collects every item id of a paged list (limit per page), newest first.
static json_t *s_all_pages(const char *base, const char *token, int limit, int *pages)
{
    json_t *ids = json_array();
    char cursor[128] = "";
    *pages = 0;
    for (int guard = 0; guard < 50; guard++) {
        char path[512];
        snprintf(path, sizeof path, "%s?limit=%d%s%s", base, limit, *cursor ? "&cursor=" : "",
                 cursor);
        http_response_t r;
        assert_int_equal(s_call("GET", path, token, NULL, &r), 200);
        (*pages)++;
        size_t index;
        json_t *item;
        json_array_foreach(json_object_get(r.json, "items"), index, item)
        {
            json_array_append(ids, json_object_get(item, "id"));
        }
        json_t *next = json_object_get(r.json, "next_cursor");
        assert_non_null(next);
        if (json_is_null(next)) {
            http_response_clear(&r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        http_response_clear(&r);
    }
    return ids;
}

static void test_grid_and_privacy(void **state)
{
    char carol_name[32], dave_name[32];
    json_t *carol = s_register("carol", carol_name);
    json_t *dave = s_register("dave", dave_name);
    json_t *made[5];
    for (int i = 0; i < 5; i++)
        made[i] = s_post(s_token(carol), "grid");
    char base[128];
    snprintf(base, sizeof base, "/api/v1/users/%s/posts", carol_name);
    int pages = 0;
    json_t *ids = s_all_pages(base, NULL, 2, &pages);
    assert_int_equal(json_array_size(ids), 5);
    assert_int_equal(pages, 3);
    for (int i = 0; i < 5; i++) // newest first
        assert_string_equal(json_string_value(json_array_get(ids, (size_t)i)), s_id(made[4 - i]));
    json_decref(ids);

    //  A post made between two pages does not shift the next page.
    char path[512];
    http_response_t r;
    snprintf(path, sizeof path, "%s?limit=2", base);
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    char cursor[128];
    snprintf(cursor, sizeof cursor, "%s",
             json_string_value(json_object_get(r.json, "next_cursor")));
    http_response_clear(&r);
    json_t *extra = s_post(s_token(carol), "between pages");
    snprintf(path, sizeof path, "%s?limit=2&cursor=%s", base, cursor);
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_string_equal(harness_str(json_array_get(json_object_get(r.json, "items"), 0), "id"),
                        s_id(made[2]));
    http_response_clear(&r);

    //  Bad list parameters, unknown user.
    snprintf(path, sizeof path, "%s?limit=0", base);
    assert_int_equal(s_status("GET", path, NULL, NULL), 400);
    snprintf(path, sizeof path, "%s?limit=abc", base);
    assert_int_equal(s_status("GET", path, NULL, NULL), 400);
    snprintf(path, sizeof path, "%s?cursor=not-a-cursor", base);
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 400);
    assert_true(http_error_names(&r, "cursor"));
    http_response_clear(&r);
    snprintf(path, sizeof path, "%s?limit=1000", base);
    assert_int_equal(s_status("GET", path, NULL, NULL), 200); // clamped to 100
    assert_int_equal(s_status("GET", "/api/v1/users/nobody_at_all/posts", NULL, NULL), 404);

    //  A private account: its grid is 403 to others, its posts 404.
    json_t *secret = s_post(s_token(dave), "private life");
    assert_int_equal(
        s_status("PATCH", "/api/v1/me", s_token(dave), json_pack("{s:b}", "is_private", 1)), 200);
    snprintf(base, sizeof base, "/api/v1/users/%s/posts", dave_name);
    assert_int_equal(s_call("GET", base, s_token(carol), NULL, &r), 403);
    assert_string_equal(http_error_code(&r), ERR_FORBIDDEN);
    http_response_clear(&r);
    assert_int_equal(s_status("GET", base, NULL, NULL), 403);
    assert_int_equal(s_call("GET", base, s_token(dave), NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    http_response_clear(&r);
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(secret));
    assert_int_equal(s_status("GET", path, s_token(carol), NULL), 404);
    assert_int_equal(s_status("GET", path, NULL, NULL), 404);
    assert_int_equal(s_status("GET", path, s_token(dave), NULL), 200);
    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(secret));
    assert_int_equal(s_status("POST", path, s_token(carol), NULL), 404);
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(secret));
    assert_int_equal(s_status("GET", path, s_token(carol), NULL), 404);
    assert_int_equal(s_status("POST", path, s_token(carol), json_pack("{s:s}", "text", "hi")), 404);
    snprintf(path, sizeof path, "/api/v1/posts/%s/save", s_id(secret));
    assert_int_equal(s_status("POST", path, s_token(carol), NULL), 404);
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(secret));
    assert_int_equal(s_status("DELETE", path, s_token(carol), NULL), 404);

    //  A switch takes effect for the very next request of anyone, each way,
    //  though media's users projection lags it: without graph (this suite)
    //  visibility asks identity itself, never the projection.
    char grid[128];
    snprintf(grid, sizeof grid, "/api/v1/users/%s/posts", dave_name);
    for (int round = 0; round < 6; round++) {
        bool private_now = round % 2 == 1;
        assert_int_equal(s_status("PATCH", "/api/v1/me", s_token(dave),
                                  json_pack("{s:b}", "is_private", private_now)),
                         200);
        assert_int_equal(s_status("GET", path, s_token(carol), NULL), private_now ? 404 : 200);
        assert_int_equal(s_status("GET", path, NULL, NULL), private_now ? 404 : 200);
        assert_int_equal(s_status("GET", grid, s_token(carol), NULL), private_now ? 403 : 200);
    }

    for (int i = 0; i < 5; i++)
        json_decref(made[i]);
    json_decref(extra);
    json_decref(secret);
    json_decref(carol);
    json_decref(dave);
}

static void test_likes(void **state)
{
    json_t *ann = s_register("likee", NULL);
    json_t *bob = s_register("liker", NULL);
    json_t *post = s_post(s_token(ann), "like me");
    char path[128], post_path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(post));
    snprintf(post_path, sizeof post_path, "/api/v1/posts/%s", s_id(post));
    http_response_t r;
    for (int i = 0; i < 2; i++) { // idempotent
        assert_int_equal(s_call("POST", path, s_token(bob), NULL, &r), 200);
        assert_true(json_is_true(json_object_get(r.json, "liked")));
        assert_int_equal(json_integer_value(json_object_get(r.json, "like_count")), 1);
        http_response_clear(&r);
    }
    assert_int_equal(s_call("GET", post_path, s_token(bob), NULL, &r), 200);
    assert_true(json_is_true(json_object_get(r.json, "liked_by_me")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "like_count")), 1);
    http_response_clear(&r);
    assert_int_equal(s_call("GET", post_path, s_token(ann), NULL, &r), 200);
    assert_true(json_is_false(json_object_get(r.json, "liked_by_me")));
    http_response_clear(&r);

    //  Who liked: user objects, anonymous may read.
    snprintf(path, sizeof path, "/api/v1/posts/%s/likes", s_id(post));
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(harness_str(json_array_get(items, 0), "id"), s_user_id(bob));
    assert_non_null(json_object_get(json_array_get(items, 0), "posts_count"));
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    http_response_clear(&r);

    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(post));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s_call("DELETE", path, s_token(bob), NULL, &r), 200);
        assert_true(json_is_false(json_object_get(r.json, "liked")));
        assert_int_equal(json_integer_value(json_object_get(r.json, "like_count")), 0);
        http_response_clear(&r);
    }
    assert_int_equal(s_status("POST", path, NULL, NULL), 401);
    assert_int_equal(s_status("POST", "/api/v1/posts/1234567/like", s_token(bob), NULL), 404);
    assert_int_equal(s_status("GET", "/api/v1/posts/1234567/likes", NULL, NULL), 404);
    json_decref(post);
    json_decref(ann);
    json_decref(bob);
}

typedef struct {
    const char *token;
    const char *path;
    long status;
} like_job_t;

static void *s_like_thread(void *arg)
{
    like_job_t *job = arg;
    http_response_t r;
    job->status = http_request("POST", job->path, job->token, NULL, NULL, &r);
    http_response_clear(&r);
    return NULL;
}

static void test_concurrent_likes(void **state)
{
    json_t *ann = s_register("popular", NULL);
    json_t *post = s_post(s_token(ann), "everyone likes this");
    json_t *likers[LIKERS];
    for (int i = 0; i < LIKERS; i++)
        likers[i] = s_register("fan", NULL);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(post));
    pthread_t threads[LIKERS];
    like_job_t jobs[LIKERS];
    for (int i = 0; i < LIKERS; i++) {
        jobs[i] = (like_job_t){s_token(likers[i]), path, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, s_like_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < LIKERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(jobs[i].status, 200);
    }
    http_response_t r;
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(post));
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "like_count")), LIKERS);
    http_response_clear(&r);

    //  Who liked, paged: every liker once, newest first.
    char base[128];
    snprintf(base, sizeof base, "/api/v1/posts/%s/likes", s_id(post));
    int pages = 0;
    json_t *ids = s_all_pages(base, s_token(ann), 20, &pages);
    assert_int_equal(json_array_size(ids), LIKERS);
    assert_int_equal(pages, 3);
    for (size_t i = 0; i < LIKERS; i++)
        for (size_t j = i + 1; j < LIKERS; j++)
            assert_string_not_equal(json_string_value(json_array_get(ids, i)),
                                    json_string_value(json_array_get(ids, j)));
    json_decref(ids);
    for (int i = 0; i < LIKERS; i++)
        json_decref(likers[i]);
    json_decref(post);
    json_decref(ann);
}

static void test_comments(void **state)
{
    char ann_name[32];
    json_t *ann = s_register("writer", ann_name);
    json_t *bob = s_register("reader", NULL);
    json_t *eve = s_register("troll", NULL);
    json_t *post = s_post(s_token(ann), "comment below");
    char path[128], post_path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(post));
    snprintf(post_path, sizeof post_path, "/api/v1/posts/%s", s_id(post));
    http_response_t r;
    char text[128];
    snprintf(text, sizeof text, "Nice one @%s and @ghost_user", ann_name);
    assert_int_equal(s_call("POST", path, s_token(bob), json_pack("{s:s}", "text", text), &r), 201);
    json_t *first = json_incref(r.json);
    http_response_clear(&r);
    assert_true(json_is_string(json_object_get(first, "id")));
    assert_string_equal(harness_str(first, "post_id"), s_id(post));
    assert_string_equal(harness_str(json_object_get(first, "author"), "id"), s_user_id(bob));
    assert_string_equal(harness_str(first, "text"), text);
    assert_int_equal(json_array_size(json_object_get(first, "mentions")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(first, "mentions"), 0)),
                        ann_name);
    assert_non_null(harness_str(first, "created_at"));
    json_t *others[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s_call("POST", path, s_token(i % 2 ? eve : ann),
                                json_pack("{s:s}", "text", "more"), &r),
                         201);
        others[i] = json_incref(r.json);
        http_response_clear(&r);
    }

    //  Errors: length, type, empty, missing, anonymous, unknown post.
    char *long_text = malloc(1002);
    memset(long_text, 'c', 1001);
    long_text[1001] = '\0';
    assert_int_equal(s_call("POST", path, s_token(bob), json_pack("{s:s}", "text", long_text), &r),
                     400);
    assert_true(http_error_names(&r, "text"));
    http_response_clear(&r);
    free(long_text);
    assert_int_equal(s_call("POST", path, s_token(bob), json_pack("{s:i}", "text", 5), &r), 400);
    assert_true(http_error_names(&r, "text"));
    http_response_clear(&r);
    assert_int_equal(s_status("POST", path, s_token(bob), json_pack("{s:s}", "text", "")), 400);
    assert_int_equal(s_status("POST", path, s_token(bob), json_object()), 400);
    assert_int_equal(s_status("POST", path, NULL, json_pack("{s:s}", "text", "hi")), 401);
    assert_int_equal(s_status("POST", "/api/v1/posts/99999/comments", s_token(bob),
                              json_pack("{s:s}", "text", "hi")),
                     404);

    //  The list: oldest first, paged, readable anonymously.
    int pages = 0;
    json_t *ids = s_all_pages(path, NULL, 2, &pages);
    assert_int_equal(json_array_size(ids), 5);
    assert_int_equal(pages, 3);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), s_id(first));
    assert_string_equal(json_string_value(json_array_get(ids, 4)), s_id(others[3]));
    json_decref(ids);
    assert_int_equal(s_call("GET", post_path, NULL, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "comment_count")), 5);
    http_response_clear(&r);

    //  Deleting: not by a third user; by the comment's author; by the post's author.
    char comment_path[128];
    snprintf(comment_path, sizeof comment_path, "/api/v1/comments/%s", s_id(first));
    assert_int_equal(s_call("DELETE", comment_path, s_token(eve), NULL, &r), 403);
    assert_string_equal(http_error_code(&r), ERR_FORBIDDEN);
    http_response_clear(&r);
    assert_int_equal(s_status("DELETE", comment_path, NULL, NULL), 401);
    assert_int_equal(s_status("DELETE", comment_path, s_token(bob), NULL), 204);
    assert_int_equal(s_status("DELETE", comment_path, s_token(bob), NULL), 404);
    snprintf(comment_path, sizeof comment_path, "/api/v1/comments/%s", s_id(others[1]));
    assert_int_equal(s_status("DELETE", comment_path, s_token(ann), NULL), 204); // eve's, by ann
    snprintf(comment_path, sizeof comment_path, "/api/v1/comments/%s", s_id(others[0]));
    assert_int_equal(s_status("DELETE", comment_path, s_token(eve), NULL), 403); // ann's, by eve
    assert_int_equal(s_status("DELETE", "/api/v1/comments/424242", s_token(eve), NULL), 404);
    assert_int_equal(s_call("GET", post_path, NULL, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "comment_count")), 3);
    http_response_clear(&r);

    json_decref(first);
    for (int i = 0; i < 4; i++)
        json_decref(others[i]);
    json_decref(post);
    json_decref(ann);
    json_decref(bob);
    json_decref(eve);
}

static void test_saves(void **state)
{
    json_t *ann = s_register("saver", NULL);
    json_t *bob = s_register("author", NULL);
    json_t *one = s_post(s_token(bob), "one");
    json_t *two = s_post(s_token(bob), "two");
    char path[128];
    http_response_t r;
    //  Save two, then one: saved list is newest first by save time.
    snprintf(path, sizeof path, "/api/v1/posts/%s/save", s_id(two));
    assert_int_equal(s_call("POST", path, s_token(ann), NULL, &r), 200);
    assert_true(json_is_true(json_object_get(r.json, "saved")));
    http_response_clear(&r);
    snprintf(path, sizeof path, "/api/v1/posts/%s/save", s_id(one));
    assert_int_equal(s_status("POST", path, s_token(ann), NULL), 200);
    assert_int_equal(s_status("POST", path, s_token(ann), NULL), 200); // idempotent
    assert_int_equal(s_call("GET", "/api/v1/me/saved", s_token(ann), NULL, &r), 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(harness_str(json_array_get(items, 0), "id"), s_id(one));
    assert_string_equal(harness_str(json_array_get(items, 1), "id"), s_id(two));
    assert_true(json_is_true(json_object_get(json_array_get(items, 0), "saved_by_me")));
    http_response_clear(&r);
    int pages = 0;
    json_t *ids = s_all_pages("/api/v1/me/saved", s_token(ann), 1, &pages);
    assert_int_equal(json_array_size(ids), 2);
    json_decref(ids);
    //  Saves are private: bob's list is empty, bob sees saved_by_me false.
    assert_int_equal(s_call("GET", "/api/v1/me/saved", s_token(bob), NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    http_response_clear(&r);
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(one));
    assert_int_equal(s_call("GET", path, s_token(bob), NULL, &r), 200);
    assert_true(json_is_false(json_object_get(r.json, "saved_by_me")));
    http_response_clear(&r);
    //  Unsave.
    snprintf(path, sizeof path, "/api/v1/posts/%s/save", s_id(one));
    assert_int_equal(s_call("DELETE", path, s_token(ann), NULL, &r), 200);
    assert_true(json_is_false(json_object_get(r.json, "saved")));
    http_response_clear(&r);
    assert_int_equal(s_call("GET", "/api/v1/me/saved", s_token(ann), NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    http_response_clear(&r);
    assert_int_equal(s_status("GET", "/api/v1/me/saved", NULL, NULL), 401);
    assert_int_equal(s_status("POST", path, NULL, NULL), 401);
    assert_int_equal(s_status("GET", "/api/v1/me/saved?limit=-1", s_token(ann), NULL), 400);
    json_decref(one);
    json_decref(two);
    json_decref(ann);
    json_decref(bob);
}

static void test_idempotency(void **state)
{
    char ann_name[32];
    json_t *ann = s_register("retry", ann_name);
    json_t *bob = s_register("other", NULL);
    bytes_t jpeg = s_jpeg(50, 50);
    part_t parts[] = {{"image", "a.jpg", "image/jpeg", jpeg.data, jpeg.size},
                      {"caption", NULL, NULL, "sent twice", 0}};
    http_response_t first, again, other;
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(ann), parts, 2, "key-123", &first),
                     201);
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(ann), parts, 2, "key-123", &again),
                     201);
    assert_true(json_equal(first.json, again.json));
    //  The same key from someone else is their own request.
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(bob), parts, 2, "key-123", &other),
                     201);
    assert_string_not_equal(s_id(first.json), s_id(other.json));
    char path[128];
    snprintf(path, sizeof path, "/api/v1/users/%s/posts", ann_name);
    http_response_t r;
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    http_response_clear(&r);

    //  Comments too; the same key on another endpoint is a conflict.
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(first.json));
    const char *key_header[] = {"Idempotency-Key: comment-key-1", NULL};
    const char *body = "{\"text\":\"only once\"}";
    http_response_t c1, c2;
    assert_int_equal(http_request("POST", path, s_token(bob), body, key_header, &c1), 201);
    assert_int_equal(http_request("POST", path, s_token(bob), body, key_header, &c2), 201);
    assert_true(json_equal(c1.json, c2.json));
    http_response_clear(&c1);
    http_response_clear(&c2);
    const char *reused[] = {"Idempotency-Key: key-123", NULL};
    assert_int_equal(http_request("POST", path, s_token(ann), body, reused, &r), 409);
    assert_string_equal(http_error_code(&r), ERR_CONFLICT);
    http_response_clear(&r);
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(first.json));
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "comment_count")), 1);
    http_response_clear(&r);
    //  A key that is not printable ASCII is 400.
    const char *bad_key[] = {"Idempotency-Key: has space", NULL};
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(first.json));
    assert_int_equal(http_request("POST", path, s_token(bob), body, bad_key, &r), 400);
    http_response_clear(&r);

    http_response_clear(&first);
    http_response_clear(&again);
    http_response_clear(&other);
    s_bytes_free(&jpeg);
    json_decref(ann);
    json_decref(bob);
}

static void test_avatar(void **state)
{
    char ann_name[32];
    json_t *ann = s_register("face", ann_name);
    bytes_t jpeg = s_jpeg(640, 480);
    part_t parts[] = {{"image", "me.jpg", "image/jpeg", jpeg.data, jpeg.size}};
    http_response_t r;
    assert_int_equal(s_upload("PUT", "/api/v1/me/avatar", s_token(ann), parts, 1, NULL, &r), 200);
    const char *url = harness_str(r.json, "avatar_url");
    assert_non_null(url);
    char avatar[160];
    snprintf(avatar, sizeof avatar, "%s", url);
    assert_string_equal(harness_str(r.json, "username"), ann_name);
    http_response_clear(&r);
    VipsImage *decoded = s_fetch_image(avatar, &r);
    assert_int_equal(vips_image_get_width(decoded), 320);
    assert_int_equal(vips_image_get_height(decoded), 320);
    g_object_unref(decoded);
    http_response_clear(&r);
    //  Posts show it at once: identity hands media the change (users.sync)
    //  before it answers, so no event lag shows.
    json_t *post = s_post(s_token(ann), "with a face");
    assert_non_null(post);
    const char *shown = harness_str(json_object_get(post, "author"), "avatar_url");
    assert_non_null(shown);
    assert_string_equal(shown, avatar);
    json_decref(post);
    //  A small avatar is cropped square, never upscaled.
    bytes_t small = s_jpeg(200, 100);
    part_t small_parts[] = {{"image", "me.jpg", "image/jpeg", small.data, small.size}};
    assert_int_equal(s_upload("PUT", "/api/v1/me/avatar", s_token(ann), small_parts, 1, NULL, &r),
                     200);
    char second[160];
    snprintf(second, sizeof second, "%s", harness_str(r.json, "avatar_url"));
    http_response_clear(&r);
    post = s_post(s_token(ann), "a new face");
    assert_non_null(post);
    shown = harness_str(json_object_get(post, "author"), "avatar_url");
    assert_non_null(shown);
    assert_string_equal(shown, second);
    json_decref(post);
    decoded = s_fetch_image(second, &r);
    assert_int_equal(vips_image_get_width(decoded), 100);
    assert_int_equal(vips_image_get_height(decoded), 100);
    g_object_unref(decoded);
    http_response_clear(&r);
    s_bytes_free(&small);
    //  The replaced avatar's file is collected.
    assert_true(s_wait_status(avatar, 404));

    //  Not an image: 415; two images: 400; not multipart: 415; anonymous: 401.
    part_t text[] = {{"image", "me.jpg", "image/jpeg", "plain text", 0}};
    assert_int_equal(s_upload("PUT", "/api/v1/me/avatar", s_token(ann), text, 1, NULL, &r), 415);
    http_response_clear(&r);
    part_t two[] = {parts[0], parts[0]};
    assert_int_equal(s_upload("PUT", "/api/v1/me/avatar", s_token(ann), two, 2, NULL, &r), 400);
    http_response_clear(&r);
    assert_int_equal(s_status("PUT", "/api/v1/me/avatar", s_token(ann), json_object()), 415);
    assert_int_equal(s_upload("PUT", "/api/v1/me/avatar", NULL, parts, 1, NULL, &r), 401);
    http_response_clear(&r);

    //  DELETE: avatar_url null again.
    assert_int_equal(s_call("DELETE", "/api/v1/me/avatar", s_token(ann), NULL, &r), 200);
    assert_true(json_is_null(json_object_get(r.json, "avatar_url")));
    http_response_clear(&r);
    assert_int_equal(s_call("GET", "/api/v1/me", s_token(ann), NULL, &r), 200);
    assert_true(json_is_null(json_object_get(r.json, "avatar_url")));
    http_response_clear(&r);
    s_bytes_free(&jpeg);
    json_decref(ann);
}

static void test_posts_count(void **state)
{
    char name[32];
    json_t *ann = s_register("counted", name);
    json_t *a = s_post(s_token(ann), "1");
    json_t *b = s_post(s_token(ann), "2");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/users/%s", name);
    http_response_t r;
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "posts_count")), 2);
    http_response_clear(&r);
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(a));
    assert_int_equal(s_status("DELETE", path, s_token(ann), NULL), 204);
    snprintf(path, sizeof path, "/api/v1/users/%s", name);
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "posts_count")), 1);
    http_response_clear(&r);
    json_decref(a);
    json_decref(b);
    json_decref(ann);
}

static json_t *s_rpc(const char *method, int64_t viewer, json_t *args_stolen)
{
    rpc_client_t *client = rpc_client_new(harness_broker_url());
    assert_non_null(client);
    json_t *reply = rpc_call(client, "media", method, viewer, args_stolen, NULL, 0);
    json_decref(args_stolen);
    rpc_client_destroy(&client);
    return reply;
}

//  Every event media has published so far (every page of events.replay),
//  as one array (caller decrefs). Replay serves what the publisher has
//  numbered, which may trail the last commit by its linger
//  (EVENTS_PUBLISH_LINGER_MS), so a test looking for an event it just
//  caused reads again until it is there (S_EVENT_TRIES).
#define S_EVENT_TRIES 50 // 100 ms apart
static json_t *s_media_events(void)
{
    json_t *all = json_array();
    json_int_t since = 0;
    for (;;) {
        json_t *reply =
            s_rpc("events.replay", 0, json_pack("{s:I, s:i}", "since", since, "limit", 1000));
        assert_int_equal(reply_status(reply), 200);
        json_t *events = json_object_get(reply_body(reply), "events");
        size_t count = json_array_size(events);
        if (count > 0)
            since = json_integer_value(json_object_get(json_array_get(events, count - 1), "seq"));
        json_array_extend(all, events);
        json_decref(reply);
        if (count == 0) return all;
    }
}

//  One number from a query on the media schema.
static long s_media_count(db_t *db, const char *sql, const char *param)
{
    const char *params[] = {param};
    PGresult *res = db_query(db, sql, 1, params);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

//  posts.create called with its one image as the blob (what the gateway
//  does for a one-image POST /posts), and how it refuses what does not
//  fit that form.
static void test_one_image_post(void **state)
{
    json_t *ann = s_register("oneimage", NULL);
    int64_t ann_id = strtoll(s_user_id(ann), NULL, 10);
    db_t *db = db_new(harness_database_url(), "media");
    assert_non_null(db);

    //  Through the gateway: no uploads row is made, the files are recorded.
    json_t *post = s_post(s_token(ann), "one image");
    assert_int_equal(
        s_media_count(db, "SELECT count(*) FROM uploads WHERE user_id = $1", s_user_id(ann)), 0);
    assert_int_equal(
        s_media_count(db,
                      "SELECT count(*) FROM post_images i JOIN files f ON f.key = i.key"
                      " JOIN files t ON t.key = i.thumb_key WHERE i.post_id = $1",
                      s_id(post)),
        1);

    rpc_client_t *client = rpc_client_new(harness_broker_url());
    assert_non_null(client);
    bytes_t jpeg = s_jpeg(120, 90);
    struct {
        int64_t viewer;
        const char *args; // JSON
        bool image;       // the blob is the JPEG, else junk
        long status;
        const char *field; // the 400's field, or NULL
    } cases[] = {
        {0, "{\"images\":[{}]}", true, 401, NULL},
        {ann_id, "{\"images\":[{\"upload_id\":\"123\"}]}", true, 400, "images"},
        {ann_id, "{\"images\":[{}, {}]}", true, 400, "images"},
        {ann_id, "{\"images\":[]}", true, 400, "images"},
        {ann_id, "{}", true, 400, "images"},
        {ann_id, "{\"images\":[{\"alt_text\":7}]}", true, 400, "alt_text"},
        //  The image is judged first, as when images.upload came before.
        {ann_id, "{\"images\":[{}, {}], \"caption\":7}", false, 415, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *args = json_loads(cases[i].args, 0, NULL);
        assert_non_null(args);
        json_t *reply = rpc_call_blob(client, "media", "posts.create", cases[i].viewer, args,
                                      cases[i].image ? jpeg.data : (void *)"not an image",
                                      cases[i].image ? jpeg.size : 12, NULL, 0, NULL, NULL);
        if (reply_status(reply) != cases[i].status)
            fprintf(stderr, "case %zu: %s\n", i, json_dumps(reply, 0));
        assert_int_equal(reply_status(reply), cases[i].status);
        if (cases[i].field)
            assert_non_null(json_object_get(
                json_object_get(json_object_get(reply, "error"), "fields"), cases[i].field));
        json_decref(reply);
        json_decref(args);
    }
    //  Refused requests left no post, no upload and no file unreferenced
    //  for long: what was written is queued for the collector.
    assert_int_equal(
        s_media_count(db, "SELECT count(*) FROM posts WHERE author_id = $1", s_user_id(ann)), 1);
    assert_int_equal(
        s_media_count(db, "SELECT count(*) FROM uploads WHERE user_id = $1", s_user_id(ann)), 0);

    //  And the form that works, with an alt text.
    json_t *args =
        json_pack("{s:s, s:[{s:s}]}", "caption", "by rpc", "images", "alt_text", "a cat");
    json_t *reply = rpc_call_blob(client, "media", "posts.create", ann_id, args, jpeg.data,
                                  jpeg.size, NULL, 0, NULL, NULL);
    assert_int_equal(reply_status(reply), 201);
    json_t *image = json_array_get(json_object_get(reply_body(reply), "images"), 0);
    assert_string_equal(harness_str(image, "alt_text"), "a cat");
    assert_int_equal(json_integer_value(json_object_get(image, "width")), 120);
    assert_int_equal(json_integer_value(json_object_get(image, "height")), 90);
    json_decref(reply);
    json_decref(args);

    rpc_client_destroy(&client);
    s_bytes_free(&jpeg);
    db_destroy(&db);
    json_decref(post);
    json_decref(ann);
}

static void test_internal_methods(void **state)
{
    json_t *ann = s_register("internal", NULL);
    json_t *bob = s_register("viewer", NULL);
    json_t *one = s_post(s_token(ann), "#first");
    json_t *two = s_post(s_token(ann), "second");
    char like[128];
    snprintf(like, sizeof like, "/api/v1/posts/%s/like", s_id(two));
    assert_int_equal(s_status("POST", like, s_token(bob), NULL), 200);
    int64_t bob_id = strtoll(s_user_id(bob), NULL, 10);

    //  users.sync: only the viewer's own account, with a version; a stale
    //  version changes nothing.
    json_t *reply =
        s_rpc("users.sync", 0, json_pack("{s:s, s:i}", "id", s_user_id(ann), "version", 1));
    assert_int_equal(reply_status(reply), 401);
    json_decref(reply);
    reply = s_rpc(
        "users.sync", bob_id,
        json_pack("{s:s, s:s, s:i}", "id", s_user_id(ann), "username", "hijack", "version", 99));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    reply = s_rpc("users.sync", bob_id, json_pack("{s:s}", "id", s_user_id(bob)));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    reply = s_rpc("users.sync", bob_id,
                  json_pack("{s:s, s:s, s:s, s:b, s:i}", "id", s_user_id(bob), "username",
                            "stale_name", "display_name", "Stale", "is_private", 0, "version", -1));
    assert_int_equal(reply_status(reply), 200);
    json_decref(reply);
    char likers[128];
    snprintf(likers, sizeof likers, "/api/v1/posts/%s/likes", s_id(two));
    http_response_t listed;
    assert_int_equal(s_call("GET", likers, s_token(ann), NULL, &listed), 200);
    assert_string_equal(
        harness_str(json_array_get(json_object_get(listed.json, "items"), 0), "username"),
        harness_str(json_object_get(bob, "user"), "username"));
    http_response_clear(&listed);

    //  posts.batch: in the order asked, unknown left out, as the viewer sees them.
    reply = s_rpc("posts.batch", bob_id,
                  json_pack("{s:[s,s,s]}", "ids", s_id(two), "999999", s_id(one)));
    assert_int_equal(reply_status(reply), 200);
    json_t *posts = json_object_get(reply_body(reply), "posts");
    assert_int_equal(json_array_size(posts), 2);
    assert_string_equal(harness_str(json_array_get(posts, 0), "id"), s_id(two));
    assert_true(json_is_true(json_object_get(json_array_get(posts, 0), "liked_by_me")));
    assert_string_equal(harness_str(json_array_get(posts, 1), "id"), s_id(one));
    json_decref(reply);
    reply = s_rpc("posts.batch", 0, json_pack("{s:s}", "ids", "nope"));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);

    //  posts.counts and posts.recent_by_author.
    reply = s_rpc("posts.counts", 0, json_pack("{s:[s,s]}", "ids", s_user_id(ann), s_user_id(bob)));
    assert_int_equal(reply_status(reply), 200);
    json_t *counts = json_object_get(reply_body(reply), "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, s_user_id(ann))), 2);
    assert_int_equal(json_integer_value(json_object_get(counts, s_user_id(bob))), 0);
    json_decref(reply);
    reply = s_rpc("posts.recent_by_author", 0,
                  json_pack("{s:s, s:i}", "author_id", s_user_id(ann), "limit", 1));
    assert_int_equal(reply_status(reply), 200);
    json_t *items = json_object_get(reply_body(reply), "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(harness_str(json_array_get(items, 0), "id"), s_id(two));
    assert_non_null(harness_str(json_array_get(items, 0), "created_at"));
    json_decref(reply);

    //  The events: post.created and like.created carry what consumers need.
    bool saw_post = false, saw_like = false;
    for (int attempt = 0; attempt < S_EVENT_TRIES && !(saw_post && saw_like); attempt++) {
        if (attempt > 0) zclock_sleep(100);
        json_t *events = s_media_events();
        size_t index;
        json_t *event;
        json_array_foreach(events, index, event)
        {
            const char *topic = harness_str(event, "topic");
            json_t *payload = json_object_get(event, "payload");
            if (streq(topic, "post.created") && streq(harness_str(payload, "id"), s_id(one))) {
                saw_post = true;
                assert_string_equal(harness_str(payload, "author_id"), s_user_id(ann));
                assert_string_equal(
                    json_string_value(json_array_get(json_object_get(payload, "hashtags"), 0)),
                    "first");
                assert_true(json_is_array(json_object_get(payload, "mentions")));
                assert_non_null(harness_str(payload, "created_at"));
            }
            if (streq(topic, "like.created") && streq(harness_str(payload, "post_id"), s_id(two))) {
                saw_like = true;
                assert_string_equal(harness_str(payload, "post_author_id"), s_user_id(ann));
                assert_string_equal(harness_str(payload, "user_id"), s_user_id(bob));
            }
        }
        json_decref(events);
    }
    assert_true(saw_post && saw_like);
    json_decref(one);
    json_decref(two);
    json_decref(ann);
    json_decref(bob);
}

//  A like, an unlike and a comment are one statement each with their event:
//  a repeat changes nothing and emits nothing, and the event's time is the
//  like's or the comment's.
static void test_like_events_once(void **state)
{
    char ann_name[32], text[64];
    json_t *ann = s_register("evlikee", ann_name);
    json_t *bob = s_register("evliker", NULL);
    json_t *post = s_post(s_token(ann), "like me once");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(post));
    int64_t before = zclock_time();
    for (int i = 0; i < 2; i++)
        assert_int_equal(s_status("POST", path, s_token(bob), NULL), 200);
    int64_t after = zclock_time();
    for (int i = 0; i < 2; i++)
        assert_int_equal(s_status("DELETE", path, s_token(bob), NULL), 200);
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(post));
    snprintf(text, sizeof text, "once @%s", ann_name);
    http_response_t r;
    assert_int_equal(s_call("POST", path, s_token(bob), json_pack("{s:s}", "text", text), &r), 201);
    char *comment_id = strdup(harness_str(r.json, "id"));
    char *comment_at = strdup(harness_str(r.json, "created_at"));
    http_response_clear(&r);

    int created = 0, deleted = 0, commented = 0;
    for (int attempt = 0; attempt < S_EVENT_TRIES && !(created && deleted && commented);
         attempt++) {
        if (attempt > 0) zclock_sleep(100);
        created = deleted = commented = 0;
        json_t *events = s_media_events();
        size_t index;
        json_t *event;
        json_array_foreach(events, index, event)
        {
            json_t *payload = json_object_get(event, "payload");
            const char *post_id = harness_str(payload, "post_id");
            if (!post_id || !streq(post_id, s_id(post))) continue;
            const char *topic = harness_str(event, "topic");
            assert_string_equal(harness_str(payload, "post_author_id"), s_user_id(ann));
            if (streq(topic, "comment.created")) {
                commented++;
                assert_string_equal(harness_str(payload, "id"), comment_id);
                assert_string_equal(harness_str(payload, "author_id"), s_user_id(bob));
                assert_string_equal(harness_str(payload, "created_at"), comment_at);
                assert_string_equal(
                    json_string_value(json_array_get(json_object_get(payload, "mentions"), 0)),
                    s_user_id(ann));
                continue;
            }
            assert_string_equal(harness_str(payload, "user_id"), s_user_id(bob));
            if (streq(topic, "like.created")) {
                created++;
                //  "2026-11-28T18:40:56.123Z", within the calls' time.
                const char *at = harness_str(payload, "created_at");
                assert_non_null(at);
                assert_int_equal(strlen(at), 24);
                struct tm tm = {0};
                assert_non_null(strptime(at, "%Y-%m-%dT%H:%M:%S", &tm));
                int64_t ms = (int64_t)timegm(&tm) * 1000 + atoi(at + 20);
                assert_true(ms >= before - 1 && ms <= after + 1);
            } else if (streq(topic, "like.deleted")) {
                deleted++;
            }
        }
        json_decref(events);
    }
    assert_int_equal(created, 1);
    assert_int_equal(deleted, 1);
    assert_int_equal(commented, 1);
    free(comment_id);
    free(comment_at);

    //  A post deleted since: 404 for a like and an unlike, no event.
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(post));
    assert_int_equal(s_status("DELETE", path, s_token(ann), NULL), 204);
    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(post));
    assert_int_equal(s_status("POST", path, s_token(bob), NULL), 404);
    assert_int_equal(s_status("DELETE", path, s_token(bob), NULL), 404);
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(post));
    assert_int_equal(s_status("POST", path, s_token(bob), json_pack("{s:s}", "text", "late")), 404);
    json_decref(post);
    json_decref(ann);
    json_decref(bob);
}

static void test_user_deleted(void **state)
{
    json_t *ann = s_register("stays", NULL);
    json_t *erin = s_register("leaves", NULL);
    json_t *kept = s_post(s_token(ann), "kept");
    json_t *gone = s_post(s_token(erin), "gone");
    bytes_t unique = s_jpeg(77, 55); // bytes no other post shares
    part_t parts[] = {{"image", "u.jpg", "image/jpeg", unique.data, unique.size}};
    http_response_t r;
    assert_int_equal(s_upload("POST", "/api/v1/posts", s_token(erin), parts, 1, NULL, &r), 201);
    char unique_url[160];
    snprintf(unique_url, sizeof unique_url, "%s",
             harness_str(json_array_get(json_object_get(r.json, "images"), 0), "url"));
    http_response_clear(&r);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s/like", s_id(kept));
    assert_int_equal(s_status("POST", path, s_token(erin), NULL), 200);
    snprintf(path, sizeof path, "/api/v1/posts/%s/comments", s_id(kept));
    assert_int_equal(s_status("POST", path, s_token(erin), json_pack("{s:s}", "text", "bye")), 201);
    snprintf(path, sizeof path, "/api/v1/posts/%s/save", s_id(kept));
    assert_int_equal(s_status("POST", path, s_token(erin), NULL), 200);

    assert_int_equal(
        s_status("DELETE", "/api/v1/me", s_token(erin), json_pack("{s:s}", "password", PASSWORD)),
        204);
    //  media handles identity.user.deleted: counters, posts, files.
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(kept));
    bool done = false;
    for (int i = 0; i < 100 && !done; i++) {
        assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
        done = json_integer_value(json_object_get(r.json, "like_count")) == 0 &&
               json_integer_value(json_object_get(r.json, "comment_count")) == 0;
        http_response_clear(&r);
        if (!done) s_sleep_ms(100);
    }
    assert_true(done);
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(gone));
    assert_int_equal(s_status("GET", path, s_token(ann), NULL), 404);
    assert_true(s_wait_status(unique_url, 404));
    s_bytes_free(&unique);
    json_decref(kept);
    json_decref(gone);
    json_decref(ann);
    json_decref(erin);
}

//  The users projection (schemas/media/002_users.sql): authors come from
//  media's own table, so a page of posts renders while identity is frozen;
//  a user the projection does not hold is asked of identity; an account's
//  change reaches the projection through identity.user.updated.
static int64_t s_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Polls media.users until the row of `id` has `column` = `want` (NULL:
//  until the row exists), for at most 5 s. True when it did.
static bool s_wait_projection(db_t *db, const char *id, const char *column, const char *want)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT coalesce(%s::text, '') FROM users WHERE id = $1", column);
    const char *params[] = {id};
    for (int attempt = 0; attempt < 100; attempt++) {
        PGresult *res = db_query(db, sql, 1, params);
        bool done = res && PQntuples(res) == 1 && (!want || streq(PQgetvalue(res, 0, 0), want));
        PQclear(res);
        if (done) return true;
        usleep(50 * 1000);
    }
    return false;
}

static void test_author_projection(void **state)
{
    char name[32];
    json_t *ann = s_register("projected", name);
    json_t *post = s_post(s_token(ann), "seen without identity");
    db_t *db = db_new(harness_database_url(), "media");
    assert_non_null(db);
    assert_true(s_wait_projection(db, s_user_id(ann), "username", name));
    char path[128];
    snprintf(path, sizeof path, "/api/v1/posts/%s", s_id(post));

    //  Identity frozen (SIGSTOP: the broker still routes to it, so a call
    //  would wait for its deadline): the author's own read, which needs no
    //  visibility decision, still renders at once with the projection's
    //  author. (An anonymous read asks identity whether the account is
    //  private: the projection may lag a switch, see test_grid_and_privacy.)
    assert_int_equal(harness_signal("identity", SIGSTOP), 0);
    http_response_t r;
    int64_t started = s_ms();
    long own = s_call("GET", path, s_token(ann), NULL, &r);
    int64_t took = s_ms() - started;
    const char *author =
        own == 200 ? harness_str(json_object_get(r.json, "author"), "username") : NULL;
    bool author_ok = author && streq(author, name);
    http_response_clear(&r);
    assert_int_equal(harness_signal("identity", SIGCONT), 0);
    assert_int_equal(own, 200);
    assert_true(author_ok);
    assert_true(took < 2000);

    //  A user missing from the projection is asked of identity.
    const char *params[] = {s_user_id(ann)};
    assert_int_equal(db_exec(db, "DELETE FROM users WHERE id = $1", 1, params), 1);
    assert_int_equal(s_call("GET", path, NULL, NULL, &r), 200);
    assert_string_equal(harness_str(json_object_get(r.json, "author"), "username"), name);
    http_response_clear(&r);

    //  A change comes back through identity.user.updated: the row again,
    //  now private (so the anonymous reader no longer sees the post).
    json_t *patch = json_pack("{s:b}", "is_private", 1);
    assert_int_equal(s_call("PATCH", "/api/v1/me", s_token(ann), patch, &r), 200);
    http_response_clear(&r);
    assert_true(s_wait_projection(db, s_user_id(ann), "is_private", "true"));
    assert_int_equal(s_status("GET", path, NULL, NULL), 404);
    assert_int_equal(s_status("GET", path, s_token(ann), NULL), 200);

    //  Deleting the account removes its row.
    assert_int_equal(
        s_status("DELETE", "/api/v1/me", s_token(ann), json_pack("{s:s}", "password", PASSWORD)),
        204);
    bool gone = false;
    for (int attempt = 0; attempt < 100 && !gone; attempt++) {
        PGresult *res = db_query(db, "SELECT 1 FROM users WHERE id = $1", 1, params);
        gone = res && PQntuples(res) == 0;
        PQclear(res);
        if (!gone) usleep(50 * 1000);
    }
    assert_true(gone);
    db_destroy(&db);
    json_decref(post);
    json_decref(ann);
}

//  ---- the lossless path for right-sized JPEGs -----------------------------------

//  jpeg with one segment (marker, payload) spliced in after SOI.
static bytes_t s_with_segment(bytes_t jpeg, unsigned marker, const void *payload, size_t size)
{
    bytes_t out = {g_malloc(jpeg.size + 4 + size), jpeg.size + 4 + size};
    unsigned char *p = out.data;
    memcpy(p, jpeg.data, 2);
    p[2] = 0xff;
    p[3] = (unsigned char)marker;
    p[4] = (unsigned char)((size + 2) >> 8);
    p[5] = (unsigned char)((size + 2) & 0xff);
    memcpy(p + 6, payload, size);
    memcpy(p + 6 + size, (unsigned char *)jpeg.data + 2, jpeg.size - 2);
    return out;
}

typedef struct {
    int app[16]; // APPn segments before the first scan
    int com;     // COM segments
    int sof0;    // baseline frames
    int sof2;    // progressive frames
} markers_t;

//  The markers of a JPEG's header, up to its first SOS.
static markers_t s_markers(const void *data, size_t size)
{
    markers_t m;
    memset(&m, 0, sizeof m);
    const unsigned char *p = data;
    assert_true(size > 4 && p[0] == 0xff && p[1] == 0xd8);
    size_t at = 2;
    while (at + 4 <= size && p[at] == 0xff) {
        unsigned marker = p[at + 1];
        size_t length = ((size_t)p[at + 2] << 8) | p[at + 3];
        if (marker >= 0xe0 && marker <= 0xef) m.app[marker - 0xe0]++;
        if (marker == 0xfe) m.com++;
        if (marker == 0xc0) m.sof0++;
        if (marker == 0xc2) m.sof2++;
        if (marker == 0xda) break;
        at += 2 + length;
    }
    return m;
}

//  Where a JPEG's first SOS segment starts (its 0xff), or 0.
static size_t s_first_scan(const void *data, size_t size)
{
    const unsigned char *p = data;
    size_t at = 2;
    while (at + 4 <= size && p[at] == 0xff) {
        if (p[at + 1] == 0xda) return at;
        at += 2 + (((size_t)p[at + 2] << 8) | p[at + 3]);
    }
    return 0;
}

//  The decoded pixels of an encoded image (caller g_frees), no rotation.
static void *s_pixels(const void *data, size_t size, size_t *length, int *width, int *height)
{
    VipsImage *image = vips_image_new_from_buffer(data, size, "", NULL);
    assert_non_null(image);
    *width = vips_image_get_width(image);
    *height = vips_image_get_height(image);
    void *pixels = vips_image_write_to_memory(image, length);
    assert_non_null(pixels);
    g_object_unref(image);
    return pixels;
}

//  Posts source and fetches the stored full rendition into r (caller
//  clears); *post_out is the 201 post (caller decrefs).
static void s_post_and_fetch(const char *token, bytes_t source, json_t **post_out,
                             http_response_t *r)
{
    part_t parts[] = {{"image", "a.jpg", "image/jpeg", source.data, source.size}};
    http_response_t created;
    long status = s_upload("POST", "/api/v1/posts", token, parts, 1, NULL, &created);
    if (status != 201) fprintf(stderr, "post: %ld %s\n", status, created.body);
    assert_int_equal(status, 201);
    *post_out = json_incref(created.json);
    http_response_clear(&created);
    const char *url = harness_str(json_array_get(json_object_get(*post_out, "images"), 0), "url");
    assert_int_equal(http_request("GET", url, NULL, NULL, NULL, r), 200);
}

//  Asserts the stored file decodes to exactly the source's pixels (which
//  a decode and re-encode would not give) and carries no metadata. With
//  same_scans (a baseline source), its scans are the source's byte for
//  byte, up to and including EOI, and nothing follows.
static void s_expect_lossless(const char *token, bytes_t source, int width, int height,
                              bool same_scans)
{
    json_t *post = NULL;
    http_response_t r;
    s_post_and_fetch(token, source, &post, &r);
    json_t *image = json_array_get(json_object_get(post, "images"), 0);
    assert_int_equal(json_integer_value(json_object_get(image, "width")), width);
    assert_int_equal(json_integer_value(json_object_get(image, "height")), height);
    size_t want_size = 0, got_size = 0;
    int w = 0, h = 0;
    void *want = s_pixels(source.data, source.size, &want_size, &w, &h);
    void *got = s_pixels(r.body, r.body_size, &got_size, &w, &h);
    assert_int_equal(w, width);
    assert_int_equal(h, height);
    assert_int_equal(got_size, want_size);
    assert_memory_equal(got, want, want_size);
    //  A baseline file with no APPn but the JFIF APP0, and no comment.
    markers_t m = s_markers(r.body, r.body_size);
    for (int n = 1; n < 16; n++)
        assert_int_equal(m.app[n], 0);
    assert_int_equal(m.com, 0);
    assert_int_equal(m.sof0, 1);
    assert_int_equal(m.sof2, 0);
    assert_false(s_contains(r.body, r.body_size, "Exif"));
    assert_false(s_contains(r.body, r.body_size, "http://ns.adobe.com/xap"));
    assert_false(s_contains(r.body, r.body_size, "secret comment"));
    if (same_scans) {
        size_t stored_scan = s_first_scan(r.body, r.body_size);
        size_t source_scan = s_first_scan(source.data, source.size);
        assert_true(stored_scan > 0 && source_scan > 0);
        size_t tail = r.body_size - stored_scan;
        assert_true(tail <= source.size - source_scan);
        assert_memory_equal((const char *)r.body + stored_scan,
                            (const char *)source.data + source_scan, tail);
        assert_int_equal((unsigned char)r.body[r.body_size - 2], 0xff);
        assert_int_equal((unsigned char)r.body[r.body_size - 1], 0xd9);
    }
    g_free(want);
    g_free(got);
    http_response_clear(&r);
    //  The thumbnail fits 320 and is never upscaled.
    VipsImage *thumb = s_fetch_image(harness_str(image, "thumb_url"), &r);
    int side = width > height ? width : height;
    int thumb_side = vips_image_get_width(thumb) > vips_image_get_height(thumb)
                         ? vips_image_get_width(thumb)
                         : vips_image_get_height(thumb);
    assert_int_equal(thumb_side, side < 320 ? side : 320);
    g_object_unref(thumb);
    http_response_clear(&r);
    json_decref(post);
}

//  A progressive 4:2:0 JPEG of odd size (dummy blocks at the edges of
//  interleaved MCUs), and a grayscale one.
static bytes_t s_progressive_420(int width, int height)
{
    VipsImage *image = s_two_halves(width, height, 3);
    bytes_t out = {NULL, 0};
    assert_int_equal(vips_jpegsave_buffer(image, &out.data, &out.size, "Q", 75, "interlace", TRUE,
                                          "subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON, "strip",
                                          TRUE, NULL),
                     0);
    g_object_unref(image);
    return out;
}

static bytes_t s_gray_jpeg(int width, int height)
{
    VipsImage *image = s_two_halves(width, height, 3), *gray = NULL;
    assert_int_equal(vips_colourspace(image, &gray, VIPS_INTERPRETATION_B_W, NULL), 0);
    bytes_t out = {NULL, 0};
    assert_int_equal(vips_jpegsave_buffer(gray, &out.data, &out.size, "Q", 90, "strip", TRUE, NULL),
                     0);
    g_object_unref(image);
    g_object_unref(gray);
    return out;
}

static void test_lossless_jpeg(void **state)
{
    json_t *ann = s_register("loss", NULL);
    const char *token = s_token(ann);
    //  Upright (orientation 1) with a GPS block, an XMP packet and a comment.
    bytes_t plain = s_jpeg(640, 480);
    bytes_t exif = s_with_exif(plain, 1);
    const char xmp[] = "http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPS 48.8583 2.2945</x:xmpmeta>";
    bytes_t with_xmp = s_with_segment(exif, 0xe1, xmp, sizeof xmp);
    const char comment[] = "secret comment";
    bytes_t tagged = s_with_segment(with_xmp, 0xfe, comment, strlen(comment));
    markers_t m = s_markers(tagged.data, tagged.size);
    assert_int_equal(m.app[1], 2);
    assert_int_equal(m.com, 1);
    s_expect_lossless(token, tagged, 640, 480, true);
    //  Bytes after EOI (a vendor trailer, an appended picture) are dropped.
    const char trailer[] = "secret comment after the end";
    bytes_t trailed = {g_malloc(tagged.size + sizeof trailer), tagged.size + sizeof trailer};
    memcpy(trailed.data, tagged.data, tagged.size);
    memcpy((char *)trailed.data + tagged.size, trailer, sizeof trailer);
    s_expect_lossless(token, trailed, 640, 480, true);
    //  Restart markers inside the scan are copied with it.
    VipsImage *halves = s_two_halves(400, 300, 3);
    bytes_t restarts = {NULL, 0};
    assert_int_equal(vips_jpegsave_buffer(halves, &restarts.data, &restarts.size, "Q", 80,
                                          "restart_interval", 3, "strip", TRUE, NULL),
                     0);
    g_object_unref(halves);
    s_expect_lossless(token, restarts, 400, 300, true);
    //  Exactly at the bound, progressive 4:2:0 of odd size (written anew:
    //  baseline), grayscale, tiny.
    bytes_t bound = s_jpeg(1080, 720);
    s_expect_lossless(token, bound, 1080, 720, true);
    bytes_t progressive = s_progressive_420(333, 251);
    assert_int_equal(s_markers(progressive.data, progressive.size).sof2, 1);
    s_expect_lossless(token, progressive, 333, 251, false);
    bytes_t gray = s_gray_jpeg(500, 300);
    s_expect_lossless(token, gray, 500, 300, true);
    bytes_t tiny = s_jpeg(9, 7);
    s_expect_lossless(token, tiny, 9, 7, true);
    //  An ICC profile (APP2) is dropped too, without converting the
    //  pixels, as the libvips path does.
    VipsImage *srgb = s_two_halves(300, 200, 3), *p3 = NULL;
    assert_int_equal(vips_icc_transform(srgb, &p3, "p3", "input_profile", "srgb", NULL), 0);
    bytes_t icc = {NULL, 0};
    assert_int_equal(vips_jpegsave_buffer(p3, &icc.data, &icc.size, "Q", 90, NULL), 0);
    g_object_unref(srgb);
    g_object_unref(p3);
    assert_int_equal(s_markers(icc.data, icc.size).app[2], 1);
    s_expect_lossless(token, icc, 300, 200, true);

    //  CMYK is declined: libvips converts it to an sRGB JPEG, 3 bands.
    VipsImage *rgb = s_two_halves(200, 100, 3), *cmyk = NULL;
    assert_int_equal(vips_icc_transform(rgb, &cmyk, "cmyk", "input_profile", "srgb", NULL), 0);
    bytes_t ink = {NULL, 0};
    assert_int_equal(vips_jpegsave_buffer(cmyk, &ink.data, &ink.size, "Q", 90, NULL), 0);
    g_object_unref(rgb);
    g_object_unref(cmyk);
    json_t *post = NULL;
    http_response_t r;
    s_post_and_fetch(token, ink, &post, &r);
    VipsImage *decoded = vips_image_new_from_buffer(r.body, r.body_size, "", NULL);
    assert_non_null(decoded);
    assert_int_equal(vips_image_get_bands(decoded), 3);
    assert_int_equal(vips_image_get_width(decoded), 200);
    g_object_unref(decoded);
    http_response_clear(&r);
    json_decref(post);
    s_bytes_free(&ink);

    //  One pixel over the bound: resized by libvips, so not the same pixels.
    bytes_t over = s_jpeg(1081, 500);
    s_post_and_fetch(token, over, &post, &r);
    json_t *image = json_array_get(json_object_get(post, "images"), 0);
    assert_int_equal(json_integer_value(json_object_get(image, "width")), 1080);
    assert_int_equal(json_integer_value(json_object_get(image, "height")), 500);
    http_response_clear(&r);
    json_decref(post);

    //  An EXIF rotation (3: 180 degrees) goes through libvips: the red
    //  half, on the left in the file, comes out on the right, and the
    //  EXIF block is gone.
    bytes_t upside_down = s_with_exif(plain, 3);
    s_post_and_fetch(token, upside_down, &post, &r);
    decoded = vips_image_new_from_buffer(r.body, r.body_size, "", NULL);
    assert_non_null(decoded);
    assert_int_equal(vips_image_get_width(decoded), 640);
    double *left = NULL, *right = NULL;
    int n = 0;
    assert_int_equal(vips_getpoint(decoded, &left, &n, 100, 240, NULL), 0);
    assert_true(n >= 3 && left[0] < 100 && left[2] > 150);
    assert_int_equal(vips_getpoint(decoded, &right, &n, 540, 240, NULL), 0);
    assert_true(n >= 3 && right[0] > 150 && right[2] < 100);
    g_free(left);
    g_free(right);
    assert_false(s_contains(r.body, r.body_size, "Exif"));
    g_object_unref(decoded);
    http_response_clear(&r);
    json_decref(post);

    s_bytes_free(&plain);
    s_bytes_free(&exif);
    s_bytes_free(&with_xmp);
    s_bytes_free(&tagged);
    s_bytes_free(&trailed);
    s_bytes_free(&restarts);
    s_bytes_free(&bound);
    s_bytes_free(&progressive);
    s_bytes_free(&gray);
    s_bytes_free(&tiny);
    s_bytes_free(&icc);
    s_bytes_free(&over);
    s_bytes_free(&upside_down);
    json_decref(ann);
}

//  What the libvips path alone answers for bytes: 201 when it decodes
//  them (the post's full rendition, as image.c asks), else 415.
static long s_vips_verdict(const void *data, size_t size)
{
    VipsImage *thumb = NULL, *memory = NULL;
    long status = 415;
    if (vips_thumbnail_buffer((void *)data, size, &thumb, 1080, "height", 1080, "size",
                              VIPS_SIZE_DOWN, "option_string", "fail_on=error", NULL) == 0 &&
        (memory = vips_image_copy_memory(thumb)) != NULL)
        status = 201;
    if (thumb) g_object_unref(thumb);
    if (memory) g_object_unref(memory);
    vips_error_clear();
    return status;
}

static void test_lossless_corrupt(void **state)
{
    json_t *ann = s_register("corrupt", NULL);
    const char *token = s_token(ann);
    bytes_t good = s_progressive_420(600, 400);
    bytes_t bad = {g_malloc(good.size), good.size};
    //  Cut at several places (the second scan of a progressive file
    //  included), no EOI, entropy data overwritten with junk or with a
    //  restart marker where none belongs.
    struct {
        size_t keep;   // bytes kept
        size_t at;     // where to overwrite, 0 for nowhere
        int junk;      // what to overwrite with
        size_t length; // how many bytes
    } cases[] = {
        {good.size / 2, 0, 0, 0},
        {good.size * 9 / 10, 0, 0, 0},
        {good.size - 2, 0, 0, 0},
        {good.size, good.size / 2, 0x5a, 200},
        {good.size, good.size * 3 / 4, 0xff, 1},
        {good.size, good.size * 3 / 4 + 1, 0xd3, 1},
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad.data, good.data, good.size);
        if (cases[i].at) memset((char *)bad.data + cases[i].at, cases[i].junk, cases[i].length);
        long expected = s_vips_verdict(bad.data, cases[i].keep);
        refused += expected == 415;
        s_expect_upload(token, bad.data, cases[i].keep, "bad.jpg", expected,
                        expected == 415 ? ERR_UNSUPPORTED_MEDIA_TYPE : "");
    }
    //  At least the half file is refused, as it always was.
    assert_true(refused >= 1);
    assert_int_equal(s_vips_verdict(good.data, good.size / 2), 415);
    assert_int_equal(s_status("GET", "/readyz", NULL, NULL), 200);
    s_bytes_free(&good);
    s_bytes_free(&bad);
    json_decref(ann);
}

static void test_still_healthy(void **state)
{
    json_t *ann = s_register("last", NULL);
    json_t *post = s_post(s_token(ann), "still fine");
    assert_non_null(post);
    assert_int_equal(s_status("GET", "/readyz", NULL, NULL), 200);
    json_decref(post);
    json_decref(ann);
}

int main(int argc, char **argv)
{
    (void)argc;
    zsys_handler_set(NULL);
    if (VIPS_INIT(argv[0]) != 0) {
        fprintf(stderr, "libvips failed to start\n");
        return 1;
    }
    //  MEDIA_TEST_BASE_PORT: another ten ports, to run beside a full suite.
    const char *base = getenv("MEDIA_TEST_BASE_PORT");
    harness_config_t config = {.name = "media",
                               .base_port = base ? atoi(base) : 17400,
                               .services = (const char *[]){"identity", "media", NULL}};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_read),
        cmocka_unit_test(test_image_processing),
        cmocka_unit_test(test_formats_and_carousel),
        cmocka_unit_test(test_upload_errors),
        cmocka_unit_test(test_media_endpoint),
        cmocka_unit_test(test_edit_and_delete),
        cmocka_unit_test(test_shared_file_survives),
        cmocka_unit_test(test_grid_and_privacy),
        cmocka_unit_test(test_likes),
        cmocka_unit_test(test_concurrent_likes),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_saves),
        cmocka_unit_test(test_idempotency),
        cmocka_unit_test(test_avatar),
        cmocka_unit_test(test_posts_count),
        cmocka_unit_test(test_one_image_post),
        cmocka_unit_test(test_internal_methods),
        cmocka_unit_test(test_like_events_once),
        cmocka_unit_test(test_user_deleted),
        cmocka_unit_test(test_author_projection),
        cmocka_unit_test(test_lossless_jpeg),
        cmocka_unit_test(test_lossless_corrupt),
        cmocka_unit_test(test_still_healthy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int problems = harness_stop(failed);
    vips_shutdown();
    return failed || problems ? 1 : 0;
}
