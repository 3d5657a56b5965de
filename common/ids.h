/*  ids: 64-bit time-ordered identifiers (Instagram's layout).

    | 41 bits ms since IDS_EPOCH_MS | 13 bits shard | 10 bits sequence |

    Ids from one process are strictly increasing; ids from different shards
    never collide. When the 1,024 ids of one millisecond are used up the
    generator waits for the next millisecond; when the clock steps back it
    keeps using the last millisecond it saw, so ids never go backwards.
    Thread-safe. Ids travel as decimal strings at the API.
*/
#ifndef IDS_H_INCLUDED
#define IDS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDS_EPOCH_MS INT64_C(1735689600000) // 2025-01-01T00:00:00Z
#define IDS_SHARD_BITS 13
#define IDS_SEQUENCE_BITS 10

//  Sets this process's shard (0..8191). Returns -1 if out of range.
int ids_set_shard(int shard);
int64_t ids_next(void);
int64_t ids_time_ms(int64_t id); // unix ms the id was made at
int ids_shard(int64_t id);

//  Smallest id that could have been made at unix time ms (for range scans).
int64_t ids_floor_for_time(int64_t unix_ms);

//  Parses a positive decimal id; returns false on anything else (sign, junk,
//  overflow, empty).
bool ids_parse(const char *text, int64_t *id_out);
//  Formats into buf (>= 21 bytes).
void ids_format(int64_t id, char *buf, size_t size);
//  Formats unix ms as the API's timestamps do ("2026-01-02T03:04:05.678Z",
//  UTC, what Postgres's to_char of the services writes) into buf (>= 25 bytes).
void ids_format_time(int64_t unix_ms, char *buf, size_t size);

#endif
