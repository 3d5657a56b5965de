/*  ratelimit: per-key request limits (login and register per client
    address, API.md "Rate limits").

    A limit of N a minute lets a key make a burst of N requests, then one
    every 60/N seconds (GCRA, the token-bucket rule stated with one
    timestamp per key). Memory is bounded: at most max_keys keys are
    tracked; a key whose bucket has refilled is forgotten, and when the
    table is full of active keys the least limited one is evicted, so a
    flood of new addresses can make the limiter forgetful but never makes
    it grow or refuse a well-behaved client for long. IPv6 addresses are
    keyed by their /64 prefix (one host usually owns the whole prefix).
    Thread-safe.
*/
#ifndef GATEWAY_RATELIMIT_H_INCLUDED
#define GATEWAY_RATELIMIT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 64

typedef struct ratelimit_t ratelimit_t;

//  per_minute 0 turns limiting off. NULL on allocation failure.
ratelimit_t *ratelimit_new(int per_minute, size_t max_keys);
void ratelimit_destroy(ratelimit_t **self_p);

//  Counts one request for key at now_ms. Returns 0 when allowed, else the
//  number of whole seconds (>= 1) the client should wait (Retry-After).
int ratelimit_take(ratelimit_t *self, const char *key, int64_t now_ms);

//  Keys currently tracked.
size_t ratelimit_size(ratelimit_t *self);

//  Writes the limiter key for a client address into key (>=
//  RATELIMIT_KEY_MAX bytes): the address itself, or its /64 for IPv6.
void ratelimit_address_key(const char *address, char *key, size_t size);

#endif
