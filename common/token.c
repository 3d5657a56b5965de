/*  token: issue and verify HS256 access tokens with libjwt 1.10.

    Verification does not trust libjwt's defaults (see token.h). The order
    of checks is cheapest first: size and alphabet of the text, then
    jwt_decode() with the key (which checks the signature for whatever
    algorithm the header names, and refuses "none" when a key is given),
    then the algorithm pin, then the claims, read from the grants as JSON
    so each one's type is checked rather than coerced (libjwt's integer
    getter turns a string or a real into 0 or garbage).

    A secret that is too short is refused on both sides: an empty key would
    make jwt_decode() skip the signature check altogether.
*/
#include "token.h"
#include "ids.h"

#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int token_secret_ok(const char *secret)
{
    return secret && strlen(secret) >= TOKEN_SECRET_MIN_BYTES;
}

char *token_issue(const char *secret, int64_t user_id, int ttl_seconds)
{
    return token_issue_session(secret, user_id, 0, ttl_seconds);
}

char *token_issue_session(const char *secret, int64_t user_id, int64_t session_id, int ttl_seconds)
{
    if (!token_secret_ok(secret) || user_id <= 0 || ttl_seconds <= 0 || session_id < 0) return NULL;
    if (sodium_init() < 0) return NULL;

    char sub[32], sid[32];
    ids_format(user_id, sub, sizeof sub);
    ids_format(session_id, sid, sizeof sid);
    unsigned char random[16];
    randombytes_buf(random, sizeof random);
    char jti[2 * sizeof random + 1];
    sodium_bin2hex(jti, sizeof jti, random, sizeof random);
    long now = (long)time(NULL);

    char *text = NULL;
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0) return NULL;
    if (jwt_add_grant(jwt, "sub", sub) == 0 && jwt_add_grant_int(jwt, "iat", now) == 0 &&
        jwt_add_grant_int(jwt, "exp", now + ttl_seconds) == 0 &&
        jwt_add_grant(jwt, "jti", jti) == 0 &&
        (session_id == 0 || jwt_add_grant(jwt, "sid", sid) == 0) &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0)
        text = jwt_encode_str(jwt);
    jwt_free(jwt);
    return text;
}

//  A JWT in compact form: three base64url parts separated by two dots.
static bool s_well_formed(const char *token, size_t length)
{
    int dots = 0;
    for (size_t i = 0; i < length; i++) {
        char c = token[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return false;
    }
    return dots == 2;
}

//  The claim as a JSON integer, or false when absent or of another type.
static bool s_int_claim(const json_t *claims, const char *name, json_int_t *out)
{
    const json_t *value = json_object_get(claims, name);
    if (!json_is_integer(value)) return false;
    *out = json_integer_value(value);
    return true;
}

int token_verify(const char *secret, const char *token, int64_t now_s, int64_t *user_id_out)
{
    return token_verify_session(secret, token, now_s, user_id_out, NULL);
}

int token_verify_session(const char *secret, const char *token, int64_t now_s, int64_t *user_id_out,
                         int64_t *session_id_out)
{
    if (!token_secret_ok(secret) || !token) return -1;
    size_t length = strnlen(token, TOKEN_MAX_BYTES + 1);
    if (length == 0 || length > TOKEN_MAX_BYTES || !s_well_formed(token, length)) return -1;

    int rc = -1;
    jwt_t *jwt = NULL;
    char *grants = NULL;
    json_t *claims = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || !jwt)
        goto cleanup;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) goto cleanup;

    grants = jwt_get_grants_json(jwt, NULL);
    if (!grants) goto cleanup;
    claims = json_loads(grants, 0, NULL);
    if (!json_is_object(claims)) goto cleanup;

    json_int_t exp, iat, nbf;
    if (!s_int_claim(claims, "exp", &exp) || exp <= now_s) goto cleanup;
    if (!s_int_claim(claims, "iat", &iat) || iat > now_s + TOKEN_IAT_LEEWAY_S) goto cleanup;
    if (json_object_get(claims, "nbf") &&
        (!s_int_claim(claims, "nbf", &nbf) || nbf > now_s + TOKEN_IAT_LEEWAY_S))
        goto cleanup;
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    int64_t user_id = 0;
    if (!sub || !ids_parse(sub, &user_id) || user_id <= 0) goto cleanup;
    const json_t *sid_claim = json_object_get(claims, "sid");
    int64_t session_id = 0;
    if (sid_claim && (!json_is_string(sid_claim) ||
                      !ids_parse(json_string_value(sid_claim), &session_id) || session_id <= 0))
        goto cleanup;

    if (user_id_out) *user_id_out = user_id;
    if (session_id_out) *session_id_out = session_id;
    rc = 0;

cleanup:
    json_decref(claims);
    free(grants);
    jwt_free(jwt);
    return rc;
}
