/*  test_token: issue and verify access tokens, and every way a forged or
    stale token must fail (token.h). The bad tokens are built here by hand:
    base64url headers for "alg":"none" and RS256, libjwt for HS512 and for
    claims of the wrong type, libsodium's HMAC for a signature computed over
    a header that names another algorithm. */
#include "token.h"

#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

static const char *SECRET = "0123456789abcdef0123456789abcdef-test";
static const char *OTHER_SECRET = "another-secret-that-is-long-enough-1234";

static char *s_b64url(const void *data, size_t size)
{
    size_t room = sodium_base64_encoded_len(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(room);
    assert_non_null(out);
    sodium_bin2base64(out, room, data, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

//  header.payload with the given JSON texts, plus a signature: HMAC-SHA256
//  over the first two parts with key (NULL: empty signature).
static char *s_forge(const char *header_json, const char *payload_json, const char *key)
{
    char *header = s_b64url(header_json, strlen(header_json));
    char *payload = s_b64url(payload_json, strlen(payload_json));
    size_t size = strlen(header) + strlen(payload) + 200;
    char *token = malloc(size);
    assert_non_null(token);
    snprintf(token, size, "%s.%s.", header, payload);
    if (key) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state state;
        crypto_auth_hmacsha256_init(&state, (const unsigned char *)key, strlen(key));
        crypto_auth_hmacsha256_update(&state, (const unsigned char *)token, strlen(token) - 1);
        crypto_auth_hmacsha256_final(&state, mac);
        char *sig = s_b64url(mac, sizeof mac);
        size_t used = strlen(token);
        snprintf(token + used, size - used, "%s", sig);
        free(sig);
    }
    free(header);
    free(payload);
    return token;
}

static char *s_payload(const char *sub_json, long iat, long exp)
{
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream(&text, &size);
    fprintf(stream, "{\"sub\":%s,\"iat\":%ld,\"exp\":%ld,\"jti\":\"x\"}", sub_json, iat, exp);
    fclose(stream);
    return text;
}

//  A token signed by libjwt with alg and key and the given grants JSON.
static char *s_libjwt(jwt_alg_t alg, const char *key, const char *grants_json)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, grants_json), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *text = jwt_encode_str(jwt);
    assert_non_null(text);
    jwt_free(jwt);
    return text;
}

static void test_secret_ok(void **state)
{
    assert_int_equal(token_secret_ok(NULL), 0);
    assert_int_equal(token_secret_ok(""), 0);
    assert_int_equal(token_secret_ok("0123456789abcdef0123456789abcde"), 0);  // 31
    assert_int_equal(token_secret_ok("0123456789abcdef0123456789abcdef"), 1); // 32
}

static void test_issue_and_verify(void **state)
{
    char *token = token_issue(SECRET, 1234567890123LL, 900);
    assert_non_null(token);
    int64_t user_id = 0;
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(token_verify(SECRET, token, now, &user_id), 0);
    assert_int_equal(user_id, 1234567890123LL);
    //  Still valid one second before exp, refused at exp and after.
    assert_int_equal(token_verify(SECRET, token, now + 899, NULL), 0);
    assert_int_equal(token_verify(SECRET, token, now + 900 + 1, NULL), -1);
    assert_int_equal(token_verify(SECRET, token, now + 100000, NULL), -1);

    //  The claims are what token.h says: sub a decimal string, jti random.
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)SECRET, (int)strlen(SECRET)),
                     0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    assert_string_equal(jwt_get_grant(jwt, "sub"), "1234567890123");
    assert_true(jwt_get_grant_int(jwt, "exp") - jwt_get_grant_int(jwt, "iat") == 900);
    assert_non_null(jwt_get_grant(jwt, "jti"));
    jwt_free(jwt);

    char *second = token_issue(SECRET, 1234567890123LL, 900);
    assert_string_not_equal(token, second); // different jti
    free(second);

    //  No session claim: the session is 0.
    int64_t session = -1;
    assert_int_equal(token_verify_session(SECRET, token, now, &user_id, &session), 0);
    assert_int_equal(session, 0);
    free(token);

    //  With one: sid is a decimal string, given back by token_verify_session.
    token = token_issue_session(SECRET, 42, 504393715284967424LL, 900);
    assert_non_null(token);
    assert_int_equal(token_verify_session(SECRET, token, now, &user_id, &session), 0);
    assert_int_equal(user_id, 42);
    assert_int_equal(session, 504393715284967424LL);
    assert_int_equal(token_verify(SECRET, token, now, &user_id), 0);
    jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)SECRET, (int)strlen(SECRET)),
                     0);
    assert_string_equal(jwt_get_grant(jwt, "sid"), "504393715284967424");
    jwt_free(jwt);
    free(token);
    assert_null(token_issue_session(SECRET, 42, -1, 900));
}

static void test_issue_refuses_bad_input(void **state)
{
    assert_null(token_issue("short", 1, 900));
    assert_null(token_issue(NULL, 1, 900));
    assert_null(token_issue(SECRET, 0, 900));
    assert_null(token_issue(SECRET, -4, 900));
    assert_null(token_issue(SECRET, 1, 0));
}

static void test_wrong_key_and_bad_signature(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *token = token_issue(OTHER_SECRET, 42, 900);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    assert_int_equal(token_verify(OTHER_SECRET, token, now, NULL), 0);

    //  Flip one character of the signature (not the last, whose low bits
    //  are padding), then truncate it.
    char *sig = strrchr(token, '.') + 1;
    sig[2] = sig[2] == 'A' ? 'B' : 'A';
    assert_int_equal(token_verify(OTHER_SECRET, token, now, NULL), -1);
    sig[2] = 0;
    assert_int_equal(token_verify(OTHER_SECRET, token, now, NULL), -1);
    free(token);

    //  A changed payload under the original signature.
    token = token_issue(SECRET, 42, 900);
    char *payload = strchr(token, '.') + 1;
    payload[3] = payload[3] == 'A' ? 'B' : 'A';
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);

    //  The signature of another valid token.
    token = token_issue(SECRET, 42, 900);
    char *other = token_issue(SECRET, 43, 900);
    char *sig_other = strrchr(other, '.') + 1;
    sig = strrchr(token, '.') + 1;
    assert_int_equal(strlen(sig_other), strlen(sig));
    memcpy(sig, sig_other, strlen(sig_other));
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(other);
    free(token);
}

static void test_alg_none(void **state)
{
    long now = (long)time(NULL);
    char *payload = s_payload("\"42\"", now, now + 900);
    char *token = s_forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    //  "none" with a signature anyway, and other spellings.
    token = s_forge("{\"alg\":\"none\"}", payload, SECRET);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    token = s_forge("{\"alg\":\"None\"}", payload, NULL);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    token = s_forge("{\"typ\":\"JWT\"}", payload, SECRET); // no alg at all
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    //  The same forge with HS256 and the right key passes: the helper is sound.
    token = s_forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET);
    assert_int_equal(token_verify(SECRET, token, now, NULL), 0);
    free(token);
    free(payload);
}

static void test_other_algorithms(void **state)
{
    long now = (long)time(NULL);
    char *payload = s_payload("\"42\"", now, now + 900);
    //  HS512 and HS384 signed with the right key: valid signatures, wrong alg.
    char *token = s_libjwt(JWT_ALG_HS512, SECRET, payload);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    token = s_libjwt(JWT_ALG_HS384, SECRET, payload);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    //  RS256 header with an HMAC signature by the shared secret (the
    //  classic algorithm-confusion forge), and ES256.
    token = s_forge("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload, SECRET);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    token = s_forge("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", payload, SECRET);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    token = s_forge("{\"alg\":\"XX999\",\"typ\":\"JWT\"}", payload, SECRET);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    free(payload);
}

static void test_expired_and_future(void **state)
{
    long now = (long)time(NULL);
    char *payload = s_payload("\"42\"", now - 1000, now - 100);
    char *token = s_libjwt(JWT_ALG_HS256, SECRET, payload);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    free(payload);

    payload = s_payload("\"42\"", now - 1000, now); // exp == now is expired
    token = s_libjwt(JWT_ALG_HS256, SECRET, payload);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    assert_int_equal(token_verify(SECRET, token, now - 1, NULL), 0);
    free(token);
    free(payload);

    //  Issued in the future beyond the leeway, and within it.
    payload = s_payload("\"42\"", now + 3600, now + 7200);
    token = s_libjwt(JWT_ALG_HS256, SECRET, payload);
    assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
    free(token);
    free(payload);
    payload = s_payload("\"42\"", now + 30, now + 900);
    token = s_libjwt(JWT_ALG_HS256, SECRET, payload);
    assert_int_equal(token_verify(SECRET, token, now, NULL), 0);
    free(token);
    free(payload);
}

static void test_bad_claims(void **state)
{
    long now = (long)time(NULL);
    const char *subs[] = {"42",     "\"abc\"", "\"0\"", "\"-5\"",
                          "\"\"",   "\"12x\"", "null",  "\"99999999999999999999999\"",
                          "[\"1\"]"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char *payload = s_payload(subs[i], now, now + 900);
        char *token = s_libjwt(JWT_ALG_HS256, SECRET, payload);
        assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
        free(token);
        free(payload);
    }
    const char *grants[] = {
        "{\"sub\":\"42\",\"iat\":1}",                                         // no exp
        "{\"sub\":\"42\",\"exp\":99999999999}",                               // no iat
        "{\"iat\":1,\"exp\":99999999999}",                                    // no sub
        "{\"sub\":\"42\",\"iat\":1,\"exp\":\"99999999999\"}",                 // exp a string
        "{\"sub\":\"42\",\"iat\":1,\"exp\":99999999999.5}",                   // exp a real
        "{\"sub\":\"42\",\"iat\":\"1\",\"exp\":99999999999}",                 // iat a string
        "{\"sub\":\"42\",\"iat\":1,\"exp\":99999999999,\"nbf\":99999999999}", // not yet
        "{\"sub\":\"42\",\"iat\":1,\"exp\":99999999999,\"sid\":7}",           // sid a number
        "{\"sub\":\"42\",\"iat\":1,\"exp\":99999999999,\"sid\":\"0\"}",       // sid not positive
    };
    for (size_t i = 0; i < sizeof grants / sizeof grants[0]; i++) {
        char *token = s_libjwt(JWT_ALG_HS256, SECRET, grants[i]);
        assert_int_equal(token_verify(SECRET, token, now, NULL), -1);
        free(token);
    }
    char *token = s_libjwt(JWT_ALG_HS256, SECRET, "{\"sub\":\"42\",\"iat\":1,\"exp\":99999999999}");
    int64_t user_id = 0;
    assert_int_equal(token_verify(SECRET, token, now, &user_id), 0);
    assert_int_equal(user_id, 42);
    free(token);
}

static void test_garbage(void **state)
{
    long now = (long)time(NULL);
    const char *junk[] = {"",
                          "abc",
                          "a.b",
                          "a.b.c",
                          "..",
                          "...",
                          "a..b",
                          ".a.b",
                          "eyJhbGciOiJIUzI1NiJ9.e30.",
                          "eyJhbGciOiJIUzI1NiJ9..",
                          "not base64!.x.y",
                          "\xff\xfe.\x01.\x02",
                          "Bearer x.y.z",
                          "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.sig.extra"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(token_verify(SECRET, junk[i], now, NULL), -1);
    assert_int_equal(token_verify(SECRET, NULL, now, NULL), -1);

    //  A valid token with a short secret on the verifying side is refused:
    //  an empty key would make libjwt skip the signature.
    char *token = token_issue(SECRET, 42, 900);
    assert_int_equal(token_verify("", token, now, NULL), -1);
    assert_int_equal(token_verify(NULL, token, now, NULL), -1);
    assert_int_equal(token_verify("short", token, now, NULL), -1);
    free(token);

    //  Oversized: over TOKEN_MAX_BYTES is refused before decoding.
    size_t size = TOKEN_MAX_BYTES + 10;
    char *big = malloc(size + 1);
    memset(big, 'a', size);
    big[10] = '.';
    big[20] = '.';
    big[size] = 0;
    assert_int_equal(token_verify(SECRET, big, now, NULL), -1);
    free(big);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_ok),
        cmocka_unit_test(test_issue_and_verify),
        cmocka_unit_test(test_issue_refuses_bad_input),
        cmocka_unit_test(test_wrong_key_and_bad_signature),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_other_algorithms),
        cmocka_unit_test(test_expired_and_future),
        cmocka_unit_test(test_bad_claims),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
