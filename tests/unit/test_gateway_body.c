/*  Unit tests for gateway/jsonbody: Content-Type acceptance and every way
    a body can be refused (API.md "Strict JSON"), plus the depth limit that
    keeps anything accepted here encodable on the bus.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../gateway/jsonbody.h"
#include "msgjson.h"

#include <stdlib.h>
#include <string.h>

static void test_content_type(void **state)
{
    const char *good[] = {NULL,
                          "application/json",
                          "Application/JSON",
                          "application/json; charset=utf-8",
                          "application/json;charset=UTF-8",
                          "application/json; charset=\"utf-8\"",
                          "application/json ; charset=utf8",
                          " application/json"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(jsonbody_content_type_ok(good[i]));
    const char *bad[] = {"",
                         "text/plain",
                         "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x",
                         "application/jsonp",
                         "application/json; charset=latin1",
                         "application/json; boundary=x",
                         "application/json; charset",
                         "application/json garbage",
                         "application/json-seq",
                         "text/json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(jsonbody_content_type_ok(bad[i]));
}

static json_t *s_parse_ok(const char *text, size_t size)
{
    json_t *object = NULL;
    const char *reason = NULL;
    assert_int_equal(jsonbody_parse(text, size, &object, &reason), 0);
    assert_true(json_is_object(object));
    return object;
}

static void s_parse_bad(const char *text, size_t size)
{
    json_t *object = (json_t *)1;
    const char *reason = NULL;
    assert_int_equal(jsonbody_parse(text, size, &object, &reason), -1);
    assert_null(object);
    assert_non_null(reason);
}

static void test_accepts(void **state)
{
    json_t *object = s_parse_ok("", 0);
    assert_int_equal(json_object_size(object), 0);
    json_decref(object);
    object = s_parse_ok(NULL, 0);
    json_decref(object);

    const char *text = "{\"username\":\"ann\",\"n\":42,\"r\":1.5,\"b\":true,\"z\":null,"
                       "\"a\":[1,\"x\",{}],\"u\":\"\\u00e9\xe2\x82\xac\"}";
    object = s_parse_ok(text, strlen(text));
    assert_string_equal(json_string_value(json_object_get(object, "username")), "ann");
    assert_int_equal(json_integer_value(json_object_get(object, "n")), 42);
    assert_string_equal(json_string_value(json_object_get(object, "u")), "\xc3\xa9\xe2\x82\xac");
    json_decref(object);

    object = s_parse_ok("  {}  \n", 7);
    json_decref(object);
}

static void test_refuses(void **state)
{
    const char *bad[] = {
        "{",                            // truncated
        "{\"a\":}",                     // malformed
        "{\"a\":1,}",                   // trailing comma
        "{} {}",                        // trailing data
        "[]",                           // not an object
        "\"text\"",                     // not an object
        "42",                           // not an object
        "null",                         // not an object
        "{\"a\":\"\\u0000\"}",          // NUL escape
        "{\"a\\u0000\":1}",             // NUL in a key
        "{\"a\":1,\"a\":2}",            // duplicate key
        "{\"a\":99999999999999999999}", // beyond int64
        "{\"a\":1e999}",                // real overflow
        "{\"a\":NaN}",
        "{'a':1}",
        "   ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        s_parse_bad(bad[i], strlen(bad[i]));
    //  Invalid UTF-8 inside a string, a lone surrogate, a raw NUL byte.
    s_parse_bad("{\"a\":\"\xff\"}", 8);
    s_parse_bad("{\"a\":\"\xc3\"}", 8);
    s_parse_bad("{\"a\":\"\\ud800\"}", 14);
    s_parse_bad("{\"a\":\"x\0y\"}", 11);
    s_parse_bad("{\"a\":1}\0", 8);
}

static char *s_nested(int depth)
{
    //  {"a":{"a":...{}...}} with depth objects.
    size_t size = (size_t)depth * 6 + 8;
    char *text = calloc(1, size);
    size_t used = 0;
    for (int i = 0; i < depth - 1; i++) {
        memcpy(text + used, "{\"a\":", 5);
        used += 5;
    }
    text[used++] = '{';
    text[used++] = '}';
    for (int i = 0; i < depth - 1; i++)
        text[used++] = '}';
    return text;
}

static void test_depth(void **state)
{
    json_t *scalar = json_integer(1);
    assert_int_equal(jsonbody_depth(scalar, 10), 0);
    json_decref(scalar);

    char *text = s_nested(JSONBODY_MAX_DEPTH);
    json_t *object = s_parse_ok(text, strlen(text));
    assert_int_equal(jsonbody_depth(object, 100), JSONBODY_MAX_DEPTH);
    //  What the gateway accepts, the bus carries.
    size_t size = 0;
    char *packed = msgjson_encode(object, &size);
    assert_non_null(packed);
    json_t *back = msgjson_decode(packed, size);
    assert_true(json_equal(back, object));
    json_decref(back);
    free(packed);
    json_decref(object);
    free(text);

    text = s_nested(JSONBODY_MAX_DEPTH + 1);
    s_parse_bad(text, strlen(text));
    free(text);
    text = s_nested(1500);
    s_parse_bad(text, strlen(text));
    free(text);
    //  Arrays count too.
    char deep[200] = "{\"a\":";
    size_t used = strlen(deep);
    for (int i = 0; i < 40; i++)
        deep[used++] = '[';
    for (int i = 0; i < 40; i++)
        deep[used++] = ']';
    deep[used++] = '}';
    deep[used] = 0;
    s_parse_bad(deep, used);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests_name("gateway_body", tests, NULL, NULL);
}
