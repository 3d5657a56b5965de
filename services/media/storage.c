/*  storage: content-addressed files under one folder (see storage.h).

    Paths are built only from validated keys: dir + "/" + key[0..2] + "/" +
    key[2..4] + "/" + key. Files are opened with O_NOFOLLOW, so even a
    symlink planted inside the store cannot lead a read elsewhere.
    storage_put writes to a mkstemp file beside the target, fsyncs it and
    renames it over the final name: concurrent writers of the same key write
    the same bytes, and the last rename wins harmlessly.
*/
#include "storage.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORAGE_FILE_MAX (64 * 1024 * 1024) // no rendition is near this

struct storage_t {
    char *dir;
    unsigned char mac_key[crypto_generichash_KEYBYTES];
};

//  mkdir -p for the store folder itself (the shard folders are made on
//  demand by storage_put).
static int s_mkdirs(const char *path)
{
    char buffer[PATH_MAX];
    int n = snprintf(buffer, sizeof buffer, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buffer) return -1;
    for (char *p = buffer + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buffer, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

storage_t *storage_new(const char *dir, const char *secret)
{
    if (sodium_init() < 0) return NULL;
    if (!dir || !*dir || s_mkdirs(dir) != 0) {
        log_error("storage: cannot create %s: %s", dir ? dir : "(null)", strerror(errno));
        return NULL;
    }
    char resolved[PATH_MAX];
    if (!realpath(dir, resolved)) {
        log_error("storage: cannot resolve %s: %s", dir, strerror(errno));
        return NULL;
    }
    storage_t *self = (storage_t *)zmalloc(sizeof *self);
    self->dir = strdup(resolved);
    //  Any length of secret works: the MAC key is its hash.
    crypto_generichash(self->mac_key, sizeof self->mac_key, (const unsigned char *)secret,
                       strlen(secret), NULL, 0);
    return self;
}

void storage_destroy(storage_t **self_p)
{
    storage_t *self = *self_p;
    if (!self) return;
    freen(self->dir);
    sodium_memzero(self->mac_key, sizeof self->mac_key);
    freen(self);
    *self_p = NULL;
}

void storage_key(const storage_t *self, const void *data, size_t size, const char *ext,
                 char key[STORAGE_KEY_MAX])
{
    unsigned char hash[32];
    crypto_generichash(hash, sizeof hash, (const unsigned char *)data, size, self->mac_key,
                       sizeof self->mac_key);
    char text[STORAGE_HASH_CHARS + 1];
    sodium_bin2base64(text, sizeof text, hash, sizeof hash,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(key, STORAGE_KEY_MAX, "%s.%s", text, ext);
}

bool storage_key_valid(const char *key)
{
    if (!key) return false;
    for (int i = 0; i < STORAGE_HASH_CHARS; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    const char *ext = key + STORAGE_HASH_CHARS;
    return strcmp(ext, ".jpg") == 0 || strcmp(ext, ".webp") == 0;
}

const char *storage_content_type(const char *key)
{
    size_t length = key ? strlen(key) : 0;
    if (length > 5 && strcmp(key + length - 5, ".webp") == 0) return "image/webp";
    return "image/jpeg";
}

//  The folder and the file path of a valid key.
static void s_paths(const storage_t *self, const char *key, char *folder, size_t folder_size,
                    char *path, size_t path_size)
{
    snprintf(folder, folder_size, "%s/%.2s/%.2s", self->dir, key, key + 2);
    snprintf(path, path_size, "%s/%s", folder, key);
}

int storage_exists(storage_t *self, const char *key)
{
    if (!storage_key_valid(key)) return 0;
    char folder[PATH_MAX], path[PATH_MAX + STORAGE_KEY_MAX];
    s_paths(self, key, folder, sizeof folder, path, sizeof path);
    struct stat st;
    if (lstat(path, &st) == 0) return S_ISREG(st.st_mode) ? 1 : 0;
    return errno == ENOENT ? 0 : -1;
}

//  Writes all of data to fd. 0 or -1.
static int s_write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t written = write(fd, p, size);
        if (written < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += written;
        size -= (size_t)written;
    }
    return 0;
}

int storage_put(storage_t *self, const char *key, const void *data, size_t size)
{
    if (!storage_key_valid(key)) return -1;
    int present = storage_exists(self, key);
    if (present == 1) return 0;
    char folder[PATH_MAX], path[PATH_MAX + STORAGE_KEY_MAX];
    s_paths(self, key, folder, sizeof folder, path, sizeof path);
    if (s_mkdirs(folder) != 0) {
        log_error("storage: cannot create %s: %s", folder, strerror(errno));
        return -1;
    }
    char temp[PATH_MAX + 32];
    snprintf(temp, sizeof temp, "%s/.tmp-XXXXXX", folder);
    int fd = mkstemp(temp);
    if (fd < 0) {
        log_error("storage: cannot create a file in %s: %s", folder, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (fchmod(fd, 0644) == 0 && s_write_all(fd, data, size) == 0 && fsync(fd) == 0) rc = 0;
    if (close(fd) != 0) rc = -1;
    if (rc == 0 && rename(temp, path) != 0) rc = -1;
    if (rc != 0) {
        log_error("storage: cannot write %s: %s", path, strerror(errno));
        unlink(temp);
    }
    return rc;
}

int storage_get(storage_t *self, const char *key, void **data_out, size_t *size_out)
{
    *data_out = NULL;
    *size_out = 0;
    if (!storage_key_valid(key)) return 1;
    char folder[PATH_MAX], path[PATH_MAX + STORAGE_KEY_MAX];
    s_paths(self, key, folder, sizeof folder, path, sizeof path);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ELOOP ? 1 : -1;
    struct stat st;
    int rc = -1;
    char *data = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STORAGE_FILE_MAX) goto done;
    size_t size = (size_t)st.st_size;
    data = malloc(size ? size : 1);
    if (!data) goto done;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto done;
        got += (size_t)n;
    }
    *data_out = data;
    *size_out = size;
    data = NULL;
    rc = 0;
done:
    free(data);
    close(fd);
    if (rc != 0) log_error("storage: cannot read %s", path);
    return rc;
}

int storage_delete(storage_t *self, const char *key)
{
    if (!storage_key_valid(key)) return -1;
    char folder[PATH_MAX], path[PATH_MAX + STORAGE_KEY_MAX];
    s_paths(self, key, folder, sizeof folder, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        log_error("storage: cannot delete %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
