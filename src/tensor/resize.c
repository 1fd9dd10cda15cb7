/* Pillow's antialiased bicubic resampling for 8-bit RGB (Image.resize(size, BICUBIC)),
 * reproduced operation for operation so the output bytes are identical:
 *  - coefficients per output pixel in double, normalised to sum 1, then rounded to 22-bit
 *    fixed point away from zero;
 *  - int32 accumulator starting at 2^21 (rounding), result >> 22 clamped to 0..255;
 *  - two passes through an 8-bit temporary; an axis whose size is unchanged is skipped.
 *    Pass order: Pillow <= 12 always runs horizontal first (over only the source rows the
 *    vertical pass reads); Pillow 13 runs vertical first when the height shrinks by more
 *    than twice as many pixels as the width (Resample.c, ImagingResampleInner). The
 *    order changes results by a few levels, so it is selectable.
 * Plus SigLIP preprocessing on top (rescale, normalise, CHW). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/image.h"

#define PRECISION_BITS 22

/* Pillow's bicubic_filter (a = -0.5); the expression order is kept for identical doubles. */
static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Per output index: first input index bounds[2i], tap count bounds[2i+1], and ksize
 * fixed-point coefficients kk[i*ksize ...]. Returns ksize, or 0 on allocation failure. */
static int precompute_coeffs(int in_size, int out_size, int **boundsp, int32_t **kkp) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc((size_t)ksize * sizeof *k);
    int32_t *kk = calloc((size_t)out_size * ksize, sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!k || !kk || !bounds) {
        free(k);
        free(kk);
        free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5); /* truncation, as Pillow */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            kk[xx * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                                       : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(k);
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS; /* arithmetic shift, as Pillow */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* out: out_w × rows, from in rows [row0, row0+rows). */
static void resample_horizontal(uint8_t *out, int out_w, const uint8_t *in, int in_w, int row0,
                                int rows, int ksize, const int *bounds, const int32_t *kk) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *line = in + (size_t)(y + row0) * in_w * 3;
        uint8_t *o = out + (size_t)y * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const uint8_t *p = line + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            o[3 * xx] = clip8(s0);
            o[3 * xx + 1] = clip8(s1);
            o[3 * xx + 2] = clip8(s2);
        }
    }
}

static void resample_vertical(uint8_t *out, int out_h, const uint8_t *in, int w, int ksize,
                              const int *bounds, const int32_t *kk) {
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = kk + (size_t)yy * ksize;
        int ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        uint8_t *o = out + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = in + (size_t)ymin * stride + i;
            for (int y = 0; y < ymax; y++, p += stride) s += *p * k[y];
            o[i] = clip8(s);
        }
    }
}

int rs_image_resize_bicubic_order(const rs_image *src, int out_w, int out_h,
                                  rs_resize_order order, rs_image *dst, rs_err *err) {
    dst->w = dst->h = 0;
    dst->rgb = NULL;
    if (!src->rgb || src->w <= 0 || src->h <= 0) return rs_errf(err, "resize: empty input image");
    if (out_w <= 0 || out_h <= 0)
        return rs_errf(err, "resize: invalid output size %dx%d", out_w, out_h);
    if (rs_image_alloc(dst, out_w, out_h, err)) return -1;
    /* Pillow returns a copy when the size is unchanged. */
    if (out_w == src->w && out_h == src->h) {
        memcpy(dst->rgb, src->rgb, (size_t)out_w * out_h * 3);
        return 0;
    }
    int need_h = out_w != src->w, need_v = out_h != src->h;
    int h_first = 1;
    if (order == RS_RESIZE_V_FIRST) {
        h_first = 0;
    } else if (order == RS_RESIZE_PILLOW) {
        /* Pillow >= 13: vertical first when the height shrinks by more than twice as many
         * pixels as the width does. */
        long dh = (long)src->h - out_h, dw = (long)src->w - out_w;
        h_first = !(dh > 0 && dh > dw * 2);
    }
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *tmp = NULL;
    int ksh = precompute_coeffs(src->w, out_w, &bh, &kh);
    int ksv = precompute_coeffs(src->h, out_h, &bv, &kv);
    if (!ksh || !ksv) goto oom;
    if (!need_v) {
        resample_horizontal(dst->rgb, out_w, src->rgb, src->w, 0, src->h, ksh, bh, kh);
    } else if (!need_h) {
        resample_vertical(dst->rgb, out_h, src->rgb, src->w, ksv, bv, kv);
    } else if (h_first) {
        /* Only the source rows the vertical pass reads go through the horizontal pass. */
        int ybox_first = bv[0];
        int ybox_last = bv[2 * out_h - 2] + bv[2 * out_h - 1];
        int rows = ybox_last - ybox_first;
        for (int i = 0; i < out_h; i++) bv[2 * i] -= ybox_first;
        tmp = malloc((size_t)out_w * rows * 3);
        if (!tmp) goto oom;
        resample_horizontal(tmp, out_w, src->rgb, src->w, ybox_first, rows, ksh, bh, kh);
        resample_vertical(dst->rgb, out_h, tmp, out_w, ksv, bv, kv);
    } else {
        tmp = malloc((size_t)src->w * out_h * 3);
        if (!tmp) goto oom;
        resample_vertical(tmp, out_h, src->rgb, src->w, ksv, bv, kv);
        resample_horizontal(dst->rgb, out_w, tmp, src->w, 0, out_h, ksh, bh, kh);
    }
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tmp);
    return 0;
oom:
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tmp);
    rs_image_free(dst);
    return rs_errf(err, "resize: out of memory (%dx%d -> %dx%d)", src->w, src->h, out_w, out_h);
}

int rs_image_resize_bicubic(const rs_image *src, int out_w, int out_h, rs_image *dst,
                            rs_err *err) {
    return rs_image_resize_bicubic_order(src, out_w, out_h, RS_RESIZE_PILLOW, dst, err);
}

int rs_siglip_preprocess(const rs_image *img, int size, uint8_t *pixels_u8,
                         float *pixel_values, rs_err *err) {
    if (size <= 0 || size > 16384) return rs_errf(err, "preprocess: invalid size %d", size);
    rs_image r;
    if (rs_image_resize_bicubic(img, size, size, &r, err)) return -1;
    size_t n = (size_t)size * size;
    if (pixels_u8) memcpy(pixels_u8, r.rgb, n * 3);
    if (pixel_values) {
        /* transformers rescale: float64 multiply by 1/255 then cast to float32;
         * normalize in float32: (x - 0.5) / 0.5. */
        const double scale = 1.0 / 255.0;
        float lut[256];
        for (int v = 0; v < 256; v++) {
            float r32 = (float)(v * scale);
            lut[v] = (r32 - 0.5f) / 0.5f;
        }
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n; i++) pixel_values[c * n + i] = lut[r.rgb[3 * i + c]];
    }
    rs_image_free(&r);
    return 0;
}
