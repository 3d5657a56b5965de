/*  test_identity_expiry: what needs a stack with other settings than
    test_identity's, one stack after the other:

      1. ACCESS_TOKEN_TTL=1 (ports 17320-17329): an access token stops
         working once it expires; the refresh token still gets a new one.
      2. AUTH_RATE_LIMIT_PER_MIN=3 (ports 17340-17349): the fourth login
         within a minute from one address is 429 rate_limited with
         Retry-After; other routes are not limited.

    Each phase is a cmocka group of its own, so both always run and the
    summary counts every test.
*/
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define PASSWORD "correct horse battery"

static const char *g_argv0;
static int g_problems; // reported by harness_stop: crashes, unclean exits, sanitizer reports

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long s_status(const char *method, const char *path, const char *token, json_t *body)
{
    http_response_t r;
    long status = http_json(method, path, token, body, &r);
    json_decref(body);
    http_response_clear(&r);
    return status;
}

//  ---- phase 1: a short access token lifetime ----------------------------

static int s_setup_expiry(void **state)
{
    (void)state;
    static const char *const services[] = {"identity", NULL};
    static const char *const env[] = {"ACCESS_TOKEN_TTL=1", "AUTH_RATE_LIMIT_PER_MIN=0", NULL};
    harness_config_t config = {
        .name = "identity_expiry", .base_port = 17320, .services = services, .env = env};
    return harness_start(&config, g_argv0);
}

static int s_teardown(void **state)
{
    (void)state;
    int problems = harness_stop(0);
    g_problems += problems;
    return problems == 0 ? 0 : -1;
}

static void test_access_token_expires(void **state)
{
    (void)state;
    json_t *session = harness_register("tess", PASSWORD);
    assert_non_null(session);
    assert_int_equal(json_integer_value(json_object_get(session, "expires_in")), 1);
    const char *access = harness_str(session, "access_token");
    assert_int_equal(s_status("GET", "/api/v1/me", access, NULL), 200);

    //  exp = iat + 1 in whole seconds: 2.5 s later it has passed for sure.
    s_sleep_ms(2500);
    http_response_t r;
    http_json("GET", "/api/v1/me", access, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(http_error_code(&r), "unauthenticated");
    http_response_clear(&r);
    //  Optional-auth routes refuse an expired token too (not anonymous).
    assert_int_equal(s_status("GET", "/api/v1/users/tess", access, NULL), 401);

    //  The refresh token outlives the access token and gets a fresh one.
    json_t *body = json_pack("{s:s}", "refresh_token", harness_str(session, "refresh_token"));
    http_json("POST", "/api/v1/auth/refresh", NULL, body, &r);
    json_decref(body);
    assert_int_equal(r.status, 200);
    json_t *renewed = json_incref(r.json);
    http_response_clear(&r);
    assert_int_equal(s_status("GET", "/api/v1/me", harness_str(renewed, "access_token"), NULL),
                     200);
    json_decref(renewed);
    json_decref(session);
}

//  ---- phase 2: the login rate limit ---------------------------------------

static int s_setup_rate_limit(void **state)
{
    (void)state;
    static const char *const services[] = {"identity", NULL};
    static const char *const env[] = {"AUTH_RATE_LIMIT_PER_MIN=3", NULL};
    harness_config_t config = {
        .name = "identity_ratelimit", .base_port = 17340, .services = services, .env = env};
    return harness_start(&config, g_argv0);
}

static void test_fourth_login_is_limited(void **state)
{
    (void)state;
    json_t *body = json_pack("{s:s, s:s}", "login", "nobody", "password", PASSWORD);
    for (int i = 0; i < 3; i++) {
        http_response_t r;
        http_json("POST", "/api/v1/auth/login", NULL, body, &r);
        assert_int_equal(r.status, 401);
        assert_string_equal(http_error_code(&r), "invalid_credentials");
        http_response_clear(&r);
    }
    http_response_t r;
    http_json("POST", "/api/v1/auth/login", NULL, body, &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(http_error_code(&r), "rate_limited");
    char retry[32];
    assert_non_null(http_header(&r, "Retry-After", retry, sizeof retry));
    long seconds = strtol(retry, NULL, 10);
    assert_true(seconds >= 1 && seconds <= 60);
    http_response_clear(&r);
    //  Register shares the budget of the address.
    assert_int_equal(s_status("POST", "/api/v1/auth/register", NULL,
                              json_pack("{s:s, s:s, s:s}", "username", "late", "email",
                                        "late@example.com", "password", PASSWORD)),
                     429);
    json_decref(body);

    //  Other routes are not limited, and the stack is healthy.
    for (int i = 0; i < 10; i++)
        assert_int_equal(s_status("GET", "/api/v1/users/nobody", NULL, NULL), 404);
    assert_int_equal(s_status("GET", "/healthz", NULL, NULL), 200);
}

int main(int argc, char **argv)
{
    (void)argc;
    g_argv0 = argv[0];
    const struct CMUnitTest expiry[] = {cmocka_unit_test(test_access_token_expires)};
    const struct CMUnitTest limits[] = {cmocka_unit_test(test_fourth_login_is_limited)};
    int failed = cmocka_run_group_tests_name("identity_expiry", expiry, s_setup_expiry, s_teardown);
    failed +=
        cmocka_run_group_tests_name("identity_ratelimit", limits, s_setup_rate_limit, s_teardown);
    return (failed || g_problems) ? 1 : 0;
}
