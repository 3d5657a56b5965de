/*  test_identity: every identity endpoint and error code, through the
    gateway, against a fresh stack (Postgres database, broker, identity,
    gateway; see harness.h). Ports 17300-17309.

    Each test makes its own users (names unique within the run), so tests
    do not depend on each other's order. The last test checks the stack
    still answers normally after all the bad input before it; harness_stop
    then fails the run if any program crashed, did not stop cleanly on
    SIGTERM or printed a sanitizer report.
*/
#include "errors.h"
#include "fixtures.h"
#include "harness.h"
#include "rpc.h"

#include <jwt.h>
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
#include <sodium.h>

#define SECRET "test-identity-jwt-secret-0123456789abcdefgh"
#define PASSWORD "correct horse battery"

//  ---- helpers ---------------------------------------------------------------

//  Status of a call whose body is not needed.
static long s_status(const char *method, const char *path, const char *token, json_t *body)
{
    http_response_t r;
    long status = fx_call(method, path, token, body, &r);
    http_response_clear(&r);
    return status;
}

static json_t *s_register(const char *username)
{
    json_t *session = harness_register(username, PASSWORD);
    assert_non_null(session);
    return session;
}

static const char *s_access(const json_t *session)
{
    return harness_str(session, "access_token");
}

static const char *s_refresh(const json_t *session)
{
    return harness_str(session, "refresh_token");
}

static json_t *s_login(const char *login, const char *password)
{
    http_response_t r;
    long status = fx_call("POST", "/api/v1/auth/login", NULL,
                          json_pack("{s:s, s:s}", "login", login, "password", password), &r);
    json_t *session = status == 200 ? json_incref(r.json) : NULL;
    http_response_clear(&r);
    return session;
}

//  Expects status and error code, and (when not NULL) each named field.
static void s_expect_error(const http_response_t *r, long status, const char *code, ...)
{
    if (r->status != status)
        fprintf(stderr, "expected %ld, got %ld: %s\n", status, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_string_equal(http_error_code(r), code);
    va_list ap;
    va_start(ap, code);
    for (const char *field = va_arg(ap, const char *); field; field = va_arg(ap, const char *)) {
        if (!http_error_names(r, field))
            fprintf(stderr, "expected field %s in %s\n", field, r->body);
        assert_true(http_error_names(r, field));
    }
    va_end(ap);
}

//  Calls and expects an error in one step (body stolen).
static void s_call_error(const char *method, const char *path, const char *token, json_t *body,
                         long status, const char *code, const char *field)
{
    http_response_t r;
    fx_call(method, path, token, body, &r);
    s_expect_error(&r, status, code, field, NULL);
    http_response_clear(&r);
}

//  A string of count copies of unit.
static char *s_repeat(const char *unit, size_t count)
{
    size_t length = strlen(unit);
    char *text = malloc(length * count + 1);
    assert_non_null(text);
    for (size_t i = 0; i < count; i++)
        memcpy(text + i * length, unit, length);
    text[length * count] = '\0';
    return text;
}

static bool s_is_digits(const char *text)
{
    return text && *text && strspn(text, "0123456789") == strlen(text);
}

//  "2026-11-27T20:11:53.123Z": RFC 3339, UTC, milliseconds.
static bool s_is_time(const char *text)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!text || strlen(text) != sizeof shape - 1) return false;
    for (size_t i = 0; shape[i]; i++) {
        bool ok = shape[i] == 'd' ? (text[i] >= '0' && text[i] <= '9') : text[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}

static void s_check_public_user(const json_t *user)
{
    assert_true(s_is_digits(harness_str(user, "id")));
    assert_non_null(harness_str(user, "username"));
    assert_non_null(harness_str(user, "display_name"));
    assert_non_null(harness_str(user, "bio"));
    assert_non_null(harness_str(user, "website"));
    assert_true(json_is_null(json_object_get(user, "avatar_url")));
    assert_true(json_is_boolean(json_object_get(user, "is_private")));
    assert_true(json_is_integer(json_object_get(user, "followers_count")));
    assert_true(json_is_integer(json_object_get(user, "following_count")));
    assert_true(json_is_integer(json_object_get(user, "posts_count")));
}

static void s_check_session(const json_t *session)
{
    assert_true(json_is_object(session));
    json_t *user = json_object_get(session, "user");
    s_check_public_user(user);
    assert_non_null(harness_str(user, "email"));
    assert_true(s_is_time(harness_str(user, "created_at")));
    assert_non_null(s_access(session));
    assert_true(strlen(s_refresh(session)) >= 43);
    assert_string_equal(harness_str(session, "token_type"), "Bearer");
    assert_true(json_is_integer(json_object_get(session, "expires_in")));
    assert_int_equal(json_integer_value(json_object_get(session, "expires_in")), 900);
}

static char *s_base64url(const void *data, size_t size)
{
    size_t length = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *text = malloc(length);
    assert_non_null(text);
    sodium_bin2base64(text, length, data, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return text;
}

//  A JWT signed with key (length key_length) and alg, for sub, exp.
static char *s_jwt(jwt_alg_t alg, const char *key, const char *sub, long exp)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    jwt_add_grant(jwt, "sub", sub);
    jwt_add_grant_int(jwt, "iat", (long)time(NULL) - 10);
    jwt_add_grant_int(jwt, "exp", exp);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *token = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(token);
    return token;
}

//  ---- register ----------------------------------------------------------------

static void test_register_shape(void **state)
{
    (void)state;
    http_response_t r;
    long status = fx_call("POST", "/api/v1/auth/register", NULL,
                          json_pack("{s:s, s:s, s:s, s:s}", "username", "Ann.Shape_1", "email",
                                    "Ann.Shape@Example.COM", "password", PASSWORD, "display_name",
                                    "Ann Shape"),
                          &r);
    assert_int_equal(status, 201);
    s_check_session(r.json);
    json_t *user = json_object_get(r.json, "user");
    assert_string_equal(harness_str(user, "username"), "ann.shape_1");
    assert_string_equal(harness_str(user, "email"), "Ann.Shape@Example.COM");
    assert_string_equal(harness_str(user, "display_name"), "Ann Shape");
    assert_string_equal(harness_str(user, "bio"), "");
    assert_string_equal(harness_str(user, "website"), "");
    assert_false(json_is_true(json_object_get(user, "is_private")));
    assert_int_equal(json_integer_value(json_object_get(user, "followers_count")), 0);

    //  The access token works at once and names the same user.
    http_response_t me;
    assert_int_equal(fx_call("GET", "/api/v1/me", s_access(r.json), NULL, &me), 200);
    assert_string_equal(harness_str(me.json, "id"), harness_str(user, "id"));
    assert_string_equal(harness_str(me.json, "email"), "Ann.Shape@Example.COM");
    http_response_clear(&me);
    http_response_clear(&r);

    //  display_name defaults to "".
    json_t *session = s_register("no_display");
    assert_string_equal(harness_str(json_object_get(session, "user"), "display_name"), "");
    json_decref(session);
}

//  POST /auth/register {username, email, password}; the answer in *r.
static long s_register_call(const char *username, const char *email, const char *password,
                            http_response_t *r)
{
    return fx_call(
        "POST", "/api/v1/auth/register", NULL,
        json_pack("{s:s, s:s, s:s}", "username", username, "email", email, "password", password),
        r);
}

static void test_register_conflicts(void **state)
{
    (void)state;
    json_decref(s_register("bob"));
    http_response_t r;
    //  The same username in another case.
    s_register_call("BoB", "other@example.com", PASSWORD, &r);
    s_expect_error(&r, 409, "conflict", "username", NULL);
    assert_false(http_error_names(&r, "email"));
    http_response_clear(&r);
    //  The same email in another case.
    s_register_call("bob2", "BOB@EXAMPLE.com", PASSWORD, &r);
    s_expect_error(&r, 409, "conflict", "email", NULL);
    assert_false(http_error_names(&r, "username"));
    http_response_clear(&r);
    //  Both.
    s_register_call("Bob", "Bob@example.com", PASSWORD, &r);
    s_expect_error(&r, 409, "conflict", "username", "email", NULL);
    http_response_clear(&r);
}

static long s_register_status(const char *username, const char *email, const char *password,
                              const char *display_name)
{
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "username", username, "email", email, "password", password);
    if (display_name) json_object_set_new(body, "display_name", json_string(display_name));
    return s_status("POST", "/api/v1/auth/register", NULL, body);
}

static void test_register_validation(void **state)
{
    (void)state;
    char *name30 = s_repeat("a", 30), *name31 = s_repeat("b", 31);
    assert_int_equal(s_register_status("", "e1@example.com", PASSWORD, NULL), 400);
    assert_int_equal(s_register_status(name31, "e2@example.com", PASSWORD, NULL), 400);
    assert_int_equal(s_register_status(name30, "e3@example.com", PASSWORD, NULL), 201);
    assert_int_equal(s_register_status("bad name", "e4@example.com", PASSWORD, NULL), 400);
    assert_int_equal(s_register_status("bad-name", "e4@example.com", PASSWORD, NULL), 400);
    assert_int_equal(s_register_status("b\xc3\xa9", "e4@example.com", PASSWORD, NULL), 400);
    assert_int_equal(s_register_status("x.y_9", "e4@example.com", PASSWORD, NULL), 201);
    free(name30);
    free(name31);

    //  Emails.
    const char *bad_emails[] = {
        "",           "nope",     "a@b", "@example.com", "a@", "a@@example.com", "a b@example.com",
        "a@example.", "a@.com x", NULL};
    for (int i = 0; bad_emails[i]; i++) {
        http_response_t r;
        fx_call("POST", "/api/v1/auth/register", NULL,
                json_pack("{s:s, s:s, s:s}", "username", "email_case", "email", bad_emails[i],
                          "password", PASSWORD),
                &r);
        s_expect_error(&r, 400, "invalid", "email", NULL);
        http_response_clear(&r);
    }
    char *local = s_repeat("l", 243); // 243 + "@example.com" (12) = 255
    char email[300];
    snprintf(email, sizeof email, "%s@example.com", local);
    assert_int_equal(s_register_status("long_email", email, PASSWORD, NULL), 400);
    snprintf(email, sizeof email, "%s@example.com", local + 1); // 254
    assert_int_equal(s_register_status("long_email", email, PASSWORD, NULL), 201);
    free(local);

    //  Passwords: 8 to 256 code points.
    char *p7 = s_repeat("p", 7), *p256 = s_repeat("p", 256), *p257 = s_repeat("p", 257);
    char *e7 = s_repeat("\xc3\xa9", 7), *e8 = s_repeat("\xc3\xa9", 8);
    assert_int_equal(s_register_status("pw7", "pw7@example.com", p7, NULL), 400);
    assert_int_equal(s_register_status("pw8", "pw8@example.com", "12345678", NULL), 201);
    assert_int_equal(s_register_status("pw256", "pw256@example.com", p256, NULL), 201);
    assert_int_equal(s_register_status("pw257", "pw257@example.com", p257, NULL), 400);
    //  Seven two-byte characters are 14 bytes but 7 code points: too short.
    assert_int_equal(s_register_status("pwe7", "pwe7@example.com", e7, NULL), 400);
    assert_int_equal(s_register_status("pwe8", "pwe8@example.com", e8, NULL), 201);
    json_t *session = s_login("pwe8", e8);
    assert_non_null(session);
    json_decref(session);
    free(p7);
    free(p256);
    free(p257);
    free(e7);
    free(e8);

    //  display_name: at most 64 code points.
    char *d64 = s_repeat("\xe2\x98\x83", 64), *d65 = s_repeat("d", 65);
    assert_int_equal(s_register_status("dn65", "dn65@example.com", PASSWORD, d65), 400);
    assert_int_equal(s_register_status("dn64", "dn64@example.com", PASSWORD, d64), 201);
    free(d64);
    free(d65);
}

static void test_register_types(void **state)
{
    (void)state;
    http_response_t r;
    //  Wrong JSON types are named, all at once, never coerced.
    fx_call(
        "POST", "/api/v1/auth/register", NULL,
        json_pack("{s:i, s:b, s:[], s:{}}", "username", 42, "email", 1, "password", "display_name"),
        &r);
    s_expect_error(&r, 400, "invalid", "username", "email", "password", "display_name", NULL);
    http_response_clear(&r);
    fx_call("POST", "/api/v1/auth/register", NULL,
            json_pack("{s:s, s:s, s:s, s:n}", "username", "types_null", "email",
                      "types_null@example.com", "password", PASSWORD, "display_name"),
            &r);
    s_expect_error(&r, 400, "invalid", "display_name", NULL);
    http_response_clear(&r);
    //  Missing fields.
    fx_call("POST", "/api/v1/auth/register", NULL, json_object(), &r);
    s_expect_error(&r, 400, "invalid", "username", "email", "password", NULL);
    http_response_clear(&r);
    fx_call("POST", "/api/v1/auth/register", NULL, json_pack("{s:s}", "username", "only_name"), &r);
    s_expect_error(&r, 400, "invalid", "email", "password", NULL);
    assert_false(http_error_names(&r, "username"));
    http_response_clear(&r);
    //  A body that is not an object.
    http_request("POST", "/api/v1/auth/register", NULL, "[1,2]", NULL, &r);
    s_expect_error(&r, 400, "invalid", NULL);
    http_response_clear(&r);
    //  Unknown fields are ignored.
    fx_call("POST", "/api/v1/auth/register", NULL,
            json_pack("{s:s, s:s, s:s, s:i, s:s}", "username", "unknown_fields", "email",
                      "unknown_fields@example.com", "password", PASSWORD, "karma", 9000, "id", "1"),
            &r);
    assert_int_equal(r.status, 201);
    http_response_clear(&r);
}

//  ---- login -------------------------------------------------------------------

static double s_login_ms(const char *login, const char *password, long *status)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    *status = s_status("POST", "/api/v1/auth/login", NULL,
                       json_pack("{s:s, s:s}", "login", login, "password", password));
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) * 1000.0 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static void test_login(void **state)
{
    (void)state;
    json_t *registered = s_register("carol");
    const char *id = harness_str(json_object_get(registered, "user"), "id");

    //  By username and by email, both case-insensitive.
    const char *logins[] = {"carol", "CaRoL", "carol@example.com", "CAROL@Example.Com", NULL};
    for (int i = 0; logins[i]; i++) {
        json_t *session = s_login(logins[i], PASSWORD);
        assert_non_null(session);
        s_check_session(session);
        assert_string_equal(harness_str(json_object_get(session, "user"), "id"), id);
        //  Each login is a new session.
        assert_string_not_equal(s_refresh(session), s_refresh(registered));
        json_decref(session);
    }

    //  Wrong password and unknown user: the same answer...
    http_response_t r;
    fx_call("POST", "/api/v1/auth/login", NULL,
            json_pack("{s:s, s:s}", "login", "carol", "password", "wrong password"), &r);
    s_expect_error(&r, 401, "invalid_credentials", NULL);
    http_response_clear(&r);
    fx_call("POST", "/api/v1/auth/login", NULL,
            json_pack("{s:s, s:s}", "login", "nobody_here", "password", PASSWORD), &r);
    s_expect_error(&r, 401, "invalid_credentials", NULL);
    http_response_clear(&r);
    fx_call("POST", "/api/v1/auth/login", NULL,
            json_pack("{s:s, s:s}", "login", "nobody@example.com", "password", PASSWORD), &r);
    s_expect_error(&r, 401, "invalid_credentials", NULL);
    http_response_clear(&r);

    //  ...in about the same time (both do the argon2id work; the bound is
    //  loose because machines are noisy, but a skipped hash is 10x faster).
    double wrong = 0, unknown = 0;
    for (int i = 0; i < 3; i++) {
        long s1, s2;
        wrong += s_login_ms("carol", "wrong password", &s1);
        unknown += s_login_ms("nobody_at_all", "wrong password", &s2);
        assert_int_equal(s1, 401);
        assert_int_equal(s2, 401);
    }
    fprintf(stderr, "login timing: wrong password %.1f ms, unknown user %.1f ms (3 each)\n", wrong,
            unknown);
    assert_true(unknown * 3 > wrong);
    assert_true(wrong * 3 > unknown);

    //  Missing and mistyped fields.
    fx_call("POST", "/api/v1/auth/login", NULL, json_object(), &r);
    s_expect_error(&r, 400, "invalid", "login", "password", NULL);
    http_response_clear(&r);
    fx_call("POST", "/api/v1/auth/login", NULL, json_pack("{s:i, s:b}", "login", 42, "password", 1),
            &r);
    s_expect_error(&r, 400, "invalid", "login", "password", NULL);
    http_response_clear(&r);
    json_decref(registered);
}

//  ---- refresh and logout -----------------------------------------------------

static json_t *s_refresh_call(const char *refresh_token, http_response_t *r)
{
    fx_call("POST", "/api/v1/auth/refresh", NULL,
            json_pack("{s:s}", "refresh_token", refresh_token), r);
    return r->json;
}

static void test_refresh_rotation(void **state)
{
    (void)state;
    json_t *first = s_register("dave");
    json_t *other = s_login("dave", PASSWORD); // a second, separate session
    assert_non_null(other);

    http_response_t r;
    s_refresh_call(s_refresh(first), &r);
    assert_int_equal(r.status, 200);
    s_check_session(r.json);
    json_t *second = json_incref(r.json);
    http_response_clear(&r);
    assert_string_not_equal(s_refresh(second), s_refresh(first));
    assert_int_equal(s_status("GET", "/api/v1/me", s_access(second), NULL), 200);

    //  The rotated token again: 401, and its whole family goes with it.
    s_refresh_call(s_refresh(first), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(second), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    //  The other session is another family: untouched.
    s_refresh_call(s_refresh(other), &r);
    assert_int_equal(r.status, 200);
    http_response_clear(&r);

    //  Unknown, missing, mistyped.
    s_refresh_call("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_call_error("POST", "/api/v1/auth/refresh", NULL, json_object(), 400, "invalid",
                 "refresh_token");
    s_call_error("POST", "/api/v1/auth/refresh", NULL, json_pack("{s:i}", "refresh_token", 42), 400,
                 "invalid", "refresh_token");
    s_call_error("POST", "/api/v1/auth/refresh", NULL, json_pack("{s:s}", "refresh_token", ""), 400,
                 "invalid", "refresh_token");
    json_decref(first);
    json_decref(second);
    json_decref(other);
}

static void test_logout(void **state)
{
    (void)state;
    json_t *session = s_register("erin");
    http_response_t r;
    //  Rotate once, then log out with the newest token: the family ends.
    s_refresh_call(s_refresh(session), &r);
    assert_int_equal(r.status, 200);
    json_t *rotated = json_incref(r.json);
    http_response_clear(&r);

    fx_call("POST", "/api/v1/auth/logout", NULL,
            json_pack("{s:s}", "refresh_token", s_refresh(rotated)), &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_size, 0);
    http_response_clear(&r);
    s_refresh_call(s_refresh(rotated), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);

    //  Logging out twice, or with a token nobody issued, is still 204.
    assert_int_equal(s_status("POST", "/api/v1/auth/logout", NULL,
                              json_pack("{s:s}", "refresh_token", s_refresh(rotated))),
                     204);
    assert_int_equal(s_status("POST", "/api/v1/auth/logout", NULL,
                              json_pack("{s:s}", "refresh_token", "never-issued")),
                     204);
    s_call_error("POST", "/api/v1/auth/logout", NULL, json_object(), 400, "invalid",
                 "refresh_token");
    s_call_error("POST", "/api/v1/auth/logout", NULL, json_pack("{s:b}", "refresh_token", 1), 400,
                 "invalid", "refresh_token");
    json_decref(session);
    json_decref(rotated);
}

//  ---- /me ----------------------------------------------------------------------

static void test_me_get_patch(void **state)
{
    (void)state;
    json_t *session = s_register("frank");
    const char *token = s_access(session);
    http_response_t r;

    s_call_error("GET", "/api/v1/me", NULL, NULL, 401, "unauthenticated", NULL);
    s_call_error("PATCH", "/api/v1/me", NULL, json_object(), 401, "unauthenticated", NULL);

    assert_int_equal(fx_call("GET", "/api/v1/me", token, NULL, &r), 200);
    json_t *before = json_incref(r.json);
    http_response_clear(&r);
    assert_true(s_is_time(harness_str(before, "created_at")));
    assert_string_equal(harness_str(before, "email"), "frank@example.com");

    //  An empty PATCH changes nothing; unknown fields are ignored.
    assert_int_equal(fx_call("PATCH", "/api/v1/me", token, json_object(), &r), 200);
    assert_true(json_equal(r.json, before));
    http_response_clear(&r);
    assert_int_equal(fx_call("PATCH", "/api/v1/me", token,
                             json_pack("{s:s, s:i}", "username", "hijack", "followers_count", 5),
                             &r),
                     200);
    assert_true(json_equal(r.json, before));
    http_response_clear(&r);

    //  Every field.
    assert_int_equal(
        fx_call("PATCH", "/api/v1/me", token,
                json_pack("{s:s, s:s, s:s, s:b}", "display_name", "Frank F.", "bio", "hello",
                          "website", "https://frank.example/x?y=1", "is_private", 1),
                &r),
        200);
    assert_string_equal(harness_str(r.json, "display_name"), "Frank F.");
    assert_string_equal(harness_str(r.json, "bio"), "hello");
    assert_string_equal(harness_str(r.json, "website"), "https://frank.example/x?y=1");
    assert_true(json_is_true(json_object_get(r.json, "is_private")));
    assert_string_equal(harness_str(r.json, "id"), harness_str(before, "id"));
    http_response_clear(&r);
    //  Only what is sent changes.
    assert_int_equal(fx_call("PATCH", "/api/v1/me", token,
                             json_pack("{s:s, s:b}", "website", "", "is_private", 0), &r),
                     200);
    assert_string_equal(harness_str(r.json, "website"), "");
    assert_string_equal(harness_str(r.json, "bio"), "hello");
    assert_false(json_is_true(json_object_get(r.json, "is_private")));
    http_response_clear(&r);

    //  bio: 150 code points of 4 bytes each is fine, 151 is not.
    char *bio150 = s_repeat("\xf0\x9f\x98\x80", 150), *bio151 = s_repeat("b", 151);
    assert_int_equal(fx_call("PATCH", "/api/v1/me", token, json_pack("{s:s}", "bio", bio150), &r),
                     200);
    assert_string_equal(harness_str(r.json, "bio"), bio150);
    http_response_clear(&r);
    s_call_error("PATCH", "/api/v1/me", token, json_pack("{s:s}", "bio", bio151), 400, "invalid",
                 "bio");
    free(bio150);
    free(bio151);

    //  Types and shapes, all named at once.
    fx_call("PATCH", "/api/v1/me", token,
            json_pack("{s:s, s:i, s:s, s:s, s:i}", "is_private", "yes", "display_name", 7,
                      "website", "ftp://x.example", "email", "not-an-email", "bio", 1),
            &r);
    s_expect_error(&r, 400, "invalid", "is_private", "display_name", "website", "email", "bio",
                   NULL);
    http_response_clear(&r);
    s_call_error("PATCH", "/api/v1/me", token, json_pack("{s:s}", "website", "https://"), 400,
                 "invalid", "website");
    s_call_error("PATCH", "/api/v1/me", token, json_pack("{s:n}", "is_private"), 400, "invalid",
                 "is_private");
    char *d65 = s_repeat("d", 65);
    s_call_error("PATCH", "/api/v1/me", token, json_pack("{s:s}", "display_name", d65), 400,
                 "invalid", "display_name");
    free(d65);

    //  Email: taken (in another case) is 409; a new one is saved and logs in.
    json_decref(s_register("gina"));
    s_call_error("PATCH", "/api/v1/me", token, json_pack("{s:s}", "email", "GINA@example.com"), 409,
                 "conflict", "email");
    assert_int_equal(fx_call("PATCH", "/api/v1/me", token,
                             json_pack("{s:s}", "email", "Frank.New@Example.com"), &r),
                     200);
    assert_string_equal(harness_str(r.json, "email"), "Frank.New@Example.com");
    http_response_clear(&r);
    //  My own email in another case is not a conflict with myself.
    assert_int_equal(s_status("PATCH", "/api/v1/me", token,
                              json_pack("{s:s}", "email", "frank.new@example.com")),
                     200);
    json_t *again = s_login("FRANK.NEW@example.com", PASSWORD);
    assert_non_null(again);
    json_decref(again);
    assert_null(s_login("frank@example.com", PASSWORD));
    json_decref(before);
    json_decref(session);
}

static void test_me_other_user(void **state)
{
    (void)state;
    json_t *a = s_register("hana");
    json_t *b = s_register("ivan");
    http_response_t r;
    assert_int_equal(fx_call("GET", "/api/v1/users/hana", NULL, NULL, &r), 200);
    json_t *a_before = json_incref(r.json);
    http_response_clear(&r);

    //  B's token only ever touches B, whatever the body says.
    const char *a_id = harness_str(json_object_get(a, "user"), "id");
    assert_int_equal(fx_call("PATCH", "/api/v1/me", s_access(b),
                             json_pack("{s:s, s:s, s:s, s:s}", "id", a_id, "user_id", a_id,
                                       "username", "hana", "display_name", "not hana"),
                             &r),
                     200);
    assert_string_equal(harness_str(r.json, "username"), "ivan");
    assert_string_equal(harness_str(r.json, "display_name"), "not hana");
    http_response_clear(&r);
    assert_int_equal(fx_call("GET", "/api/v1/users/hana", NULL, NULL, &r), 200);
    assert_true(json_equal(r.json, a_before));
    http_response_clear(&r);
    assert_int_equal(fx_call("GET", "/api/v1/me", s_access(a), NULL, &r), 200);
    assert_string_equal(harness_str(r.json, "display_name"), "");
    http_response_clear(&r);
    json_decref(a_before);
    json_decref(a);
    json_decref(b);
}

static void test_password_change(void **state)
{
    (void)state;
    json_t *s1 = s_register("judy");
    json_t *s2 = s_login("judy", PASSWORD);
    json_t *s3 = s_login("judy@example.com", PASSWORD);
    assert_non_null(s2);
    assert_non_null(s3);
    const char *token = s_access(s1);

    s_call_error(
        "PUT", "/api/v1/me/password", NULL,
        json_pack("{s:s, s:s}", "current_password", PASSWORD, "new_password", "another password"),
        401, "unauthenticated", NULL);
    s_call_error("PUT", "/api/v1/me/password", token,
                 json_pack("{s:s, s:s}", "current_password", "not my password", "new_password",
                           "another password"),
                 403, "invalid_credentials", NULL);
    s_call_error("PUT", "/api/v1/me/password", token,
                 json_pack("{s:s, s:s}", "current_password", PASSWORD, "new_password", "short"),
                 400, "invalid", "new_password");
    s_call_error("PUT", "/api/v1/me/password", token, json_object(), 400, "invalid",
                 "current_password");
    s_call_error("PUT", "/api/v1/me/password", token,
                 json_pack("{s:i, s:b}", "current_password", 1, "new_password", 0), 400, "invalid",
                 "new_password");
    //  Nothing changed so far.
    json_t *still = s_login("judy", PASSWORD);
    assert_non_null(still);

    //  Change, keeping session 1 (the caller's refresh token).
    http_response_t r;
    fx_call("PUT", "/api/v1/me/password", token,
            json_pack("{s:s, s:s, s:s}", "current_password", PASSWORD, "new_password",
                      "a brand new password", "refresh_token", s_refresh(s1)),
            &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_size, 0);
    http_response_clear(&r);

    //  The other sessions are revoked, the caller's is kept.
    s_refresh_call(s_refresh(s2), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(s3), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(still), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(s1), &r);
    assert_int_equal(r.status, 200);
    json_t *kept = json_incref(r.json);
    http_response_clear(&r);

    //  Old password out, new one in.
    assert_null(s_login("judy", PASSWORD));
    json_t *fresh = s_login("judy", "a brand new password");
    assert_non_null(fresh);

    //  Without refresh_token, exactly as API.md sends it: the session that
    //  made the change (named by its access token, here one issued by a
    //  refresh) is kept, every other one revoked.
    assert_int_equal(s_status("PUT", "/api/v1/me/password", s_access(kept),
                              json_pack("{s:s, s:s}", "current_password", "a brand new password",
                                        "new_password", "third password!")),
                     204);
    s_refresh_call(s_refresh(fresh), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(kept), &r);
    assert_int_equal(r.status, 200);
    json_t *kept_again = json_incref(r.json);
    http_response_clear(&r);
    json_t *third = s_login("judy", "third password!");
    assert_non_null(third);
    //  The same from a fresh login's access token.
    json_t *fourth = s_login("judy", "third password!");
    assert_int_equal(s_status("PUT", "/api/v1/me/password", s_access(third),
                              json_pack("{s:s, s:s}", "current_password", "third password!",
                                        "new_password", "a fourth password")),
                     204);
    s_refresh_call(s_refresh(fourth), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(kept_again), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(third), &r);
    assert_int_equal(r.status, 200);
    json_t *third_again = json_incref(r.json);
    http_response_clear(&r);

    //  A refresh_token of another user keeps nothing of theirs or extra of
    //  mine: only the caller's session stays.
    json_t *other = s_register("judy_other");
    json_t *fifth = s_login("judy", "a fourth password");
    assert_int_equal(
        s_status("PUT", "/api/v1/me/password", s_access(third_again),
                 json_pack("{s:s, s:s, s:s}", "current_password", "a fourth password",
                           "new_password", "fifth password!", "refresh_token", s_refresh(other))),
        204);
    s_refresh_call(s_refresh(fifth), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(third_again), &r);
    assert_int_equal(r.status, 200);
    http_response_clear(&r);
    s_refresh_call(s_refresh(other), &r); // and does not touch theirs
    assert_int_equal(r.status, 200);
    http_response_clear(&r);

    json_t *objects[] = {s1,    s2,     s3,         still,       kept,  fresh,
                         third, fourth, kept_again, third_again, other, fifth};
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++)
        json_decref(objects[i]);
}

static void test_delete(void **state)
{
    (void)state;
    json_t *session = s_register("kim");
    json_t *second = s_login("kim", PASSWORD);
    const char *token = s_access(session);

    s_call_error("DELETE", "/api/v1/me", NULL, json_pack("{s:s}", "password", PASSWORD), 401,
                 "unauthenticated", NULL);
    s_call_error("DELETE", "/api/v1/me", token, json_pack("{s:s}", "password", "wrong one"), 403,
                 "invalid_credentials", NULL);
    s_call_error("DELETE", "/api/v1/me", token, json_object(), 400, "invalid", "password");
    s_call_error("DELETE", "/api/v1/me", token, json_pack("{s:i}", "password", 5), 400, "invalid",
                 "password");
    assert_int_equal(s_status("GET", "/api/v1/users/kim", NULL, NULL), 200);

    http_response_t r;
    fx_call("DELETE", "/api/v1/me", token, json_pack("{s:s}", "password", PASSWORD), &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_size, 0);
    http_response_clear(&r);

    //  Gone: the old access token no longer finds anyone, nothing logs in.
    s_call_error("GET", "/api/v1/me", token, NULL, 401, "unauthenticated", NULL);
    s_call_error("PATCH", "/api/v1/me", token, json_pack("{s:s}", "bio", "x"), 401,
                 "unauthenticated", NULL);
    s_call_error("DELETE", "/api/v1/me", token, json_pack("{s:s}", "password", PASSWORD), 401,
                 "unauthenticated", NULL);
    assert_null(s_login("kim", PASSWORD));
    s_refresh_call(s_refresh(session), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_refresh_call(s_refresh(second), &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    s_call_error("GET", "/api/v1/users/kim", NULL, NULL, 404, "not_found", NULL);

    //  The username and the email are free again.
    json_t *reborn = s_register("kim");
    assert_string_not_equal(harness_str(json_object_get(reborn, "user"), "id"),
                            harness_str(json_object_get(session, "user"), "id"));
    json_decref(reborn);
    json_decref(session);
    json_decref(second);
}

//  ---- /users/{username} ------------------------------------------------------

static void test_users_get(void **state)
{
    (void)state;
    json_t *owner = s_register("lena");
    json_t *viewer = s_register("mark");
    http_response_t r;

    assert_int_equal(fx_call("GET", "/api/v1/users/lena", NULL, NULL, &r), 200);
    s_check_public_user(r.json);
    assert_string_equal(harness_str(r.json, "username"), "lena");
    assert_string_equal(harness_str(r.json, "id"),
                        harness_str(json_object_get(owner, "user"), "id"));
    //  Public: no email, no created_at, no viewer fields when anonymous.
    assert_null(json_object_get(r.json, "email"));
    assert_null(json_object_get(r.json, "created_at"));
    assert_null(json_object_get(r.json, "followed_by_me"));
    http_response_clear(&r);

    assert_int_equal(fx_call("GET", "/api/v1/users/LeNa", s_access(viewer), NULL, &r), 200);
    s_check_public_user(r.json);
    assert_null(json_object_get(r.json, "email"));
    assert_true(json_is_false(json_object_get(r.json, "followed_by_me")));
    assert_true(json_is_false(json_object_get(r.json, "follows_me")));
    assert_string_equal(harness_str(r.json, "follow_state"), "none");
    http_response_clear(&r);

    s_call_error("GET", "/api/v1/users/nobody_by_that_name", NULL, NULL, 404, "not_found", NULL);
    s_call_error("GET", "/api/v1/users/not%20valid", NULL, NULL, 404, "not_found", NULL);
    char path[200];
    char *long_name = s_repeat("z", 100);
    snprintf(path, sizeof path, "/api/v1/users/%s", long_name);
    free(long_name);
    s_call_error("GET", path, NULL, NULL, 404, "not_found", NULL);
    //  A bad token on a route where a token is optional is still 401.
    s_call_error("GET", "/api/v1/users/lena", "garbage", NULL, 401, "unauthenticated", NULL);
    json_decref(owner);
    json_decref(viewer);
}

//  ---- tokens ---------------------------------------------------------------------

static void test_forged_tokens(void **state)
{
    (void)state;
    json_t *session = s_register("nina");
    const char *id = harness_str(json_object_get(session, "user"), "id");
    long exp = (long)time(NULL) + 600;

    //  alg "none", with and without a signature part.
    char header_none[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char payload[256];
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"iat\":%ld,\"exp\":%ld}", id,
             (long)time(NULL) - 10, exp);
    char *h = s_base64url(header_none, strlen(header_none));
    char *p = s_base64url(payload, strlen(payload));
    char none_token[1024];
    snprintf(none_token, sizeof none_token, "%s.%s.", h, p);
    s_call_error("GET", "/api/v1/me", none_token, NULL, 401, "unauthenticated", NULL);
    snprintf(none_token, sizeof none_token, "%s.%s", h, p);
    s_call_error("GET", "/api/v1/me", none_token, NULL, 401, "unauthenticated", NULL);
    free(h);
    free(p);

    //  The right key with another algorithm; the wrong key with HS256.
    char *hs512 = s_jwt(JWT_ALG_HS512, SECRET, id, exp);
    s_call_error("GET", "/api/v1/me", hs512, NULL, 401, "unauthenticated", NULL);
    free(hs512);
    char *wrong = s_jwt(JWT_ALG_HS256, "another-secret-of-enough-length-0123456789", id, exp);
    s_call_error("GET", "/api/v1/me", wrong, NULL, 401, "unauthenticated", NULL);
    free(wrong);
    //  The right key and algorithm but expired.
    char *expired = s_jwt(JWT_ALG_HS256, SECRET, id, (long)time(NULL) - 5);
    s_call_error("GET", "/api/v1/me", expired, NULL, 401, "unauthenticated", NULL);
    free(expired);
    //  Control: the right key, algorithm and time work...
    char *good = s_jwt(JWT_ALG_HS256, SECRET, id, exp);
    assert_int_equal(s_status("GET", "/api/v1/me", good, NULL), 200);
    free(good);
    //  ...and for a user that does not exist still give 401 on /me.
    char *ghost = s_jwt(JWT_ALG_HS256, SECRET, "123456789", exp);
    s_call_error("GET", "/api/v1/me", ghost, NULL, 401, "unauthenticated", NULL);
    free(ghost);

    //  A tampered signature, garbage, an empty bearer, another scheme.
    char *tampered = strdup(s_access(session));
    size_t length = strlen(tampered);
    tampered[length - 2] = tampered[length - 2] == 'A' ? 'B' : 'A';
    s_call_error("GET", "/api/v1/me", tampered, NULL, 401, "unauthenticated", NULL);
    free(tampered);
    s_call_error("GET", "/api/v1/me", "garbage", NULL, 401, "unauthenticated", NULL);
    s_call_error("GET", "/api/v1/me", "a.b.c", NULL, 401, "unauthenticated", NULL);
    http_response_t r;
    const char *basic[] = {"Authorization: Basic bmluYTpwYXNzd29yZA==", NULL};
    http_request("GET", "/api/v1/me", NULL, NULL, basic, &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    const char *empty[] = {"Authorization: Bearer ", NULL};
    http_request("GET", "/api/v1/me", NULL, NULL, empty, &r);
    s_expect_error(&r, 401, "unauthenticated", NULL);
    http_response_clear(&r);
    json_decref(session);
}

//  ---- internal methods and events (over the broker, as services call) ----------

static json_t *s_rpc(rpc_client_t *client, const char *method, json_t *args_stolen)
{
    json_t *reply = rpc_call(client, "identity", method, 0, args_stolen, NULL, 0);
    json_decref(args_stolen);
    return reply;
}

//  The usernames of reply.body.users, comma-separated, into buf.
static const char *s_usernames(const json_t *reply, char *buf, size_t size)
{
    buf[0] = '\0';
    size_t index;
    json_t *user;
    json_array_foreach(json_object_get(reply_body(reply), "users"), index, user)
    {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", index ? "," : "", harness_str(user, "username"));
    }
    return buf;
}

//  The outbox event of topic whose payload.id is id, or NULL; tries up to
//  attempts times, 50 ms apart (the publisher numbers events shortly after
//  their commit).
static json_t *s_find_event(rpc_client_t *client, const char *topic, const char *id, int attempts)
{
    for (int attempt = 0; attempt < attempts; attempt++) {
        json_t *reply =
            s_rpc(client, "events.replay", json_pack("{s:i, s:i}", "since", 0, "limit", 1000));
        json_t *found = NULL;
        size_t index;
        json_t *event;
        json_array_foreach(json_object_get(reply_body(reply), "events"), index, event)
        {
            json_t *payload = json_object_get(event, "payload");
            const char *event_topic = harness_str(event, "topic");
            const char *event_id = harness_str(payload, "id");
            if (event_topic && event_id && strcmp(event_topic, topic) == 0 &&
                strcmp(event_id, id) == 0)
                found = json_incref(payload);
        }
        json_decref(reply);
        if (found) return found;
        zclock_sleep(50);
    }
    return NULL;
}

static void test_internal_methods_and_events(void **state)
{
    (void)state;
    json_t *pat = s_register("pat");
    json_t *quinn = s_register("quinn");
    const char *pat_id = harness_str(json_object_get(pat, "user"), "id");
    const char *quinn_id = harness_str(json_object_get(quinn, "user"), "id");
    zsys_handler_set(NULL);
    rpc_client_t *client = rpc_client_new(harness_broker_url());
    assert_non_null(client);
    char names[256];

    //  users.batch: the order asked, each once, unknown left out.
    json_t *reply = s_rpc(client, "users.batch",
                          json_pack("{s:[s,s,s,s]}", "ids", quinn_id, "999", pat_id, quinn_id));
    assert_int_equal(reply_status(reply), 200);
    assert_string_equal(s_usernames(reply, names, sizeof names), "quinn,pat");
    s_check_public_user(json_array_get(json_object_get(reply_body(reply), "users"), 0));
    assert_null(
        json_object_get(json_array_get(json_object_get(reply_body(reply), "users"), 0), "email"));
    json_decref(reply);
    json_t *bad_ids[] = {json_pack("{s:s}", "ids", "1"), json_pack("{s:[b]}", "ids", 1),
                         json_pack("{s:[s]}", "ids", "-1"), json_object()};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        reply = s_rpc(client, "users.batch", bad_ids[i]);
        assert_int_equal(reply_status(reply), 400);
        json_decref(reply);
    }
    json_t *many = json_array();
    for (int i = 0; i < 1001; i++)
        json_array_append_new(many, json_string("1"));
    reply = s_rpc(client, "users.batch", json_pack("{s:o}", "ids", many));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    reply = s_rpc(client, "users.batch", json_pack("{s:[]}", "ids"));
    assert_int_equal(reply_status(reply), 200);
    assert_string_equal(s_usernames(reply, names, sizeof names), "");
    json_decref(reply);

    //  users.by_username and users.by_usernames.
    reply = s_rpc(client, "users.by_username", json_pack("{s:s}", "username", "PAT"));
    assert_int_equal(reply_status(reply), 200);
    assert_string_equal(harness_str(reply_body(reply), "id"), pat_id);
    json_decref(reply);
    reply = s_rpc(client, "users.by_username", json_pack("{s:s}", "username", "nobody_x"));
    assert_int_equal(reply_status(reply), 404);
    json_decref(reply);
    reply = s_rpc(client, "users.by_username", json_pack("{s:i}", "username", 5));
    assert_int_equal(reply_status(reply), 400);
    json_decref(reply);
    reply = s_rpc(client, "users.by_usernames",
                  json_pack("{s:[s,s,s,s]}", "usernames", "quinn", "nobody_y", "PAT", "bad name"));
    assert_int_equal(reply_status(reply), 200);
    assert_string_equal(s_usernames(reply, names, sizeof names), "quinn,pat");
    json_decref(reply);

    //  Events: created, updated, deleted, each with its payload.
    assert_int_equal(s_status("PATCH", "/api/v1/me", s_access(pat),
                              json_pack("{s:s, s:b}", "bio", "events!", "is_private", 1)),
                     200);
    assert_int_equal(
        s_status("DELETE", "/api/v1/me", s_access(pat), json_pack("{s:s}", "password", PASSWORD)),
        204);
    json_t *created = s_find_event(client, "user.created", pat_id, 100);
    assert_non_null(created);
    assert_string_equal(harness_str(created, "username"), "pat");
    assert_non_null(harness_str(created, "display_name"));
    assert_true(json_is_false(json_object_get(created, "is_private")));
    assert_true(s_is_time(harness_str(created, "created_at")));
    json_decref(created);
    json_t *updated = s_find_event(client, "user.updated", pat_id, 100);
    assert_non_null(updated);
    assert_string_equal(harness_str(updated, "bio"), "events!");
    assert_true(json_is_true(json_object_get(updated, "is_private")));
    json_decref(updated);
    json_t *deleted = s_find_event(client, "user.deleted", pat_id, 100);
    assert_non_null(deleted);
    assert_string_equal(harness_str(deleted, "username"), "pat");
    json_decref(deleted);
    //  Nothing is emitted for a refused change (events are numbered in commit
    //  order, so pat's deletion being visible means this would be too).
    assert_int_equal(
        s_status("PATCH", "/api/v1/me", s_access(quinn), json_pack("{s:s}", "website", "nope")),
        400);
    json_t *none = s_find_event(client, "user.updated", quinn_id, 1);
    assert_null(none);

    rpc_client_destroy(&client);
    json_decref(pat);
    json_decref(quinn);
}

//  ---- bad input ----------------------------------------------------------------

static void test_bad_input(void **state)
{
    (void)state;
    http_response_t r;
    //  Malformed JSON.
    const char *malformed[] = {"{\"username\": ", "{username: 1}",     "not json",
                               "{\"a\":1}}",      "\"just a string\"", NULL};
    for (int i = 0; malformed[i]; i++) {
        http_request("POST", "/api/v1/auth/register", NULL, malformed[i], NULL, &r);
        s_expect_error(&r, 400, "invalid", NULL);
        http_response_clear(&r);
    }
    //  A 1 MiB body.
    size_t big_size = 1024 * 1024;
    char *big = malloc(big_size + 1);
    assert_non_null(big);
    memset(big, ' ', big_size);
    memcpy(big, "{\"username\":\"", 13);
    memset(big + 13, 'a', big_size - 16);
    memcpy(big + big_size - 3, "\"}\n", 3);
    big[big_size] = '\0';
    http_request_raw("POST", "/api/v1/auth/register", NULL, big, big_size, NULL, &r);
    s_expect_error(&r, 413, "too_large", NULL);
    http_response_clear(&r);
    http_request_raw("PATCH", "/api/v1/me", "not-even-a-token", big, big_size, NULL, &r);
    assert_true(r.status == 413 || r.status == 401);
    http_response_clear(&r);
    free(big);

    //  Invalid UTF-8 bytes inside a JSON string.
    const char bad_utf8[] = "{\"username\":\"ab\xff\xfe\",\"email\":\"u@example.com\","
                            "\"password\":\"" PASSWORD "\"}";
    http_request_raw("POST", "/api/v1/auth/register", NULL, bad_utf8, sizeof bad_utf8 - 1, NULL,
                     &r);
    s_expect_error(&r, 400, "invalid", NULL);
    http_response_clear(&r);
    const char overlong[] = "{\"login\":\"\xc0\xaf\",\"password\":\"x\"}";
    http_request_raw("POST", "/api/v1/auth/login", NULL, overlong, sizeof overlong - 1, NULL, &r);
    s_expect_error(&r, 400, "invalid", NULL);
    http_response_clear(&r);

    //  NUL: escaped inside strings, and a raw NUL byte in the body.
    const char *nul_bodies[] = {
        "{\"username\":\"nul\\u0000name\",\"email\":\"n@example.com\",\"password\":\"" PASSWORD
        "\"}",
        "{\"username\":\"nulpass\",\"email\":\"np@example.com\",\"password\":\"abc\\u0000defgh\"}",
        NULL};
    for (int i = 0; nul_bodies[i]; i++) {
        http_request("POST", "/api/v1/auth/register", NULL, nul_bodies[i], NULL, &r);
        s_expect_error(&r, 400, "invalid", NULL);
        http_response_clear(&r);
    }
    const char raw_nul[] = "{\"login\":\"a\0b\",\"password\":\"x\"}";
    http_request_raw("POST", "/api/v1/auth/login", NULL, raw_nul, sizeof raw_nul - 1, NULL, &r);
    s_expect_error(&r, 400, "invalid", NULL);
    http_response_clear(&r);
    assert_int_equal(s_status("GET", "/api/v1/users/lena%00", NULL, NULL), 400);

    //  Very long strings: 100k characters is past the 64 KiB body limit
    //  (413); 60k fits in the body and is refused by the field's own limit.
    char *long100k = s_repeat("x", 100000);
    s_call_error("POST", "/api/v1/auth/register", NULL,
                 json_pack("{s:s, s:s, s:s}", "username", long100k, "email", "l@example.com",
                           "password", PASSWORD),
                 413, "too_large", NULL);
    free(long100k);
    char *long60k = s_repeat("y", 60000);
    s_call_error("POST", "/api/v1/auth/register", NULL,
                 json_pack("{s:s, s:s, s:s}", "username", long60k, "email", "l@example.com",
                           "password", PASSWORD),
                 400, "invalid", "username");
    s_call_error("POST", "/api/v1/auth/login", NULL,
                 json_pack("{s:s, s:s}", "login", "anyone", "password", long60k), 400, "invalid",
                 "password");
    json_t *session = s_register("olga");
    s_call_error("PATCH", "/api/v1/me", s_access(session), json_pack("{s:s}", "bio", long60k), 400,
                 "invalid", "bio");
    free(long60k);
    //  Wrong methods.
    http_request("GET", "/api/v1/auth/login", NULL, NULL, NULL, &r);
    s_expect_error(&r, 405, "method_not_allowed", NULL);
    http_response_clear(&r);
    //  Deeply nested JSON (last: a parser that recurses could lose its stack).
    char *deep = malloc(20002);
    assert_non_null(deep);
    memset(deep, '[', 10000);
    memset(deep + 10000, ']', 10000);
    deep[20000] = '\0';
    long status = http_request("POST", "/api/v1/auth/login", NULL, deep, NULL, &r);
    http_response_clear(&r);
    free(deep);
    json_decref(session);
    assert_int_equal(status, 400);
}

//  Last: after everything above, the stack answers normally.
static void test_still_healthy(void **state)
{
    (void)state;
    assert_int_equal(s_status("GET", "/healthz", NULL, NULL), 200);
    assert_int_equal(s_status("GET", "/readyz", NULL, NULL), 200);
    json_decref(s_register("final_user"));
    json_t *session = s_login("final_user", PASSWORD);
    assert_non_null(session);
    assert_int_equal(s_status("GET", "/api/v1/me", s_access(session), NULL), 200);
    json_decref(session);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (sodium_init() < 0) return 1;
    static const char *const services[] = {"identity", NULL};
    static const char *const env[] = {"JWT_SECRET=" SECRET, "AUTH_RATE_LIMIT_PER_MIN=0", NULL};
    harness_config_t config = {
        .name = "identity", .base_port = 17300, .services = services, .env = env};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_shape),
        cmocka_unit_test(test_register_conflicts),
        cmocka_unit_test(test_register_validation),
        cmocka_unit_test(test_register_types),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_refresh_rotation),
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_me_get_patch),
        cmocka_unit_test(test_me_other_user),
        cmocka_unit_test(test_password_change),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_users_get),
        cmocka_unit_test(test_forged_tokens),
        cmocka_unit_test(test_internal_methods_and_events),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_still_healthy),
    };
    int failed = cmocka_run_group_tests_name("identity", tests, NULL, NULL);
    int problems = harness_stop(failed);
    return (failed || problems) ? 1 : 0;
}
