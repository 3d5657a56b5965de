/*  tokens: refresh tokens (opaque, single-use, grouped in families) and the
    session reply that carries them with a fresh access token.

    A refresh token is 32 random bytes, base64url without padding. Only its
    SHA-256 (hex) is stored, so a leaked table cannot be replayed. Tokens
    expire 30 days after they were issued (each rotation issues a new one,
    so a session in use keeps going).

    Families implement the reuse detection of the OAuth 2.0 Security BCP:
    a login starts a family whose id is its first token's id; a refresh
    marks the presented token used and issues the next one in the same
    family. Presenting a token that was already used means two parties hold
    the family (a thief, or a client that lost a reply), so the whole family
    is revoked and both must sign in again. Rows are locked FOR UPDATE, so
    two concurrent refreshes with one token cannot both succeed.

    Access tokens are JWTs from common/token.h; they are not stored, and a
    revoked family does not recall them (they live at most 15 minutes).
    Each names its family as its session (the sid claim), which the gateway
    passes back as args.session_id: me.password keeps that family.
*/
#include "identity.h"
#include "ids.h"
#include "log.h"
#include "token.h"

#include <czmq.h>
#include <string.h>

#define TOKENS_RANDOM_BYTES 32
#define TOKENS_TTL "30 days"

static void s_hash(const char *token, char hex[crypto_hash_sha256_BYTES * 2 + 1])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(hex, crypto_hash_sha256_BYTES * 2 + 1, digest, sizeof digest);
}

int tokens_create(db_t *db, int64_t user_id, int64_t family_id, char out[TOKENS_TEXT_SIZE],
                  int64_t *family_out)
{
    unsigned char random[TOKENS_RANDOM_BYTES];
    randombytes_buf(random, sizeof random);
    sodium_bin2base64(out, TOKENS_TEXT_SIZE, random, sizeof random,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(random, sizeof random);

    char hash[crypto_hash_sha256_BYTES * 2 + 1];
    s_hash(out, hash);
    int64_t id = ids_next();
    char id_text[21], user_text[21], family_text[21];
    ids_format(id, id_text, sizeof id_text);
    ids_format(user_id, user_text, sizeof user_text);
    if (!family_id) family_id = id;
    if (family_out) *family_out = family_id;
    ids_format(family_id, family_text, sizeof family_text);
    const char *params[] = {id_text, user_text, family_text, hash};
    long rows =
        db_exec(db,
                "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)"
                " VALUES ($1, $2, $3, $4, now() + interval '" TOKENS_TTL "')",
                4, params);
    return rows == 1 ? 0 : -1;
}

static int s_revoke_family(db_t *db, const char *family_text)
{
    const char *params[] = {family_text};
    return db_exec(db,
                   "UPDATE refresh_tokens SET revoked_at = now()"
                   " WHERE family_id = $1 AND revoked_at IS NULL",
                   1, params) < 0
               ? -1
               : 0;
}

tokens_result_t tokens_rotate(db_t *db, const char *token, int64_t *user_id,
                              char out[TOKENS_TEXT_SIZE], int64_t *family_out)
{
    char hash[crypto_hash_sha256_BYTES * 2 + 1];
    s_hash(token, hash);
    const char *params[] = {hash};
    PGresult *res = db_query(db,
                             "SELECT id, user_id, family_id, used_at IS NOT NULL,"
                             " revoked_at IS NOT NULL, expires_at <= now()"
                             " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                             1, params);
    if (!res) return TOKENS_ERROR;
    tokens_result_t result = TOKENS_INVALID;
    if (PQntuples(res) != 1) goto cleanup;

    bool used = streq(PQgetvalue(res, 0, 3), "t");
    bool revoked = streq(PQgetvalue(res, 0, 4), "t");
    bool expired = streq(PQgetvalue(res, 0, 5), "t");
    const char *family_text = PQgetvalue(res, 0, 2);
    if (revoked || expired) goto cleanup;
    if (used) {
        log_warn("refresh token reused; revoking family %s", family_text);
        result = s_revoke_family(db, family_text) == 0 ? TOKENS_REUSED : TOKENS_ERROR;
        goto cleanup;
    }
    int64_t owner = 0, family = 0;
    if (!ids_parse(PQgetvalue(res, 0, 1), &owner) || !ids_parse(family_text, &family)) {
        result = TOKENS_ERROR;
        goto cleanup;
    }
    const char *mark[] = {PQgetvalue(res, 0, 0)};
    if (db_exec(db, "UPDATE refresh_tokens SET used_at = now() WHERE id = $1", 1, mark) != 1 ||
        tokens_create(db, owner, family, out, family_out) != 0) {
        result = TOKENS_ERROR;
        goto cleanup;
    }
    *user_id = owner;
    result = TOKENS_OK;
cleanup:
    PQclear(res);
    return result;
}

int tokens_revoke_family_of(db_t *db, const char *token)
{
    char hash[crypto_hash_sha256_BYTES * 2 + 1];
    s_hash(token, hash);
    const char *params[] = {hash};
    return db_exec(db,
                   "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL"
                   " AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                   1, params) < 0
               ? -1
               : 0;
}

int tokens_revoke_others(db_t *db, int64_t user_id, int64_t keep_family, const char *keep_token)
{
    char user_text[21], family_text[21];
    ids_format(user_id, user_text, sizeof user_text);
    ids_format(keep_family, family_text, sizeof family_text);
    char hash[crypto_hash_sha256_BYTES * 2 + 1] = "";
    if (keep_token) s_hash(keep_token, hash);
    //  Kept: the caller's session (only this user's rows are touched, so a
    //  family of someone else keeps nothing) and the family of a live
    //  (unused, unrevoked, unexpired) token of this user.
    const char *params[] = {user_text, keep_token ? hash : NULL,
                            keep_family > 0 ? family_text : NULL};
    return db_exec(db,
                   "UPDATE refresh_tokens SET revoked_at = now()"
                   " WHERE user_id = $1 AND revoked_at IS NULL"
                   " AND family_id IS DISTINCT FROM $3::bigint"
                   " AND family_id IS DISTINCT FROM (SELECT family_id FROM refresh_tokens"
                   "   WHERE token_hash = $2 AND user_id = $1 AND used_at IS NULL"
                   "   AND revoked_at IS NULL AND expires_at > now())",
                   3, params) < 0
               ? -1
               : 0;
}

int tokens_prune(db_t *db, int64_t user_id)
{
    char user_text[21];
    ids_format(user_id, user_text, sizeof user_text);
    const char *params[] = {user_text};
    return db_exec(db, "DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at <= now()", 1,
                   params) < 0
               ? -1
               : 0;
}

json_t *tokens_session_body(const identity_t *self, json_t *user_stolen, int64_t user_id,
                            int64_t family_id, const char *refresh_token)
{
    char *access = token_issue_session(self->jwt_secret, user_id, family_id, self->access_ttl);
    if (!access) {
        log_error("could not sign an access token");
        json_decref(user_stolen);
        return NULL;
    }
    json_t *body = json_object();
    json_object_set_new(body, "user", user_stolen);
    json_object_set_new(body, "access_token", json_string(access));
    json_object_set_new(body, "refresh_token", json_string(refresh_token));
    json_object_set_new(body, "token_type", json_string("Bearer"));
    json_object_set_new(body, "expires_in", json_integer(self->access_ttl));
    free(access);
    return body;
}
