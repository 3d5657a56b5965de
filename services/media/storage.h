/*  storage: the media file store (DESIGN.md decision 9).

    A small interface so an S3-compatible store can replace the default:
    content-addressed files under MEDIA_DIR. A key is
    base64url(keyed BLAKE2b-256 of the bytes) + "." + extension ("jpg" or
    "webp"): 43 + 1 + 3..4 characters. The MAC key comes from
    MEDIA_KEY_SECRET, so keys cannot be guessed or enumerated, and equal
    bytes get equal keys (a re-upload of the same photo is stored once).

    Keys are validated strictly (storage_key_valid) before any file system
    call, so no request can name a path outside the store: the alphabet has
    no '/', no '.', no '%' and no NUL, and the length is fixed. Files live in
    two levels of shard folders, MEDIA_DIR/ab/cd/<key>, to keep folders
    small. Writes go to a temporary file in the same folder and are renamed
    into place, so a reader never sees half a file.

    Storage knows nothing about references: files.c decides when a key may
    be deleted. Thread-safe (no mutable state after storage_new).
*/
#ifndef STORAGE_H_INCLUDED
#define STORAGE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define STORAGE_HASH_CHARS 43 // base64url of 32 bytes, no padding
#define STORAGE_KEY_MAX 56    // longest key plus NUL, with room

typedef struct storage_t storage_t;

//  dir: the folder (created if missing); secret: the key MAC secret.
//  NULL on failure (logged).
storage_t *storage_new(const char *dir, const char *secret);
void storage_destroy(storage_t **self_p);

//  Writes the key for data with extension ext ("jpg" | "webp") into key.
void storage_key(const storage_t *self, const void *data, size_t size, const char *ext,
                 char key[STORAGE_KEY_MAX]);

//  True when key has exactly the shape storage_key makes.
bool storage_key_valid(const char *key);

//  "image/jpeg" or "image/webp" for a valid key (borrowed).
const char *storage_content_type(const char *key);

//  Stores data under key unless a file is already there. 0 or -1.
int storage_put(storage_t *self, const char *key, const void *data, size_t size);

//  Reads the file of key into a new malloc'd buffer (caller frees).
//  0 found, 1 not found (or an invalid key), -1 error.
int storage_get(storage_t *self, const char *key, void **data_out, size_t *size_out);

//  1 when a file is stored under key, 0 when not, -1 error.
int storage_exists(storage_t *self, const char *key);

//  Removes the file of key (absent is fine). 0 or -1.
int storage_delete(storage_t *self, const char *key);

#endif
