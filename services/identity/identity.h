/*  identity: what the service's files share.

    One identity_t, filled by main() from the environment and finished by
    on_start() (the dummy password hash), is read-only while workers run, so
    handler threads share it without locks. Each handler file owns one
    resource (auth.c, me.c, users.c); the SQL for users lives in store.c,
    the SQL for refresh tokens in tokens.c, argon2id in password.c, input
    rules in validate.c.
*/
#ifndef IDENTITY_H_INCLUDED
#define IDENTITY_H_INCLUDED

#include "service.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#define IDENTITY_ACCESS_TTL_MAX 900 // API.md: exp <= 15 min
#define IDENTITY_DISPLAY_NAME_MAX 64
#define IDENTITY_BIO_MAX 150
#define IDENTITY_WEBSITE_MAX 200
#define IDENTITY_EMAIL_MAX 254
#define IDENTITY_USERNAME_MAX 30
#define IDENTITY_PASSWORD_MIN 8
#define IDENTITY_PASSWORD_MAX 256
#define IDENTITY_BATCH_MAX 1000

typedef struct {
    const char *jwt_secret;                  // borrowed from the environment
    int access_ttl;                          // seconds, 1..IDENTITY_ACCESS_TTL_MAX
    unsigned long long opslimit;             // argon2id passes
    size_t memlimit;                         // argon2id memory, bytes
    char dummy_hash[crypto_pwhash_STRBYTES]; // verified against for unknown users
} identity_t;

//  ---- handlers (auth.c, me.c, users.c) ---------------------------------
json_t *auth_register(call_t *call);
json_t *auth_login(call_t *call);
json_t *auth_refresh(call_t *call);
json_t *auth_logout(call_t *call);
json_t *me_get(call_t *call);
json_t *me_update(call_t *call);
json_t *me_password(call_t *call);
json_t *me_delete(call_t *call);
json_t *me_avatar_put(call_t *call);
json_t *me_avatar_delete(call_t *call);
json_t *users_get(call_t *call);
json_t *users_batch(call_t *call);
json_t *users_by_username(call_t *call);
json_t *users_by_usernames(call_t *call);

//  ---- password.c ---------------------------------------------------------
//  Reads PASSWORD_OPSLIMIT and PASSWORD_MEMLIMIT_MIB (never below OWASP's
//  argon2id minimum: 2 passes, 19 MiB) into self.
void password_configure(identity_t *self);
//  Computes the dummy hash. 0 or -1.
int password_init(identity_t *self);
//  Hashes password into out. 0, or -1 when out of memory.
int password_hash(const identity_t *self, const char *password, char out[crypto_pwhash_STRBYTES]);
//  True when password matches hash. A NULL hash (unknown user) is checked
//  against the dummy hash, so it costs the same time and returns false.
bool password_verify(const identity_t *self, const char *hash, const char *password);
//  True when hash was made with weaker parameters than the current ones.
bool password_needs_rehash(const identity_t *self, const char *hash);

//  ---- tokens.c: refresh tokens and the session reply --------------------
//  sodium_base64_ENCODED_LEN(32, URLSAFE_NO_PADDING) = 44 with the NUL.
#define TOKENS_TEXT_SIZE 44

//  Inside a transaction: creates a refresh token for user_id in family_id
//  (0 = a new family, whose id is the token's own). Writes the opaque text
//  into out and the family's id into *family_out (may be NULL). 0 or -1.
int tokens_create(db_t *db, int64_t user_id, int64_t family_id, char out[TOKENS_TEXT_SIZE],
                  int64_t *family_out);

typedef enum {
    TOKENS_OK = 0,  // rotated: *user_id and out are set
    TOKENS_INVALID, // unknown, expired or revoked
    TOKENS_REUSED,  // already used: the family is now revoked
    TOKENS_ERROR    // database failure
} tokens_result_t;

//  Inside a transaction: exchanges the presented token for a new one of the
//  same family (single use); *family_out gets the family.
tokens_result_t tokens_rotate(db_t *db, const char *token, int64_t *user_id,
                              char out[TOKENS_TEXT_SIZE], int64_t *family_out);
//  Revokes the family of token (nothing when unknown). 0 or -1.
int tokens_revoke_family_of(db_t *db, const char *token);
//  Revokes every family of user_id except keep_family (the caller's
//  session, 0 for none) and the one keep_token belongs to (when token is
//  not NULL, names a live token and belongs to user_id). 0 or -1.
int tokens_revoke_others(db_t *db, int64_t user_id, int64_t keep_family, const char *keep_token);
//  Deletes expired tokens of user_id (housekeeping at login). 0 or -1.
int tokens_prune(db_t *db, int64_t user_id);

//  {user, access_token, refresh_token, token_type, expires_in}. Takes user.
//  The access token names family_id as its session (sid). NULL when the
//  access token cannot be signed.
json_t *tokens_session_body(const identity_t *self, json_t *user_stolen, int64_t user_id,
                            int64_t family_id, const char *refresh_token);

//  ---- store.c: users -----------------------------------------------------
typedef enum {
    USER_PUBLIC,        // the public user object
    USER_PUBLIC_VIEWER, // plus followed_by_me, follows_me, follow_state
    USER_ME             // plus email, created_at
} user_view_t;

//  Row layout of every users query (store_user_* and me.update).
#define STORE_USER_COLUMNS                                                                         \
    "id, username, email, display_name, bio, website, is_private, avatar_key, "                    \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), password_hash, " \
    "version"
enum {
    COL_ID,
    COL_USERNAME,
    COL_EMAIL,
    COL_DISPLAY_NAME,
    COL_BIO,
    COL_WEBSITE,
    COL_IS_PRIVATE,
    COL_AVATAR_KEY,
    COL_CREATED_AT,
    COL_PASSWORD_HASH,
    COL_VERSION // bumped by each change that emits user.updated (schemas/identity/002)
};

//  Each returns a result with 0 or 1 rows (caller PQclears), NULL on error.
//  for_update locks the row (inside a transaction).
PGresult *store_user_by_id(db_t *db, int64_t id, bool for_update);
PGresult *store_user_by_username(db_t *db, const char *username);
//  login: an email (has '@') or a username, both case-insensitive.
PGresult *store_user_by_login(db_t *db, const char *login);

//  The user object of row. Never NULL.
json_t *store_user_json(const PGresult *res, int row, user_view_t view);
//  The payload of user.created / user.updated for row.
json_t *store_user_event(const PGresult *res, int row, bool updated);
int64_t store_user_id(const PGresult *res, int row);

//  Which of username and email (either may be NULL) are taken: sets
//  fields.username / fields.email. Returns the count, or -1 on error.
int store_conflicts(db_t *db, const char *username, const char *email, int64_t except_id,
                    json_t *fields);

//  ---- validate.c -----------------------------------------------------------
//  Each checks a value args_string already accepted, records what is wrong
//  in fields[name] (if nothing is recorded there yet) and returns false.
//  username: lower-cased into out (>= IDENTITY_USERNAME_MAX + 1 bytes).
bool validate_username(const char *username, char *out, size_t size, json_t *fields);
bool validate_email(const char *email, json_t *fields);
bool validate_website(const char *website, json_t *fields);
//  Lower-cases ASCII into out; false when it does not fit.
bool validate_lower(const char *text, char *out, size_t size);

//  ---- helpers shared by handlers (store.c) ------------------------------
identity_t *identity_of(call_t *call);
//  409 conflict naming fields (taken).
json_t *identity_conflict(json_t *fields_stolen);
//  500 internal, after logging what failed.
json_t *identity_internal(const char *what);

#endif
