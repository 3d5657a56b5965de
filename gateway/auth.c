/*  auth: Bearer credentials.

    Only the header parsing lives here; the token rules are in token.c so
    the identity service (which issues tokens) and the WebSocket hub (which
    takes them from a query parameter) share them.
*/
#include "auth.h"
#include "token.h"

#include <string.h>
#include <strings.h>

auth_result_t auth_viewer(const char *authorization, const char *secret, int64_t now_s,
                          int64_t *viewer_out)
{
    return auth_viewer_session(authorization, secret, now_s, viewer_out, NULL);
}

auth_result_t auth_viewer_session(const char *authorization, const char *secret, int64_t now_s,
                                  int64_t *viewer_out, int64_t *session_out)
{
    *viewer_out = 0;
    if (session_out) *session_out = 0;
    if (!authorization) return AUTH_ANONYMOUS;
    const char *p = authorization;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0') return AUTH_ANONYMOUS;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) return AUTH_INVALID;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    //  The token runs to the end, minus trailing blanks.
    char token[TOKEN_MAX_BYTES + 1];
    size_t length = strnlen(p, sizeof token);
    while (length > 0 && (p[length - 1] == ' ' || p[length - 1] == '\t'))
        length--;
    if (length == 0 || length > TOKEN_MAX_BYTES) return AUTH_INVALID;
    memcpy(token, p, length);
    token[length] = '\0';
    int64_t viewer = 0, session = 0;
    if (token_verify_session(secret, token, now_s, &viewer, &session) != 0) return AUTH_INVALID;
    *viewer_out = viewer;
    if (session_out) *session_out = session;
    return AUTH_VALID;
}
