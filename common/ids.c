/*  ids: the time-ordered id generator.

    State is one 64-bit word per process (last millisecond and sequence)
    behind a mutex: generating ids is rare next to the database work each
    one stands for, so a lock is simpler than a lock-free loop and just as
    fast in practice. Invariant: every id returned is greater than the one
    before it in this process.
*/
#include "ids.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SEQUENCE_MASK ((INT64_C(1) << IDS_SEQUENCE_BITS) - 1)
#define SHARD_MASK ((INT64_C(1) << IDS_SHARD_BITS) - 1)

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static int s_shard = 0;
static int64_t s_last_ms = 0;
static int64_t s_sequence = 0;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ids_set_shard(int shard)
{
    if (shard < 0 || shard > SHARD_MASK) return -1;
    pthread_mutex_lock(&s_lock);
    s_shard = shard;
    pthread_mutex_unlock(&s_lock);
    return 0;
}

int64_t ids_next(void)
{
    pthread_mutex_lock(&s_lock);
    int64_t now = s_now_ms() - IDS_EPOCH_MS;
    if (now < s_last_ms) now = s_last_ms; // the clock stepped back: stay on the last millisecond
    if (now == s_last_ms) {
        s_sequence = (s_sequence + 1) & SEQUENCE_MASK;
        if (s_sequence == 0) {
            //  1,024 ids this millisecond: wait for the next one.
            while ((now = s_now_ms() - IDS_EPOCH_MS) <= s_last_ms) {
                struct timespec pause = {0, 100000};
                nanosleep(&pause, NULL);
            }
        }
    } else {
        s_sequence = 0;
    }
    s_last_ms = now;
    int64_t id = (now << (IDS_SHARD_BITS + IDS_SEQUENCE_BITS)) |
                 ((int64_t)s_shard << IDS_SEQUENCE_BITS) | s_sequence;
    pthread_mutex_unlock(&s_lock);
    return id;
}

int64_t ids_time_ms(int64_t id)
{
    return (id >> (IDS_SHARD_BITS + IDS_SEQUENCE_BITS)) + IDS_EPOCH_MS;
}

void ids_format_time(int64_t unix_ms, char *buf, size_t size)
{
    time_t seconds = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

int ids_shard(int64_t id)
{
    return (int)((id >> IDS_SEQUENCE_BITS) & SHARD_MASK);
}

int64_t ids_floor_for_time(int64_t unix_ms)
{
    int64_t since = unix_ms - IDS_EPOCH_MS;
    if (since < 0) since = 0;
    return since << (IDS_SHARD_BITS + IDS_SEQUENCE_BITS);
}

bool ids_parse(const char *text, int64_t *id_out)
{
    if (!text || *text < '0' || *text > '9') return false;
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9') return false;
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || *end || value <= 0) return false;
    *id_out = value;
    return true;
}

void ids_format(int64_t id, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRId64, id);
}
