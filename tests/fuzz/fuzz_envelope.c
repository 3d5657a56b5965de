/*  fuzz_envelope: arbitrary bytes as request and reply envelopes.

    Both decoders must refuse junk without crashing or leaking. A request
    they accept must encode and decode again to the same fields; a reply
    they accept must carry a status in 100..599 and encode again.
*/
#include "envelope.h"
#include "errors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    envelope_request_t request;
    if (envelope_request_decode(data, size, &request) == 0) {
        if (!json_is_object(request.args)) abort();
        size_t encoded_size = 0;
        char *encoded = envelope_request_encode(&request, &encoded_size);
        if (!encoded) abort();
        envelope_request_t again;
        if (envelope_request_decode(encoded, encoded_size, &again) != 0) abort();
        if (strcmp(again.method, request.method) != 0 ||
            strcmp(again.request_id, request.request_id) != 0 ||
            again.viewer_id != request.viewer_id || again.deadline_ms != request.deadline_ms ||
            !json_equal(again.args, request.args))
            abort();
        envelope_request_clear(&again);
        free(encoded);
        envelope_request_clear(&request);
        envelope_request_clear(&request); // documented as safe twice
    }

    json_t *reply = envelope_reply_decode(data, size);
    if (reply) {
        int status = reply_status(reply);
        if (status < 100 || status > 599) abort();
        (void)reply_body(reply);
        (void)reply_error_code(reply);
        size_t encoded_size = 0;
        char *encoded = envelope_reply_encode(reply, &encoded_size);
        if (!encoded) abort();
        json_t *again = envelope_reply_decode(encoded, encoded_size);
        if (!again || !json_equal(again, reply)) abort();
        json_decref(again);
        free(encoded);
        json_decref(reply);
    }
    return 0;
}
