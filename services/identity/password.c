/*  password: argon2id hashing with libsodium.

    Hashes are libsodium's self-describing strings ($argon2id$v=19$m=…,t=…),
    so parameters can be raised later without a migration: a login whose
    hash is weaker than the current settings re-hashes it (auth.c).

    Parameters: OWASP's minimum for argon2id is 19 MiB of memory and 2
    passes; PASSWORD_MEMLIMIT_MIB and PASSWORD_OPSLIMIT may raise them, never
    lower them (a value below the minimum is raised and logged).

    Same time for unknown users: a login for a user that does not exist
    verifies the password against a dummy hash made at start with the same
    parameters, so the reply time does not tell whether the user exists.
*/
#include "identity.h"
#include "config.h"
#include "log.h"

#include <string.h>

#define PASSWORD_OPSLIMIT_MIN 2
#define PASSWORD_MEMLIMIT_MIB_MIN 19
#define PASSWORD_MEMLIMIT_MIB_MAX 4096

void password_configure(identity_t *self)
{
    int64_t ops = config_int("PASSWORD_OPSLIMIT", PASSWORD_OPSLIMIT_MIN);
    int64_t mib = config_int("PASSWORD_MEMLIMIT_MIB", PASSWORD_MEMLIMIT_MIB_MIN);
    if (ops < PASSWORD_OPSLIMIT_MIN) {
        log_warn("PASSWORD_OPSLIMIT %lld is below the minimum; using %d", (long long)ops,
                 PASSWORD_OPSLIMIT_MIN);
        ops = PASSWORD_OPSLIMIT_MIN;
    }
    if (ops > 64) ops = 64;
    if (mib < PASSWORD_MEMLIMIT_MIB_MIN) {
        log_warn("PASSWORD_MEMLIMIT_MIB %lld is below the minimum; using %d", (long long)mib,
                 PASSWORD_MEMLIMIT_MIB_MIN);
        mib = PASSWORD_MEMLIMIT_MIB_MIN;
    }
    if (mib > PASSWORD_MEMLIMIT_MIB_MAX) mib = PASSWORD_MEMLIMIT_MIB_MAX;
    self->opslimit = (unsigned long long)ops;
    self->memlimit = (size_t)mib * 1024 * 1024;
}

int password_init(identity_t *self)
{
    //  A random password nobody knows: verifying against it always fails.
    unsigned char secret[32];
    char text[sizeof secret * 2 + 1];
    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(text, sizeof text, secret, sizeof secret);
    int rc = password_hash(self, text, self->dummy_hash);
    sodium_memzero(text, sizeof text);
    return rc;
}

int password_hash(const identity_t *self, const char *password, char out[crypto_pwhash_STRBYTES])
{
    if (crypto_pwhash_argon2id_str(out, password, strlen(password), self->opslimit,
                                   self->memlimit) != 0) {
        log_error("argon2id hashing failed (out of memory?)");
        return -1;
    }
    return 0;
}

bool password_verify(const identity_t *self, const char *hash, const char *password)
{
    if (!hash) {
        //  The result is irrelevant (nobody knows the dummy password); the
        //  work is the point.
        if (crypto_pwhash_argon2id_str_verify(self->dummy_hash, password, strlen(password)) == 0)
            log_warn("the dummy password hash matched");
        return false;
    }
    //  Any algorithm libsodium knows is accepted, so old hashes keep working.
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

bool password_needs_rehash(const identity_t *self, const char *hash)
{
    return crypto_pwhash_argon2id_str_needs_rehash(hash, self->opslimit, self->memlimit) != 0;
}
