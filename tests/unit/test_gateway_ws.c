/*  Unit tests for the WebSocket frame header parser and the unmasking of
    gateway/ws.c (ws_frame_parse, ws_unmask): every length form (7-, 16-
    and 64-bit), the 8 KiB cap at its boundary, lengths no cap allows
    (2^62, the top bit set), the protocol errors (unmasked, reserved bits,
    unknown opcodes, fragmented or long control frames) and which of 1002
    and 1009 wins, NEED_MORE at every truncation point of valid frames, the
    exact read steps the socket loop takes, and unmasking.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../gateway/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

//  The length form of s_header: the shortest, or a forced 16- or 64-bit one.
enum { FORM_SHORTEST = 0, FORM_16 = 16, FORM_64 = 64 };

//  Writes a client frame header into buf (at least 14 bytes): first is
//  the first byte (FIN, RSV, opcode), then the length in the given form,
//  then MASK when masked. Returns the header's length.
static size_t s_header(uint8_t *buf, uint8_t first, uint64_t length, int form, bool masked)
{
    size_t at = 0;
    buf[at++] = first;
    uint8_t mask_bit = masked ? 0x80 : 0;
    if (form == FORM_64 || (form == FORM_SHORTEST && length > 0xffff)) {
        buf[at++] = mask_bit | 127;
        for (int i = 7; i >= 0; i--)
            buf[at++] = (uint8_t)(length >> (8 * i));
    } else if (form == FORM_16 || length > 125) {
        buf[at++] = mask_bit | 126;
        buf[at++] = (uint8_t)(length >> 8);
        buf[at++] = (uint8_t)length;
    } else {
        buf[at++] = mask_bit | (uint8_t)length;
    }
    if (masked) {
        memcpy(buf + at, MASK, 4);
        at += 4;
    }
    return at;
}

//  Parses a whole header and expects OK with these fields.
static void s_expect_ok(uint8_t first, uint64_t length, int form, size_t header_len)
{
    uint8_t buf[WS_FRAME_HEADER_MAX];
    size_t size = s_header(buf, first, length, form, true);
    assert_int_equal(size, header_len);
    ws_frame_t frame;
    assert_int_equal(ws_frame_parse(buf, size, WS_CLIENT_FRAME_MAX, &frame), WS_FRAME_OK);
    assert_int_equal(frame.header_len, header_len);
    assert_int_equal(frame.payload_len, length);
    assert_int_equal(frame.opcode, first & 0x0f);
    assert_int_equal(frame.fin, (first & 0x80) != 0);
    assert_memory_equal(frame.mask, MASK, 4);
    assert_int_equal(frame.close_code, 0);
}

//  Expects ERROR with code from the header alone, and already from the
//  bytes before the mask key (the loop must not wait for it).
static void s_expect_error(uint8_t first, uint64_t length, int form, bool masked, int code)
{
    uint8_t buf[WS_FRAME_HEADER_MAX];
    size_t size = s_header(buf, first, length, form, masked);
    size_t before_mask = masked ? size - 4 : size;
    ws_frame_t frame;
    assert_int_equal(ws_frame_parse(buf, size, WS_CLIENT_FRAME_MAX, &frame), WS_FRAME_ERROR);
    assert_int_equal(frame.close_code, code);
    assert_int_equal(frame.payload_len, length);
    assert_int_equal(ws_frame_parse(buf, before_mask, WS_CLIENT_FRAME_MAX, &frame), WS_FRAME_ERROR);
    assert_int_equal(frame.close_code, code);
    //  One byte short of the length: not decided yet.
    assert_int_equal(ws_frame_parse(buf, before_mask - 1, WS_CLIENT_FRAME_MAX, &frame),
                     WS_FRAME_NEED_MORE);
    assert_int_equal(frame.need, before_mask);
}

static void test_length_forms(void **state)
{
    //  7-bit: 0, 1, 125.
    s_expect_ok(0x81, 0, FORM_SHORTEST, 6);
    s_expect_ok(0x81, 1, FORM_SHORTEST, 6);
    s_expect_ok(0x81, 125, FORM_SHORTEST, 6);
    //  16-bit: 126, 65535 is over the cap, 8192 the cap itself.
    s_expect_ok(0x81, 126, FORM_SHORTEST, 8);
    s_expect_ok(0x82, 1000, FORM_SHORTEST, 8);
    s_expect_ok(0x81, WS_CLIENT_FRAME_MAX, FORM_16, 8);
    //  64-bit.
    s_expect_ok(0x81, 5, FORM_64, 14);
    s_expect_ok(0x81, WS_CLIENT_FRAME_MAX, FORM_64, 14);
    //  Lengths in a longer form than needed are accepted (as before the
    //  parser was split out; RFC 6455 asks for the shortest but clients
    //  gain nothing from a longer one).
    s_expect_ok(0x81, 0, FORM_16, 8);
    s_expect_ok(0x81, 125, FORM_16, 8);
    s_expect_ok(0x81, 0, FORM_64, 14);
}

static void test_cap_boundary(void **state)
{
    s_expect_ok(0x81, 8192, FORM_SHORTEST, 8);
    s_expect_error(0x81, 8193, FORM_SHORTEST, true, 1009);
    s_expect_ok(0x81, 8192, FORM_64, 14);
    s_expect_error(0x81, 8193, FORM_64, true, 1009);
    s_expect_error(0x81, 0xffff, FORM_16, true, 1009);
    s_expect_error(0x81, 0x10000, FORM_64, true, 1009);
    //  A 2^62-byte frame, and ones with the top bit set.
    s_expect_error(0x81, (uint64_t)1 << 62, FORM_64, true, 1009);
    s_expect_error(0x82, (uint64_t)1 << 63, FORM_64, true, 1009);
    s_expect_error(0x81, UINT64_MAX, FORM_64, true, 1009);
    //  A continuation frame obeys the same cap.
    s_expect_error(0x00, 8193, FORM_SHORTEST, true, 1009);

    //  The cap is the caller's: max_payload is an inclusive bound.
    uint8_t buf[WS_FRAME_HEADER_MAX];
    ws_frame_t frame;
    size_t size = s_header(buf, 0x81, 100, FORM_SHORTEST, true);
    assert_int_equal(ws_frame_parse(buf, size, 100, &frame), WS_FRAME_OK);
    assert_int_equal(ws_frame_parse(buf, size, 99, &frame), WS_FRAME_ERROR);
    assert_int_equal(frame.close_code, 1009);
    size = s_header(buf, 0x81, 0, FORM_SHORTEST, true);
    assert_int_equal(ws_frame_parse(buf, size, 0, &frame), WS_FRAME_OK);
    //  The top bit stays refused whatever the cap.
    size = s_header(buf, 0x81, (uint64_t)1 << 63, FORM_64, true);
    assert_int_equal(ws_frame_parse(buf, size, SIZE_MAX, &frame), WS_FRAME_ERROR);
    assert_int_equal(frame.close_code, 1009);
    size = s_header(buf, 0x81, ((uint64_t)1 << 63) - 1, FORM_64, true);
    assert_int_equal(ws_frame_parse(buf, size, SIZE_MAX, &frame), WS_FRAME_OK);
    assert_int_equal(frame.payload_len, ((uint64_t)1 << 63) - 1);
}

static void test_unmasked(void **state)
{
    s_expect_error(0x81, 5, FORM_SHORTEST, false, 1002);
    s_expect_error(0x81, 0, FORM_SHORTEST, false, 1002);
    s_expect_error(0x81, 300, FORM_SHORTEST, false, 1002);
    s_expect_error(0x89, 0, FORM_SHORTEST, false, 1002);
    //  A protocol error wins over the size: unmasked and too big is 1002.
    s_expect_error(0x81, 8193, FORM_SHORTEST, false, 1002);
    s_expect_error(0x81, (uint64_t)1 << 62, FORM_64, false, 1002);
}

static void test_reserved_bits(void **state)
{
    const uint8_t bits[] = {0x40, 0x20, 0x10, 0x70};
    for (size_t i = 0; i < sizeof bits; i++) {
        s_expect_error((uint8_t)(0x81 | bits[i]), 5, FORM_SHORTEST, true, 1002);
        s_expect_error((uint8_t)(0x89 | bits[i]), 0, FORM_SHORTEST, true, 1002);
        s_expect_error((uint8_t)(0x81 | bits[i]), 9000, FORM_SHORTEST, true, 1002);
    }
}

static void test_opcodes(void **state)
{
    const int valid[] = {0x0, 0x1, 0x2, 0x8, 0x9, 0xa};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        s_expect_ok((uint8_t)(0x80 | valid[i]), 3, FORM_SHORTEST, 6);
    const int reserved[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        s_expect_error((uint8_t)(0x80 | reserved[i]), 3, FORM_SHORTEST, true, 1002);
        s_expect_error((uint8_t)reserved[i], 3, FORM_SHORTEST, true, 1002);
        s_expect_error((uint8_t)(0x80 | reserved[i]), 9000, FORM_SHORTEST, true, 1002);
    }
    //  Data frames may be fragmented (the hub refuses them later, 1003).
    s_expect_ok(0x01, 3, FORM_SHORTEST, 6);
    s_expect_ok(0x02, 3, FORM_SHORTEST, 6);
    s_expect_ok(0x00, 3, FORM_SHORTEST, 6);
}

static void test_control_frames(void **state)
{
    const int control[] = {0x8, 0x9, 0xa};
    for (size_t i = 0; i < 3; i++) {
        uint8_t whole = (uint8_t)(0x80 | control[i]);
        s_expect_ok(whole, 0, FORM_SHORTEST, 6);
        s_expect_ok(whole, 125, FORM_SHORTEST, 6);
        s_expect_ok(whole, 125, FORM_16, 8); // the length counts, not its form
        s_expect_error(whole, 126, FORM_SHORTEST, true, 1002);
        s_expect_error(whole, 126, FORM_64, true, 1002);
        //  Too long for a control frame beats too big: 1002.
        s_expect_error(whole, 8193, FORM_SHORTEST, true, 1002);
        s_expect_error(whole, (uint64_t)1 << 62, FORM_64, true, 1002);
        s_expect_error(whole, UINT64_MAX, FORM_64, true, 1002);
        //  Fragmented.
        s_expect_error((uint8_t)control[i], 0, FORM_SHORTEST, true, 1002);
        s_expect_error((uint8_t)control[i], 5, FORM_SHORTEST, true, 1002);
    }
}

//  Every prefix of a valid frame: NEED_MORE below the header's length
//  (need between the prefix and the header, and exactly the documented
//  steps), OK with the same fields from the header on, payload or not.
static void s_check_truncations(uint8_t first, uint64_t length, int form)
{
    uint8_t *frame_bytes = malloc(WS_FRAME_HEADER_MAX + length);
    assert_non_null(frame_bytes);
    size_t header_len = s_header(frame_bytes, first, length, form, true);
    memset(frame_bytes + header_len, 'x', (size_t)length);
    size_t total = header_len + (size_t)length;
    size_t extended_end = header_len - 4;
    for (size_t k = 0; k <= total; k++) {
        ws_frame_t frame;
        ws_frame_result_t result = ws_frame_parse(frame_bytes, k, WS_CLIENT_FRAME_MAX, &frame);
        if (k < header_len) {
            assert_int_equal(result, WS_FRAME_NEED_MORE);
            size_t expected = k < 2 ? 2 : k < extended_end ? extended_end : header_len;
            assert_int_equal(frame.need, expected);
            assert_true(frame.need > k);
            assert_true(frame.need <= WS_FRAME_HEADER_MAX);
        } else {
            assert_int_equal(result, WS_FRAME_OK);
            assert_int_equal(frame.header_len, header_len);
            assert_int_equal(frame.payload_len, length);
            assert_int_equal(frame.opcode, first & 0x0f);
            assert_memory_equal(frame.mask, MASK, 4);
        }
    }
    free(frame_bytes);
}

static void test_need_more(void **state)
{
    assert_int_equal(ws_frame_parse(NULL, 0, WS_CLIENT_FRAME_MAX, &(ws_frame_t){0}),
                     WS_FRAME_NEED_MORE);
    s_check_truncations(0x81, 0, FORM_SHORTEST);
    s_check_truncations(0x81, 5, FORM_SHORTEST);
    s_check_truncations(0x89, 125, FORM_SHORTEST);
    s_check_truncations(0x81, 126, FORM_SHORTEST);
    s_check_truncations(0x82, WS_CLIENT_FRAME_MAX, FORM_16);
    s_check_truncations(0x81, 7, FORM_64);
    s_check_truncations(0x01, 300, FORM_64);
    s_check_truncations(0x81, WS_CLIENT_FRAME_MAX, FORM_64);
}

//  The socket loop's way: start empty, read exactly need - have bytes
//  each time. It reads 2, then the extended length, then the mask key,
//  never a byte past the header, and the next frame parses after it.
static void test_read_steps(void **state)
{
    uint8_t stream[64];
    size_t first_len = s_header(stream, 0x81, 300, FORM_64, true); // payload not included
    size_t second_len = s_header(stream + first_len, 0x8a, 0, FORM_SHORTEST, true);
    const size_t expected_steps[] = {2, 10, 14};
    size_t have = 0, steps = 0;
    ws_frame_t frame;
    ws_frame_result_t result;
    while ((result = ws_frame_parse(stream, have, WS_CLIENT_FRAME_MAX, &frame)) ==
           WS_FRAME_NEED_MORE) {
        assert_true(steps < 3);
        assert_int_equal(frame.need, expected_steps[steps]);
        steps++;
        have = frame.need;
    }
    assert_int_equal(result, WS_FRAME_OK);
    assert_int_equal(steps, 3);
    assert_int_equal(have, first_len);
    //  The next frame, given the bytes after this header.
    assert_int_equal(ws_frame_parse(stream + first_len, second_len, WS_CLIENT_FRAME_MAX, &frame),
                     WS_FRAME_OK);
    assert_int_equal(frame.opcode, 0xa);

    //  A refused frame ends the steps before its mask key is asked for.
    size_t bad_len = s_header(stream, 0x81, 9000, FORM_16, true);
    have = 0;
    steps = 0;
    while ((result = ws_frame_parse(stream, have, WS_CLIENT_FRAME_MAX, &frame)) ==
           WS_FRAME_NEED_MORE) {
        steps++;
        have = frame.need;
    }
    assert_int_equal(result, WS_FRAME_ERROR);
    assert_int_equal(frame.close_code, 1009);
    assert_int_equal(have, bad_len - 4);
    assert_int_equal(steps, 2);
}

static void test_unmask(void **state)
{
    //  RFC 6455, 5.7: a masked "Hello".
    const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    ws_frame_t frame;
    assert_int_equal(ws_frame_parse(hello, sizeof hello, WS_CLIENT_FRAME_MAX, &frame), WS_FRAME_OK);
    assert_int_equal(frame.header_len, 6);
    assert_int_equal(frame.payload_len, 5);
    assert_true(frame.fin);
    assert_int_equal(frame.opcode, 1);
    uint8_t payload[5];
    memcpy(payload, hello + frame.header_len, 5);
    ws_unmask(payload, sizeof payload, frame.mask);
    assert_memory_equal(payload, "Hello", 5);

    //  Round trip over lengths that end at every position of the key.
    uint8_t original[1031], data[1031];
    for (size_t i = 0; i < sizeof original; i++)
        original[i] = (uint8_t)(i * 7 + 3);
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t length = 0; length <= sizeof original; length += length < 9 ? 1 : 97) {
        memcpy(data, original, sizeof data);
        ws_unmask(data, length, key);
        for (size_t i = 0; i < length; i++)
            assert_int_equal(data[i], original[i] ^ key[i % 4]);
        //  Nothing past length is touched.
        assert_memory_equal(data + length, original + length, sizeof data - length);
        ws_unmask(data, length, key);
        assert_memory_equal(data, original, sizeof data);
    }
    //  A zero key changes nothing; a zero length is allowed with no data.
    const uint8_t zero[4] = {0, 0, 0, 0};
    memcpy(data, original, sizeof data);
    ws_unmask(data, sizeof data, zero);
    assert_memory_equal(data, original, sizeof data);
    ws_unmask(NULL, 0, key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_forms), cmocka_unit_test(test_cap_boundary),
        cmocka_unit_test(test_unmasked),     cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_opcodes),      cmocka_unit_test(test_control_frames),
        cmocka_unit_test(test_need_more),    cmocka_unit_test(test_read_steps),
        cmocka_unit_test(test_unmask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
