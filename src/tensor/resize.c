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
 * Also torch's CPU uint8 antialiased bicubic (what torchvision's resize runs on a uint8
 * image tensor): same kernel and bounds, but int16 weights with a per-axis precision and
 * always horizontal first. Plus SigLIP preprocessing on top (rescale, normalise, CHW) as
 * either transformers processor (PIL or torchvision backend). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/image.h"
#include "tensor/isa.h"

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

static inline uint8_t clip8(int32_t acc, int prec) {
    int32_t v = acc >> prec; /* arithmetic shift, as Pillow and torch */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* out: out_w × rows, from in rows [row0, row0+rows). prec: fixed-point bits of kk
 * (Pillow: 22; torch: per axis). */
static void resample_horizontal(uint8_t *out, int out_w, const uint8_t *in, int in_w, int row0,
                                int rows, int ksize, const int *bounds, const int32_t *kk, int prec) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *line = in + (size_t)(y + row0) * in_w * 3;
        uint8_t *o = out + (size_t)y * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            int32_t s0 = 1 << (prec - 1), s1 = s0, s2 = s0;
            const uint8_t *p = line + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            o[3 * xx] = clip8(s0, prec);
            o[3 * xx + 1] = clip8(s1, prec);
            o[3 * xx + 2] = clip8(s2, prec);
        }
    }
}

/* Each output byte is 2^(prec−1) + Σ_y in[ymin+y][i]·k[y] summed over y in order, as a
 * per-byte loop over y would; the sums run for a block of bytes at once (row by row), so
 * the loop over bytes vectorises (integer sums: the same values at every ISA level). */
#define VBLOCK 1024
RS_KERNEL_BODY void resample_vertical_k_body(uint8_t *out, int out_h, const uint8_t *in, int w, int ksize,
                                             const int *bounds, const int32_t *kk, int prec) {
    size_t stride = (size_t)w * 3;
    int32_t acc[VBLOCK];
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = kk + (size_t)yy * ksize;
        int ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        uint8_t *o = out + (size_t)yy * stride;
        for (size_t i0 = 0; i0 < stride; i0 += VBLOCK) {
            size_t nb = stride - i0 < VBLOCK ? stride - i0 : VBLOCK;
            for (size_t i = 0; i < nb; i++) acc[i] = 1 << (prec - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *p = in + (size_t)(ymin + y) * stride + i0;
                int32_t ky = k[y];
                for (size_t i = 0; i < nb; i++) acc[i] += p[i] * ky;
            }
            for (size_t i = 0; i < nb; i++) o[i0 + i] = clip8(acc[i], prec);
        }
    }
}
RS_ISA_KERNEL(resample_vertical_k, (uint8_t *out, int out_h, const uint8_t *in, int w, int ksize, const int *bounds,
                                    const int32_t *kk, int prec),
              (out, out_h, in, w, ksize, bounds, kk, prec))
#define resample_vertical RS_ISA_CALL(resample_vertical_k)

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
    int rc;
    int ksh = precompute_coeffs(src->w, out_w, &bh, &kh);
    int ksv = precompute_coeffs(src->h, out_h, &bv, &kv);
    if (!ksh || !ksv) goto oom;
    if (!need_v) {
        resample_horizontal(dst->rgb, out_w, src->rgb, src->w, 0, src->h, ksh, bh, kh, PRECISION_BITS);
    } else if (!need_h) {
        resample_vertical(dst->rgb, out_h, src->rgb, src->w, ksv, bv, kv, PRECISION_BITS);
    } else if (h_first) {
        /* Only the source rows the vertical pass reads go through the horizontal pass. */
        int ybox_first = bv[0];
        int ybox_last = bv[2 * out_h - 2] + bv[2 * out_h - 1];
        int rows = ybox_last - ybox_first;
        for (int i = 0; i < out_h; i++) bv[2 * i] -= ybox_first;
        tmp = malloc((size_t)out_w * rows * 3);
        if (!tmp) goto oom;
        resample_horizontal(tmp, out_w, src->rgb, src->w, ybox_first, rows, ksh, bh, kh, PRECISION_BITS);
        resample_vertical(dst->rgb, out_h, tmp, out_w, ksv, bv, kv, PRECISION_BITS);
    } else {
        tmp = malloc((size_t)src->w * out_h * 3);
        if (!tmp) goto oom;
        resample_vertical(tmp, out_h, src->rgb, src->w, ksv, bv, kv, PRECISION_BITS);
        resample_horizontal(dst->rgb, out_w, tmp, src->w, 0, out_h, ksh, bh, kh, PRECISION_BITS);
    }
    rc = 0;
    goto done;
oom:
    rs_image_free(dst);
    rc = rs_errk(err, RS_ENOMEM, "resize: out of memory (%dx%d -> %dx%d)", src->w, src->h, out_w, out_h);
done:
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tmp);
    return rc;
}

int rs_image_resize_bicubic(const rs_image *src, int out_w, int out_h, rs_image *dst,
                            rs_err *err) {
    return rs_image_resize_bicubic_order(src, out_w, out_h, RS_RESIZE_PILLOW, dst, err);
}

/* ---- torch's CPU uint8 antialiased bicubic (UpSampleKernel.cpp, separable "aa" path) ---- */

/* torch's aa_filter for bicubic with antialias (a = -0.5, Keys); its own expression order
 * (cubic_convolution1/2), which can differ from Pillow's in the last bit of a double. */
static double torch_cubic_aa(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

/* torch's _compute_index_ranges_int16_weights for one axis: bounds as precompute_coeffs,
 * int16-range weights in kk (stored as int32), their precision in *prec. Returns ksize, or
 * 0 on allocation failure. */
static int torch_coeffs(int in_size, int out_size, int **boundsp, int32_t **kkp, int *prec) {
    double scale = (double)in_size / out_size; /* area_pixel_compute_scale, no scale given */
    double support = scale >= 1.0 ? (4 * 0.5) * scale : 4 * 0.5;
    double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = calloc((size_t)out_size * ksize, sizeof *w);
    int32_t *kk = calloc((size_t)out_size * ksize, sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!w || !kk || !bounds) {
        free(w);
        free(kk);
        free(bounds);
        return 0;
    }
    double wt_max = 0.0;
    for (int i = 0; i < out_size; i++) {
        double center = scale * (i + 0.5);
        double total = 0.0;
        long long xmin = (long long)(center - support + 0.5); /* truncation, as torch */
        if (xmin < 0) xmin = 0;
        long long xsize = (long long)(center + support + 0.5);
        if (xsize > in_size) xsize = in_size;
        xsize -= xmin;
        if (xsize < 0) xsize = 0;
        if (xsize > ksize) xsize = ksize;
        double *wi = w + (size_t)i * ksize;
        for (long long j = 0; j < xsize; j++) {
            double v = torch_cubic_aa(((double)(j + xmin) - center + 0.5) * invscale);
            wi[j] = v;
            total += v;
        }
        if (total != 0.0)
            for (long long j = 0; j < xsize; j++) {
                wi[j] /= total;
                if (wi[j] > wt_max) wt_max = wi[j];
            }
        bounds[2 * i] = (int)xmin;
        bounds[2 * i + 1] = (int)xsize;
    }
    /* The largest precision whose doubled value still keeps the biggest weight in int16. */
    int p;
    for (p = 0; p < 22; p++)
        if ((int)(0.5 + wt_max * (1 << (p + 1))) >= (1 << 15)) break;
    for (size_t k = 0; k < (size_t)out_size * ksize; k++) {
        double v = w[k] * (1 << p);
        kk[k] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
    }
    free(w);
    *boundsp = bounds;
    *kkp = kk;
    *prec = p;
    return ksize;
}

int rs_image_resize_bicubic_torch(const rs_image *src, int out_w, int out_h, rs_image *dst,
                                  rs_err *err) {
    dst->w = dst->h = 0;
    dst->rgb = NULL;
    if (!src->rgb || src->w <= 0 || src->h <= 0) return rs_errf(err, "resize: empty input image");
    if (out_w <= 0 || out_h <= 0)
        return rs_errf(err, "resize: invalid output size %dx%d", out_w, out_h);
    if (rs_image_alloc(dst, out_w, out_h, err)) return -1;
    /* torchvision returns the input when the size is unchanged. */
    if (out_w == src->w && out_h == src->h) {
        memcpy(dst->rgb, src->rgb, (size_t)out_w * out_h * 3);
        return 0;
    }
    int need_h = out_w != src->w, need_v = out_h != src->h;
    int *bh = NULL, *bv = NULL, ph = 0, pv = 0, ksh = 0, ksv = 0;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *tmp = NULL;
    int rc;
    if (need_h && !(ksh = torch_coeffs(src->w, out_w, &bh, &kh, &ph))) goto oom;
    if (need_v && !(ksv = torch_coeffs(src->h, out_h, &bv, &kv, &pv))) goto oom;
    if (!need_v) {
        resample_horizontal(dst->rgb, out_w, src->rgb, src->w, 0, src->h, ksh, bh, kh, ph);
    } else if (!need_h) {
        resample_vertical(dst->rgb, out_h, src->rgb, src->w, ksv, bv, kv, pv);
    } else {
        /* Always the horizontal (contiguous, last) dimension first, over every row. */
        tmp = malloc((size_t)out_w * src->h * 3);
        if (!tmp) goto oom;
        resample_horizontal(tmp, out_w, src->rgb, src->w, 0, src->h, ksh, bh, kh, ph);
        resample_vertical(dst->rgb, out_h, tmp, out_w, ksv, bv, kv, pv);
    }
    rc = 0;
    goto done;
oom:
    rs_image_free(dst);
    rc = rs_errk(err, RS_ENOMEM, "resize: out of memory (%dx%d -> %dx%d)", src->w, src->h, out_w, out_h);
done:
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tmp);
    return rc;
}

/* ---- SigLIP preprocessing ---- */

const char *rs_image_processor_name(rs_image_processor p) {
    return p == RS_IMAGE_PROCESSOR_TORCHVISION ? "torchvision" : "pil";
}

const char *rs_image_processor_class(rs_image_processor p) {
    return p == RS_IMAGE_PROCESSOR_TORCHVISION ? "SiglipImageProcessor" : "SiglipImageProcessorPil";
}

int rs_image_processor_parse(const char *s, rs_image_processor *out) {
    if (!s) return -1;
    if (!strcmp(s, "pil")) *out = RS_IMAGE_PROCESSOR_PIL;
    else if (!strcmp(s, "torchvision")) *out = RS_IMAGE_PROCESSOR_TORCHVISION;
    else return -1;
    return 0;
}

int rs_siglip_preprocess_with(const rs_image *img, int size, rs_image_processor proc,
                              uint8_t *pixels_u8, float *pixel_values, rs_err *err) {
    if (size <= 0 || size > 16384) return rs_errf(err, "preprocess: invalid size %d", size);
    if (proc != RS_IMAGE_PROCESSOR_PIL && proc != RS_IMAGE_PROCESSOR_TORCHVISION)
        return rs_errf(err, "preprocess: unknown image processor %d", (int)proc);
    rs_image r;
    if (proc == RS_IMAGE_PROCESSOR_TORCHVISION ? rs_image_resize_bicubic_torch(img, size, size, &r, err)
                                               : rs_image_resize_bicubic(img, size, size, &r, err))
        return -1;
    size_t n = (size_t)size * size;
    if (pixels_u8) memcpy(pixels_u8, r.rgb, n * 3);
    if (pixel_values) {
        float lut[256];
        if (proc == RS_IMAGE_PROCESSOR_TORCHVISION) {
            /* TorchvisionBackend fuses rescale into normalize: mean = 0.5 * (1 / (1/255)) and
             * std likewise, both 127.5f in float32; x.to(float32).sub_(mean).div_(std). */
            for (int v = 0; v < 256; v++) lut[v] = ((float)v - 127.5f) / 127.5f;
        } else {
            /* PilBackend rescale: float64 multiply by 1/255 then cast to float32;
             * normalize in float32: (x - 0.5) / 0.5. */
            const double scale = 1.0 / 255.0;
            for (int v = 0; v < 256; v++) {
                float r32 = (float)(v * scale);
                lut[v] = (r32 - 0.5f) / 0.5f;
            }
        }
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n; i++) pixel_values[c * n + i] = lut[r.rgb[3 * i + c]];
    }
    rs_image_free(&r);
    return 0;
}

int rs_siglip_preprocess(const rs_image *img, int size, uint8_t *pixels_u8,
                         float *pixel_values, rs_err *err) {
    return rs_siglip_preprocess_with(img, size, RS_IMAGE_PROCESSOR_PIL, pixels_u8, pixel_values, err);
}
