/*  ratelimit: GCRA over an open hash table with a hard size cap.

    Each key keeps one number, its "theoretical arrival time" (tat): the
    moment its bucket would be full again. With T = 60 s / N (the emission
    interval) and a burst of N, a request at now is allowed when
    tat - now <= 60 s - T, and then tat = max(tat, now) + T. Once tat <= now
    the key is indistinguishable from a new one, so it can be dropped: that
    is what keeps the table small in normal operation.

    The table is a fixed array of buckets with chained entries, sized once
    from max_keys. When an insert finds it full, a sweep drops every
    refilled key; if none was, the key with the smallest tat (closest to
    refilled) goes. The sweep is O(max_keys), but only runs when the table
    is full of keys that have been active within the last minute.
*/
#include "ratelimit.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct entry_t {
    struct entry_t *next;
    int64_t tat_ms;
    char key[RATELIMIT_KEY_MAX];
} entry_t;

struct ratelimit_t {
    pthread_mutex_t mutex;
    int64_t interval_ms; // T
    int64_t window_ms;   // 60 s: a full burst
    size_t max_keys;
    size_t size;
    size_t bucket_count;
    entry_t **buckets;
};

ratelimit_t *ratelimit_new(int per_minute, size_t max_keys)
{
    ratelimit_t *self = (ratelimit_t *)zmalloc(sizeof(ratelimit_t));
    if (!self) return NULL;
    pthread_mutex_init(&self->mutex, NULL);
    self->interval_ms = per_minute > 0 ? 60000 / per_minute : 0;
    if (per_minute > 0 && self->interval_ms == 0) self->interval_ms = 1;
    self->window_ms = 60000;
    self->max_keys = max_keys > 0 ? max_keys : 1;
    self->bucket_count = self->max_keys;
    self->buckets = (entry_t **)zmalloc(self->bucket_count * sizeof(entry_t *));
    if (!self->buckets) {
        ratelimit_destroy(&self);
        return NULL;
    }
    return self;
}

void ratelimit_destroy(ratelimit_t **self_p)
{
    if (!self_p || !*self_p) return;
    ratelimit_t *self = *self_p;
    for (size_t i = 0; self->buckets && i < self->bucket_count; i++) {
        entry_t *entry = self->buckets[i];
        while (entry) {
            entry_t *next = entry->next;
            free(entry);
            entry = next;
        }
    }
    free(self->buckets);
    pthread_mutex_destroy(&self->mutex);
    free(self);
    *self_p = NULL;
}

static size_t s_hash(const char *key)
{
    uint64_t hash = 14695981039346656037ULL; // FNV-1a
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        hash ^= *p;
        hash *= 1099511628211ULL;
    }
    return (size_t)hash;
}

//  Drops refilled keys; if none was refilled, drops the least limited one.
static void s_make_room(ratelimit_t *self, int64_t now_ms)
{
    entry_t **victim_link = NULL;
    int64_t victim_tat = INT64_MAX;
    size_t dropped = 0;
    for (size_t i = 0; i < self->bucket_count; i++) {
        entry_t **link = &self->buckets[i];
        while (*link) {
            entry_t *entry = *link;
            if (entry->tat_ms <= now_ms) {
                *link = entry->next;
                free(entry);
                self->size--;
                dropped++;
                continue;
            }
            if (entry->tat_ms < victim_tat) {
                victim_tat = entry->tat_ms;
                victim_link = link;
            }
            link = &entry->next;
        }
    }
    if (dropped == 0 && victim_link) {
        entry_t *entry = *victim_link;
        *victim_link = entry->next;
        free(entry);
        self->size--;
    }
}

int ratelimit_take(ratelimit_t *self, const char *key, int64_t now_ms)
{
    if (self->interval_ms == 0) return 0;
    char bounded[RATELIMIT_KEY_MAX];
    snprintf(bounded, sizeof bounded, "%s", key ? key : "");

    int wait_s = 0;
    pthread_mutex_lock(&self->mutex);
    size_t index = s_hash(bounded) % self->bucket_count;
    entry_t *entry = self->buckets[index];
    while (entry && strcmp(entry->key, bounded) != 0)
        entry = entry->next;
    if (!entry) {
        if (self->size >= self->max_keys) {
            s_make_room(self, now_ms);
        }
        entry = (entry_t *)zmalloc(sizeof(entry_t));
        if (!entry) {
            pthread_mutex_unlock(&self->mutex);
            return 0; // fail open: a limiter must not take the login page down
        }
        snprintf(entry->key, sizeof entry->key, "%s", bounded);
        entry->tat_ms = now_ms;
        entry->next = self->buckets[index];
        self->buckets[index] = entry;
        self->size++;
    }
    int64_t tat = entry->tat_ms > now_ms ? entry->tat_ms : now_ms;
    int64_t tolerance = self->window_ms - self->interval_ms;
    if (tat - now_ms > tolerance) {
        int64_t wait_ms = tat - now_ms - tolerance;
        wait_s = (int)((wait_ms + 999) / 1000);
        if (wait_s < 1) wait_s = 1;
    } else {
        entry->tat_ms = tat + self->interval_ms;
    }
    pthread_mutex_unlock(&self->mutex);
    return wait_s;
}

size_t ratelimit_size(ratelimit_t *self)
{
    pthread_mutex_lock(&self->mutex);
    size_t size = self->size;
    pthread_mutex_unlock(&self->mutex);
    return size;
}

void ratelimit_address_key(const char *address, char *key, size_t size)
{
    struct in6_addr v6;
    if (address && strchr(address, ':') && inet_pton(AF_INET6, address, &v6) == 1 &&
        !IN6_IS_ADDR_V4MAPPED(&v6)) {
        memset(v6.s6_addr + 8, 0, 8);
        char text[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &v6, text, sizeof text)) {
            snprintf(key, size, "%s/64", text);
            return;
        }
    }
    snprintf(key, size, "%s", address ? address : "");
}
