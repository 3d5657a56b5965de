/*  token: the access tokens of API.md (JWT, HS256, algorithm pinned).

    The identity service issues them; the gateway verifies them on every
    request. Claims: sub (the user id as a decimal string), iat, exp, a
    random jti and, in the tokens identity issues, sid (the session).
    Debian 12's libjwt (1.10) has no validation API, accepts any token
    unverified when decoded with a NULL key, and lets the token's own
    header choose the algorithm, so token_verify() always decodes with the
    key, then pins the algorithm to HS256 and checks every claim itself.
*/
#ifndef TOKEN_H_INCLUDED
#define TOKEN_H_INCLUDED

#include <stdint.h>

#define TOKEN_MAX_BYTES 4096 // longer tokens are refused before decoding
#define TOKEN_SECRET_MIN_BYTES 32
#define TOKEN_IAT_LEEWAY_S 60 // clock skew tolerated for "issued at"

//  Returns a new HS256 JWT for user_id (> 0) valid for ttl_seconds (> 0)
//  from now, or NULL on failure. Caller frees.
char *token_issue(const char *secret, int64_t user_id, int ttl_seconds);

//  token_issue() plus a "sid" claim (decimal string) naming the session
//  (identity's refresh-token family) the token was issued for, when
//  session_id > 0. The gateway hands it to services as args.session_id so
//  a password change can keep the session that made it (API.md "Tokens").
char *token_issue_session(const char *secret, int64_t user_id, int64_t session_id, int ttl_seconds);

//  Verifies token against secret at unix time now_s. Returns 0 and the
//  user id in *user_id_out (may be NULL), or -1 when the token is empty,
//  too long, malformed, signed with another algorithm or key, expired
//  (exp <= now), issued in the future (iat > now + leeway), or has no
//  positive decimal sub.
int token_verify(const char *secret, const char *token, int64_t now_s, int64_t *user_id_out);

//  token_verify() that also gives the "sid" claim in *session_id_out (may
//  be NULL): 0 when the token has none; a sid that is not a positive
//  decimal string makes the token invalid (-1).
int token_verify_session(const char *secret, const char *token, int64_t now_s, int64_t *user_id_out,
                         int64_t *session_id_out);

//  Returns 1 when secret is usable (at least TOKEN_SECRET_MIN_BYTES), else 0.
int token_secret_ok(const char *secret);

#endif
