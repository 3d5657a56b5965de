/*  envelope: the one msgpack request envelope of DESIGN.md decision 2.

    request  {v:1, method:"users.get", request_id:"…", viewer_id:<int|nil>,
              deadline_ms:<unix ms>, args:{…}}
    reply    {status, body} | {status, error:{code, message, fields}}
             (a reply is a jansson object, see errors.h; it is packed with
              msgjson)

    viewer_id is 0 in C for an anonymous request (nil on the wire); it is set
    by the gateway from the verified JWT only. deadline_ms is absolute, so
    every hop can tell how much time is left.
*/
#ifndef ENVELOPE_H_INCLUDED
#define ENVELOPE_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 1
#define ENVELOPE_METHOD_MAX 64
#define ENVELOPE_REQUEST_ID_MAX 64

typedef struct {
    int v;
    char method[ENVELOPE_METHOD_MAX];
    char request_id[ENVELOPE_REQUEST_ID_MAX];
    int64_t viewer_id;   // 0 = anonymous
    int64_t deadline_ms; // absolute, unix ms
    json_t *args;        // owned; always an object after a successful decode
} envelope_request_t;

//  Encodes into a new malloc'd buffer (caller frees); NULL on failure.
//  A NULL args packs as an empty map.
char *envelope_request_encode(const envelope_request_t *request, size_t *size_out);

//  Decodes; returns 0, or -1 on malformed input (wrong types, missing
//  fields, over-long strings, unknown version). On -1 nothing is owned.
int envelope_request_decode(const void *data, size_t size, envelope_request_t *request);

//  Releases args. Safe on a zeroed or already cleared struct.
void envelope_request_clear(envelope_request_t *request);

//  Encodes a reply object; NULL on failure. Caller frees.
char *envelope_reply_encode(const json_t *reply, size_t *size_out);

//  Decodes a reply; returns a new reference, or NULL when malformed (not an
//  object, no integer status in 100..599, or neither body nor error object).
json_t *envelope_reply_decode(const void *data, size_t size);

//  For a caller that writes a success body out itself (the gateway, as
//  JSON text): unpacks the reply into unpacked (the caller inits and
//  destroys it; it points into data, which must outlive it). When the reply
//  is {status: 100..599, body} without an error, returns {status} alone and
//  *body_out points at the body inside unpacked, not yet checked (msgjson_
//  write_text refuses what envelope_reply_decode would). Otherwise returns
//  envelope_reply_decode(data, size) and *body_out is NULL.
json_t *envelope_reply_decode_lazy(const void *data, size_t size, msgpack_unpacked *unpacked,
                                   const msgpack_object **body_out);

//  Unix time in ms (CLOCK_REALTIME).
int64_t envelope_now_ms(void);

#endif
