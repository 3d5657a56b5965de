/*  cursor: MAC'd list cursors (see cursor.h).

    Layout before base64url: 1 version byte, key1 and key2 big-endian
    (8 bytes each), then the first 12 bytes of a keyed BLAKE2b over the 17
    bytes before it. 12 bytes of MAC make a forged cursor a 2^-96 guess. The
    key is derived once from CURSOR_SECRET (or a fixed development value)
    with an unkeyed BLAKE2b so any length of secret works.
*/
#include "cursor.h"
#include "config.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#define CURSOR_VERSION 1
#define CURSOR_MAC_SIZE 12
#define CURSOR_RAW_SIZE (1 + 8 + 8 + CURSOR_MAC_SIZE)

static unsigned char s_key[crypto_generichash_KEYBYTES];
static pthread_once_t s_key_once = PTHREAD_ONCE_INIT;

static void s_derive_key(void)
{
    if (sodium_init() < 0) abort();
    const char *secret = config_str("CURSOR_SECRET", "development cursor secret");
    crypto_generichash(s_key, sizeof s_key, (const unsigned char *)secret, strlen(secret), NULL, 0);
}

static void s_mac(const unsigned char *raw, unsigned char *mac)
{
    unsigned char full[crypto_generichash_BYTES];
    crypto_generichash(full, sizeof full, raw, CURSOR_RAW_SIZE - CURSOR_MAC_SIZE, s_key,
                       sizeof s_key);
    memcpy(mac, full, CURSOR_MAC_SIZE);
}

static void s_put_be(unsigned char *out, int64_t value)
{
    uint64_t bits = (uint64_t)value;
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(bits & 0xff);
        bits >>= 8;
    }
}

static int64_t s_get_be(const unsigned char *in)
{
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = (bits << 8) | in[i];
    return (int64_t)bits;
}

void cursor_encode(int64_t key1, int64_t key2, char *buf)
{
    pthread_once(&s_key_once, s_derive_key);
    unsigned char raw[CURSOR_RAW_SIZE];
    raw[0] = CURSOR_VERSION;
    s_put_be(raw + 1, key1);
    s_put_be(raw + 9, key2);
    s_mac(raw, raw + 17);
    sodium_bin2base64(buf, CURSOR_TEXT_MAX, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int cursor_decode(const char *text, int64_t *key1, int64_t *key2)
{
    pthread_once(&s_key_once, s_derive_key);
    if (!text || strlen(text) >= CURSOR_TEXT_MAX) return -1;
    unsigned char raw[CURSOR_RAW_SIZE];
    size_t raw_size = 0;
    if (sodium_base642bin(raw, sizeof raw, text, strlen(text), NULL, &raw_size, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        raw_size != sizeof raw || raw[0] != CURSOR_VERSION)
        return -1;
    unsigned char mac[CURSOR_MAC_SIZE];
    s_mac(raw, mac);
    if (sodium_memcmp(mac, raw + 17, CURSOR_MAC_SIZE) != 0) return -1;
    *key1 = s_get_be(raw + 1);
    *key2 = s_get_be(raw + 9);
    return 0;
}
