/*  Unit tests for the small common modules: config, ids, errors, msgjson,
    envelope, args and cursor. Each group tests the contract its header
    states, with the boundary values and hostile inputs the bus and the
    gateway can hand it.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "args.h"
#include "config.h"
#include "cursor.h"
#include "envelope.h"
#include "errors.h"
#include "ids.h"
#include "msgjson.h"

#include <stdlib.h>
#include <string.h>

//  ---- config ------------------------------------------------------------

static void test_config_int(void **state)
{
    setenv("TEST_CONFIG_INT", "42", 1);
    assert_int_equal(config_int("TEST_CONFIG_INT", 7), 42);
    setenv("TEST_CONFIG_INT", "42x", 1);
    assert_int_equal(config_int("TEST_CONFIG_INT", 7), 7);
    setenv("TEST_CONFIG_INT", "", 1);
    assert_int_equal(config_int("TEST_CONFIG_INT", 7), 7);
    unsetenv("TEST_CONFIG_INT");
    assert_int_equal(config_int("TEST_CONFIG_INT", -3), -3);
    assert_string_equal(config_str("TEST_CONFIG_NOPE", "dflt"), "dflt");
}

static void test_config_mask_url(void **state)
{
    char *masked = config_mask_url("postgresql://app:hunter2@db:5432/app");
    assert_string_equal(masked, "postgresql://app:***@db:5432/app");
    free(masked);
    masked = config_mask_url("postgresql://app@db/app");
    assert_string_equal(masked, "postgresql://app@db/app");
    free(masked);
    masked = config_mask_url("tcp://127.0.0.1:5555");
    assert_string_equal(masked, "tcp://127.0.0.1:5555");
    free(masked);
}

//  ---- ids ---------------------------------------------------------------

static void test_ids_monotonic_and_layout(void **state)
{
    assert_int_equal(ids_set_shard(8191), 0);
    assert_int_equal(ids_set_shard(8192), -1);
    assert_int_equal(ids_set_shard(-1), -1);
    assert_int_equal(ids_set_shard(5), 0);
    int64_t before = envelope_now_ms();
    int64_t last = 0;
    //  More than 1,024 ids: crosses at least one millisecond boundary.
    for (int i = 0; i < 5000; i++) {
        int64_t id = ids_next();
        assert_true(id > last);
        last = id;
    }
    int64_t after = envelope_now_ms();
    assert_int_equal(ids_shard(last), 5);
    assert_true(ids_time_ms(last) >= before && ids_time_ms(last) <= after + 1);
    assert_true(ids_floor_for_time(ids_time_ms(last)) <= last);
    assert_true(ids_floor_for_time(ids_time_ms(last) + 1) > last);
}

static void test_ids_parse_format(void **state)
{
    int64_t id = 0;
    assert_true(ids_parse("123", &id));
    assert_int_equal(id, 123);
    assert_false(ids_parse("", &id));
    assert_false(ids_parse("-5", &id));
    assert_false(ids_parse("+5", &id));
    assert_false(ids_parse("0", &id));
    assert_false(ids_parse("12a", &id));
    assert_false(ids_parse(" 12", &id));
    assert_false(ids_parse("99999999999999999999", &id)); // overflow
    char buf[21];
    ids_format(INT64_MAX, buf, sizeof buf);
    assert_string_equal(buf, "9223372036854775807");

    //  The API's timestamp form, as the services' to_char writes it.
    char when[25];
    ids_format_time(IDS_EPOCH_MS, when, sizeof when);
    assert_string_equal(when, "2025-01-01T00:00:00.000Z");
    ids_format_time(INT64_C(1772420645007), when, sizeof when);
    assert_string_equal(when, "2026-03-02T03:04:05.007Z");
    ids_format_time(ids_time_ms(ids_floor_for_time(INT64_C(1772420645999))), when, sizeof when);
    assert_string_equal(when, "2026-03-02T03:04:05.999Z");
}

//  ---- errors ------------------------------------------------------------

static void test_errors_replies(void **state)
{
    json_t *ok = reply_ok(201, json_pack("{s:s}", "a", "b"));
    assert_int_equal(reply_status(ok), 201);
    assert_string_equal(json_string_value(json_object_get(reply_body(ok), "a")), "b");
    assert_null(reply_error_code(ok));
    json_decref(ok);

    json_t *fields = json_pack("{s:s}", "username", "is required");
    json_t *bad = reply_invalid(fields, NULL);
    assert_int_equal(reply_status(bad), 400);
    assert_string_equal(reply_error_code(bad), "invalid");
    assert_non_null(json_object_get(json_object_get(bad, "error"), "fields"));
    json_decref(bad);

    bad = reply_invalid(json_object(), "nope");
    assert_null(json_object_get(json_object_get(bad, "error"), "fields"));
    json_decref(bad);

    assert_int_equal(errors_status_for_code("not_found"), 404);
    assert_int_equal(errors_status_for_code("rate_limited"), 429);
    assert_int_equal(errors_status_for_code("whatever"), 500);
    json_t *junk = json_pack("{s:s}", "status", "200");
    assert_int_equal(reply_status(junk), 500);
    json_decref(junk);
}

//  ---- msgjson -----------------------------------------------------------

static void test_msgjson_roundtrip(void **state)
{
    json_t *value = json_pack("{s:i, s:I, s:f, s:b, s:n, s:s, s:[i,s,{s:[]}]}", "small", 1, "big",
                              (json_int_t)INT64_MIN, "real", 1.5, "yes", 1, "nothing", "text",
                              "h\xc3\xa9llo", "list", 1, "two", "deep");
    json_object_set_new(value, "with_nul", json_stringn("a\0b", 3));
    //  msgpack-c hands back empty strings with a NULL pointer.
    json_object_set_new(value, "", json_string(""));
    size_t size = 0;
    char *bytes = msgjson_encode(value, &size);
    assert_non_null(bytes);
    json_t *back = msgjson_decode(bytes, size);
    assert_non_null(back);
    assert_true(json_equal(value, back));
    assert_int_equal(json_string_length(json_object_get(back, "with_nul")), 3);
    json_decref(back);
    free(bytes);
    json_decref(value);
}

static void test_msgjson_refuses_hostile_input(void **state)
{
    //  array32 claiming 4 billion elements in 5 bytes: must not allocate.
    const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_null(msgjson_decode(huge_array, sizeof huge_array));
    //  map32 likewise.
    const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xc0};
    assert_null(msgjson_decode(huge_map, sizeof huge_map));
    //  str32 longer than the input.
    const unsigned char long_str[] = {0xdb, 0x00, 0x10, 0x00, 0x00, 'a'};
    assert_null(msgjson_decode(long_str, sizeof long_str));
    //  the never-used byte.
    const unsigned char never[] = {0xc1};
    assert_null(msgjson_decode(never, sizeof never));
    //  trailing bytes after one value.
    const unsigned char trailing[] = {0xc0, 0xc0};
    assert_null(msgjson_decode(trailing, sizeof trailing));
    //  binary and ext are not JSON.
    const unsigned char bin[] = {0xc4, 0x01, 0x00};
    assert_null(msgjson_decode(bin, sizeof bin));
    const unsigned char ext[] = {0xd4, 0x01, 0x00};
    assert_null(msgjson_decode(ext, sizeof ext));
    //  uint64 above INT64_MAX.
    const unsigned char too_big[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_null(msgjson_decode(too_big, sizeof too_big));
    //  invalid UTF-8 in a string.
    const unsigned char bad_utf8[] = {0xa2, 0xc3, 0x28};
    assert_null(msgjson_decode(bad_utf8, sizeof bad_utf8));
    //  a map with an integer key, and one with a NUL in its key.
    const unsigned char int_key[] = {0x81, 0x01, 0xc0};
    assert_null(msgjson_decode(int_key, sizeof int_key));
    const unsigned char nul_key[] = {0x81, 0xa2, 'a', 0x00, 0xc0};
    assert_null(msgjson_decode(nul_key, sizeof nul_key));
    //  truncated and empty input.
    const unsigned char truncated[] = {0x92, 0x01};
    assert_null(msgjson_decode(truncated, sizeof truncated));
    assert_null(msgjson_decode("", 0));
    //  nesting deeper than the limit: 200 nested one-element arrays.
    unsigned char deep[201];
    memset(deep, 0x91, 200);
    deep[200] = 0xc0;
    assert_null(msgjson_decode(deep, sizeof deep));
    //  NaN is not JSON either.
    const unsigned char nan[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    assert_null(msgjson_decode(nan, sizeof nan));
}

//  msgpack bytes -> JSON text through msgjson_write_text, appended to text.
static int s_write_text(msgjson_text_t *text, const void *bytes, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    int rc = msgjson_unpack(bytes, size, &unpacked);
    if (rc == 0) rc = msgjson_write_text(text, &unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

static void test_msgjson_write_text(void **state)
{
    //  Every kind of value, the escapes jansson writes (and the characters
    //  it leaves alone: '/', DEL, non-ASCII), reals and the integer ends.
    json_t *post = json_pack(
        "{s:s, s:s, s:{s:s, s:n}, s:I, s:I, s:I, s:b, s:b, s:[f,f,f,f,f]}", "id", "725568337214464",
        "caption", "\"q\" \\ / \b\f\n\r\t \x01\x1f\x7f h\xc3\xa9llo \xf0\x9f\x93\xb7", "author",
        "username", "bj\xc3\xb6rk", "avatar_url", "likes", (json_int_t)0, "min",
        (json_int_t)INT64_MIN, "max", (json_int_t)INT64_MAX, "liked", 1, "saved", 0, "reals", 1.0,
        0.1, 1e20, -0.0, 1.2345678901234568e17);
    json_object_set_new(post, "with_nul", json_stringn("a\0b", 3));
    json_object_set_new(post, "", json_string(""));
    json_object_set_new(post, "empty", json_pack("{s:[], s:{}}", "list", "map"));
    json_t *values[] = {post, json_string("top-level text"), json_integer(-7), json_null(),
                        json_pack("[[[]],{}]")};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        size_t size = 0;
        char *bytes = msgjson_encode(values[i], &size);
        assert_non_null(bytes);
        msgjson_text_t text = {0};
        assert_int_equal(s_write_text(&text, bytes, size), 0);
        char *expected = json_dumps(values[i], JSON_COMPACT | JSON_ENCODE_ANY);
        assert_int_equal(text.size, strlen(expected));
        assert_memory_equal(text.data, expected, text.size);
        free(expected);
        msgjson_text_free(&text);
        free(bytes);
        json_decref(values[i]);
    }

    //  What msgjson_decode refuses, the writer refuses, leaving the text
    //  as it was.
    const unsigned char bin[] = {0x91, 0xc4, 0x01, 0x00};
    const unsigned char ext[] = {0xd4, 0x01, 0x00};
    const unsigned char too_big[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const unsigned char bad_utf8[] = {0xa2, 0xc3, 0x28};
    const unsigned char surrogate[] = {0xa3, 0xed, 0xa0, 0x80};
    const unsigned char overlong[] = {0xa2, 0xc0, 0xaf};
    const unsigned char int_key[] = {0x81, 0x01, 0xc0};
    const unsigned char nul_key[] = {0x81, 0xa2, 'a', 0x00, 0xc0};
    const unsigned char nan[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    const unsigned char infinity[] = {0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0};
    const struct {
        const unsigned char *bytes;
        size_t size;
    } refused[] = {{bin, sizeof bin},
                   {ext, sizeof ext},
                   {too_big, sizeof too_big},
                   {bad_utf8, sizeof bad_utf8},
                   {surrogate, sizeof surrogate},
                   {overlong, sizeof overlong},
                   {int_key, sizeof int_key},
                   {nul_key, sizeof nul_key},
                   {nan, sizeof nan},
                   {infinity, sizeof infinity}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_null(msgjson_decode(refused[i].bytes, refused[i].size));
        msgjson_text_t text = {0};
        assert_int_equal(s_write_text(&text, "\x91\x01", 2), 0); // "[1]" first
        assert_int_equal(s_write_text(&text, refused[i].bytes, refused[i].size), -1);
        assert_int_equal(text.size, 3);
        msgjson_text_free(&text);
    }
    unsigned char deep[201];
    memset(deep, 0x91, 200);
    deep[200] = 0xc0;
    msgjson_text_t text = {0};
    assert_int_equal(s_write_text(&text, deep, sizeof deep), -1);
    assert_int_equal(text.size, 0);
    msgjson_text_free(&text);
}

//  ---- envelope ----------------------------------------------------------

static void test_envelope_request_roundtrip(void **state)
{
    envelope_request_t request = {.v = 1, .viewer_id = 77, .deadline_ms = 1234567};
    snprintf(request.method, sizeof request.method, "users.get");
    snprintf(request.request_id, sizeof request.request_id, "abc123");
    request.args = json_pack("{s:s}", "username", "ann");
    size_t size = 0;
    char *bytes = envelope_request_encode(&request, &size);
    assert_non_null(bytes);
    envelope_request_t back;
    assert_int_equal(envelope_request_decode(bytes, size, &back), 0);
    assert_string_equal(back.method, "users.get");
    assert_string_equal(back.request_id, "abc123");
    assert_int_equal(back.viewer_id, 77);
    assert_int_equal(back.deadline_ms, 1234567);
    assert_true(json_equal(back.args, request.args));
    envelope_request_clear(&back);
    envelope_request_clear(&back); // twice is safe
    free(bytes);

    //  Anonymous viewer and no args.
    envelope_request_clear(&request);
    request.viewer_id = 0;
    bytes = envelope_request_encode(&request, &size);
    assert_int_equal(envelope_request_decode(bytes, size, &back), 0);
    assert_int_equal(back.viewer_id, 0);
    assert_true(json_is_object(back.args));
    envelope_request_clear(&back);
    free(bytes);
}

static void s_expect_bad_request(const char *json_text)
{
    json_t *map = json_loads(json_text, 0, NULL);
    assert_non_null(map);
    size_t size = 0;
    char *bytes = msgjson_encode(map, &size);
    envelope_request_t request;
    assert_int_equal(envelope_request_decode(bytes, size, &request), -1);
    assert_null(request.args);
    free(bytes);
    json_decref(map);
}

static void test_envelope_request_refuses(void **state)
{
    s_expect_bad_request("{\"method\":\"a.b\",\"deadline_ms\":5}");         // no v
    s_expect_bad_request("{\"v\":2,\"method\":\"a.b\",\"deadline_ms\":5}"); // unknown v
    s_expect_bad_request("{\"v\":1,\"deadline_ms\":5}");                    // no method
    s_expect_bad_request("{\"v\":1,\"method\":\"\",\"deadline_ms\":5}");    // empty method
    s_expect_bad_request("{\"v\":1,\"method\":42,\"deadline_ms\":5}");      // wrong type
    s_expect_bad_request("{\"v\":1,\"method\":\"a.b\"}");                   // no deadline
    s_expect_bad_request("{\"v\":1,\"method\":\"a.b\",\"deadline_ms\":5,\"args\":[]}");
    s_expect_bad_request("{\"v\":1,\"method\":\"a.b\",\"deadline_ms\":5,\"viewer_id\":\"7\"}");
    char long_method[200];
    memset(long_method, 'm', sizeof long_method);
    long_method[sizeof long_method - 1] = '\0';
    char text[400];
    snprintf(text, sizeof text, "{\"v\":1,\"method\":\"%s\",\"deadline_ms\":5}", long_method);
    s_expect_bad_request(text);
    envelope_request_t request;
    assert_int_equal(envelope_request_decode("\x93", 1, &request), -1);
}

static void test_envelope_reply(void **state)
{
    json_t *reply = reply_error(404, ERR_NOT_FOUND, "no such user");
    size_t size = 0;
    char *bytes = envelope_reply_encode(reply, &size);
    json_t *back = envelope_reply_decode(bytes, size);
    assert_non_null(back);
    assert_true(json_equal(reply, back));
    json_decref(back);
    free(bytes);
    json_decref(reply);

    const char *bad[] = {"[]",
                         "{\"status\":200}",
                         "{\"status\":99,\"body\":null}",
                         "{\"status\":\"200\",\"body\":null}",
                         "{\"status\":400,\"error\":{\"message\":\"x\"}}",
                         "{\"status\":400,\"error\":{\"code\":\"x\",\"fields\":[]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *map = json_loads(bad[i], 0, NULL);
        bytes = msgjson_encode(map, &size);
        assert_null(envelope_reply_decode(bytes, size));
        free(bytes);
        json_decref(map);
    }
}

static void test_envelope_reply_lazy(void **state)
{
    //  A success reply: {status} alone, the body left in msgpack.
    json_t *reply = json_pack("{s:i, s:{s:[i,i]}}", "status", 200, "body", "items", 1, 2);
    size_t size = 0;
    char *bytes = envelope_reply_encode(reply, &size);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    const msgpack_object *body = NULL;
    json_t *head = envelope_reply_decode_lazy(bytes, size, &unpacked, &body);
    assert_non_null(head);
    assert_int_equal(reply_status(head), 200);
    assert_null(json_object_get(head, "body"));
    assert_non_null(body);
    json_t *decoded = msgjson_from_object(body);
    assert_true(json_equal(decoded, json_object_get(reply, "body")));
    json_decref(decoded);
    json_decref(head);
    msgpack_unpacked_destroy(&unpacked);
    free(bytes);
    json_decref(reply);

    //  An error reply comes decoded, as from envelope_reply_decode.
    reply = reply_error(403, ERR_FORBIDDEN, "not yours");
    bytes = envelope_reply_encode(reply, &size);
    msgpack_unpacked_init(&unpacked);
    head = envelope_reply_decode_lazy(bytes, size, &unpacked, &body);
    assert_null(body);
    assert_true(json_equal(head, reply));
    json_decref(head);
    msgpack_unpacked_destroy(&unpacked);
    free(bytes);
    json_decref(reply);

    //  Malformed replies are refused either way.
    const char *bad[] = {"[]", "{\"status\":200}", "{\"status\":99,\"body\":null}",
                         "{\"status\":\"200\",\"body\":null}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *map = json_loads(bad[i], 0, NULL);
        bytes = msgjson_encode(map, &size);
        msgpack_unpacked_init(&unpacked);
        assert_null(envelope_reply_decode_lazy(bytes, size, &unpacked, &body));
        assert_null(body);
        msgpack_unpacked_destroy(&unpacked);
        free(bytes);
        json_decref(map);
    }
}

//  ---- args --------------------------------------------------------------

static void test_args_strict_types(void **state)
{
    json_t *args = json_pack("{s:i, s:s, s:s, s:b, s:s, s:i}", "username", 42, "bio", "ok", "yes",
                             "yes", "flag", 1, "id", "123", "num_id", 5);
    json_t *fields = json_object();
    const char *text = NULL;
    bool flag = false;
    int64_t id = 0;
    assert_int_equal(args_string(args, "username", true, 1, 30, &text, fields), -1);
    assert_int_equal(args_string(args, "bio", false, 0, 150, &text, fields), 1);
    assert_string_equal(text, "ok");
    assert_int_equal(args_string(args, "missing", false, 0, 10, &text, fields), 0);
    assert_int_equal(args_string(args, "required", true, 0, 10, &text, fields), -1);
    assert_int_equal(args_bool(args, "yes", false, &flag, fields), -1);
    assert_int_equal(args_bool(args, "flag", false, &flag, fields), 1);
    assert_true(flag);
    assert_int_equal(args_id(args, "id", true, &id, fields), 1);
    assert_int_equal(id, 123);
    assert_int_equal(args_id(args, "num_id", true, &id, fields), -1);
    assert_non_null(json_object_get(fields, "username"));
    assert_non_null(json_object_get(fields, "required"));
    assert_non_null(json_object_get(fields, "yes"));
    assert_non_null(json_object_get(fields, "num_id"));
    assert_null(json_object_get(fields, "bio"));
    json_decref(fields);
    json_decref(args);
}

static void test_args_codepoints_and_nul(void **state)
{
    //  150 "é" (2 bytes each) is 150 code points: within a 150 limit.
    char bio[301];
    for (int i = 0; i < 150; i++)
        memcpy(bio + 2 * i, "\xc3\xa9", 2);
    bio[300] = '\0';
    json_t *args = json_pack("{s:s}", "bio", bio);
    json_object_set_new(args, "nul", json_stringn("a\0b", 3));
    json_t *fields = json_object();
    const char *text = NULL;
    assert_int_equal(args_string(args, "bio", false, 0, 150, &text, fields), 1);
    assert_int_equal(args_string(args, "bio", false, 0, 149, &text, fields), -1);
    assert_int_equal(args_string(args, "nul", false, 0, 10, &text, fields), -1);
    json_decref(fields);
    json_decref(args);

    assert_int_equal(utf8_codepoints("abc", 3), 3);
    assert_int_equal(utf8_codepoints("\xf0\x9f\x93\xb7", 4), 1); // 📷
    assert_int_equal(utf8_codepoints("\xc0\xaf", 2), -1);        // overlong
    assert_int_equal(utf8_codepoints("\xed\xa0\x80", 3), -1);    // surrogate
    assert_int_equal(utf8_codepoints("\xe2\x82", 2), -1);        // truncated
}

static void test_args_int(void **state)
{
    json_t *args = json_pack("{s:i, s:i, s:s, s:f, s:b}", "n", 5, "big", 101, "text", "5", "real",
                             5.0, "flag", 1);
    json_t *fields = json_object();
    int64_t out = -7;
    assert_int_equal(args_int(args, "n", true, 1, 100, &out, fields), 1);
    assert_int_equal(out, 5);
    out = -7;
    assert_int_equal(args_int(args, "absent", false, 1, 100, &out, fields), 0);
    assert_int_equal(out, -7); // untouched: the caller's default stands
    assert_int_equal(json_object_size(fields), 0);
    assert_int_equal(args_int(args, "absent2", true, 1, 100, &out, fields), -1);
    assert_string_equal(json_string_value(json_object_get(fields, "absent2")), "is required");
    assert_int_equal(args_int(args, "big", true, 1, 100, &out, fields), -1);
    assert_string_equal(json_string_value(json_object_get(fields, "big")),
                        "must be an integer from 1 to 100");
    //  No coercion: a string of digits, a real or a boolean is not an integer.
    assert_int_equal(args_int(args, "text", true, 1, 100, &out, fields), -1);
    assert_int_equal(args_int(args, "real", true, 1, 100, &out, fields), -1);
    assert_int_equal(args_int(args, "flag", true, 0, 100, &out, fields), -1);
    assert_int_equal(json_object_size(fields), 5);
    assert_int_equal(out, -7);
    json_decref(fields);
    json_decref(args);
}

static void test_args_limit(void **state)
{
    const struct {
        const char *json;
        int result;
        int limit;
    } cases[] = {
        {"{}", 0, 20},
        {"{\"limit\":\"5\"}", 1, 5},
        {"{\"limit\":5}", 1, 5},
        {"{\"limit\":\"1000\"}", 1, 100},
        {"{\"limit\":\"0\"}", -1, 0},
        {"{\"limit\":\"-1\"}", -1, 0},
        {"{\"limit\":\"abc\"}", -1, 0},
        {"{\"limit\":\"\"}", -1, 0},
        {"{\"limit\":\"1.5\"}", -1, 0},
        //  Any positive integer, however long, is clamped (API.md "Lists").
        {"{\"limit\":\"99999999999999999999999\"}", 1, 100},
        {"{\"limit\":\"0000000000000000000000007\"}", 1, 7},
        {"{\"limit\":\"0000000000000000000000000\"}", -1, 0},
        {"{\"limit\":true}", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *args = json_loads(cases[i].json, 0, NULL);
        json_t *fields = json_object();
        int limit = 0;
        assert_int_equal(args_limit(args, &limit, fields), cases[i].result);
        if (cases[i].result >= 0)
            assert_int_equal(limit, cases[i].limit);
        else
            assert_non_null(json_object_get(fields, "limit"));
        json_decref(fields);
        json_decref(args);
    }
}

//  ---- cursor ------------------------------------------------------------

static void test_cursor(void **state)
{
    char text[CURSOR_TEXT_MAX];
    cursor_encode(INT64_MAX, -5, text);
    int64_t a = 0, b = 0;
    assert_int_equal(cursor_decode(text, &a, &b), 0);
    assert_int_equal(a, INT64_MAX);
    assert_int_equal(b, -5);
    //  Flip one character: the MAC no longer matches.
    char forged[CURSOR_TEXT_MAX];
    memcpy(forged, text, sizeof forged);
    forged[5] = forged[5] == 'A' ? 'B' : 'A';
    assert_int_equal(cursor_decode(forged, &a, &b), -1);
    assert_int_equal(cursor_decode("", &a, &b), -1);
    assert_int_equal(cursor_decode("abc", &a, &b), -1);
    assert_int_equal(cursor_decode("12345", &a, &b), -1);
    assert_int_equal(cursor_decode(NULL, &a, &b), -1);
    char huge[300];
    memset(huge, 'A', sizeof huge);
    huge[299] = '\0';
    assert_int_equal(cursor_decode(huge, &a, &b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_int),
        cmocka_unit_test(test_config_mask_url),
        cmocka_unit_test(test_ids_monotonic_and_layout),
        cmocka_unit_test(test_ids_parse_format),
        cmocka_unit_test(test_errors_replies),
        cmocka_unit_test(test_msgjson_roundtrip),
        cmocka_unit_test(test_msgjson_refuses_hostile_input),
        cmocka_unit_test(test_msgjson_write_text),
        cmocka_unit_test(test_envelope_request_roundtrip),
        cmocka_unit_test(test_envelope_request_refuses),
        cmocka_unit_test(test_envelope_reply),
        cmocka_unit_test(test_envelope_reply_lazy),
        cmocka_unit_test(test_args_strict_types),
        cmocka_unit_test(test_args_codepoints_and_nul),
        cmocka_unit_test(test_args_int),
        cmocka_unit_test(test_args_limit),
        cmocka_unit_test(test_cursor),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
