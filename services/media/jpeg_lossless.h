/*  jpeg_lossless: rewriting a JPEG from its own DCT coefficients.

    A photo a phone has already brought to the size we serve needs no
    decoding, resizing or re-encoding. A baseline file (the usual case)
    keeps its own scans byte for byte; any other (progressive,
    arithmetic-coded, extended) goes through libjpeg's transcoding API
    (the jpegtran technique), which reads the quantised coefficients and
    writes them into a new baseline file with fitted Huffman tables.
    Either way the pixels are exactly the original's, no generation is
    lost, and it costs a fraction of a decode plus an encode. Only the
    frame, the tables and the scans are written, after a JFIF header of
    ours: no APPn or COM marker of the original (EXIF, GPS, XMP, ICC,
    comments) survives, nor anything after its EOI, as on the libvips
    path.

    It declines (and the caller takes the libvips path, which then
    decides what the client is told) anything it does not take as is:
    a side above max_side, other than 8-bit YCbCr or grayscale (CMYK,
    YCCK, RGB with an Adobe transform of 0), or any libjpeg error or
    warning (corrupt or truncated data: libjpeg only warns about those,
    and would fill the rest with grey). libjpeg parses every marker; the
    orientation is the caller's to check (libvips reads EXIF for it).

    The entropy-coded data, most of what a photo costs, is decoded once,
    into a reduced-size picture for the thumbnail with libjpeg's DCT
    scaling (an N/8 factor, the smallest that keeps the thumbnail's side).
    A baseline file's scans are then copied; for any other, the decode
    runs in libjpeg's buffered-image mode, which keeps the coefficients in
    memory to be written out again.
*/
#ifndef JPEG_LOSSLESS_H_INCLUDED
#define JPEG_LOSSLESS_H_INCLUDED

#include <stddef.h>

typedef struct {
    unsigned char *data; // the rewritten JPEG, malloc'd
    size_t size;
    int width;
    int height;
    unsigned char *pixels; // the reduced picture, rows of width * bands bytes, malloc'd
    int pixels_width;
    int pixels_height;
    int bands; // 1 (grayscale) or 3 (sRGB)
} jpeg_lossless_t;

//  Rewrites the JPEG in data into *out, whose sides must be at most
//  max_side, and renders the picture reduced as far as libjpeg can while
//  its largest side stays at least min_side (or its own). 0, or -1 when
//  declined or on any libjpeg error or warning (out is then empty).
int jpeg_lossless_rewrite(const void *data, size_t size, int max_side, int min_side,
                          jpeg_lossless_t *out);
//  Frees what jpeg_lossless_rewrite allocated.
void jpeg_lossless_clear(jpeg_lossless_t *out);

#endif
