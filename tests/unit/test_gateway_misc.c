/*  Unit tests for the small gateway pieces: X-Request-Id validation, the
    Authorization header (auth.c), static cache rules and gzip negotiation, readiness against a
    broker that is not there, and gateway_new/destroy.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../gateway/auth.h"
#include "../../gateway/http.h"
#include "../../gateway/ops.h"
#include "../../gateway/static.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *SECRET = "unit-test-secret-0123456789abcdef!";

static void test_request_id(void **state)
{
    assert_true(gateway_request_id_ok("a"));
    assert_true(gateway_request_id_ok("abc-DEF_123.x"));
    char longest[65];
    memset(longest, 'x', 64);
    longest[64] = 0;
    assert_true(gateway_request_id_ok(longest));
    char too_long[66];
    memset(too_long, 'x', 65);
    too_long[65] = 0;
    assert_false(gateway_request_id_ok(too_long));
    assert_false(gateway_request_id_ok(NULL));
    assert_false(gateway_request_id_ok(""));
    const char *bad[] = {"a b", "a/b", "a\"b", "a\nb", "é", "a:b", "{x}", "a\\b", "a%20"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(gateway_request_id_ok(bad[i]));
}

static void test_auth_header(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *token = token_issue(SECRET, 77, 900);
    char header[5000];
    int64_t viewer = -1;

    assert_int_equal(auth_viewer(NULL, SECRET, now, &viewer), AUTH_ANONYMOUS);
    assert_int_equal(viewer, 0);
    assert_int_equal(auth_viewer("", SECRET, now, &viewer), AUTH_ANONYMOUS);
    assert_int_equal(auth_viewer("   ", SECRET, now, &viewer), AUTH_ANONYMOUS);

    snprintf(header, sizeof header, "Bearer %s", token);
    assert_int_equal(auth_viewer(header, SECRET, now, &viewer), AUTH_VALID);
    assert_int_equal(viewer, 77);
    snprintf(header, sizeof header, "bearer   %s  ", token);
    assert_int_equal(auth_viewer(header, SECRET, now, &viewer), AUTH_VALID);
    snprintf(header, sizeof header, "BEARER\t%s", token);
    assert_int_equal(auth_viewer(header, SECRET, now, &viewer), AUTH_VALID);

    const char *bad[] = {"Bearer",      "Bearer ",     "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
                         "Token x.y.z", "Bearerx.y.z", "Bearer x.y.z",
                         "Bearer a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(auth_viewer(bad[i], SECRET, now, &viewer), AUTH_INVALID);
        assert_int_equal(viewer, 0);
    }
    snprintf(header, sizeof header, "Bearer %s", token);
    assert_int_equal(auth_viewer(header, "another-secret-0123456789abcdef!!", now, &viewer),
                     AUTH_INVALID);
    assert_int_equal(auth_viewer(header, SECRET, now + 901, &viewer), AUTH_INVALID);
    //  A token glued to the header twice, an oversized header.
    snprintf(header, sizeof header, "Bearer %s %s", token, token);
    assert_int_equal(auth_viewer(header, SECRET, now, &viewer), AUTH_INVALID);
    memset(header, 'a', sizeof header - 1);
    memcpy(header, "Bearer ", 7);
    header[sizeof header - 1] = 0;
    assert_int_equal(auth_viewer(header, SECRET, now, &viewer), AUTH_INVALID);
    free(token);

    //  The session (sid claim) comes out beside the viewer; 0 without one.
    int64_t session = -1;
    token = token_issue_session(SECRET, 77, 9001, 900);
    snprintf(header, sizeof header, "Bearer %s", token);
    assert_int_equal(auth_viewer_session(header, SECRET, now, &viewer, &session), AUTH_VALID);
    assert_int_equal(viewer, 77);
    assert_int_equal(session, 9001);
    free(token);
    token = token_issue(SECRET, 77, 900);
    snprintf(header, sizeof header, "Bearer %s", token);
    assert_int_equal(auth_viewer_session(header, SECRET, now, &viewer, &session), AUTH_VALID);
    assert_int_equal(session, 0);
    free(token);
}

static void test_static_cache_control(void **state)
{
    assert_string_equal(static_cache_control("/index.html"), "no-cache");
    assert_string_equal(static_cache_control("/sub/index.html"), "no-cache");
    assert_string_equal(static_cache_control("/assets/app-1a2b3c.js"),
                        "public, max-age=31536000, immutable");
    assert_string_equal(static_cache_control("/favicon.ico"), "public, max-age=3600");
}

static void test_static_accepts_gzip(void **state)
{
    assert_false(static_accepts_gzip(NULL));
    assert_false(static_accepts_gzip(""));
    assert_true(static_accepts_gzip("gzip"));
    assert_true(static_accepts_gzip("gzip, deflate, br"));
    assert_true(static_accepts_gzip("br;q=1.0, GZIP;q=0.5"));
    assert_true(static_accepts_gzip("deflate, *"));
    assert_false(static_accepts_gzip("deflate, br"));
    assert_false(static_accepts_gzip("gzip;q=0"));
    assert_false(static_accepts_gzip("gzip; q=0.000, deflate"));
    assert_false(static_accepts_gzip("x-gzip2"));
    assert_false(static_accepts_gzip("identity"));
    assert_true(static_accepts_gzip("identity;q=0.1, gzip;q=0.2"));
}

static void test_readiness_without_broker(void **state)
{
    //  Nothing listens on this port: every ping times out (1 s), in
    //  parallel, so the whole report takes about one deadline.
    time_t started = time(NULL);
    int status = 0;
    json_t *report =
        ops_readiness("tcp://127.0.0.1:17299", "identity, media,,graph", "test-readiness", &status);
    assert_true(time(NULL) - started <= 3);
    assert_int_equal(status, 503);
    assert_string_equal(json_string_value(json_object_get(report, "status")), "unavailable");
    json_t *services = json_object_get(report, "services");
    assert_int_equal(json_object_size(services), 3);
    assert_string_equal(json_string_value(json_object_get(services, "identity")), "down");
    assert_string_equal(json_string_value(json_object_get(services, "graph")), "down");
    json_decref(report);

    //  A name no worker can have is down without a call; none at all is ready.
    report = ops_readiness("tcp://127.0.0.1:17299", "Not A Service", "x", &status);
    assert_int_equal(status, 503);
    json_decref(report);
    report = ops_readiness("tcp://127.0.0.1:17299", "", "x", &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(report, "status")), "ok");
    json_decref(report);
}

static void test_gateway_lifecycle(void **state)
{
    gateway_config_t config = {
        .jwt_secret = SECRET,
        .broker_url = "tcp://127.0.0.1:17299",
        .max_body = 65536,
        .request_timeout_ms = 5000,
        .web_root = "/nonexistent/web/root",
        .services = "identity",
        .auth_rate_limit_per_min = 10,
    };
    gateway_t *gateway = gateway_new(&config);
    assert_non_null(gateway);
    assert_null(gateway_web_root(gateway));
    assert_string_equal(gateway_services(gateway), "identity");
    assert_non_null(gateway_metrics(gateway));
    gateway_destroy(&gateway);
    assert_null(gateway);
    gateway_destroy(&gateway);

    config.web_root = "/tmp/";
    gateway = gateway_new(&config);
    assert_string_equal(gateway_web_root(gateway), "/tmp");
    gateway_destroy(&gateway);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_auth_header),
        cmocka_unit_test(test_static_cache_control),
        cmocka_unit_test(test_static_accepts_gzip),
        cmocka_unit_test(test_readiness_without_broker),
        cmocka_unit_test(test_gateway_lifecycle),
    };
    return cmocka_run_group_tests_name("gateway_misc", tests, NULL, NULL);
}
