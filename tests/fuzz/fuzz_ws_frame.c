/*  fuzz_ws_frame: arbitrary client bytes through the WebSocket frame
    parser (ws_frame_parse) and unmasking (ws_unmask) of gateway/ws.c.

    Input: a byte stream as a client would send it after the handshake.
    It is parsed frame after frame the way the read loop does, under three
    caps (the gateway's 8 KiB, 125 and none), until a frame is refused,
    truncated or the input ends. Invariants (abort on violation):
    NEED_MORE asks for more than is there and at most 14 bytes; an error
    carries 1002 or 1009; OK has a 6-, 8- or 14-byte header within the
    input, a payload within the cap with the top bit clear, a valid
    opcode, and the same answer from exactly its header bytes (and
    NEED_MORE one byte short); the stream never advances past its end;
    unmasking is the XOR with the key and undoes itself.
*/
#include "ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void s_check_ok(const uint8_t *buf, size_t len, size_t max, const ws_frame_t *frame)
{
    if (frame->header_len != 6 && frame->header_len != 8 && frame->header_len != 14) abort();
    if (frame->header_len > len) abort();
    if (frame->payload_len > max || (frame->payload_len >> 63)) abort();
    if (frame->opcode > 0xa || (frame->opcode > 0x2 && frame->opcode < 0x8)) abort();
    if (frame->opcode >= 0x8 && (!frame->fin || frame->payload_len > 125)) abort();
    if (frame->close_code != 0) abort();
    //  Exactly the header is enough, and one byte less is not.
    ws_frame_t again;
    if (ws_frame_parse(buf, frame->header_len, max, &again) != WS_FRAME_OK ||
        again.header_len != frame->header_len || again.payload_len != frame->payload_len ||
        again.opcode != frame->opcode || again.fin != frame->fin ||
        memcmp(again.mask, frame->mask, 4) != 0)
        abort();
    if (ws_frame_parse(buf, frame->header_len - 1, max, &again) != WS_FRAME_NEED_MORE ||
        again.need != frame->header_len)
        abort();
}

//  Unmasks the complete payload at data (size bytes) and checks it.
static void s_check_payload(const uint8_t *data, size_t size, const uint8_t mask[4])
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return;
    memcpy(copy, data, size);
    ws_unmask(copy, size, mask);
    for (size_t i = 0; i < size; i++)
        if (copy[i] != (uint8_t)(data[i] ^ mask[i % 4])) abort();
    ws_unmask(copy, size, mask);
    if (size && memcmp(copy, data, size) != 0) abort();
    free(copy);
}

static void s_stream(const uint8_t *data, size_t size, size_t max)
{
    size_t at = 0;
    //  Each round consumes at least 6 bytes, so this ends.
    while (at <= size) {
        const uint8_t *buf = size ? data + at : NULL;
        size_t left = size - at;
        ws_frame_t frame;
        ws_frame_result_t result = ws_frame_parse(buf, left, max, &frame);
        if (result == WS_FRAME_NEED_MORE) {
            if (frame.need <= left || frame.need > WS_FRAME_HEADER_MAX) abort();
            return;
        }
        if (result == WS_FRAME_ERROR) {
            if (frame.close_code != 1002 && frame.close_code != 1009) abort();
            return;
        }
        if (result != WS_FRAME_OK) abort();
        s_check_ok(buf, left, max, &frame);
        if (frame.payload_len > (uint64_t)(left - frame.header_len)) return; // payload to come
        size_t consumed = frame.header_len + (size_t)frame.payload_len;
        if (consumed > left) abort();
        s_check_payload(buf + frame.header_len, (size_t)frame.payload_len, frame.mask);
        at += consumed;
    }
    abort(); // at went past size
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_stream(data, size, WS_CLIENT_FRAME_MAX);
    s_stream(data, size, 125);
    s_stream(data, size, SIZE_MAX);
    return 0;
}
