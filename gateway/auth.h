/*  auth: the viewer of a request, from its Authorization header.

    "Authorization: Bearer <access token>" (scheme case-insensitive, as RFC
    6750 says). The token is checked by token_verify() (common/token.h):
    HS256 pinned, signature, exp, iat, sub.
*/
#ifndef GATEWAY_AUTH_H_INCLUDED
#define GATEWAY_AUTH_H_INCLUDED

#include <stdint.h>

typedef enum {
    AUTH_ANONYMOUS = 0, // no credentials (header absent or empty)
    AUTH_VALID,         // *viewer_out set
    AUTH_INVALID,       // credentials present but wrong: another scheme, a bad token
} auth_result_t;

auth_result_t auth_viewer(const char *authorization, const char *secret, int64_t now_s,
                          int64_t *viewer_out);
//  auth_viewer() that also gives the token's session (its "sid" claim, 0
//  when it has none) in *session_out (may be NULL).
auth_result_t auth_viewer_session(const char *authorization, const char *secret, int64_t now_s,
                                  int64_t *viewer_out, int64_t *session_out);

#endif
