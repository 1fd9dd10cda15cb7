/* Images as 8-bit RGB: decoding (JPEG via libjpeg-turbo, PNG via libpng) to exactly the
 * bytes Pillow's Image.open(p).convert("RGB") gives, Pillow's and torch's antialiased
 * bicubic resizes, and SigLIP preprocessing as either of transformers' SigLIP image
 * processors (PIL or torchvision backend). See docs/images.md for what matches which
 * reference and the measured mismatch counts. */
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

/* Resize as torchvision's resize(uint8 tensor, BICUBIC, antialias=True) on the CPU, i.e.
 * torch's uint8 antialiased bicubic kernel (_upsample_bicubic2d_aa): the same a = -0.5
 * kernel, support and bounds as Pillow, weights normalised in double, then rounded to
 * int16 with a per-axis precision (the largest p <= 22 with round(max_weight * 2^(p+1)) <
 * 2^15) instead of Pillow's 22 bits; horizontal pass first, always, through an 8-bit
 * intermediate; an unchanged axis is not filtered. Identical on torch's DEFAULT, AVX2 and
 * AVX512 kernels (docs/images.md). dst is a new image. */
int rs_image_resize_bicubic_torch(const rs_image *src, int out_w, int out_h, rs_image *dst,
                                  rs_err *err);

/* Which transformers 5 SigLIP image processor to reproduce (docs/images.md):
 *   RS_IMAGE_PROCESSOR_PIL          SiglipImageProcessorPil (what transformers uses when
 *                                   torchvision is not installed, or with backend="pil"):
 *                                   Pillow bicubic resize, float32(float64(x) * (1/255)),
 *                                   then (x - 0.5f) / 0.5f.
 *   RS_IMAGE_PROCESSOR_TORCHVISION  SiglipImageProcessor, the torchvision backend (what
 *                                   transformers picks when torchvision is installed), on
 *                                   the CPU: rs_image_resize_bicubic_torch, then
 *                                   ((float)x - 127.5f) / 127.5f (rescale fused into the
 *                                   mean/std). */
typedef enum {
    RS_IMAGE_PROCESSOR_PIL = 0,
    RS_IMAGE_PROCESSOR_TORCHVISION
} rs_image_processor;

/* "pil" / "torchvision" (the CLI and config spelling). */
const char *rs_image_processor_name(rs_image_processor p);
/* The transformers class reproduced: "SiglipImageProcessorPil" / "SiglipImageProcessor". */
const char *rs_image_processor_class(rs_image_processor p);
/* Parse "pil" / "torchvision"; -1 (out untouched) for anything else. */
int rs_image_processor_parse(const char *s, rs_image_processor *out);

/* SigLIP preprocessing as the chosen transformers processor does it: resize to
 * size×size, rescale and normalise to [-1, 1], CHW. Writes pixels_u8 [size,size,3] (the
 * resized image, may be NULL) and pixel_values f32 [3,size,size] (may be NULL). */
int rs_siglip_preprocess_with(const rs_image *img, int size, rs_image_processor proc,
                              uint8_t *pixels_u8, float *pixel_values, rs_err *err);

/* rs_siglip_preprocess_with(..., RS_IMAGE_PROCESSOR_PIL, ...): transformers'
 * SiglipImageProcessorPil. */
int rs_siglip_preprocess(const rs_image *img, int size, uint8_t *pixels_u8,
                         float *pixel_values, rs_err *err);

#endif
