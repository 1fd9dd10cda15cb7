/* Images as 8-bit RGB: decoding (JPEG via libjpeg-turbo, PNG via libpng) to exactly the
 * bytes Pillow's Image.open(p).convert("RGB") gives, Pillow's antialiased bicubic resize,
 * and SigLIP preprocessing (transformers' slow SiglipImageProcessor). See docs/images.md
 * for what matches Pillow and the measured mismatch counts. */
#ifndef REPRSHIFT_IMAGE_H
#define REPRSHIFT_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"

/* Limits checked before any pixel buffer is allocated. */
#define RS_IMAGE_MAX_SIDE 65535              /* JPEG's own limit; PNG allows more */
#define RS_IMAGE_MAX_PIXELS (1ull << 28)     /* 268M pixels = 768 MiB of RGB */
#define RS_IMAGE_MAX_FILE_BYTES (1ull << 30) /* compressed file size */

/* An 8-bit RGB image, rows top to bottom, HWC (rgb[(y*w + x)*3 + c]). Owns rgb. */
typedef struct {
    int w, h;
    uint8_t *rgb;
} rs_image;

/* Allocate an uninitialised w×h image (checks the limits above). */
int rs_image_alloc(rs_image *img, int w, int h, rs_err *err);
/* Free the pixels and zero the struct (safe on a zeroed struct). */
void rs_image_free(rs_image *img);
/* Deep copy src into a new image dst. */
int rs_image_copy(rs_image *dst, const rs_image *src, rs_err *err);

/* Decode a JPEG or PNG file to RGB as Pillow's Image.open(path).convert("RGB") does (no
 * EXIF rotation, alpha dropped, no ICC/gamma applied). Truncated or corrupt data,
 * unsupported formats and zero-size images are errors naming the file. */
int rs_image_load(const char *path, rs_image *img, rs_err *err);
/* Same, from bytes in memory; name is used in error messages. */
int rs_image_decode(const uint8_t *data, size_t len, const char *name, rs_image *img,
                    rs_err *err);

/* Order of the two resize passes. Pillow <= 12 always filters horizontally first; Pillow
 * 13 filters vertically first when (in_h - out_h) > 0 and > 2 (in_w - out_w). */
typedef enum {
    RS_RESIZE_PILLOW = 0, /* Pillow 13 rule (the reference stack's version) */
    RS_RESIZE_H_FIRST,    /* Pillow <= 12 */
    RS_RESIZE_V_FIRST
} rs_resize_order;

/* Resize with Pillow's Image.resize(size, BICUBIC) for 8-bit RGB: a = -0.5 kernel whose
 * support is stretched when downscaling (antialias), 22-bit fixed point, two separable
 * passes with an 8-bit intermediate; an axis whose size does not change is not filtered.
 * Pass order as Pillow 13. dst is a new image. */
int rs_image_resize_bicubic(const rs_image *src, int out_w, int out_h, rs_image *dst,
                            rs_err *err);
/* Same with an explicit pass order. */
int rs_image_resize_bicubic_order(const rs_image *src, int out_w, int out_h,
                                  rs_resize_order order, rs_image *dst, rs_err *err);

/* SigLIP preprocessing (transformers SiglipImageProcessor, slow/PIL path): bicubic resize
 * to size×size, rescale by 1/255 (double multiply, cast to f32), normalise (x-0.5)/0.5,
 * CHW. Writes pixels_u8 [size,size,3] (the resized image, may be NULL) and
 * pixel_values f32 [3,size,size] (may be NULL). */
int rs_siglip_preprocess(const rs_image *img, int size, uint8_t *pixels_u8,
                         float *pixel_values, rs_err *err);

#endif
