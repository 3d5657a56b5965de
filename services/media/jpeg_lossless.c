/*  jpeg_lossless: see jpeg_lossless.h.

    Errors: libjpeg's default error manager calls exit(); ours longjmps
    back to jpeg_lossless_rewrite, for errors and for warnings alike (a
    warning means corrupt data that libjpeg would paper over). Everything
    that must survive the longjmp lives in a heap context whose pointer is
    set before setjmp and never changed after it, so nothing depends on
    the values of non-volatile locals after the jump. jpeg_destroy_* frees
    every libjpeg allocation on both ways out; the output buffer (the one
    jpeg_mem_dest grew, or the copy of a baseline file's scans) is freed
    by us unless handed over.

    No jpeg_save_markers call: libjpeg then skips every APPn and COM
    segment while reading (it still interprets JFIF APP0 and Adobe APP14
    for the colour space), so none of them is kept or copied.
*/
#include "jpeg_lossless.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr manager; // first: libjpeg hands us a pointer to it
    jmp_buf jump;
} s_error_t;

#define S_SYMBOLS 256

typedef struct {
    long dc[4][S_SYMBOLS]; // per table number
    long ac[4][S_SYMBOLS];
} s_counts_t;

typedef struct {
    s_error_t error;
    struct jpeg_decompress_struct in;
    struct jpeg_compress_struct out;
    int in_created, out_created;
    unsigned char *buffer; // the output, malloc'd (by jpeg_mem_dest or s_copy_scans)
    unsigned long buffer_size;
    unsigned char *pixels; // the reduced picture, malloc'd
    s_counts_t counts;     // symbol counts for the Huffman tables
} s_context_t;

static void s_error_exit(j_common_ptr cinfo)
{
    longjmp(((s_error_t *)cinfo->err)->jump, 1);
}

//  msg_level < 0 is a warning: corrupt or truncated data. Trace messages
//  (>= 0) are ignored.
static void s_emit_message(j_common_ptr cinfo, int msg_level)
{
    if (msg_level < 0) longjmp(((s_error_t *)cinfo->err)->jump, 1);
}

//  Silent: the libvips path that follows a refusal reports the problem.
static void s_output_message(j_common_ptr cinfo) {}

//  True when the coefficients can be written back as they are: 8-bit
//  samples, and a colour space a browser decodes the same way from the
//  JFIF file we write.
static int s_acceptable(const struct jpeg_decompress_struct *in, int max_side)
{
    if (in->image_width == 0 || in->image_height == 0) return 0;
    if (in->image_width > (JDIMENSION)max_side || in->image_height > (JDIMENSION)max_side) return 0;
    if (in->data_precision != 8) return 0;
    if (in->jpeg_color_space == JCS_YCbCr) return in->num_components == 3;
    if (in->jpeg_color_space == JCS_GRAYSCALE) return in->num_components == 1;
    return 0;
}

//  The smallest N (of N/8) whose scaled largest side is still at least
//  min_side, or 8 when the picture is no larger than that.
static unsigned s_scale(const struct jpeg_decompress_struct *in, int min_side)
{
    unsigned side = in->image_width > in->image_height ? in->image_width : in->image_height;
    for (unsigned n = 1; n < 8; n++)
        if ((side * n + 7) / 8 >= (unsigned)min_side) return n;
    return 8;
}

//  Renders the picture reduced into ctx->pixels. With buffered set, the
//  whole entropy-coded data is first decoded into the coefficient arrays,
//  which stay for jpeg_read_coefficients (buffered-image mode); without,
//  libjpeg keeps only the rows it works on, and the caller's
//  jpeg_finish_decompress reads on to EOI.
static void s_render_reduced(s_context_t *ctx, int min_side, boolean buffered)
{
    struct jpeg_decompress_struct *in = &ctx->in;
    in->buffered_image = buffered;
    in->scale_num = s_scale(in, min_side);
    in->scale_denom = 8;
    in->out_color_space = in->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(in);
    if (buffered) {
        //  A memory source never suspends: at the end of the data libjpeg
        //  warns (a truncated file) and our handler jumps out.
        while (jpeg_consume_input(in) != JPEG_REACHED_EOI)
            ;
        jpeg_start_output(in, in->input_scan_number);
    }
    size_t stride = (size_t)in->output_width * (size_t)in->output_components;
    ctx->pixels = malloc(stride * in->output_height);
    if (!ctx->pixels) ERREXIT(in, JERR_OUT_OF_MEMORY);
    while (in->output_scanline < in->output_height) {
        JSAMPROW row = ctx->pixels + stride * in->output_scanline;
        jpeg_read_scanlines(in, &row, 1);
    }
    if (buffered) jpeg_finish_output(in);
}

//  ---- Huffman tables fitted to the coefficients --------------------------
//
//  libjpeg's optimize_coding gathers its statistics in a second pass
//  through its encoder, which on a noisy 1080 px photo took as long as
//  reading and writing the file together (12 ms of 24). We count the
//  symbols ourselves in one tight loop and build the tables with the
//  procedure of the JPEG standard (ITU T.81 Annex K.2), then write one
//  pass with them. Every possible symbol is counted at least once, so a
//  table always has a code for whatever the encoder meets, even where our
//  counts are approximate: DC differences are taken in raster order per
//  component, not in the MCU order of an interleaved scan, which only
//  makes the tables a hair less than optimal.

//  Zigzag position -> natural (row-major) index, ITU T.81 Figure A.6.
static const unsigned char s_zigzag[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

//  Bits needed for |v| (0 for 0).
static int s_nbits(int v)
{
    unsigned magnitude = (unsigned)(v < 0 ? -v : v);
    return magnitude ? 32 - __builtin_clz(magnitude) : 0;
}

//  Counts the AC symbols of one block; -1 for a coefficient out of the
//  8-bit range (libjpeg would refuse to encode it as well).
static int s_count_ac(const JCOEF *block, long *ac)
{
    int run = 0;
    for (int k = 1; k < 64; k++) {
        int v = block[s_zigzag[k]];
        if (v == 0) {
            run++;
            continue;
        }
        for (; run > 15; run -= 16)
            ac[0xf0]++; // ZRL
        int size = s_nbits(v);
        if (size > 10) return -1;
        ac[(run << 4) | size]++;
        run = 0;
    }
    if (run > 0) ac[0x00]++; // EOB
    return 0;
}

static int s_count(struct jpeg_decompress_struct *in, const struct jpeg_compress_struct *out,
                   jvirt_barray_ptr *coefficients, s_counts_t *counts)
{
    for (int ci = 0; ci < in->num_components; ci++) {
        const jpeg_component_info *component = &in->comp_info[ci];
        long *dc = counts->dc[out->comp_info[ci].dc_tbl_no & 3];
        long *ac = counts->ac[out->comp_info[ci].ac_tbl_no & 3];
        int last_dc = 0;
        for (JDIMENSION row = 0; row < component->height_in_blocks; row++) {
            JBLOCKARRAY blocks =
                (*in->mem->access_virt_barray)((j_common_ptr)in, coefficients[ci], row, 1, FALSE);
            for (JDIMENSION column = 0; column < component->width_in_blocks; column++) {
                const JCOEF *block = blocks[0][column];
                int category = s_nbits(block[0] - last_dc);
                if (category > 11) return -1;
                dc[category]++;
                last_dc = block[0];
                if (s_count_ac(block, ac) != 0) return -1;
            }
        }
    }
    return 0;
}

//  True for a symbol that can occur: any DC category (the table has 12
//  symbols), or an AC run/size pair, end of block (0x00) or a run of 16
//  zeros (0xf0).
static int s_possible(int symbol, int symbols)
{
    int size = symbol & 15;
    return symbols == 12 || symbol == 0x00 || symbol == 0xf0 || (size >= 1 && size <= 10);
}

//  Fills table with the optimal code lengths (at most 16 bits) for freq,
//  ITU T.81 Annex K.2: Huffman's procedure (Figure K.1), then lengths
//  above 16 folded back (Figure K.3), symbols sorted by length (K.4).
static void s_fit_table(const long *counts, int symbols, JHUFF_TBL *table)
{
    long freq[S_SYMBOLS + 1];
    int size[S_SYMBOLS + 1], others[S_SYMBOLS + 1];
    for (int i = 0; i <= S_SYMBOLS; i++) {
        //  Every symbol the table may need gets a count; the reserved one
        //  (index 256) keeps any code from being all ones.
        freq[i] = i < symbols && s_possible(i, symbols) ? counts[i] + 1 : 0;
        size[i] = 0;
        others[i] = -1;
    }
    freq[S_SYMBOLS] = 1;
    for (;;) {
        int v1 = -1, v2 = -1;
        for (int i = 0; i <= S_SYMBOLS; i++)
            if (freq[i] > 0 && (v1 < 0 || freq[i] <= freq[v1])) v1 = i;
        for (int i = 0; i <= S_SYMBOLS; i++)
            if (freq[i] > 0 && i != v1 && (v2 < 0 || freq[i] <= freq[v2])) v2 = i;
        if (v2 < 0) break;
        freq[v1] += freq[v2];
        freq[v2] = 0;
        for (size[v1]++; others[v1] >= 0; size[v1]++)
            v1 = others[v1];
        others[v1] = v2;
        for (size[v2]++; others[v2] >= 0; size[v2]++)
            v2 = others[v2];
    }
    int bits[S_SYMBOLS + 2] = {0};
    for (int i = 0; i <= S_SYMBOLS; i++)
        if (size[i]) bits[size[i]]++;
    for (int i = S_SYMBOLS + 1; i > 16; i--)
        while (bits[i] > 0) {
            int j = i - 2;
            while (bits[j] == 0)
                j--;
            bits[i] -= 2;
            bits[i - 1]++;
            bits[j + 1] += 2;
            bits[j]--;
        }
    int longest = 16;
    while (bits[longest] == 0)
        longest--;
    bits[longest]--; // the reserved symbol's code
    memset(table->bits, 0, sizeof table->bits);
    for (int i = 1; i <= 16; i++)
        table->bits[i] = (UINT8)bits[i];
    int p = 0;
    for (int length = 1; length <= S_SYMBOLS; length++)
        for (int i = 0; i < S_SYMBOLS; i++)
            if (size[i] == length) table->huffval[p++] = (UINT8)i;
    table->sent_table = FALSE;
}

//  Replaces the output's standard tables with fitted ones. 0 or -1.
static int s_fit_tables(s_context_t *ctx, jvirt_barray_ptr *coefficients)
{
    struct jpeg_compress_struct *out = &ctx->out;
    s_counts_t *counts = &ctx->counts;
    int rc = s_count(&ctx->in, out, coefficients, counts);
    for (int n = 0; n < 4 && rc == 0; n++) {
        //  DC categories 0-11, AC symbols run/size up to 0xfa: counting
        //  those that cannot occur would only lengthen the others' codes.
        if (out->dc_huff_tbl_ptrs[n]) s_fit_table(counts->dc[n], 12, out->dc_huff_tbl_ptrs[n]);
        if (out->ac_huff_tbl_ptrs[n]) s_fit_table(counts->ac[n], 0xfb, out->ac_huff_tbl_ptrs[n]);
    }
    return rc;
}

//  ---- A baseline file's own scans, copied ----------------------------------
//
//  A baseline Huffman file (what cameras and phones write) needs no new
//  entropy coding: its scans are already what a browser decodes, and
//  the metadata sits in segments of its own. Writing the coefficients
//  anew cost as much as reading them (symbol counts, tables, encoding:
//  13 of 28 ms of media's CPU per post of the bench's noisy 1080 px
//  photo), for a file about 3% smaller. So once libjpeg has decoded the
//  whole file without a warning, the output is a JFIF header of our own
//  and the input's tables, frame, restart interval and scans byte for
//  byte; every APPn (EXIF, GPS, XMP, ICC, a JFIF thumbnail) and COM
//  segment is dropped, and so is anything after EOI (appended pictures,
//  vendor trailers). A segment a baseline file should not hold makes the
//  walk decline, and the coefficients are written anew as before.

//  SOI, then JFIF 1.01 APP0: no units, 1:1 density, no thumbnail (what
//  libjpeg writes for the transcoded files).
static const unsigned char s_jfif_head[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J',
                                            'F',  'I',  'F',  0x00, 0x01, 0x01, 0x00,
                                            0x00, 0x01, 0x00, 0x01, 0x00, 0x00};

//  1 to copy a segment, 0 to drop it, -1 when a baseline file holds no
//  such segment.
static int s_segment_kept(unsigned marker)
{
    switch (marker) {
    case 0xc0: // SOF0, baseline frame
    case 0xc4: // DHT
    case 0xda: // SOS
    case 0xdb: // DQT
    case 0xdd: // DRI
        return 1;
    case 0xfe: // COM
        return 0;
    default:
        return marker >= 0xe0 && marker <= 0xef ? 0 : -1; // APPn
    }
}

//  Where the entropy-coded data starting at `at` ends: the 0xff of the
//  first marker that is neither a stuffed zero nor a restart marker.
//  size when there is none.
static size_t s_scan_end(const unsigned char *p, size_t size, size_t at)
{
    while (at + 1 < size) {
        const unsigned char *ff = memchr(p + at, 0xff, size - 1 - at);
        if (!ff) break;
        at = (size_t)(ff - p);
        unsigned next = p[at + 1];
        if (next != 0x00 && (next < 0xd0 || next > 0xd7)) return at;
        at += 2;
    }
    return size;
}

//  Walks p's segments from SOI to EOI into ctx->buffer. 0, or -1 when
//  the file is not laid out as a baseline file (nothing is kept then).
//  It checks the layout only: what the scans hold is libjpeg's to check,
//  and the copy is used only once libjpeg has decoded them all.
//  The output never outgrows our header plus the input: every byte
//  written after the header is an input byte, fill bytes dropped.
static int s_copy_scans(s_context_t *ctx, const unsigned char *p, size_t size)
{
    if (size < 4 || p[0] != 0xff || p[1] != 0xd8) return -1;
    unsigned char *out = malloc(size + sizeof s_jfif_head);
    if (!out) return -1;
    memcpy(out, s_jfif_head, sizeof s_jfif_head);
    size_t written = sizeof s_jfif_head, at = 2;
    for (;;) {
        if (at >= size || p[at] != 0xff) break;
        while (at < size && p[at] == 0xff) // fill bytes before a marker
            at++;
        if (at >= size) break;
        unsigned marker = p[at++];
        if (marker == 0xd9) { // EOI: done
            out[written++] = 0xff;
            out[written++] = 0xd9;
            ctx->buffer = out;
            ctx->buffer_size = written;
            return 0;
        }
        if (size - at < 2) break;
        size_t length = ((size_t)p[at] << 8) | p[at + 1];
        int kept = s_segment_kept(marker);
        if (length < 2 || length > size - at || kept < 0) break;
        if (kept) {
            out[written++] = 0xff;
            out[written++] = (unsigned char)marker;
            memcpy(out + written, p + at, length);
            written += length;
        }
        at += length;
        if (marker == 0xda) {
            size_t end = s_scan_end(p, size, at);
            if (end >= size) break;
            memcpy(out + written, p + at, end - at);
            written += end - at;
            at = end;
        }
    }
    free(out);
    return -1;
}

//  The transcoding itself; longjmps to the caller's setjmp on any error.
static int s_transcode(s_context_t *ctx, const void *data, size_t size, int max_side, int min_side)
{
    struct jpeg_decompress_struct *in = &ctx->in;
    struct jpeg_compress_struct *out = &ctx->out;
    jpeg_create_decompress(in);
    ctx->in_created = 1;
    jpeg_mem_src(in, (const unsigned char *)data, (unsigned long)size);
    if (jpeg_read_header(in, TRUE) != JPEG_HEADER_OK) return -1;
    if (!s_acceptable(in, max_side)) return -1;
    //  A baseline file laid out as one keeps its own scans, once libjpeg
    //  has decoded all of them without a warning; its coefficients are
    //  not kept (3.5 MiB of arrays for a 1080 px 4:2:0 photo).
    if (!in->progressive_mode && !in->arith_code && s_copy_scans(ctx, data, size) == 0) {
        s_render_reduced(ctx, min_side, FALSE);
        jpeg_finish_decompress(in);
        return 0;
    }
    s_render_reduced(ctx, min_side, TRUE);
    //  The arrays the decode above filled.
    jvirt_barray_ptr *coefficients = jpeg_read_coefficients(in);
    if (!coefficients) return -1;

    out->err = &ctx->error.manager;
    jpeg_create_compress(out);
    ctx->out_created = 1;
    //  Quantisation tables, sampling factors, colour space (JFIF header):
    //  what the coefficients mean. Baseline, since no scan script is set.
    jpeg_copy_critical_parameters(in, out);
    //  Our fitted tables, not optimize_coding (see above); one pass.
    if (s_fit_tables(ctx, coefficients) != 0) return -1;
    jpeg_mem_dest(out, &ctx->buffer, &ctx->buffer_size);
    jpeg_write_coefficients(out, coefficients);
    jpeg_finish_compress(out);
    //  After the compressor: finishing frees the coefficient arrays.
    jpeg_finish_decompress(in);
    return 0;
}

int jpeg_lossless_rewrite(const void *data, size_t size, int max_side, int min_side,
                          jpeg_lossless_t *out)
{
    memset(out, 0, sizeof *out);
    if (!data || size == 0) return -1;
    s_context_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return -1;
    ctx->in.err = jpeg_std_error(&ctx->error.manager);
    ctx->error.manager.error_exit = s_error_exit;
    ctx->error.manager.emit_message = s_emit_message;
    ctx->error.manager.output_message = s_output_message;

    int rc = -1;
    if (setjmp(ctx->error.jump) == 0) rc = s_transcode(ctx, data, size, max_side, min_side);
    if (rc == 0) {
        *out = (jpeg_lossless_t){.data = ctx->buffer,
                                 .size = ctx->buffer_size,
                                 .width = (int)ctx->in.image_width,
                                 .height = (int)ctx->in.image_height,
                                 .pixels = ctx->pixels,
                                 .pixels_width = (int)ctx->in.output_width,
                                 .pixels_height = (int)ctx->in.output_height,
                                 .bands = ctx->in.output_components};
        ctx->buffer = NULL;
        ctx->pixels = NULL;
    }
    if (ctx->out_created) jpeg_destroy_compress(&ctx->out);
    if (ctx->in_created) jpeg_destroy_decompress(&ctx->in);
    free(ctx->buffer);
    free(ctx->pixels);
    free(ctx);
    return rc;
}

void jpeg_lossless_clear(jpeg_lossless_t *out)
{
    free(out->data);
    free(out->pixels);
    memset(out, 0, sizeof *out);
}
