/*  Unit tests for gateway/routes: the built-in table is valid, matching
    (parameters, specificity, 404 vs 405 with Allow, no trailing-slash
    match, raw literals), percent-decoding and query strings.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../gateway/routes.h"

#include <stdlib.h>
#include <string.h>

static const route_t s_table[] = {
    {"GET /api/v1/users/{username}", "identity", "users.get", ROUTE_AUTH_OPTIONAL, 0},
    {"POST /api/v1/users/{username}/follow", "graph", "follow", ROUTE_AUTH_REQUIRED, 0},
    {"DELETE /api/v1/users/{username}/follow", "graph", "unfollow", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/posts/{id}/comments", "media", "comments.list", ROUTE_AUTH_OPTIONAL, 0},
    {"GET /api/v1/{anything}/saved", "media", "generic", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/me/saved", "media", "saved.list", ROUTE_AUTH_REQUIRED, 0},
    {"GET /api/v1/me", "identity", "me.get", ROUTE_AUTH_REQUIRED, 0},
    {"PATCH /api/v1/me", "identity", "me.update", ROUTE_AUTH_REQUIRED, ROUTE_JSON_BODY},
    {"GET /api/v1/conversations/{id}/messages/{message_id}", "messaging", "get",
     ROUTE_AUTH_REQUIRED, 0},
};
#define TABLE_SIZE (sizeof s_table / sizeof s_table[0])

static route_match_result_t s_match(const char *method, const char *path, route_match_t *match)
{
    return routes_match(s_table, TABLE_SIZE, method, path, match);
}

static void test_builtin_table_is_valid(void **state)
{
    size_t count = 0;
    const route_t *table = routes_table(&count);
    assert_true(count >= 9);
    char error[256] = "";
    assert_int_equal(routes_validate(table, count, error, sizeof error), 0);
    assert_int_equal(routes_validate(s_table, TABLE_SIZE, error, sizeof error), 0);

    //  Every identity endpoint of API.md is there, with its auth mode.
    struct {
        const char *method, *path, *call;
        route_auth_t auth;
    } expected[] = {
        {"POST", "/api/v1/auth/register", "auth.register", ROUTE_AUTH_NONE},
        {"POST", "/api/v1/auth/login", "auth.login", ROUTE_AUTH_NONE},
        {"POST", "/api/v1/auth/refresh", "auth.refresh", ROUTE_AUTH_NONE},
        {"POST", "/api/v1/auth/logout", "auth.logout", ROUTE_AUTH_NONE},
        {"GET", "/api/v1/me", "me.get", ROUTE_AUTH_REQUIRED},
        {"PATCH", "/api/v1/me", "me.update", ROUTE_AUTH_REQUIRED},
        {"PUT", "/api/v1/me/password", "me.password", ROUTE_AUTH_REQUIRED},
        {"DELETE", "/api/v1/me", "me.delete", ROUTE_AUTH_REQUIRED},
        {"GET", "/api/v1/users/ann", "users.get", ROUTE_AUTH_OPTIONAL},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        route_match_t match;
        assert_int_equal(routes_match(table, count, expected[i].method, expected[i].path, &match),
                         ROUTE_MATCH_OK);
        assert_string_equal(match.route->service, "identity");
        assert_string_equal(match.route->method, expected[i].call);
        assert_int_equal(match.route->auth, expected[i].auth);
        route_match_clear(&match);
    }
    route_match_t match;
    assert_int_equal(routes_match(table, count, "POST", "/api/v1/auth/login", &match),
                     ROUTE_MATCH_OK);
    assert_true(match.route->flags & ROUTE_AUTH_RATE_LIMIT);
    assert_true(match.route->flags & ROUTE_JSON_BODY);
    route_match_clear(&match);
    assert_int_equal(routes_match(table, count, "POST", "/api/v1/auth/refresh", &match),
                     ROUTE_MATCH_OK);
    assert_false(match.route->flags & ROUTE_AUTH_RATE_LIMIT);
    route_match_clear(&match);
}

static void test_validate_rejects_bad_tables(void **state)
{
    char error[256];
    const route_t bad[][1] = {
        {{"FETCH /api/v1/x", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET api/v1/x", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/x/", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api//x", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/{Bad}", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/x{id}", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/{id}/{id}", "s", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/x", "Bad Service", "m", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/x", "s", "", ROUTE_AUTH_NONE, 0}},
        {{"GET /api/v1/x?y", "s", "m", ROUTE_AUTH_NONE, 0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(routes_validate(bad[i], 1, error, sizeof error), -1);
    const route_t duplicate[] = {
        {"GET /api/v1/users/{a}", "s", "m", ROUTE_AUTH_NONE, 0},
        {"GET /api/v1/users/{b}", "s", "n", ROUTE_AUTH_NONE, 0},
    };
    assert_int_equal(routes_validate(duplicate, 2, error, sizeof error), -1);
    assert_non_null(strstr(error, "same method and path"));
    const route_t fine[] = {
        {"GET /api/v1/users/{a}", "s", "m", ROUTE_AUTH_NONE, 0},
        {"POST /api/v1/users/{b}", "s", "n", ROUTE_AUTH_NONE, 0},
    };
    assert_int_equal(routes_validate(fine, 2, NULL, 0), 0);
}

static void test_params(void **state)
{
    route_match_t match;
    assert_int_equal(s_match("GET", "/api/v1/users/ann", &match), ROUTE_MATCH_OK);
    assert_string_equal(match.route->method, "users.get");
    assert_string_equal(json_string_value(json_object_get(match.params, "username")), "ann");
    assert_int_equal(json_object_size(match.params), 1);
    route_match_clear(&match);

    //  Percent-decoded after splitting: %2F stays inside the parameter.
    assert_int_equal(s_match("GET", "/api/v1/users/a%2Fb%20c%C3%A9", &match), ROUTE_MATCH_OK);
    assert_string_equal(json_string_value(json_object_get(match.params, "username")),
                        "a/b c\xc3\xa9");
    route_match_clear(&match);
    //  '+' is literal in a path.
    assert_int_equal(s_match("GET", "/api/v1/users/a+b", &match), ROUTE_MATCH_OK);
    assert_string_equal(json_string_value(json_object_get(match.params, "username")), "a+b");
    route_match_clear(&match);

    assert_int_equal(s_match("GET", "/api/v1/conversations/12/messages/34", &match),
                     ROUTE_MATCH_OK);
    assert_string_equal(json_string_value(json_object_get(match.params, "id")), "12");
    assert_string_equal(json_string_value(json_object_get(match.params, "message_id")), "34");
    route_match_clear(&match);
}

static void test_bad_params(void **state)
{
    route_match_t match;
    const char *bad[] = {"/api/v1/users/%00", "/api/v1/users/a%ff", "/api/v1/users/%zz",
                         "/api/v1/users/%4",  "/api/v1/users/%",    "/api/v1/users/%C3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_match("GET", bad[i], &match), ROUTE_MATCH_BAD_PARAM);
        assert_string_equal(match.bad_param, "username");
        assert_null(match.params);
        route_match_clear(&match);
    }
}

static void test_not_found_and_method_not_allowed(void **state)
{
    route_match_t match;
    const char *missing[] = {
        "/api/v1/users", "/api/v1/users/",        "/api/v1/nothing", "/api/v1/me/",
        "/api/v1//me",   "/api/v1/users//follow", "/api/v2/me",      "",
        "api/v1/me",     "/api/v1/m%65",          "/API/V1/ME",      "/api/v1/me/x/y/z"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        assert_int_equal(s_match("GET", missing[i], &match), ROUTE_MATCH_NOT_FOUND);
        route_match_clear(&match);
    }
    assert_int_equal(routes_match(s_table, TABLE_SIZE, NULL, "/api/v1/me", &match),
                     ROUTE_MATCH_NOT_FOUND);
    assert_int_equal(routes_match(s_table, TABLE_SIZE, "GET", NULL, &match), ROUTE_MATCH_NOT_FOUND);

    assert_int_equal(s_match("PUT", "/api/v1/me", &match), ROUTE_MATCH_METHOD_NOT_ALLOWED);
    assert_string_equal(match.allow, "GET, HEAD, PATCH");
    route_match_clear(&match);
    assert_int_equal(s_match("GET", "/api/v1/users/ann/follow", &match),
                     ROUTE_MATCH_METHOD_NOT_ALLOWED);
    assert_string_equal(match.allow, "POST, DELETE");
    route_match_clear(&match);
    //  Methods are case-sensitive (RFC 9110).
    assert_int_equal(s_match("get", "/api/v1/me", &match), ROUTE_MATCH_METHOD_NOT_ALLOWED);
    route_match_clear(&match);
    //  HEAD runs the GET row (the gateway drops the body); a path without
    //  a GET row refuses it.
    assert_int_equal(s_match("HEAD", "/api/v1/me", &match), ROUTE_MATCH_OK);
    assert_string_equal(match.route->spec, "GET /api/v1/me");
    route_match_clear(&match);
    assert_int_equal(s_match("HEAD", "/api/v1/users/ann/follow", &match),
                     ROUTE_MATCH_METHOD_NOT_ALLOWED);
    assert_string_equal(match.allow, "POST, DELETE");
    route_match_clear(&match);
}

static void test_specificity(void **state)
{
    route_match_t match;
    //  A literal beats a parameter, whatever the table order.
    assert_int_equal(s_match("GET", "/api/v1/me/saved", &match), ROUTE_MATCH_OK);
    assert_string_equal(match.route->method, "saved.list");
    assert_int_equal(json_object_size(match.params), 0);
    route_match_clear(&match);
    assert_int_equal(s_match("GET", "/api/v1/you/saved", &match), ROUTE_MATCH_OK);
    assert_string_equal(match.route->method, "generic");
    assert_string_equal(json_string_value(json_object_get(match.params, "anything")), "you");
    route_match_clear(&match);
}

static void test_long_and_odd_paths(void **state)
{
    route_match_t match;
    size_t size = ROUTE_PATH_MAX + 100;
    char *path = malloc(size + 1);
    memcpy(path, "/api/v1/users/", 14);
    memset(path + 14, 'a', size - 14);
    path[size] = 0;
    assert_int_equal(s_match("GET", path, &match), ROUTE_MATCH_NOT_FOUND);
    path[ROUTE_PATH_MAX] = 0;
    assert_int_equal(s_match("GET", path, &match), ROUTE_MATCH_OK);
    route_match_clear(&match);
    free(path);
    assert_int_equal(s_match("GET", "/", &match), ROUTE_MATCH_NOT_FOUND);
    assert_int_equal(s_match("GET", "//////", &match), ROUTE_MATCH_NOT_FOUND);
    assert_int_equal(s_match("", "/api/v1/me", &match), ROUTE_MATCH_METHOD_NOT_ALLOWED);
}

static void test_pattern_accessor(void **state)
{
    assert_string_equal(route_pattern(&s_table[0]), "/api/v1/users/{username}");
}

static void test_url_decode(void **state)
{
    char out[64];
    assert_int_equal(url_decode("a%20b+c", 7, false, out), 5);
    assert_string_equal(out, "a b+c");
    assert_int_equal(url_decode("a%20b+c", 7, true, out), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(url_decode("%41%6a", 6, false, out), 2);
    assert_string_equal(out, "Aj");
    assert_int_equal(url_decode("", 0, false, out), 0);
    assert_int_equal(url_decode("%", 1, false, out), -1);
    assert_int_equal(url_decode("%a", 2, false, out), -1);
    assert_int_equal(url_decode("%ag", 3, false, out), -1);
    assert_int_equal(url_decode("ab%", 3, false, out), -1);
    //  Only length bytes are read.
    assert_int_equal(url_decode("ab%41", 3, false, out), -1);
    assert_int_equal(url_decode("%00", 3, false, out), 1);
    assert_int_equal(out[0], 0);
}

static void test_query(void **state)
{
    char bad[64];
    json_t *args = json_object();
    assert_int_equal(query_to_args("limit=20&cursor=abc%3D&q=ann+lee&flag&=x&&q2=%C3%A9", args, 64,
                                   bad, sizeof bad),
                     0);
    assert_string_equal(json_string_value(json_object_get(args, "limit")), "20");
    assert_string_equal(json_string_value(json_object_get(args, "cursor")), "abc=");
    assert_string_equal(json_string_value(json_object_get(args, "q")), "ann lee");
    assert_string_equal(json_string_value(json_object_get(args, "flag")), "");
    assert_string_equal(json_string_value(json_object_get(args, "q2")), "\xc3\xa9");
    assert_int_equal(json_object_size(args), 5);
    //  Last value wins.
    assert_int_equal(query_to_args("a=1&a=2", args, 64, bad, sizeof bad), 0);
    assert_string_equal(json_string_value(json_object_get(args, "a")), "2");
    json_decref(args);

    const char *bad_queries[] = {"q=%00", "q=%ff", "q=%", "%zz=1", "q=a%C3", "%00=1"};
    for (size_t i = 0; i < sizeof bad_queries / sizeof bad_queries[0]; i++) {
        args = json_object();
        assert_int_equal(query_to_args(bad_queries[i], args, 64, bad, sizeof bad), -1);
        json_decref(args);
    }
    args = json_object();
    assert_int_equal(query_to_args("q=%ff", args, 64, bad, sizeof bad), -1);
    assert_string_equal(bad, "q");
    assert_int_equal(query_to_args("a=1&b=2&c=3", args, 2, bad, sizeof bad), -1);
    assert_string_equal(bad, "query");
    assert_int_equal(query_to_args("", args, 2, bad, sizeof bad), 0);
    assert_int_equal(query_to_args(NULL, args, 2, bad, sizeof bad), 0);
    json_decref(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_table_is_valid),
        cmocka_unit_test(test_validate_rejects_bad_tables),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_not_found_and_method_not_allowed),
        cmocka_unit_test(test_specificity),
        cmocka_unit_test(test_long_and_odd_paths),
        cmocka_unit_test(test_pattern_accessor),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests_name("gateway_routes", tests, NULL, NULL);
}
