/*  fuzz_token: arbitrary strings as access tokens.

    token_verify() must never crash, leak or hang on any input, and may
    accept only a token whose signature matches the fuzzing secret (the
    seed corpus holds one, so the claim checks behind the signature are
    reached too). The same bytes also go through the Bearer header parser.
*/
#include "auth.h"
#include "token.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_SECRET "fuzz-secret-0123456789abcdef-0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int64_t user_id = -1;
    //  A fixed "now" (2026-11-27) so the valid seed stays valid.
    if (token_verify(FUZZ_SECRET, text, 1795809600, &user_id) == 0 && user_id <= 0) abort();
    int64_t viewer = -1;
    auth_result_t result = auth_viewer(text, FUZZ_SECRET, 1795809600, &viewer);
    if (result == AUTH_VALID ? viewer <= 0 : viewer != 0) abort();
    free(text);
    return 0;
}
