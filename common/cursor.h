/*  cursor: opaque, tamper-evident list cursors.

    A cursor carries up to two 64-bit keys (for "newest first by id" one is
    enough: the last id on the page; a second orders ties, e.g. a score). It
    is base64url(version | key1 | key2 | MAC) with a keyed BLAKE2b MAC
    (libsodium crypto_generichash) over the rest, keyed from CURSOR_SECRET.
    A cursor the server did not issue fails cursor_decode(), which API.md
    turns into 400. Because a cursor names a position rather than a row, it
    stays valid when the row it names is deleted.
*/
#ifndef CURSOR_H_INCLUDED
#define CURSOR_H_INCLUDED

#include <stdint.h>

#define CURSOR_TEXT_MAX 64

//  Writes the cursor text into buf (>= CURSOR_TEXT_MAX bytes).
void cursor_encode(int64_t key1, int64_t key2, char *buf);

//  Returns 0 and the keys, or -1 when text is not a cursor we issued.
int cursor_decode(const char *text, int64_t *key1, int64_t *key2);

#endif
